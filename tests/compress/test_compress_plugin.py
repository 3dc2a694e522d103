"""Compressed students plug into the ALAd pipeline: saved by the compress API, loaded by PATH, phases 1-3.

Each student is built from the real MiniLM-L6 (the teacher of these smoke runs) as cheaply as its method
allows: pruned = layers [0, 1] + 50% L1, int8 = layer 0 alone quantized (dynamic; static with four
calibration texts), distilled = layer 0 trained a couple of steps on corpus text.
"""

from __future__ import annotations

import json

import pytest
import torch

from alad_kit import compress
from alad_kit.core.config import RunConfig
from alad_kit.models.cost import count_params
from alad_kit.models.zoo import keep_layers, load_encoder
from alad_kit.pipeline.run import run


@pytest.fixture(scope="module")
def students(tmp_path_factory, corpus_texts):
    """name -> directory of a compressed student, written by the compress API (tokenizer included)."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("students")
    teacher, tokenizer = load_encoder("minilm-l6")
    compress.l1_prune(keep_layers(teacher, [0, 1]), 0.5, root / "pruned", tokenizer)
    one = keep_layers(teacher, [0])
    compress.quantize_dynamic_int8(one, root / "dynamic_int8", tokenizer)
    compress.quantize_static_int8(one, tokenizer, corpus_texts[:4], root / "static_int8", sensitivity_texts=4,
                         max_length=32)
    student = compress.make_student(teacher, layers=[0])
    config = compress.DistillConfig(max_steps=2, batch_size=16, max_length=32)
    _, report = compress.distill_encoder(teacher, student, tokenizer, corpus_texts[:32], config, root / "distilled")
    assert report["steps"] == 2
    return {name: root / name for name in ("pruned", "dynamic_int8", "static_int8", "distilled")}


@pytest.fixture(scope="module")
def run_student(tmp_path_factory, ner_task_data, corpus_texts):
    """Smoke NER run with teacher MiniLM-L6; one cache for all students (the teacher's embeddings are shared)."""
    tmp = tmp_path_factory.mktemp("runs")

    def go(student_dir, mode, window=3):
        cfg = RunConfig(task="ner", teacher="minilm-l6", student=str(student_dir), mode=mode, window=window,
                        scale="smoke", device="cpu", cache_dir=str(tmp / "cache"),
                        out=str(tmp / f"{student_dir.name}-{mode}"))
        metrics = run(cfg, task_data=ner_task_data, corpus_fallback=corpus_texts)
        assert json.loads((tmp / f"{student_dir.name}-{mode}" / "metrics.json").read_text()) == json.loads(
            json.dumps(metrics))  # written, and the same as returned
        return metrics

    return go


def _student_params(path) -> int:
    model, _ = load_encoder(str(path))
    return count_params(model)  # packed int8 weights included


@pytest.mark.parametrize("name", ["pruned", "static_int8", "distilled"])
def test_compressed_student_goes_through_phases_1_to_3(students, run_student, name):
    m = run_student(students[name], "frozen")
    assert m["student"] == str(students[name]) and m["window"] == 3
    assert list(m["alignment"]) == ["before_phase1", "after_phase1", "after_phase2", "after_phase3"]
    assert m["alignment"]["after_phase2"]["mse"] < m["alignment"]["before_phase1"]["mse"]
    # Sz counts the deployed student (int8 weights too), the adapter and the head, against the teacher.
    assert m["params"]["deployed"] > _student_params(students[name])
    assert m["size_pct"] < 100


def test_quantized_student_head_mode_and_no_finetuning(students, run_student):
    path = students["dynamic_int8"]
    assert json.loads((path / "alad_student.json").read_text())["kind"] == "dynamic_int8"
    m = run_student(path, "head")
    assert m["mode"] == "head" and m["window"] is None and m["alignment"] == {}
    float_params = sum(p.numel() for p in load_encoder(str(path))[0].parameters())
    head = m["params"]["deployed"] - _student_params(path)
    assert 0 < head < 384 * 64  # one Linear 384 -> labels: the int8 Linear weights are in the count
    assert m["params"]["deployed"] > float_params + head
    assert 0 <= m["scores"]["f1_overall"] <= 1 and m["size_pct"] < 100
    with pytest.raises(ValueError, match="quantized.*cannot be fine-tuned"):
        run_student(path, "finetune")


def test_pruned_student_keeps_its_zeros_through_save_and_load(students):
    model, _ = load_encoder(str(students["pruned"]))
    assert model.config.num_hidden_layers == 2
    assert compress.linear_sparsity(model)["linear_sparsity"] == pytest.approx(0.5, abs=0.01)


def test_an_int8_student_computes_in_fp32_whatever_the_scale_says(students):
    import dataclasses

    from alad_kit.pipeline.run import run_precision

    cfg = RunConfig(task="ner", teacher="minilm-l6", student=str(students["dynamic_int8"]), mode="frozen")
    assert run_precision(cfg, "bf16", "cpu") == "fp32"  # tiny/cpu scales default to bf16: "Float but found BFloat16"
    with pytest.raises(ValueError, match="dynamic_int8: an int8 .* fp32 only"):
        run_precision(dataclasses.replace(cfg, precision="bf16"), "fp32", "cpu")
    pruned = RunConfig(task="ner", teacher="minilm-l6", student=str(students["pruned"]), mode="frozen")
    assert run_precision(pruned, "fp32", "cpu") == "fp32" and run_precision(pruned, "bf16", "cpu") in ("bf16", "fp32")
    assert run_precision(dataclasses.replace(pruned, precision="bf16"), "fp32", "cpu") == "bf16"


def test_an_int8_student_runs_phase_3_under_bf16_autocast_defaults(students, tmp_path, ner_task_data, corpus_texts,
                                                                     monkeypatch):
    """The tiny and cpu scales default to bf16; notebook 06 ran an int8 student at tiny and failed in phase 3."""
    import dataclasses

    import alad_kit.pipeline.run as run_module

    bf16_smoke = dataclasses.replace(run_module.scale_config("smoke"), precision="bf16")
    monkeypatch.setattr(run_module, "scale_config", lambda name: bf16_smoke)
    cfg = RunConfig(task="ner", teacher="minilm-l6", student=str(students["dynamic_int8"]), mode="frozen", window=3,
                    scale="smoke", device="cpu", cache_dir=str(tmp_path / "cache"), out=str(tmp_path / "run"))
    metrics = run(cfg, task_data=ner_task_data, corpus_fallback=corpus_texts)
    assert metrics["precision"] == "fp32" and 0 <= metrics["scores"]["f1_overall"] <= 1
