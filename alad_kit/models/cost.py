"""What a model costs: parameters (int8 weights included), disk, forward time and FLOPs.

The one parameter counter of the package is :func:`count_params` (with :func:`packed_params` for the torch.ao
int8 weights, which are not ``parameters()``); every size column, report and check uses it.
"""

from __future__ import annotations

import io
import math
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from alad_kit.core.timing import synchronize


# --------------------------------------------------------------------------------------------- size
def _quantized_linears(model: nn.Module) -> list[nn.Module]:
    """torch.ao quantized Linear modules (static or dynamic): their int8 weights are not parameters()."""
    from torch.ao.nn.quantized import Linear as QuantizedLinear  # the dynamic Linear subclasses it

    return [m for m in model.modules() if isinstance(m, QuantizedLinear)]


def packed_params(model: nn.Module) -> int:
    """Elements of the packed int8 weights (and biases) of torch.ao quantized Linear layers: not parameters()."""
    total = 0
    for module in _quantized_linears(model):
        weight, bias = module._weight_bias()
        total += weight.numel() + (bias.numel() if bias is not None else 0)
    return total


def count_params(model: nn.Module) -> int:
    """Parameter elements, counting the packed int8 weights (and biases) of quantized Linear layers too."""
    return sum(p.numel() for p in model.parameters()) + packed_params(model)


def disk_size_mb(model_or_dir: nn.Module | str | Path) -> float:
    """MiB on disk: of every file under a directory, or of ``torch.save(model.state_dict())``."""
    if isinstance(model_or_dir, nn.Module):
        buffer = io.BytesIO()
        torch.save(model_or_dir.state_dict(), buffer)
        return buffer.getbuffer().nbytes / 2**20
    path = Path(model_or_dir)
    if not path.exists():
        raise FileNotFoundError(f"disk_size_mb: no file or directory at {path}")
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files) / 2**20


# --------------------------------------------------------------------------------------------- time
def _percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), q in [0, 100]."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize_times(seconds: Sequence[float], items_per_call: int = 1) -> dict:
    """Median / p10 / p90 latency in ms, the median throughput in items per second, and every timing in call
    order (``times_ms``: a round-robin bench pairs repeat r of two models, see analysis.claims)."""
    if not seconds:
        raise ValueError("summarize_times: no timings")
    median = statistics.median(seconds)
    return {
        "median_ms": 1000 * median,
        "p10_ms": 1000 * _percentile(seconds, 10),
        "p90_ms": 1000 * _percentile(seconds, 90),
        "mean_ms": 1000 * statistics.fmean(seconds),
        "repeats": len(seconds),
        "throughput": items_per_call / median if median > 0 else float("inf"),
        "times_ms": [1000 * s for s in seconds],
    }


def _timed_call(fn: Callable[[], object], device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def time_forward(
    fn: Callable[[], object], repeats: int = 10, warmup: int = 2, *, items_per_call: int = 1, device=None
) -> dict:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed; see :func:`summarize_times`."""
    _check_counts(repeats, warmup)
    for _ in range(warmup):
        fn()
    return summarize_times([_timed_call(fn, device) for _ in range(repeats)], items_per_call)


def _check_counts(repeats: int, warmup: int) -> None:
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")


# --------------------------------------------------------------------------------------------- FLOPs
@contextmanager
def eager_attention(model: nn.Module):
    """FlopCounterMode does not see CPU SDPA kernels; eager attention is plain matmuls it counts."""
    config = getattr(model, "config", None)
    previous = getattr(config, "_attn_implementation", None)
    switch = previous not in (None, "eager") and hasattr(model, "set_attn_implementation")
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(previous)


def _count_flops(module: nn.Module, call: Callable[[], object]) -> int:
    """FLOPs of ``call()`` by FlopCounterMode, plus 2*in*out per row of every quantized Linear it runs."""
    from torch.utils.flop_counter import FlopCounterMode

    quantized = {"flops": 0}

    def hook(mod, inputs, _output):
        weight, _ = mod._weight_bias()
        rows = inputs[0].numel() // inputs[0].shape[-1]
        quantized["flops"] += 2 * rows * weight.shape[0] * weight.shape[1]

    handles = [m.register_forward_hook(hook) for m in _quantized_linears(module)]
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            call()
    finally:
        for h in handles:
            h.remove()
    return int(counter.get_total_flops()) + quantized["flops"]


def flops_per_token(model: nn.Module, seq_len: int = 128) -> float:
    """Forward FLOPs of one sequence of ``seq_len`` tokens (full attention), divided by ``seq_len``."""
    if seq_len <= 0:
        raise ValueError(f"flops_per_token: seq_len must be positive, got {seq_len}")
    vocab = int(getattr(getattr(model, "config", None), "vocab_size", 1000))
    gen = torch.Generator().manual_seed(0)
    device = _device_of(model)
    ids = torch.randint(min(5, vocab - 1), vocab, (1, seq_len), generator=gen).to(device)
    mask = torch.ones_like(ids)
    with eager_attention(model):
        flops = _count_flops(model, lambda: model(input_ids=ids, attention_mask=mask))
    return flops / seq_len


def adapter_flops_measured(adapter: nn.Module, seq_len: int = 128) -> float:
    """The adapter's FLOPs per token as FlopCounterMode counts them (compare: adapter.flops_per_token())."""
    device = next(adapter.parameters()).device
    hidden = torch.zeros(1, seq_len, adapter.config.student_dim, device=device)
    return _count_flops(adapter, lambda: adapter(hidden)) / seq_len



def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _is_quantized(model: nn.Module) -> bool:
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules())
