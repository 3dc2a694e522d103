"""The GPU path end to end: phases 1-3, the embedding cache, resume, bf16, LoRA, deploy and export on CUDA.

Marked ``cuda`` and skipped without a GPU; ``alad check-gpu`` runs this file. Nothing here needs the network
or model weights: the models are ``random:minilm-l6`` (MiniLM's architecture and tokenizer, random weights)
and the data is :func:`alad_kit.data.demo.synthetic_ner`. ``ALAD_CUDA_TESTS_DEVICE=cpu`` runs the same checks
on the CPU (to check the tests themselves on a machine without a GPU).
"""

import os

import pytest
import torch

from alad_kit.core.config import RunConfig
from alad_kit.pipeline.run import run
from alad_kit.training.trainer import TrainingInterrupted

DEVICE = os.environ.get("ALAD_CUDA_TESTS_DEVICE", "cuda")
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                                                    reason="no CUDA GPU on this machine")]
BASE = dict(task="ner", teacher="random:minilm-l6", student="random:minilm-l6", student_layers=(0, 1),
            scale="smoke", device=DEVICE)


@pytest.fixture(scope="module")
def data():
    from alad_kit.data.demo import synthetic_ner

    return synthetic_ner(n=80)


CORPUS = [f"Plain corpus sentence number {k} about the weather in a city ." for k in range(48)]


def _run(tmp_path, data, name, resume=False, callbacks=(), **kw):
    cfg = RunConfig(out=str(tmp_path / name), cache_dir=str(tmp_path / "cache"), **(BASE | kw))
    return run(cfg, resume=resume, callbacks=callbacks, task_data=data, corpus_fallback=CORPUS)


@pytest.fixture(scope="module")
def joint_bf16(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("gpu")
    return tmp, _run(tmp, data, "joint", mode="joint", window=5, precision="bf16")


def test_phases_1_to_3_in_bf16_record_the_device_and_the_timing_split(joint_bf16):
    _, m = joint_bf16
    assert m["device"] == DEVICE and m["precision"] == "bf16"
    assert list(m["phases"]) == ["phase1", "phase2", "phase3"]
    for name, phase in m["phases"].items():
        assert phase["steps"] > 0 and phase["timing"]["compute"] > 0, name
        assert sum(phase["timing"].values()) - phase["timing"]["other"] <= phase["seconds"] + 0.02, name
    assert m["cache"]["misses"] >= 2  # teacher and student states of phases 1-2 were encoded on the device
    assert m["alignment"]["after_phase2"]["mse"] < m["alignment"]["before_phase1"]["mse"]


def test_a_second_run_reuses_the_cached_adapters_and_states(joint_bf16, data):
    tmp, first = joint_bf16
    again = _run(tmp, data, "again", mode="joint", window=5, precision="bf16")
    assert again["phases"]["phase1"].get("reused") and again["cache"]["hits"] >= 1
    assert again["alignment"]["after_phase2"] == first["alignment"]["after_phase2"]


def test_killed_and_resumed_phase3_matches_the_uninterrupted_run(tmp_path, data):
    reference = _run(tmp_path, data, "reference", mode="frozen", window=3)

    def kill(name, step):
        if name == "phase3" and step == 3:
            raise TrainingInterrupted("test kill")

    with pytest.raises(TrainingInterrupted):
        _run(tmp_path, data, "killed", mode="frozen", window=3, callbacks=(kill,))
    resumed = _run(tmp_path, data, "killed", mode="frozen", window=3, resume=True)
    assert resumed["scores"]["f1_overall"] == pytest.approx(reference["scores"]["f1_overall"], abs=1e-6)
    ref_loss = [loss for _, loss in reference["selection"]["validation"]]
    assert [loss for _, loss in resumed["selection"]["validation"]] == pytest.approx(ref_loss, abs=1e-5)


@pytest.mark.parametrize("mode", ["lora", "lora+alad"])
def test_lora_trains_on_the_device(tmp_path, data, mode):
    m = _run(tmp_path, data, mode.replace("+", "_"), mode=mode, window=3)
    assert m["phases"]["phase3"]["lr"].get("lora") and m["phases"]["phase3"]["steps"] > 0


def test_the_deployed_model_loads_on_the_device_and_exports_to_onnx(joint_bf16, tmp_path):
    from alad_kit.models.export import check_onnx, export_onnx
    from alad_kit.models.model import AladModel
    from alad_kit.pipeline.predict import AladPipeline

    tmp, _ = joint_bf16
    folder = str(tmp / "joint" / "model")
    tagged = AladPipeline(folder, device=DEVICE)(["Ada visited Paris yesterday", "Grace wrote from Oslo"])
    assert len(tagged) == 2
    on_device = AladModel.from_pretrained(folder, device=DEVICE, adapter_precision="fp32")
    on_cpu = AladModel.from_pretrained(folder, adapter_precision="fp32")
    batch = on_cpu.tokenizer(["Ada visited Paris yesterday"], return_tensors="pt")
    with torch.no_grad():
        expected = on_cpu(dict(batch))
        got = on_device({k: v.to(DEVICE) for k, v in batch.items()}).cpu()
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-3)  # fp32 on both (TF32 matmuls stay close)
    report = check_onnx(on_cpu, export_onnx(on_cpu, tmp_path / "model.onnx"), repeats=2)
    assert report["max_abs_diff"] < 1e-4


def test_prefetched_pinned_batches_train_as_inline_ones_on_the_device():
    from dataclasses import replace

    from alad_kit.training.trainer import train_phase
    from tests.training.test_trainer import PHASE, N, loss_fn, make_batch, state, tiny_model

    results = []
    for prefetch in (False, True):
        model = tiny_model().to(DEVICE)
        torch.manual_seed(7)
        if DEVICE == "cuda":
            torch.cuda.manual_seed_all(7)
        result = train_phase(replace(PHASE, precision="bf16"), model, N, make_batch, loss_fn, batch_size=8, seed=0,
                             device=DEVICE, prefetch=prefetch)
        results.append((result, state(model)))
    (inline, w_inline), (ahead, w_ahead) = results
    assert [loss for _, loss in ahead.history] == pytest.approx([loss for _, loss in inline.history], abs=1e-5)
    for key in w_inline:
        torch.testing.assert_close(w_ahead[key], w_inline[key], atol=1e-5, rtol=1e-4)
    assert inline.timing["compute"] > 0 and ahead.timing["data"] >= 0
