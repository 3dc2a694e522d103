"""Honest wall-clock seconds per kind of work (data, compute, eval, I/O) on CPU and GPU.

CUDA kernels run asynchronously: without a synchronisation a timer around a training step measures how
long Python took to *queue* the kernels, and the GPU time lands in whatever waits next (often the data
bucket). :class:`PhaseClock` therefore synchronises the device at the edges of every measured block on
CUDA, and only there (a CPU run pays nothing for it).
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch

BUCKETS = ("data", "compute", "eval", "io")  # what a training phase's seconds are split into


def synchronize(device: str | torch.device | None) -> None:
    """Wait for the device's queued work (CUDA only; a no-op elsewhere)."""
    if device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize(device)


class PhaseClock:
    """Accumulates seconds per bucket: ``with clock.measure("compute"): ...``."""

    def __init__(self, device: str | torch.device | None = None, seconds: dict | None = None):
        self.device = device
        self.seconds = {bucket: 0.0 for bucket in BUCKETS} | dict(seconds or {})  # a resumed phase goes on counting

    @contextmanager
    def measure(self, bucket: str):
        if bucket not in self.seconds:
            raise ValueError(f"PhaseClock: unknown bucket {bucket!r}; one of {', '.join(BUCKETS)}")
        synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.seconds[bucket] += time.perf_counter() - start

    def rounded(self, digits: int = 3) -> dict[str, float]:
        return {bucket: round(value, digits) for bucket, value in self.seconds.items()}
