"""Size and speed of M_L, M_C and M_C + adapter, measured side by side.

The paper's efficiency columns are

* **Sz** -- parameters of the deployed model as a percentage of M_L's parameters,
* **Spd** -- speed-up over M_L: latency(M_L) / latency(M) on the same batch,

and we add **speed kept** = speed(M_C + adapter) / speed(M_C) = latency(M_C) / latency(M_C + adapter): the
share of the compressed model's speed that survives adding the adapter. Next to it sits the adapter's
arithmetic (FLOPs per token) against the student's, the floor any implementation of the overhead pays.

Timings are taken in one process on one fixed batch (same batch size, every sequence exactly ``seq_len``
tokens), with warm-up calls first and the models measured round-robin -- one call of each per repeat -- so
that clock-frequency drift or a noisy neighbour hits every model alike; we report medians and p10/p90.
This is a benchmark that writes JSON (``alad bench``), not a test with a time limit.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from alad_kit.core.io import write_json_atomic
from alad_kit.models.cost import (
    _check_counts,
    _device_of,
    _is_quantized,
    _timed_call,
    adapter_flops_measured,
    count_params,
    disk_size_mb,
    flops_per_token,
    summarize_times,
)

SCHEMA = "alad-bench/1"
_FILLER = "The quick brown fox jumps over the lazy dog while the committee reviews the annual budget . "


# --------------------------------------------------------------------------------------------- benchmark
def environment() -> dict:
    import transformers

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "torch_num_threads": torch.get_num_threads(),
        "quantized_engine": torch.backends.quantized.engine,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        # Other processes competing for the cores distort CPU timings; record how busy the machine was.
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "cpu_count": os.cpu_count(),
    }
    return env


def _fixed_batch(tokenizer, batch_size: int, seq_len: int, device) -> dict:
    """A batch of real text, every row exactly ``seq_len`` tokens (no padding: the same work for all)."""
    text = _FILLER * (seq_len // 4 + 8)
    enc = tokenizer(
        [text] * batch_size, padding="max_length", truncation=True, max_length=seq_len, return_tensors="pt"
    )
    return {k: v.to(device) for k, v in enc.items()}


def _unpack(entry) -> tuple[nn.Module, object]:
    if not (isinstance(entry, tuple) and len(entry) == 2):
        raise ValueError("benchmark: teacher and every student must be a (model, tokenizer) pair")
    return entry


def _describe(model: nn.Module, seq_len: int) -> dict:
    config = model.config
    return {
        "params": count_params(model),
        "disk_mb": disk_size_mb(model),
        "flops_per_token": flops_per_token(model, seq_len),
        "num_layers": int(config.num_hidden_layers),
        "hidden_size": int(config.hidden_size),
        "quantized": _is_quantized(model),
    }


def _bench_devices(devices: Sequence[str] | None) -> list[str]:
    """The devices to time on (default: CPU, and CUDA when present), each checked to exist here."""
    from alad_kit.core.device import resolve_device

    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        resolve_device(device)
    return devices


def _describe_student(model, variants: dict, teacher: dict, seq_len: int, adapter_hidden: int,
                      adapter_precision: str) -> tuple[dict, dict]:
    """A student's sizes and FLOPs, with one entry per adapter variant, and the adapters to time (by label).

    Sizes are relative to the teacher (``teacher``: its _describe entry); adapters are random-initialised
    (their cost does not depend on their weights) and timed in ``adapter_precision``."""
    from alad_kit.adapter import AlignmentAdapter
    from alad_kit.models.adapter_precision import adapter_for_student

    t_params, teacher_dim = teacher["params"], teacher["hidden_size"]
    info = _describe(model.eval(), seq_len)
    info["sz_pct"] = 100.0 * info["params"] / t_params
    info["adapters"], deployed = {}, {}
    for label, (w, kind) in variants.items():
        adapter = AlignmentAdapter(int(model.config.hidden_size), teacher_dim, w, adapter_hidden, kind).eval()
        deployed[label] = adapter_for_student(adapter, model, adapter_precision)
        a_params = count_params(adapter)
        info["adapters"][label] = {
            "window": w, "kind": kind, "params": a_params,
            "sz_pct": 100.0 * (info["params"] + a_params) / t_params,
            "flops_per_token": adapter.flops_per_token(),
            "flops_per_token_measured": adapter_flops_measured(adapter, seq_len),
            "flops_overhead_pct": 100.0 * adapter.flops_per_token() / info["flops_per_token"],
            # The speed kept if time were proportional to FLOPs: what the measured value compares to.
            "flops_speed_kept": info["flops_per_token"] / (info["flops_per_token"] + adapter.flops_per_token()),
        }
    return info, deployed


def benchmark(
    teacher: tuple[nn.Module, object],
    students: dict[str, tuple[nn.Module, object]],
    windows: Sequence[int] = (1, 3, 5),
    batch_size: int = 8,
    seq_len: int = 128,
    repeats: int = 10,
    warmup: int = 3,
    devices: Sequence[str] | None = None,
    *,
    teacher_name: str = "teacher",
    adapter_hidden: int = 1280,
    kinds: Sequence[str] = ("dense",),
    adapter_precision: str = "fp32",
) -> dict:
    """Params, disk size, FLOPs/token and latency of M_L, each M_C and M_C + adapter(window); JSON-able.

    ``devices`` defaults to CPU plus CUDA when present; quantized models run on CPU only and are marked
    ``skipped`` elsewhere. Adapters are random-initialised: their cost does not depend on their weights.
    ``kinds``: adapter kinds to measure; a dense adapter is keyed by its window ("5"), others "5-factorised".
    ``adapter_precision`` (fp32 | int8 | bf16 | follow) is the precision they are timed in (sizes and FLOPs
    are the float adapter's); "follow" times an int8 student with an int8 adapter, as it is deployed.
    """
    from alad_kit.core.preflight import check_seq_len

    _check_counts(repeats, warmup)
    if batch_size <= 0 or seq_len <= 0:
        raise ValueError(f"benchmark: batch_size and seq_len must be positive, got {batch_size}, {seq_len}")
    if not students:
        raise ValueError("benchmark: give at least one student")
    windows = [int(w) for w in windows]
    variants = {adapter_label(w, k): (w, k) for k in kinds for w in windows}
    t_model, t_tok = _unpack(teacher)
    students = {name: _unpack(entry) for name, entry in students.items()}
    check_seq_len(seq_len, {teacher_name: (t_model, t_tok), **students})  # else an IndexError deep in the model
    devices = _bench_devices(devices)

    result = {
        "schema": SCHEMA,
        "settings": {
            "batch_size": batch_size, "seq_len": seq_len, "repeats": repeats, "warmup": warmup,
            "windows": windows, "kinds": list(kinds), "adapter_hidden": adapter_hidden, "devices": list(devices),
            "adapter_precision": adapter_precision,
        },
        "environment": environment(),
        "teacher": {"name": teacher_name, **_describe(t_model.eval(), seq_len)},
        "students": {},
        "timings": {},
        "rows": [],
    }
    adapters = {}
    for name, (model, _tok) in students.items():  # in order: the adapters' random init draws from torch's RNG
        result["students"][name], deployed = _describe_student(
            model, variants, result["teacher"], seq_len, adapter_hidden, adapter_precision
        )
        adapters.update({(name, label): adapter for label, adapter in deployed.items()})

    result["timings"] = _time_all(devices, (t_model, t_tok), students, adapters, list(variants), batch_size,
                                  seq_len, repeats, warmup)
    result["rows"] = _rows(result)
    return result


def _time_all(devices, teacher, students, adapters, labels, batch_size, seq_len, repeats, warmup) -> dict:
    """{device: timings} for every device in turn; the models go back to where they were, even on errors."""
    timings = {}
    homes = [(m, _device_of(m)) for m in [teacher[0], *(m for m, _ in students.values())]]
    try:
        for device in devices:
            timings[device] = _time_on_device(device, teacher, students, adapters, labels, batch_size, seq_len,
                                              repeats, warmup)
    finally:  # hand the models back where they were
        for model, home in homes:
            model.to(home)
    return timings


def _time_on_device(device, teacher, students, adapters, labels, batch_size, seq_len, repeats, warmup) -> dict:
    """Round-robin timing of every runnable configuration on one device."""
    calls: dict[tuple, Callable[[], object]] = {}
    skipped: dict[str, str] = {}
    on_cpu = torch.device(device).type == "cpu"

    def encoder_call(model, tok):
        batch = _fixed_batch(tok, batch_size, seq_len, device)
        return lambda: model(**batch).last_hidden_state, batch

    t_model, t_tok = teacher
    if not on_cpu and _is_quantized(t_model):
        raise ValueError(f"benchmark: the teacher is quantized and cannot run on {device}")
    t_model.to(device)
    calls["teacher", None] = encoder_call(t_model, t_tok)[0]
    for name, (model, tok) in students.items():
        if not on_cpu and _is_quantized(model):
            skipped[name] = f"torch.ao quantized model: CPU only, not run on {device}"
            continue
        model.to(device)
        run, batch = encoder_call(model, tok)
        calls[name, None] = run
        for label in labels:
            adapter = adapters[name, label].to(device)
            calls[name, label] = (
                lambda m=model, a=adapter, b=batch: a(m(**b).last_hidden_state, b["attention_mask"])
            )

    times: dict[tuple, list[float]] = {key: [] for key in calls}
    with torch.inference_mode():
        for _ in range(warmup):
            for call in calls.values():
                call()
        for _ in range(repeats):
            for key, call in calls.items():
                times[key].append(_timed_call(call, device))
    stats = {key: summarize_times(ts, batch_size) for key, ts in times.items()}

    t_lat = stats["teacher", None]["median_ms"]
    out = {"teacher": stats["teacher", None], "students": {}, "skipped": skipped}
    for name in students:
        if name in skipped:
            continue
        alone = stats[name, None]
        entry = {"alone": {**alone, "spd": t_lat / alone["median_ms"]}, "windows": {}}
        for label in labels:
            s = stats[name, label]
            entry["windows"][label] = {
                **s,
                "spd": t_lat / s["median_ms"],
                "speed_kept": alone["median_ms"] / s["median_ms"],
                "time_overhead_pct": 100.0 * (s["median_ms"] / alone["median_ms"] - 1),
            }
        out["students"][name] = entry
    return out


def _rows(result: dict) -> list[dict]:
    """One flat row per (device, model, window): the table a notebook shows."""
    rows = []
    teacher = result["teacher"]
    for device, timing in result["timings"].items():
        t = timing["teacher"]
        rows.append({
            "device": device, "model": teacher["name"], "role": "teacher", "window": None,
            "params": teacher["params"], "sz_pct": 100.0, "median_ms": t["median_ms"], "spd": 1.0,
            "speed_kept": None, "flops_per_token": teacher["flops_per_token"], "adapter_flops_per_token": None,
            "flops_speed_kept": None,
        })
        for name, entry in timing["students"].items():
            info = result["students"][name]
            rows.append({
                "device": device, "model": name, "role": "student", "window": None, "params": info["params"],
                "sz_pct": info["sz_pct"], "median_ms": entry["alone"]["median_ms"], "spd": entry["alone"]["spd"],
                "speed_kept": None, "flops_per_token": info["flops_per_token"], "adapter_flops_per_token": None,
                "flops_speed_kept": None,
            })
            for label, timed in entry["windows"].items():
                a = info["adapters"][label]
                rows.append({
                    "device": device, "model": name, "role": "student+adapter", "window": a["window"],
                    "kind": a["kind"],
                    "params": info["params"] + a["params"], "sz_pct": a["sz_pct"],
                    "median_ms": timed["median_ms"], "spd": timed["spd"], "speed_kept": timed["speed_kept"],
                    "flops_per_token": info["flops_per_token"] + a["flops_per_token"],
                    "adapter_flops_per_token": a["flops_per_token"], "flops_speed_kept": a["flops_speed_kept"],
                })
    return rows


def adapter_label(window: int, kind: str = "dense") -> str:
    """Key of an adapter in a benchmark's JSON: "5" for the dense W5 (as before kinds existed), "5-factorised"."""
    return str(window) if kind == "dense" else f"{window}-{kind}"


def write_bench_json(result: dict, path: str | Path) -> Path:
    """Write the benchmark JSON atomically (temporary file, then rename)."""
    return write_json_atomic(path, result, allow_nan=False)


# --------------------------------------------------------------------------------------------- CLI entry
def _load_student(spec: str, cache_dir=None) -> tuple[nn.Module, object]:
    """``NAME`` or ``NAME:0,5`` (keep only those encoder layers); NAME as for ``zoo.load_encoder``."""
    from alad_kit.models.zoo import keep_layers, load_encoder

    name, _, layers = spec.rpartition(":")
    if name and layers and all(part.strip().isdigit() for part in layers.split(",")):
        model, tokenizer = load_encoder(name, cache_dir=cache_dir)
        return keep_layers(model, [int(part) for part in layers.split(",")]), tokenizer
    return load_encoder(spec, cache_dir=cache_dir)


def run_bench(
    teacher: str = "mpnet-base",
    students: Sequence[str] = ("minilm-l6",),
    windows: Sequence[int] = (1, 3, 5),
    batch_size: int = 8,
    seq_len: int = 128,
    repeats: int = 10,
    out: str | Path | None = "bench.json",
    device: str | None = None,
    warmup: int = 3,
    cache_dir: str | Path | None = None,
    kinds: Sequence[str] = ("dense",),
    adapter_precision: str = "fp32",
) -> dict:
    """``alad bench``: load the models by name, :func:`benchmark` them, write ``out``; adds a ``summary``.

    ``students``: zoo names (aliases, directories -- int8 students included -- or hub ids), optionally
    ``NAME:0,5`` to keep only those layers. ``device``: "cpu", "cuda", "cpu,cuda" (default: CPU + CUDA
    when present).
    """
    from alad_kit.core.device import resolve_device  # the same check as `alad run`: a missing GPU is one line
    from alad_kit.models.zoo import load_encoder

    devices = None if device is None else [resolve_device(d.strip()) for d in str(device).split(",") if d.strip()]

    result = benchmark(
        load_encoder(teacher, cache_dir=cache_dir), {s: _load_student(s, cache_dir) for s in students},
        windows=windows, batch_size=batch_size, seq_len=seq_len, repeats=repeats, warmup=warmup,
        devices=devices, teacher_name=teacher, kinds=kinds, adapter_precision=adapter_precision,
    )
    keys = ("device", "model", "window", "kind", "sz_pct", "spd", "speed_kept", "flops_speed_kept", "median_ms")
    result["summary"] = [
        {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items() if k in keys}
        for row in result["rows"]
    ]
    if out is not None:
        write_bench_json(result, out)
    return result
