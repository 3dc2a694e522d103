"""A model folder someone hands you (models/folder_checks.py, deploy.load_folder): it never runs code, loads whole
or not at all, names the file and field it refuses, is never mistaken for a hub id, and is saved readable as the
umask says."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _tiny_models import minilm_dir, tiny_bert
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer

from alad_kit.adapter import AlignmentAdapter
from alad_kit.models import folder_checks
from alad_kit.models.deploy import DeployConfig, attach
from alad_kit.models.heads import TokenClassificationHead
from alad_kit.models.model import AladModel, add_lora
from alad_kit.models.zoo import is_path, load_encoder

LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
EVIL = "import pathlib\npathlib.Path({marker!r}).write_text('ran')\n"


def _save_tiny(folder: Path, lora: bool = False) -> Path:
    """A real two-layer BERT student (width 16) + window-3 adapter + NER head, saved as alad run saves it."""
    encoder = tiny_bert(layers=2)
    if lora:
        encoder = add_lora(encoder)
    torch.manual_seed(0)
    model = AladModel(encoder, AlignmentAdapter(16, 8, window=3, hidden=12), TokenClassificationHead(8, len(LABELS)))
    config = DeployConfig(task="ner", labels=LABELS, teacher="mpnet-base", student="tiny", window=3, max_length=32,
                          mode="lora+alad" if lora else "frozen", lora=lora, doc_stride=None, eval_batch_size=4,
                          student_layers=(0, 1))
    attach(model.eval(), AutoTokenizer.from_pretrained(minilm_dir()), config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved")
    return {"plain": _save_tiny(root / "plain"), "lora": _save_tiny(root / "lora", lora=True)}


@pytest.fixture
def folder(saved, tmp_path):
    """A fresh copy of the plain folder to tamper with."""
    return Path(shutil.copytree(saved["plain"], tmp_path / "model"))


def _edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _plant_code(folder: Path, where: str, marker: Path) -> Path:
    """Custom code transformers would run after its [y/N] question: an auto_map to a module that drops ``marker``."""
    code = folder / "student" / "evil.py"
    if where == "config":  # an unknown model_type: transformers has no class of its own and asks to run the code
        code.write_text(EVIL.format(marker=str(marker)) + "from transformers import BertConfig, BertModel\n"
                        "class EvilConfig(BertConfig):\n    model_type = 'alad_evil'\n"
                        "class EvilModel(BertModel):\n    config_class = EvilConfig\n")
        _edit_json(folder / "student" / "config.json", model_type="alad_evil",
                   auto_map={"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"})
        return folder / "student" / "config.json"
    code.write_text(EVIL.format(marker=str(marker)) + "from transformers import BertTokenizer\n"
                    "class EvilTokenizer(BertTokenizer):\n    pass\n")
    _edit_json(folder / "student" / "tokenizer_config.json", tokenizer_class="EvilTokenizer",
               auto_map={"AutoTokenizer": ["evil.EvilTokenizer", None]})
    return folder / "student" / "tokenizer_config.json"


# ---------------------------------------------------------------------------------------------- no code runs
@pytest.mark.parametrize("where", ["config", "tokenizer"])
def test_yes_on_stdin_never_runs_a_folders_code(folder, tmp_path, where):
    marker = tmp_path / "PWNED"
    planted = {_plant_code(folder, where, marker), folder / "student" / "evil.py"}
    commands = [["predict", str(folder), "Angela Merkel visited Paris ."]]
    if where == "config":
        commands.append(["evaluate", str(folder), "--data", str(tmp_path)])
    for argv in commands:
        proc = subprocess.run([sys.executable, "-m", "alad_kit.cli", *argv], input="y\n" * 20, capture_output=True,
                              text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        assert not marker.exists(), f"alad {argv[0]} ran the folder's code"
        assert proc.returncode == 2 and proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"alad {argv[0]}: error: ")
        assert any(f"error: {path}: " in lines[0] for path in planted), lines[0]  # the auto_map or the code


def test_an_auto_map_alone_is_refused_naming_the_file(folder, tmp_path):
    planted = _plant_code(folder, "config", tmp_path / "PWNED")
    (folder / "student" / "evil.py").unlink()
    with pytest.raises(ValueError, match=rf"^{re.escape(str(planted))}: auto_map points to custom code"):
        AladModel.from_pretrained(folder)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("where", ["config", "tokenizer"])
def test_the_loaders_refuse_remote_code_even_without_the_folder_check(folder, tmp_path, monkeypatch, where):
    """trust_remote_code=False on every from_pretrained: with the check switched off and "y" on stdin, nothing runs."""
    marker = tmp_path / "PWNED"
    _plant_code(folder, where, marker)
    monkeypatch.setattr(folder_checks, "refuse_code", lambda folder: None)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n" * 20))
    try:
        AladModel.from_pretrained(folder)
    except Exception:  # refusing is the loaders' business; what matters is that nothing ran
        pass
    assert not marker.exists()


@pytest.mark.parametrize("name", ["student/modeling_extra.py", "student/pytorch_model.bin", "lora.pkl",
                                  "student/fast.cpython-311-x86_64-linux-gnu.so", "extra/weights.pt"])
def test_code_and_pickle_files_are_refused_before_loading(folder, tmp_path, name):
    path = folder / name
    path.parent.mkdir(exist_ok=True)
    class Evil:
        def __reduce__(self):
            return exec, (EVIL.format(marker=str(tmp_path / "PWNED")),)

    torch.save({"x": Evil()}, path)  # a pickle that would run code when unpickled (and a .py that runs too)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: a model folder must not hold code or pickles"):
        AladModel.from_pretrained(folder)
    assert not (tmp_path / "PWNED").exists()


# ---------------------------------------------------------------------------------------------- whole or nothing
def _drop_tensors(path: Path, part: str) -> None:
    state = load_file(str(path))
    save_file({k: v for k, v in state.items() if part not in k}, str(path))


def _config_edit(**changes):
    return lambda f: _edit_json(f / "config.json", **changes)


def _student_edit(**changes):
    return lambda f: _edit_json(f / "student" / "config.json", **changes)


def _adapter_edit(**changes):
    return lambda f: _edit_json(f / "alad_adapter_config.json", **changes)


NER_AS_POS = ["NOUN", "VERB", "ADJ", "ADP", "DET"]
CASES = {
    "deleted tokenizer.json": (lambda f: (f / "student" / "tokenizer.json").unlink(),
                               FileNotFoundError, r"/student: missing tokenizer.json"),
    "deleted tokenizer_config.json": (lambda f: (f / "student" / "tokenizer_config.json").unlink(),
                                      FileNotFoundError, r"/student: missing tokenizer_config.json"),
    "empty tokenizer.json": (lambda f: (f / "student" / "tokenizer.json").write_text(""),
                             ValueError, r"student/tokenizer.json: not valid JSON \(empty file\)"),
    "tokenizer.json without vocab": (lambda f: (f / "student" / "tokenizer.json").write_text('{"model": {}}'),
                                     ValueError, r"student/tokenizer.json: no vocabulary"),
    "deleted student weights": (lambda f: (f / "student" / "model.safetensors").unlink(),
                                FileNotFoundError, r"/student: missing model.safetensors"),
    "deleted layer tensors": (lambda f: _drop_tensors(f / "student" / "model.safetensors", "layer.1.attention"),
                              ValueError, r"student/model.safetensors: \d+ tensor\(s\) missing that student/config.json "
                                          r"describes \(first 'encoder.layer.1.attention"),
    "edited num_hidden_layers": (_student_edit(num_hidden_layers=3), ValueError,
                                 r"student/model.safetensors: \d+ tensor\(s\) missing .*'encoder.layer.2"),
    "fewer num_hidden_layers": (_student_edit(num_hidden_layers=1), ValueError,
                                r"student/model.safetensors: \d+ unexpected tensor\(s\) \(first 'encoder.layer.1"),
    "huge num_hidden_layers": (_student_edit(num_hidden_layers=10**9), ValueError,
                               r"student/config.json: num_hidden_layers 1000000000 but the weights hold only"),
    "huge intermediate_size": (_student_edit(intermediate_size=10**9), ValueError,
                               r"student/model.safetensors: tensor 'encoder.layer.0.intermediate.dense.bias' has shape"
                               r" \[32\], student/config.json says \[1000000000\]"),
    "huge vocab_size": (_student_edit(vocab_size=10**10), ValueError,
                        r"student/model.safetensors: tensor 'embeddings.word_embeddings.weight' has shape"),
    "string hidden_size": (_student_edit(hidden_size="16"), ValueError,
                           r"student/config.json: hidden_size must be a positive integer, got '16'"),
    "unknown model_type": (_student_edit(model_type="nonesuch"), ValueError,
                           r"student/config.json: transformers cannot build this config"),
    "window vs adapter": (_config_edit(window=5), ValueError,
                          r"config.json: window 5, but alad_adapter_config.json and its weights have window 3"),
    "adapter config vs its weights": (_adapter_edit(window=5), ValueError,
                                      r"alad_adapter.safetensors: tensor 'window_proj.weight' has shape \[12, 16, 3\]"),
    "huge adapter hidden": (_adapter_edit(hidden=10**9), ValueError,
                            r"alad_adapter.safetensors: tensor 'out_proj.weight' has shape \[8, 12\], "
                            r"alad_adapter_config.json says \[8, 1000000000\]"),
    "missing adapter": (lambda f: (f / "alad_adapter_config.json").unlink() or (f / "alad_adapter.safetensors").unlink(),
                        FileNotFoundError, r": missing alad_adapter_config.json and alad_adapter.safetensors"),
    "adapter but no window": (_config_edit(window=None, mode="head"), ValueError,
                              r"alad_adapter_config.json: unexpected adapter file .*mode head has no adapter"),
    "mode without adapter, window set": (_config_edit(mode="finetune"), ValueError,
                                         r"config.json: DeployConfig: mode finetune has no adapter, got window 3"),
    "task vs labels": (_config_edit(labels=NER_AS_POS, id2label=dict(enumerate(NER_AS_POS)),
                                    label2id={x: i for i, x in enumerate(NER_AS_POS)}), ValueError,
                       r"config.json: DeployConfig: NER labels must be a BIO scheme .*'NOUN'"),
    "repeated labels": (_config_edit(labels=["O", "B-PER", "B-PER", "B-LOC", "I-LOC"]), ValueError,
                        r"config.json: DeployConfig: labels repeat: \['B-PER'\]"),
    "labels vs id2label": (_config_edit(id2label={"0": "O", "1": "B-LOC", "2": "I-LOC", "3": "B-PER", "4": "I-PER"}),
                           ValueError, r"config.json: id2label does not match labels"),
    "labels vs label2id": (_config_edit(label2id={"O": 0, "B-PER": 2, "I-PER": 1, "B-LOC": 3, "I-LOC": 4}),
                           ValueError, r"config.json: label2id does not match labels"),
    "student_layers vs num_hidden_layers": (_config_edit(student_layers=[0, 1, 2]), ValueError,
                                            r"config.json: student_layers \[0, 1, 2\] are 3 layers, "
                                            r"student/config.json has num_hidden_layers 2"),
    "window not an integer": (_config_edit(window="3"), ValueError,
                              r"config.json: DeployConfig: window must be a positive integer or null, got '3'"),
    "head shape": (lambda f: save_file({"classifier.weight": torch.zeros(7, 8), "classifier.bias": torch.zeros(7)},
                                       str(f / "head.safetensors")), ValueError,
                   r"head.safetensors: tensor 'classifier.bias' has shape \[7\], config.json \(5 labels, input "
                   r"width 8\) says \[5\]"),
    "head extra tensor": (lambda f: save_file({**load_file(str(f / "head.safetensors")), "x": torch.zeros(1)},
                                              str(f / "head.safetensors")), ValueError,
                          r"head.safetensors: 1 unexpected tensor\(s\) \(first 'x'\)"),
    "head not safetensors": (lambda f: (f / "head.safetensors").write_bytes(b"\x00" * 16), ValueError,
                             r"head.safetensors: not a readable safetensors file"),
    "lora true but no lora folder": (_config_edit(lora=True, mode="lora+alad"), FileNotFoundError,
                                     r"/lora: missing adapter_config.json"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_tampered_folder_is_refused_naming_file_and_field(folder, monkeypatch, case):
    import transformers

    tamper, error, message = CASES[case]
    tamper(folder)

    def no_weights(*args, **kwargs):  # every refusal comes before a weight is allocated
        raise AssertionError("weights loaded before the folder was checked")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", no_weights)
    with pytest.raises(error, match=f"^{re.escape(str(folder))}/?{message}"):
        AladModel.from_pretrained(folder)


def test_an_untouched_copy_loads(folder):
    assert AladModel.from_pretrained(folder).deploy_config.labels == LABELS


def test_missing_or_foreign_lora_tensors_are_refused(saved, tmp_path):
    lora = Path(shutil.copytree(saved["lora"], tmp_path / "lora"))
    weights = lora / "lora" / "adapter_model.safetensors"
    state = load_file(str(weights))
    AladModel.from_pretrained(lora)  # the untouched folder loads
    save_file({k: v for k, v in state.items() if "layer.1" not in k}, str(weights))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(weights))}: 4 tensor\(s\) missing that lora/adapter_config.json describes"):
        AladModel.from_pretrained(lora)
    save_file({**state, "base_model.model.pooler.dense.weight": torch.zeros(16, 16)}, str(weights))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(weights))}: 1 tensor\(s\) that are not LoRA weights"):
        AladModel.from_pretrained(lora)
    save_file({k: (v[:, :8].contiguous() if k.endswith("lora_A.weight") else v) for k, v in state.items()}, str(weights))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(weights))}: .*size mismatch"):
        AladModel.from_pretrained(lora)
    save_file(state, str(weights))
    _edit_json(lora / "lora" / "adapter_config.json", r=10**9)
    with pytest.raises(ValueError, match=r"adapter_config.json: LoRA rank 1000000000 must be a positive integer at most"):
        AladModel.from_pretrained(lora)


def test_int8_student_files_are_checked(folder):
    from alad_kit.models.quant_io import dynamic_quantize

    model = AladModel.from_pretrained(folder)
    model.encoder = dynamic_quantize(model.encoder)
    model.save_pretrained(folder)
    AladModel.from_pretrained(folder)
    marker = folder / "student" / "alad_quantized.json"
    _edit_json(marker, model_class="pipeline")  # a transformers function, called with the config if trusted
    with pytest.raises(ValueError, match=r"model_class 'pipeline' of its int8 marker is not a transformers model"):
        AladModel.from_pretrained(folder)
    _edit_json(marker, model_class="BertModel")
    _edit_json(folder / "student" / "config.json", intermediate_size=10**9)
    with pytest.raises(ValueError, match=r"model.int8.safetensors: holds \d+ values, student/config.json describes"):
        AladModel.from_pretrained(folder)


# ---------------------------------------------------------------------------------------------- paths and hub ids
@pytest.mark.parametrize("name, path", [("runs/modle", True), ("./m", True), ("/abs/m", True), ("~/m", True),
                                        ("a/b/c", True), ("org/name", False), ("bert-base-uncased", False),
                                        ("runs", True)])
def test_the_path_rule(tmp_path, monkeypatch, name, path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert is_path(name) is path


def test_a_local_path_never_goes_to_the_hub_and_a_hub_id_does(tmp_path, monkeypatch, saved):
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kw: calls.append(repo_id) or
                        str(saved["plain"]))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for name in ("runs/modle", "./runs/modle", "~/no-such-alad-model", str(tmp_path / "none"), "a/b/c"):
        with pytest.raises(FileNotFoundError, match=f"^no such folder: {re.escape(name)} "):
            AladModel.from_pretrained(name)
        with pytest.raises(FileNotFoundError, match=f"^no such folder: {re.escape(name)} "):
            load_encoder(name)
    assert calls == []
    assert AladModel.from_pretrained("org/alad-ner").deploy_config.labels == LABELS
    assert calls == ["org/alad-ner"]
    encoder, _ = load_encoder("minilm-l6")  # offline aliases still resolve
    assert encoder.config.hidden_size == 384


# ---------------------------------------------------------------------------------------------- umask
@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_model_files_honour_the_umask(saved, tmp_path, umask):
    model = AladModel.from_pretrained(saved["lora"])
    old = os.umask(umask)
    try:
        model.save_pretrained(tmp_path / "m")
    finally:
        os.umask(old)
    modes = {str(p.relative_to(tmp_path)): p.stat().st_mode & 0o777 for p in (tmp_path / "m").rglob("*")}
    assert modes["m/student/model.safetensors"] == modes["m/alad_adapter.safetensors"] == 0o666 & ~umask
    assert {mode for name, mode in modes.items() if (tmp_path / name).is_file()} == {0o666 & ~umask}, modes
    assert {mode for name, mode in modes.items() if (tmp_path / name).is_dir()} == {0o777 & ~umask}, modes


def test_the_cli_prints_a_refusal_as_one_line_naming_file_and_field(folder, capsys):
    from alad_kit.cli import main

    _edit_json(folder / "config.json", window=5)
    assert main(["predict", str(folder), "Angela Merkel visited Paris ."]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"alad predict: error: {folder}/config.json: window 5, but alad_adapter_config.json and its "
                   f"weights have window 3"]


def test_a_tokenizer_with_ids_beyond_the_embeddings_is_refused(folder):
    path = folder / "student" / "tokenizer.json"
    data = json.loads(path.read_text())
    data["added_tokens"].append({**data["added_tokens"][0], "id": 30522, "content": "[EXTRA]"})
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(folder))}/student: the tokenizer has 30523 tokens, "
                                         r"config.json vocab_size is 30522"):
        AladModel.from_pretrained(folder)
