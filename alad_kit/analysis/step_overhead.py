"""Per-step data vs compute seconds of a cached phase-2 step, the data path before and after issue 23.

    python -m alad_kit.analysis.step_overhead --out results/gpu/cpu_step_overhead.json

A cached phase-2 step reads the student's and the teacher's states of a batch from the embedding cache (a
memory map), pads and pairs them (``AlignmentData.make_batch``) and trains the adapter on them. Two data
paths run through the same trainer, interleaved in one process (``repeats`` rounds, each timing both):

* ``before``: the cache read row by row (a copy, a tensor and a conversion per text, as before issue 23) and
  the batch assembled in line, between two optimizer steps;
* ``after``: one gather per batch from the memory map, and the next batch assembled by the trainer's
  background thread while the current one trains (``prefetch``).

Both train on the same batches in the same order; the report gives the median seconds per step of the
wall, of waiting for data (``timing["data"]``) and of compute, of assembling one batch alone
(``assemble``: ``make_batch`` with nothing training beside it), and whether both paths ended with the same
adapter weights. Inputs are synthetic (random states of the real widths: MiniLM 384, MPNet 768, every
text ``seq_len`` tokens) because only the cost of the path matters here.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from alad_kit.adapter import AlignmentAdapter
from alad_kit.core.config import PhaseConfig
from alad_kit.core.io import write_json_atomic
from alad_kit.core.precision import native_bf16
from alad_kit.models.model import AladModel
from alad_kit.training.align import TokenPairing
from alad_kit.training.cache import CachedEmbeddings
from alad_kit.training.phases import AlignmentData, alignment_loss
from alad_kit.training.trainer import train_phase


def padded_row_by_row(self: CachedEmbeddings, indices, width: int) -> torch.Tensor:
    """``CachedEmbeddings.padded`` as it was before issue 23 (the ``before`` path)."""
    out = torch.zeros(len(indices), width, self.dim)
    for b, row in enumerate(self.rows(indices)):
        n = min(width, row.shape[0])
        out[b, :n] = row[:n].float()
    return out


def _entry(folder: Path, name: str, n: int, seq_len: int, dim: int) -> CachedEmbeddings:
    """A cache entry of ``n`` texts of ``seq_len`` tokens, random fp16 states, on disk and memory-mapped."""
    rng = np.random.default_rng(len(name))
    data = np.memmap(folder / f"{name}.f16", dtype=np.float16, mode="w+", shape=(n * seq_len, dim))
    data[:] = rng.standard_normal((n * seq_len, dim), dtype=np.float32).astype(np.float16)
    data.flush()
    offsets = np.arange(n + 1, dtype=np.int64) * seq_len
    return CachedEmbeddings(folder, offsets, np.memmap(folder / f"{name}.f16", dtype=np.float16, mode="r",
                                                       shape=(n * seq_len, dim)))


def _one_run(data: AlignmentData, student, precision: str, steps: int, batch_size: int, prefetch: bool) -> dict:
    torch.manual_seed(0)
    adapter = AlignmentAdapter(384, 768, window=5)
    phase = PhaseConfig("phase2", objective="align", lr={"adapter": 1e-4}, trainable=("adapter",),
                        precision=precision, epochs=1, max_steps=steps, warmup_ratio=0.0)
    result = train_phase(phase, AladModel(student, adapter), len(data), data.make_batch, alignment_loss,
                         batch_size=batch_size, seed=0, device="cpu", prefetch=prefetch)
    per_step = {k: v / result.steps for k, v in result.timing.items() if k in ("data", "compute")}
    return per_step | {"wall": result.seconds / result.steps, "weights": adapter.state_dict()}


def _assemble_seconds(data: AlignmentData, batch_size: int, steps: int) -> float:
    """Seconds per batch of ``make_batch`` alone (no training beside it), over the first ``steps`` batches."""
    start = time.perf_counter()
    for lo in range(0, batch_size * steps, batch_size):
        data.make_batch(range(lo, lo + batch_size))
    return (time.perf_counter() - start) / steps


def measure(repeats: int = 5, steps: int = 20, batch_size: int = 32, seq_len: int = 128) -> dict:
    """Interleaved before/after rounds; medians of seconds per step (see the module docstring)."""
    from alad_kit.models.zoo import keep_layers, load_encoder

    student = keep_layers(load_encoder("random:minilm-l6")[0], [0, 1])  # never run: the states are cached
    precision = "bf16" if native_bf16("cpu") else "fp32"
    n = batch_size * steps
    ids = [[1] * seq_len for _ in range(n)]
    pairing = TokenPairing(ids, ids, [list(range(seq_len)) for _ in range(n)], 1.0)
    rounds: dict[str, list[dict]] = {"before": [], "after": []}
    original = CachedEmbeddings.padded
    with tempfile.TemporaryDirectory(prefix="alad-step-overhead-") as tmp:
        data = AlignmentData(pairing, _entry(Path(tmp), "student", n, seq_len, 384),
                             _entry(Path(tmp), "teacher", n, seq_len, 768))
        try:
            for _ in range(repeats + 1):  # the first round warms caches and kernels and is dropped
                CachedEmbeddings.padded = padded_row_by_row
                rounds["before"].append(_one_run(data, student, precision, steps, batch_size, prefetch=False)
                                        | {"assemble": _assemble_seconds(data, batch_size, steps)})
                CachedEmbeddings.padded = original
                rounds["after"].append(_one_run(data, student, precision, steps, batch_size, prefetch=True)
                                       | {"assemble": _assemble_seconds(data, batch_size, steps)})
        finally:
            CachedEmbeddings.padded = original
    same = all(torch.equal(a, b) for a, b in zip(rounds["before"][-1]["weights"].values(),
                                                 rounds["after"][-1]["weights"].values()))
    summary = {path: {f"{key}_ms_per_step": {"median": 1000 * statistics.median(r[key] for r in runs[1:]),
                                             "min": 1000 * min(r[key] for r in runs[1:]),
                                             "max": 1000 * max(r[key] for r in runs[1:])}
                      for key in ("wall", "data", "compute", "assemble")} for path, runs in rounds.items()}
    return {"batch_size": batch_size, "seq_len": seq_len, "student_dim": 384, "teacher_dim": 768, "window": 5,
            "precision": precision, "steps_per_round": steps, "repeats": repeats, "device": "cpu",
            "torch_threads": torch.get_num_threads(), "same_final_weights": same, **summary}


def main(argv=None) -> int:
    from alad_kit.analysis.bench import environment

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    result = measure(args.repeats, args.steps) | {"environment": environment()}
    write_json_atomic(args.out, result, allow_nan=False)
    print({k: result[k] for k in ("before", "after", "same_final_weights")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
