"""Compute precision: fp32, or bf16 autocast (weights and optimizer state stay fp32).

On CPUs with AVX-512 BF16 or AMX a bf16 matrix product runs several times faster than fp32 (``alad bench
--training`` measures it); on CPUs without them bf16 is emulated and slower. So a scale's default ``bf16``
falls back to fp32 there, while an explicit ``--precision bf16`` is always honoured.
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import lru_cache

import torch


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 matrix instructions (AVX-512 BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:  # not Linux: no cheap way to tell, so stay with fp32 unless bf16 is asked for
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def native_bf16(device: str | torch.device) -> bool:
    """Whether bf16 runs natively (fast) on ``device``."""
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return kind == "cpu" and cpu_has_native_bf16()


def resolve_precision(requested: str | None, default: str, device: str | torch.device) -> str:
    """``requested`` if given; else the scale's ``default``, with bf16 falling back to fp32 without hardware."""
    if requested is not None:
        return requested
    return "bf16" if default == "bf16" and native_bf16(device) else "fp32"


def autocast(precision: str, device: str | torch.device):
    """The context that runs forward passes and losses in ``precision`` on ``device``."""
    if precision == "fp32":
        return nullcontext()
    if precision != "bf16":
        raise ValueError(f"unknown precision {precision!r}; choose fp32 or bf16")
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
