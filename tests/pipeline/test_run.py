"""End-to-end phases 1-3 at smoke scale (teacher MiniLM-L6, student MiniLM cut to one layer)."""

import json
from pathlib import Path

import pytest

from alad_kit.core.config import HEAD_LR, RunConfig
from alad_kit.pipeline.run import run
from alad_kit.training.cache import model_fingerprint
from alad_kit.training.trainer import TrainingInterrupted

BASE = dict(teacher="minilm-l6", student="minilm-l6", student_layers=(0,), scale="smoke", device="cpu")


def _run(tmp_path, data, corpus, name="run", cache="cache", resume=False, callbacks=(), **kw):
    cfg = RunConfig(out=str(tmp_path / name), cache_dir=str(tmp_path / cache), **(BASE | kw))
    return run(cfg, resume=resume, callbacks=callbacks, task_data=data, corpus_fallback=corpus)


@pytest.fixture(scope="module")
def frozen_ner(tmp_path_factory, ner_task_data, corpus_texts):
    tmp = tmp_path_factory.mktemp("frozen")
    return tmp, _run(tmp, ner_task_data, corpus_texts, task="ner", mode="frozen", window=3)


def test_frozen_run_writes_complete_metrics(frozen_ner):
    tmp, m = frozen_ner
    on_disk = json.loads((tmp / "run" / "metrics.json").read_text())
    assert on_disk["scores"] == m["scores"]
    for key in ("task", "teacher", "student", "mode", "window", "seed", "scale", "scores", "params", "size_pct",
                "alignment", "timings", "versions"):
        assert key in on_disk
    assert set(m["scores"]) >= {"f1_overall", "f1_macro"}
    assert 0 <= m["scores"]["f1_overall"] <= 1
    assert list(m["alignment"]) == ["before_phase1", "after_phase1", "after_phase2", "after_phase3"]
    assert m["selection"]["stopped_by"] == "epochs" and m["config"]["patience"] is None
    # Alignment training must move the adapter towards the teacher on held-out text.
    assert m["alignment"]["after_phase2"]["mse"] < m["alignment"]["before_phase1"]["mse"]
    assert m["alignment"]["after_phase2"]["cosine"] > m["alignment"]["before_phase1"]["cosine"]
    history = json.loads((tmp / "run" / "history.json").read_text())
    assert set(history) == {"phase1", "phase2", "phase3"}
    assert (tmp / "run" / "probes.csv").is_file()
    assert not list((tmp / "run").glob(".*.tmp"))
    # the record of what the run built: its adapter folders in the cache, in order, and the models' fingerprints
    record = on_disk["record"]
    assert [a["phase"] for a in record["adapters"]] == ["phase1", "phase2"]
    cached = sorted(p.name for p in (tmp / "cache" / "adapters").iterdir() if p.suffix != ".lock")
    assert sorted(Path(a["folder"]).name for a in record["adapters"]) == cached
    assert all(Path(a["folder"]).name == f"{a['phase']}-{a['key']}" for a in record["adapters"])
    assert set(record["fingerprints"]) == {"teacher", "student"} and record["teacher_layer"] == 6
    assert record["cache_dir"] == str(tmp / "cache") and record["labels"][0] == "O"


def test_same_seed_twice_gives_same_metrics_and_reuses_adapters(tmp_path, frozen_ner, ner_task_data, corpus_texts):
    tmp, first = frozen_ner
    # Same cache: phases 1-2 come from the adapter cache; fresh cache: everything recomputed.
    again = _run(tmp, ner_task_data, corpus_texts, name="again", task="ner", mode="frozen", window=3)
    fresh = _run(tmp_path, ner_task_data, corpus_texts, name="fresh", task="ner", mode="frozen", window=3)
    assert again["timings"]["phase1"] == 0.0 and "phase1_cached_from" in again["timings"]
    for other in (again, fresh):
        assert other["scores"] == first["scores"]
        assert other["alignment"] == first["alignment"]


def test_killed_and_resumed_run_matches_uninterrupted(tmp_path, frozen_ner, ner_task_data, corpus_texts):
    _, reference = frozen_ner
    for phase, step in (("phase2", 3), ("phase3", 3)):

        def kill(name, current, phase=phase, step=step):
            if name == phase and current == step:
                raise TrainingInterrupted(f"simulated kill in {name} at step {current}")

        out = tmp_path / phase
        with pytest.raises(TrainingInterrupted):
            _run(out, ner_task_data, corpus_texts, callbacks=(kill,), task="ner", mode="frozen", window=3)
        assert not (out / "run" / "metrics.json").exists()  # nothing half-written
        resumed = _run(out, ner_task_data, corpus_texts, resume=True, task="ner", mode="frozen", window=3)
        assert resumed["scores"] == reference["scores"], phase
        assert resumed["alignment"] == reference["alignment"], phase


def test_embedding_cache_shared_across_windows(frozen_ner, ner_task_data, corpus_texts):
    tmp, _ = frozen_ner
    m = _run(tmp, ner_task_data, corpus_texts, name="w1", task="ner", mode="frozen", window=1)
    assert m["cache"]["hits"] >= 4 and m["cache"]["misses"] == 0  # probe, phase1, phase2 x student/teacher
    assert m["window"] == 1


def test_no_cache_recomputes_phases_and_reads_no_cached_embeddings(frozen_ner, ner_task_data, corpus_texts):
    tmp, first = frozen_ner
    for name in ("nocache", "nocache-again"):  # twice: a finished --no-cache adapter is not reused either
        m = _run(tmp, ner_task_data, corpus_texts, name=name, task="ner", mode="frozen", window=3, use_cache=False)
        assert m["timings"]["phase1"] > 0 and m["timings"]["phase2"] > 0
        assert not any(k.endswith("_cached_from") for k in m["timings"])
        assert m["cache"]["hits"] == 0 and m["cache"]["enabled"] is False
    # fp32 teacher outputs instead of the fp16 cache: close to, not bit-equal to, the cached run's alignment
    assert m["alignment"]["after_phase2"]["mse"] == pytest.approx(first["alignment"]["after_phase2"]["mse"], rel=0.05)


@pytest.mark.parametrize(
    "ablation, phases",
    [
        (dict(skip_phase1=True), ["before_phase1", "after_phase2", "after_phase3"]),
        (dict(skip_phase2=True), ["before_phase1", "after_phase1", "after_phase3"]),
        (dict(random_adapter=True), ["before_phase1", "after_phase3"]),
    ],
)
def test_ablations(tmp_path, ner_task_data, corpus_texts, ablation, phases):
    m = _run(tmp_path, ner_task_data, corpus_texts, task="ner", mode="frozen", window=3, **ablation)
    assert list(m["alignment"]) == phases
    assert m["ablation"] == {"skip_phase1": False, "skip_phase2": False, "random_adapter": False,
                             "teacher_layer": None, "lr_override": None, "adapter_kind": None} | ablation


def test_phase3_lr_override_is_used_and_recorded(tmp_path, ner_task_data, corpus_texts):
    m = _run(tmp_path, ner_task_data, corpus_texts, task="ner", mode="head", lr=3e-3)
    assert m["phase3_lr"] == {"head": 3e-3} and m["ablation"]["lr_override"] == {"all": 3e-3}
    m = _run(tmp_path, ner_task_data, corpus_texts, name="parts", task="ner", mode="frozen", window=1,
             head_lr=4e-3, adapter_lr=2e-4)
    assert m["phases"]["phase3"]["lr"] == {"adapter": 2e-4, "head": 4e-3}
    assert m["ablation"]["lr_override"] == {"head": 4e-3, "adapter": 2e-4}


def test_metrics_record_every_phase_and_the_truncation(frozen_ner, ner_task_data, corpus_texts):
    tmp, m = frozen_ner
    assert list(m["phases"]) == ["phase1", "phase2", "phase3"]
    for name, phase in m["phases"].items():
        assert set(phase) >= {"steps", "tokens", "seconds", "precision", "lr", "student_passes"}, name
        assert phase["steps"] > 0 and phase["tokens"] > 0 and phase["precision"] == "fp32"
    assert m["phases"]["phase1"]["lr"] == {"adapter": 5e-4} and m["phases"]["phase2"]["lr"] == {"adapter": 1e-4}
    assert m["phases"]["phase3"]["lr"] == {"adapter": 1e-4, "head": HEAD_LR}
    # frozen M_C: one student pass fills each cache entry, none once it is warm
    assert [m["phases"][p]["student_passes"] for p in ("phase1", "phase2", "phase3")] == [1, 1, 1]
    again = _run(tmp, ner_task_data, corpus_texts, name="again", task="ner", mode="frozen", window=3)
    assert again["phases"]["phase3"]["student_passes"] == 0 and again["phases"]["phase1"]["reused"]
    cut = m["truncation"]["by_split"]["test"]
    assert m["truncation"]["test_words_cut_pct"] == pytest.approx(100 * cut["words_cut"] / cut["words"])
    assert cut["words_cut"] > 0  # smoke max_length 48 cuts a long test sentence (the warning says so too)


def test_metrics_split_every_phase_into_data_compute_eval_and_io(frozen_ner):
    tmp, _ = frozen_ner
    phases = json.loads((tmp / "run" / "metrics.json").read_text())["phases"]
    for name, phase in phases.items():
        timing = phase["timing"]
        assert set(timing) == {"data", "compute", "eval", "io", "other"}, name
        assert all(v >= 0 for v in timing.values()) and timing["compute"] > 0, name
        assert sum(timing.values()) - timing["other"] <= phase["seconds"] + 0.02, name  # rounding to 0.01 s
        assert phase["prepare_seconds"] >= 0, name
    assert phases["phase3"]["timing"]["eval"] > 0  # validation after every epoch
    assert phases["phase1"]["timing"]["eval"] == 0  # alignment phases validate nothing


def test_cached_student_features_give_the_live_path_result(tmp_path, ner_task_data, corpus_texts):
    """head mode reads M_C's states from the cache; in fp32 that trains and scores as running M_C each step."""
    cached = _run(tmp_path, ner_task_data, corpus_texts, name="cached", task="ner", mode="head")
    live = _run(tmp_path, ner_task_data, corpus_texts, name="live", task="ner", mode="head", use_cache=False)
    assert cached["phases"]["phase3"]["student_passes"] == 1
    assert live["phases"]["phase3"]["student_passes"] == pytest.approx(2.0)  # 2 smoke epochs, a pass per step
    losses = [[loss for _, loss in json.loads((tmp_path / n / "history.json").read_text())["phase3"]]
              for n in ("cached", "live")]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)
    assert cached["scores"] == live["scores"]


@pytest.mark.parametrize("mode, live", [("frozen", False), ("joint", True), ("lora+alad", True)])
def test_after_phase3_probe_encodes_with_the_tuned_student(tmp_path, ner_task_data, corpus_texts, monkeypatch,
                                                           mode, live):
    from alad_kit.training.phases import AlignmentData

    calls = []
    original = AlignmentData.with_student
    monkeypatch.setattr(AlignmentData, "with_student", lambda self, enc: calls.append(enc) or original(self, enc))
    m = _run(tmp_path, ner_task_data, corpus_texts, task="ner", mode=mode, window=1)
    assert bool(calls) == live and "after_phase3" in m["alignment"]
    if live:  # the probe ran the encoder that phase 3 trained, not the cached states of the original
        assert any(p.requires_grad for p in calls[0].parameters())


@pytest.mark.parametrize("mode", ["finetune", "joint", "lora", "lora+alad"])
def test_every_mode_runs(tmp_path, ner_task_data, corpus_texts, mode):
    m = _run(tmp_path, ner_task_data, corpus_texts, task="ner", mode=mode, window=1)
    assert m["mode"] == mode
    assert (m["window"] is None) == (mode in ("finetune", "lora"))
    assert 0 < m["size_pct"] < 100
    assert len(m["selection"]["validation"]) == 2  # smoke: 2 epochs, each evaluated


def test_teacher_baseline(tmp_path, ner_task_data, corpus_texts):
    m = _run(tmp_path, ner_task_data, corpus_texts, task="ner", mode="finetune", is_teacher_run=True)
    assert m["is_teacher"] and m["student"] == "minilm-l6" and m["window"] is None
    assert m["size_pct"] == pytest.approx(100.0)
    # The fine-tuned teacher it saved can replace the pretrained one in phases 1-2.
    tuned = tmp_path / "run" / "teacher_finetuned"
    assert (tuned / "config.json").is_file()
    m2 = _run(tmp_path, ner_task_data, corpus_texts, name="with_tuned", task="ner", mode="frozen", window=1,
              teacher_finetuned=str(tuned))
    assert m2["config"]["teacher_finetuned"] == str(tuned)
    assert m2["alignment"]["after_phase2"]["mse"] < m2["alignment"]["before_phase1"]["mse"]


def test_pos_and_qa_smoke(tmp_path, pos_task_data, qa_task_data, corpus_texts):
    pos = _run(tmp_path, pos_task_data, corpus_texts, name="pos", task="pos", mode="frozen", window=3)
    assert set(pos["scores"]) >= {"accuracy", "f1"}
    qa = _run(tmp_path, qa_task_data, corpus_texts, name="qa", task="qa", mode="frozen", window=3)
    assert set(qa["scores"]) >= {"exact", "f1", "HasAns_f1", "NoAns_f1"}
    assert qa["data"] == {"train": 12, "validation": 6, "test": 6}


def test_bad_run_configs():
    with pytest.raises(ValueError, match="unknown task"):
        RunConfig(task="sentiment", **BASE)
    with pytest.raises(ValueError, match="unknown mode"):
        RunConfig(task="ner", mode="adapter", **BASE)
    with pytest.raises(ValueError, match="odd"):
        RunConfig(task="ner", window=4, **BASE)
    with pytest.raises(ValueError, match="teacher baseline"):
        RunConfig(task="ner", mode="frozen", is_teacher_run=True, **BASE)
    assert RunConfig(task="ner", mode="head", is_teacher_run=True, **BASE).is_teacher_run
    for layer in (0, True, "6"):
        with pytest.raises(ValueError, match="teacher_layer must be a hidden state"):
            RunConfig(task="ner", teacher_layer=layer, **BASE)
    with pytest.raises(ValueError, match="patience must be a whole number"):
        RunConfig(task="ner", patience=0, **BASE)
    with pytest.raises(ValueError, match="not both"):
        RunConfig(task="ner", teacher_layer=3, teacher_probe="probe_layers.json", **BASE)


def test_the_frozen_teacher_with_a_head_reads_its_states_from_the_cache(tmp_path, ner_task_data, corpus_texts):
    """is_teacher_run + mode head: M_L frozen with a head, the ceiling of a student that imitates it."""
    m = _run(tmp_path, ner_task_data, corpus_texts, task="ner", mode="head", is_teacher_run=True,
             teacher="minilm-l6", student_layers=None)
    assert m["is_teacher"] and m["mode"] == "head" and m["window"] is None
    # one pass fills the cold cache; the live path would make one per epoch (2 at smoke scale)
    assert m["phases"]["phase3"]["student_passes"] == 1 and len(m["selection"]["validation"]) == 2
    assert m["phases"]["phase3"]["lr"] == {"head": HEAD_LR}


def test_unknown_teacher_is_a_clear_error(tmp_path, ner_task_data, corpus_texts):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        _run(tmp_path, ner_task_data, corpus_texts, task="ner", teacher=str(tmp_path / "nope"))


def test_adapter_cache_key_keeps_dense_keys_and_separates_kinds(tmp_path):
    import torch

    from alad_kit.pipeline.run import Experiment

    def keys(**kw):
        exp = Experiment(RunConfig(task="ner", teacher="t", student="s", out=str(tmp_path / "run"), **kw))
        torch.manual_seed(0)
        exp.tally.fingerprints = dict.fromkeys(("teacher", "student"), model_fingerprint(torch.nn.Linear(3, 2)))
        return exp.adapter_key("phase1", None), exp.adapter_key("phase2", "abc")

    # dense keys do not name the kind (they are what they were before kinds existed); other kinds differ
    assert keys() == keys(adapter_kind="dense")
    factorised = keys(adapter_kind="factorised")
    assert not set(factorised) & set(keys())


# ------------------------------------------------------------------------------------------ robustness
def _flip_byte(path, at=-5):
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_adapter_key_names_the_training_texts(tmp_path, ner_task_data):
    from torch import nn

    from alad_kit.pipeline.run import Experiment, _digest

    exp = Experiment(RunConfig(task="ner", out=str(tmp_path / "o"), **BASE), task_data=ner_task_data)
    exp.tally.fingerprints = {"teacher": model_fingerprint(nn.Linear(3, 4)),
                              "student": model_fingerprint(nn.Linear(3, 2))}
    keys = {exp.adapter_key("phase2", "p", _digest(texts)) for texts in (["a b"], [["a", "b"]], ["a c"], ["a b"])}
    assert len(keys) == 3  # same texts, same key; other texts (even tokenised differently), another key


def test_other_training_texts_never_reuse_a_cached_adapter(frozen_ner, ner_task_data, corpus_texts):
    tmp, first = frozen_ner
    splits, labels = ner_task_data
    other_train = {**splits, "train": splits["train"].select(range(len(splits["train"]) // 2))}
    m = _run(tmp, (other_train, labels), corpus_texts, name="other-task-text", task="ner", mode="frozen", window=3)
    assert m["timings"]["phase1"] == 0.0  # same corpus: phase 1 reused
    assert m["timings"]["phase2"] > 0 and "phase2_cached_from" not in m["timings"]  # other task text: retrained
    other = tmp / "other-corpus-texts"  # (the fixture's corpus is the fallback, or the real one with ALAD_DATA_DIR)
    other.mkdir()
    (other / "c.txt").write_text("\n".join(corpus_texts[::-1][:50]))
    m = _run(tmp, ner_task_data, corpus_texts, name="other-corpus", task="ner", mode="frozen", window=3,
             corpus_dir=str(other))
    assert m["timings"]["phase1"] > 0 and "phase1_cached_from" not in m["timings"]
    assert m["alignment"]["after_phase1"] != first["alignment"]["after_phase1"]


def test_a_damaged_cached_adapter_is_retrained_never_used(tmp_path, ner_task_data, corpus_texts):
    first = _run(tmp_path, ner_task_data, corpus_texts, task="ner", mode="frozen", window=1)
    adapters = tmp_path / "cache" / "adapters"
    (phase1,) = adapters.glob("phase1-*[!k]")  # not the .lock file
    (phase2,) = adapters.glob("phase2-*[!k]")
    (phase1 / "alad_adapter_config.json").write_text('{"student_dim": "384", "teacher_dim": 384}')  # corrupt config
    _flip_byte(phase2 / "alad_adapter.safetensors")  # flipped bytes in the weights
    result = json.loads((phase2 / "result.json").read_text())
    (phase2 / "result.json").write_text(json.dumps(result | {"verify": False}))  # cannot switch the check off
    with pytest.warns(UserWarning, match="cached adapter .* does not match its recorded sha256") as caught:
        again = _run(tmp_path, ner_task_data, corpus_texts, name="again", task="ner", mode="frozen", window=1)
    assert sum("not used but rebuilt" in str(w.message) for w in caught) == 2
    assert again["timings"]["phase1"] > 0 and again["timings"]["phase2"] > 0
    assert again["scores"] == first["scores"] and again["alignment"] == first["alignment"]


def test_two_identical_runs_sharing_a_cache_both_finish_and_one_reuses(tmp_path):
    """The second run waits on the .partial folder's lock, then loads the adapter the first one trained."""
    import os
    import subprocess
    import sys

    script = (
        "import json, sys; from alad_kit.core.config import RunConfig; from alad_kit.pipeline.run import run; "
        f"cfg = RunConfig(task='ner', mode='frozen', window=1, data_dir='wnut16', cache_dir={str(tmp_path / 'c')!r}, "
        f"out=sys.argv[1], teacher='minilm-l6', student='minilm-l6', student_layers=(0,), scale='smoke', "
        "device='cpu'); m = run(cfg); print(json.dumps([m['timings']['phase1'], m['scores']]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "ALAD_DATA_DIR"} | {"OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / name)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for name in ("a", "b")]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sorted(r[0] == 0.0 for r in results) == [False, True]  # one trained phase 1, the other reused it
    assert results[0][1] == results[1][1]
    assert not list((tmp_path / "c" / "adapters").glob("*.partial"))


def test_an_unwritable_out_fails_before_any_training(tmp_path, ner_task_data, corpus_texts):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OSError, match=r"output folder .*file/run is not writable"):
        _run(tmp_path / "file", ner_task_data, corpus_texts, cache="../cache", task="ner")
    assert not (tmp_path / "cache").exists()  # nothing was computed, nothing cached


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error(tmp_path, ner_task_data, corpus_texts):
    from alad_kit.core.device import DeviceUnavailableError

    with pytest.raises(DeviceUnavailableError, match="--device cuda: "):
        _run(tmp_path, ner_task_data, corpus_texts, task="ner", **{"device": "cuda"})


def test_an_unreadable_corpus_is_an_error_and_only_a_missing_one_falls_back(tmp_path):
    from alad_kit.data.task_data import load_corpus_texts

    folder = tmp_path / "corpus_en_wiki"
    folder.mkdir()
    (folder / "wiki.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ValueError, match=r"wiki\.txt:1: not UTF-8 text"):
        load_corpus_texts(str(tmp_path), 10, fallback=["x"])
    (folder / "wiki.txt").unlink()
    with pytest.warns(UserWarning, match=r"no phase-1 corpus \(.*no \.txt files\); using the fallback"):
        assert load_corpus_texts(str(tmp_path), 10, fallback=["x", "y"]) == ["x", "y"]


def test_log_with_tensorboard_writes_loss_lr_and_validation_under_out_logs(tmp_path, ner_task_data):
    from _tracking_events import scalars

    cfg = RunConfig(task="ner", mode="head", out=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"), **BASE)
    infos = []
    metrics = run(cfg, callbacks=(infos.append,), task_data=ner_task_data, log_with="tensorboard")
    found = scalars(tmp_path / "run")
    steps = metrics["phases"]["phase3"]["steps"]
    assert len(found["phase3/loss"]) == steps and found["phase3/loss"][0][0] == 1
    assert len(found["phase3/lr/head"]) == steps
    assert found["phase3/validation"] == [(e, pytest.approx(s)) for e, s in metrics["selection"]["validation"]]
    history = json.loads((tmp_path / "run" / "history.json").read_text())["phase3"]
    assert [i.loss for i in infos if i.event == "step"] == [loss for _, loss in history]


def test_hidden_state_k_of_the_teacher_is_the_last_state_of_its_first_k_layers():
    import torch

    from alad_kit.models.zoo import keep_layers
    from tests._tiny_models import tiny_bert

    model = tiny_bert(layers=4)
    batch = {"input_ids": torch.tensor([[101, 2054, 2003, 102]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    with torch.no_grad():
        states = model(**batch, output_hidden_states=True).hidden_states
        cut = keep_layers(model, [0, 1]).eval()(**batch).last_hidden_state
    assert torch.allclose(cut, states[2], atol=1e-6) and not torch.allclose(cut, states[4], atol=1e-3)


def test_aligning_to_another_teacher_layer_is_recorded_and_never_reuses_last_layer_adapters(
        frozen_ner, ner_task_data, corpus_texts, tmp_path):
    tmp, last = frozen_ner  # same cache folder: a last-layer adapter would be found if the key ignored the layer
    m = _run(tmp, ner_task_data, corpus_texts, name="layer2", task="ner", mode="frozen", window=3, teacher_layer=2)
    assert m["teacher_layer"] == 2 and last["teacher_layer"] == 6
    assert m["ablation"]["teacher_layer"] == 2 and last["ablation"]["teacher_layer"] is None
    assert "phase1_cached_from" not in m["timings"]
    assert m["size_pct"] == last["size_pct"]  # Sz stays relative to the whole teacher
    assert m["alignment"]["before_phase1"]["mse"] != last["alignment"]["before_phase1"]["mse"]
    card = (tmp / "layer2" / "model" / "README.md").read_text()
    assert "(hidden state 2)" in card and "--teacher-layer 2" in card
    probe = tmp_path / "probe_layers.json"
    probe.write_text(json.dumps({"models": {"minilm-l6": {"best_layer": 2}}}))
    again = _run(tmp, ner_task_data, corpus_texts, name="probe2", task="ner", mode="frozen", window=3,
                 teacher_probe=str(probe))
    assert again["teacher_layer"] == 2 and again["scores"] == m["scores"]  # same layer: the same run
    with pytest.raises(ValueError, match="outside 1..6"):
        _run(tmp, ner_task_data, corpus_texts, name="bad", task="ner", mode="frozen", window=3, teacher_layer=7)


def test_a_rerun_killed_while_replacing_the_model_never_pairs_two_runs(tmp_path, frozen_ner, ner_task_data,
                                                                       corpus_texts, monkeypatch):
    """Kill (Ctrl-C) a seed-1 rerun into a finished seed-0 folder while model/ is written: the old model stays
    whole, no metrics/history of either run is left beside it, no staging folder; the next rerun finishes."""
    import shutil

    from alad_kit.models import deploy

    shutil.copytree(frozen_ner[0] / "run", tmp_path / "run")
    old_card = (tmp_path / "run" / "model" / "README.md").read_text()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(deploy, "write_text_atomic", killed)  # the model card, the last file of model/
        with pytest.raises(KeyboardInterrupt):
            _run(tmp_path, ner_task_data, corpus_texts, task="ner", mode="frozen", window=3, seed=1)
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert "metrics.json" not in names and "history.json" not in names and "probes.csv" not in names
    assert (tmp_path / "run" / "model" / "README.md").read_text() == old_card
    assert not [n for n in names if n.startswith(".model.")]
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "run" / f".model.{dead.pid}.0badc0de.tmp").mkdir()  # what a kill -9 at that moment leaves
    metrics = _run(tmp_path, ner_task_data, corpus_texts, task="ner", mode="frozen", window=3, seed=1)
    assert not [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".model.")]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["seed"] == metrics["seed"] == 1
    assert "seed 1" in (tmp_path / "run" / "model" / "README.md").read_text()
    assert (tmp_path / "run" / "history.json").is_file()


def test_scale_full_on_a_cpu_warns_that_it_takes_hours_to_days(tmp_path, caplog):
    (tmp_path / "file").write_text("x")  # an unwritable cache folder stops the run right after the warning
    cfg = RunConfig(task="ner", out=str(tmp_path / "run"), cache_dir=str(tmp_path / "file" / "cache"),
                    **(BASE | {"scale": "full"}))
    with pytest.raises(OSError, match="cache folder"):
        run(cfg)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "scale full" in r.getMessage()]
    assert len(warned) == 1 and "meant for a GPU" in warned[0] and "days" in warned[0]
