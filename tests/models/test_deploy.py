"""The deployable model folder: exact round trips (plain, LoRA), the run's OUT/model/, the model card."""

import json
from pathlib import Path

import pytest
import torch

from alad_kit.adapter import AlignmentAdapter
from alad_kit.models.deploy import DeployConfig, attach, read_config
from alad_kit.models.heads import SpanHead, TokenClassificationHead
from alad_kit.models.model import AladModel, add_lora
from alad_kit.models.zoo import keep_layers, load_encoder

NER_LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")


def _config(**kw):
    base = dict(task="ner", labels=NER_LABELS, teacher="mpnet-base", student="minilm-l6", mode="frozen", window=3,
                max_length=48, doc_stride=None, eval_batch_size=8)
    return DeployConfig(**(base | kw))


def _model(lora=False, qa=False):
    encoder, tokenizer = load_encoder("minilm-l6")
    encoder = keep_layers(encoder, [0])
    torch.manual_seed(0)
    if lora:
        encoder = add_lora(encoder)
        for name, p in encoder.named_parameters():
            if "lora_B" in name:  # peft starts B at zero: make LoRA change the output
                torch.nn.init.normal_(p, std=0.2)
    head = SpanHead(48) if qa else TokenClassificationHead(48, len(NER_LABELS))
    model = AladModel(encoder, AlignmentAdapter(384, 48, window=3, hidden=32), head).eval()
    config = _config(task="qa", labels=None, doc_stride=32, max_length=96) if qa else _config(lora=lora, mode="lora+alad" if lora else "frozen")
    return attach(model, tokenizer, config)


@pytest.mark.parametrize("lora", [False, True])
def test_save_load_round_trip_gives_the_same_logits(tmp_path, lora):
    model = _model(lora=lora)
    model.save_pretrained(tmp_path / "m")
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert {"config.json", "README.md", "head.safetensors", "alad_adapter.safetensors", "student"} <= files
    assert ("lora" in files) == lora
    assert not [p for p in (tmp_path / "m").rglob("*") if p.suffix in (".bin", ".pt", ".pkl", ".tmp")]
    loaded = AladModel.from_pretrained(tmp_path / "m")
    batch = model.tokenizer(["Angela Merkel visited Paris .", "Hi"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out, again = model(**batch), loaded(**batch)
    assert type(out).__name__ == "TokenClassifierOutput" and out.logits.shape == (2, batch["input_ids"].shape[1], 5)
    assert torch.equal(out.logits, again.logits)
    assert loaded.deploy_config == model.deploy_config
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["id2label"]["1"] == "B-PER" and config["label2id"]["I-LOC"] == 4 and config["window"] == 3


def test_merged_lora_is_close_to_unmerged(tmp_path):
    model = _model(lora=True)
    model.save_pretrained(tmp_path / "m")
    merged = AladModel.from_pretrained(tmp_path / "m", merge_lora=True)
    assert not hasattr(merged.encoder, "peft_config")
    batch = model.tokenizer(["Angela Merkel visited Paris ."], return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(merged(**batch).logits, model(**batch).logits, atol=1e-5)


def test_qa_forward_follows_transformers_outputs():
    model = _model(qa=True)
    batch = model.tokenizer(["Who?"], ["Paris is big."], return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
    assert type(out).__name__ == "QuestionAnsweringModelOutput"
    assert out.start_logits.shape == out.end_logits.shape == batch["input_ids"].shape


def test_saving_needs_config_and_bad_folders_are_named(tmp_path):
    bare = AladModel(*[_model().encoder, None, TokenClassificationHead(384, 2)])
    with pytest.raises(ValueError, match="deploy_config"):
        bare.save_pretrained(tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="config.json"):
        AladModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"task": "pos"}')
    with pytest.raises(ValueError, match="config.json.*missing"):
        read_config(tmp_path)
    with pytest.raises(ValueError, match="labels"):
        _config(task="pos", labels=None)


def test_run_writes_its_model_and_card(deployed):
    run_dir, metrics = deployed("pos")
    folder = run_dir / "model"
    config = read_config(folder)
    assert config.task == "pos" and config.window == 3 and config.student_layers == (0,)
    assert config.run["scores"] == metrics["scores"] and config.test_examples == 24
    card = (folder / "README.md").read_text()
    assert "library_name: alad_kit" in card and "alad run --task pos" in card
    assert f"{metrics['scores']['accuracy']:.4f}" in card
    assert not (run_dir / "model.partial").exists()


def test_hub_id_is_downloaded_whole_and_push_uploads_the_folder(tmp_path, monkeypatch):
    import huggingface_hub

    model = _model()
    model.save_pretrained(tmp_path / "m")
    calls = {}

    def fake_snapshot(repo_id, **kw):  # no hub here: the "download" is the local folder
        calls["snapshot"] = repo_id, kw
        return str(tmp_path / "m")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    loaded = AladModel.from_pretrained("someone/alad-ner", revision="main")
    assert calls["snapshot"] == ("someone/alad-ner", {"revision": "main"})
    assert loaded.deploy_config == model.deploy_config

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kw):
            return type("Repo", (), {"repo_id": repo_id})()

        def upload_folder(self, repo_id, folder_path, **kw):
            calls["uploaded"] = sorted(p.name for p in Path(folder_path).iterdir())
            return "commit-url"

    import huggingface_hub.hub_mixin as hub_mixin

    monkeypatch.setattr(hub_mixin, "HfApi", FakeApi)
    assert model.push_to_hub("someone/alad-ner") == "commit-url"
    assert calls["uploaded"] == sorted(p.name for p in (tmp_path / "m").iterdir())


def test_int8_student_round_trip_is_exact_and_pickle_free(tmp_path):
    from alad_kit.compress.quantize import quantize_static_int8
    from alad_kit.data.demo import python_docs_corpus
    from alad_kit.models.quant_io import dynamic_quantize

    dynamic = _model()
    dynamic.encoder = dynamic_quantize(dynamic.encoder)
    static = _model()
    static.encoder, _ = quantize_static_int8(static.encoder, static.tokenizer, python_docs_corpus()[:8],
                                             sensitivity_texts=4, max_length=32)
    batch = dynamic.tokenizer(["Angela Merkel visited Paris .", "Hi"], padding=True, return_tensors="pt")
    for name, model in (("dynamic", dynamic), ("static", static)):
        model.save_pretrained(tmp_path / name)
        assert not [p for p in (tmp_path / name).rglob("*") if p.suffix in (".bin", ".pt", ".pkl")]
        loaded = AladModel.from_pretrained(tmp_path / name)
        assert loaded.deployed_parameters() == model.deployed_parameters()
        with torch.no_grad():
            assert torch.equal(loaded(**batch).logits, model(**batch).logits), name


def test_int8_student_run_deploys_an_int8_adapter(tmp_path):
    from alad_kit.core.config import RunConfig
    from alad_kit.models.adapter_precision import Int8Adapter
    from alad_kit.models.deploy import save_run_model
    from alad_kit.models.quant_io import dynamic_quantize

    model = _model()
    model.encoder = dynamic_quantize(model.encoder)
    cfg = RunConfig(task="ner", teacher="minilm-l6", student="students/int8", mode="frozen", window=3)
    save_run_model(tmp_path / "model", model, list(NER_LABELS), model.tokenizer, cfg, {"scores": {"f1_overall": 0.5}})
    assert read_config(tmp_path / "model").adapter_precision == "int8"
    deployed = AladModel.from_pretrained(tmp_path / "model")
    assert isinstance(deployed.adapter, Int8Adapter)
    assert deployed.deployed_parameters() == model.deployed_parameters()  # packed int8 adapter weights count
    exact = AladModel.from_pretrained(tmp_path / "model", adapter_precision="fp32")
    batch = model.tokenizer(["Angela Merkel visited Paris ."], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(exact(**batch).logits, model(**batch).logits)
        assert torch.allclose(deployed(**batch).logits, model(**batch).logits, atol=0.05)
    with pytest.raises(ValueError, match="adapter_precision='fp32'"):
        deployed.save_pretrained(tmp_path / "again")


def test_run_command_reproduces_the_config():
    from alad_kit.core.config import RunConfig
    from alad_kit.models.deploy import run_command

    cfg = RunConfig(task="pos", teacher="mpnet-base", student="students/asc", student_layers=(0, 2), mode="joint",
                    window=3, scale="cpu", skip_phase1=True, head_lr=1e-3)
    assert run_command(cfg) == ("alad run --task pos --student students/asc --student-layers 0,2 --mode joint "
                                "--window 3 --scale cpu --skip-phase1 --head-lr 0.001")


def _random_run_config(rng):
    import dataclasses
    import typing

    from alad_kit.core.config import RUN_CHOICES, RunConfig
    from alad_kit.core.config_args import _unwrap_optional

    special = {"window": lambda: rng.choice([1, 3, 5, 7]), "student_layers": lambda: tuple(rng.sample(range(6), 2)),
               "teacher_layer": lambda: rng.randint(1, 12), "teacher_probe": None,  # one of the two, below
               "mode": lambda: rng.choice(["frozen", "joint", "lora", "lora+alad", "finetune"]),
               "data_dir": lambda: rng.choice(["data dir/with space", "/abs/ner", "wnut16"])}
    hints, values = typing.get_type_hints(RunConfig), {}
    for f in dataclasses.fields(RunConfig):
        if not f.compare or f.name == "is_teacher_run" or rng.random() < 0.4 and f.default is not dataclasses.MISSING:
            continue
        base, _ = _unwrap_optional(hints[f.name])
        if f.name in RUN_CHOICES and f.name != "mode":
            values[f.name] = rng.choice(list(RUN_CHOICES[f.name]))
        elif special.get(f.name):
            values[f.name] = special[f.name]()
        elif f.name in special:
            continue
        elif base is bool:
            values[f.name] = rng.random() < 0.5
        elif base is float:
            values[f.name] = rng.choice([1e-4, 5e-5, 0.003, 0.25])
        elif base is int:
            values[f.name] = rng.randint(1, 2000)
        elif base is str:
            values[f.name] = rng.choice(["mpnet-base", "runs/x y", "org/name", "minilm-l6"])
    return RunConfig(**values)


def test_the_generated_command_parses_back_to_the_same_config(monkeypatch):
    """For random RunConfigs, `alad run` parsing the model card's command gives back the same configuration."""
    import random
    import shlex

    from alad_kit.cli import build_parser, run_config_from_args
    from alad_kit.models.deploy import run_command

    monkeypatch.setenv("ALAD_SCALE", "full")  # the command names the scale, whatever the environment says
    rng, tried = random.Random(0), 0
    while tried < 60:
        try:
            cfg = _random_run_config(rng)
        except ValueError:  # a combination RunConfig refuses (e.g. both teacher_layer and teacher_probe)
            continue
        tried += 1
        argv = shlex.split(run_command(cfg))
        assert argv[:2] == ["alad", "run"]
        assert run_config_from_args(build_parser().parse_args(argv[1:])) == cfg, run_command(cfg)
