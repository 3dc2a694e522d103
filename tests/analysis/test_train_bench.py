"""alad bench --training (alad_kit.analysis.train_bench): every variant timed, ratios derived from the rows."""

import json

import pytest

from alad_kit.analysis.train_bench import VARIANTS, _ratios, training_bench


@pytest.fixture(scope="module")
def tiny_student():
    from transformers import AutoTokenizer

    from tests._tiny_models import minilm_dir, tiny_bert

    return tiny_bert(layers=1), AutoTokenizer.from_pretrained(minilm_dir())


def test_training_bench_times_every_variant_in_both_precisions(tiny_student):
    result = training_bench(tiny_student, teacher_dim=24, batch_size=2, seq_len=8, repeats=2, steps=1, window=3)
    assert {(r["variant"], r["precision"]) for r in result["rows"]} == {
        (v, p) for v in VARIANTS for p in ("fp32", "bf16")}
    for row in result["rows"]:
        assert row["steps_per_s"] == pytest.approx(1 / row["median_s_per_step"])
        assert row["tokens_per_s"] == pytest.approx(16 * row["steps_per_s"])
        assert row["spread_s"][0] <= row["median_s_per_step"] <= row["spread_s"][1]
    assert set(result["ratios"]) == {f"bf16_over_fp32/{v}" for v in VARIANTS} | {
        f"cached_over_live/{m}/{p}" for m in ("head", "frozen") for p in ("fp32", "bf16")} | {
        f"fused_over_foreach/finetune/{p}" for p in ("fp32", "bf16")}
    json.dumps(result, allow_nan=False)  # what alad bench writes


def test_ratios_are_the_quotients_of_the_rows():
    rows = [{"variant": v, "precision": p, "steps_per_s": s} for v, p, s in [
        ("head_cached", "fp32", 10.0), ("head_live", "fp32", 2.0), ("head_cached", "bf16", 12.0),
        ("head_live", "bf16", 4.0), ("finetune", "fp32", 1.0), ("finetune_foreach", "fp32", 0.25)]]
    assert _ratios(rows) == {"cached_over_live/head/fp32": 5.0, "cached_over_live/head/bf16": 3.0,
                             "bf16_over_fp32/head_cached": 1.2, "bf16_over_fp32/head_live": 2.0,
                             "fused_over_foreach/finetune/fp32": 4.0}


def test_the_device_is_recorded_and_a_missing_gpu_is_one_clear_error(tiny_student):
    result = training_bench(tiny_student, teacher_dim=24, batch_size=2, seq_len=8, repeats=1, steps=1, window=1,
                            variants=("align",), precisions=("fp32",), device="cpu")
    assert result["device"] == "cpu" and [r["variant"] for r in result["rows"]] == ["align"]
    assert next(tiny_student[0].parameters()).device.type == "cpu"
    if not __import__("torch").cuda.is_available():
        from alad_kit.core.device import DeviceUnavailableError

        with pytest.raises(DeviceUnavailableError, match="--device cuda"):
            training_bench(tiny_student, teacher_dim=24, device="cuda")
