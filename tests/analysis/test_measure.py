"""Size / FLOPs / latency measurement: consistency of the numbers, not how fast this machine is."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from alad_kit.adapter import AlignmentAdapter
from alad_kit.analysis.bench import benchmark, run_bench, write_bench_json
from alad_kit.compress import quantize_dynamic_int8
from alad_kit.models.cost import (
    adapter_flops_measured,
    count_params,
    disk_size_mb,
    flops_per_token,
    summarize_times,
    time_forward,
)


def _bert(hidden=32, layers=2, ffn=64, heads=2, seed=0):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=ffn, max_position_embeddings=64)
    return BertModel(config).eval()


@pytest.fixture(scope="module")
def tokenizer():
    from alad_kit.models.offline import offline_model_dir

    return AutoTokenizer.from_pretrained(offline_model_dir("minilm-l6"))


def test_count_params_includes_packed_int8_weights():
    model = _bert()
    assert count_params(model) == sum(p.numel() for p in model.parameters())
    quantized, _ = quantize_dynamic_int8(model)
    assert sum(p.numel() for p in quantized.parameters()) < count_params(model)  # packed weights are hidden
    assert count_params(quantized) == count_params(model)


def test_disk_size_of_directory_and_model(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"x" * 2**20)
    (tmp_path / "sub" / "b.bin").write_bytes(b"x" * 2**19)
    assert disk_size_mb(tmp_path) == pytest.approx(1.5)
    assert disk_size_mb(tmp_path / "a.bin") == pytest.approx(1.0)
    model = _bert()
    assert disk_size_mb(model) == pytest.approx(4 * count_params(model) / 2**20, rel=0.05)  # float32 + overhead
    with pytest.raises(FileNotFoundError):
        disk_size_mb(tmp_path / "missing")


def test_summarize_times_medians_and_percentiles():
    seconds = [0.004, 0.001, 0.003, 0.002, 0.1]
    stats = summarize_times(seconds, items_per_call=8)
    assert stats["median_ms"] == pytest.approx(3.0)
    assert stats["p10_ms"] == pytest.approx(1000 * np.percentile(seconds, 10))
    assert stats["p90_ms"] == pytest.approx(1000 * np.percentile(seconds, 90))
    assert stats["throughput"] == pytest.approx(8 / 0.003)
    assert stats["repeats"] == 5
    with pytest.raises(ValueError):
        summarize_times([])


def test_time_forward_counts_warmup_and_repeats():
    calls = []
    stats = time_forward(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and stats["repeats"] == 3 and stats["median_ms"] >= 0
    with pytest.raises(ValueError, match="repeats"):
        time_forward(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        time_forward(lambda: None, warmup=-1)


@pytest.mark.parametrize("seq_len", [16, 48])
def test_flops_per_token_matches_the_transformer_formula(seq_len):
    d, ffn, layers = 32, 64, 2
    model = _bert(d, layers, ffn)
    per_layer = 2 * (4 * d * d + 2 * d * ffn) + 2 * 2 * seq_len * d  # projections + QK^T and AV
    pooler = 2 * d * d / seq_len  # one CLS vector per sequence
    assert flops_per_token(model, seq_len) == pytest.approx(layers * per_layer + pooler)
    assert model.config._attn_implementation == "sdpa"  # switched back after counting


def test_flops_of_quantized_model_equal_float_and_adapter_formula():
    model = _bert()
    quantized, _ = quantize_dynamic_int8(model)
    assert flops_per_token(quantized, 16) == pytest.approx(flops_per_token(model, 16))
    adapter = AlignmentAdapter(32, 48, window=3, hidden=40)
    assert adapter_flops_measured(adapter, 16) == adapter.flops_per_token() == 2 * (3 * 32 * 40 + 40 * 48)


def test_benchmark_structure_and_derived_columns(tmp_path, tokenizer):
    teacher = (_bert(64, 4, 128, 4, seed=1), tokenizer)
    small = (_bert(32, 2, 64, 2, seed=2), tokenizer)
    quantized = (quantize_dynamic_int8(_bert(32, 1, 64, 2, seed=3))[0], tokenizer)
    result = benchmark(teacher, {"small": small, "int8": quantized}, windows=(1, 3), batch_size=2, seq_len=16,
                       repeats=2, warmup=1, devices=["cpu"], teacher_name="big", adapter_hidden=48)
    json.dumps(result, allow_nan=False)  # JSON-able, no NaN
    assert result["environment"]["torch_num_threads"] == torch.get_num_threads()
    assert result["settings"]["seq_len"] == 16 and result["teacher"]["name"] == "big"
    t_params = result["teacher"]["params"]
    cpu = result["timings"]["cpu"]
    t_ms = cpu["teacher"]["median_ms"]
    for name in ("small", "int8"):
        info, timing = result["students"][name], cpu["students"][name]
        assert info["sz_pct"] == pytest.approx(100 * info["params"] / t_params)
        assert timing["alone"]["spd"] == pytest.approx(t_ms / timing["alone"]["median_ms"])
        for w in ("1", "3"):
            a, timed = info["adapters"][w], timing["windows"][w]
            assert a["sz_pct"] == pytest.approx(100 * (info["params"] + a["params"]) / t_params)
            assert a["flops_per_token"] == a["flops_per_token_measured"]
            assert a["flops_speed_kept"] == pytest.approx(
                info["flops_per_token"] / (info["flops_per_token"] + a["flops_per_token"]))
            assert timed["speed_kept"] == pytest.approx(timing["alone"]["median_ms"] / timed["median_ms"])
            assert timed["speed_kept"] > 0  # no upper bound: sub-ms timings on a shared CPU are noise
    assert result["students"]["int8"]["quantized"] and not result["students"]["small"]["quantized"]
    assert len(result["rows"]) == 1 + 2 * (1 + 2)  # teacher + per student: alone + 2 windows
    path = write_bench_json(result, tmp_path / "bench" / "bench.json")
    assert json.loads(path.read_text()) == json.loads(json.dumps(result))
    assert [p.name for p in path.parent.iterdir()] == ["bench.json"]


def test_benchmark_bad_input(tokenizer):
    teacher = (_bert(), tokenizer)
    with pytest.raises(ValueError, match="at least one student"):
        benchmark(teacher, {})
    with pytest.raises(ValueError, match="pair"):
        benchmark(teacher, {"s": _bert()})
    with pytest.raises(ValueError, match="repeats"):
        benchmark(teacher, {"s": teacher}, repeats=0)


def test_run_bench_loads_by_name_and_writes_json(tmp_path, tokenizer):
    for name, model in (("big", _bert(64, 3, 128, 4, seed=1)), ("small", _bert(32, 2, 64, 2, seed=2))):
        model.save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
    small = str(tmp_path / "small")
    result = run_bench(str(tmp_path / "big"), [small, f"{small}:1"], windows=[1], batch_size=1, seq_len=8,
                       repeats=1, warmup=0, out=tmp_path / "bench.json", device="cpu")
    assert result["students"][f"{small}:1"]["num_layers"] == 1
    assert result["students"][small]["num_layers"] == 2
    assert len(result["summary"]) == len(result["rows"]) == 1 + 2 * 2
    assert set(result["summary"][0]) <= {"device", "model", "window", "sz_pct", "spd", "speed_kept",
                                         "flops_speed_kept", "median_ms"}
    assert json.loads((tmp_path / "bench.json").read_text())["summary"] == result["summary"]


def test_benchmark_measures_both_adapter_kinds(tokenizer):
    from alad_kit.analysis.claims import bench_spd

    teacher, small = (_bert(64, 2, 128, 4, seed=1), tokenizer), (_bert(32, 1, 64, 2, seed=2), tokenizer)
    result = benchmark(teacher, {"small": small}, windows=(5,), batch_size=2, seq_len=16, repeats=1, warmup=0,
                       devices=["cpu"], adapter_hidden=48, kinds=("dense", "factorised"))
    adapters = result["students"]["small"]["adapters"]
    assert set(adapters) == {"5", "5-factorised"}  # a dense adapter keeps its old key
    assert adapters["5-factorised"]["flops_per_token"] == 2 * ((32 + 5) * 48 + 48 * 64)
    assert adapters["5-factorised"]["params"] < adapters["5"]["params"]
    kinds = {r["kind"]: r["spd"] for r in result["rows"] if r["role"] == "student+adapter"}
    assert set(kinds) == {"dense", "factorised"}
    assert bench_spd(result, "small", 5, "factorised") == kinds["factorised"]
    assert bench_spd(result, "small", 5) == kinds["dense"]


def test_benchmark_times_the_adapter_in_the_students_precision(tokenizer, monkeypatch):
    import alad_kit.models.adapter_precision as precision

    made = []
    real = precision.adapter_for_student
    monkeypatch.setattr(precision, "adapter_for_student", lambda a, s, p: made.append(p) or real(a, s, p))
    quantized = (quantize_dynamic_int8(_bert(32, 1, 64, 2, seed=3))[0], tokenizer)
    result = benchmark((_bert(64, 2, 128, 4, seed=1), tokenizer), {"int8": quantized}, windows=(3,), batch_size=2,
                       seq_len=16, repeats=1, warmup=1, devices=["cpu"], adapter_hidden=48, adapter_precision="follow")
    assert made == ["follow"] and result["settings"]["adapter_precision"] == "follow"
    assert result["timings"]["cpu"]["students"]["int8"]["windows"]["3"]["speed_kept"] > 0
