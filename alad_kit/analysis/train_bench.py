"""``alad bench --training``: optimizer steps per second of each kind of training step, side by side.

Machines here are shared and noisy, so every variant is timed in the same process, interleaved: each
repeat times every variant once (a few steps each), and the report takes medians over repeats. Ratios
between variants of one repeat are therefore fair even when the machine's load drifts.

Variants (one real batch of ``batch_size`` x ``seq_len`` tokens, NER-style token head):

* ``align``        phases 1-2: adapter on cached student states, MSE to cached teacher states
* ``head_cached``  phase 3, mode head: frozen M_C's states from the cache, head trained
* ``head_live``    the same with M_C run at every step (what phase 3 did before the feature cache)
* ``frozen_cached`` / ``frozen_live``  phase 3, mode frozen: adapter + head, M_C cached / live
* ``finetune``     phase 3, mode finetune: M_C and head trained
* ``finetune_foreach``  the same with the default (foreach) AdamW instead of the fused one the trainer uses

each in fp32 and bf16 autocast, on the CPU or a GPU (``device``; each timed repeat is synchronised on CUDA,
so queued kernels are counted in the step that queued them).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch.nn import functional as F

from alad_kit.adapter import AlignmentAdapter
from alad_kit.core.config import PhaseConfig
from alad_kit.core.device import resolve_device
from alad_kit.core.precision import autocast
from alad_kit.core.timing import synchronize
from alad_kit.models.cost import _device_of
from alad_kit.models.heads import TokenClassificationHead
from alad_kit.models.model import AladModel
from alad_kit.training.trainer import make_optimizer, parameter_groups

VARIANTS = {  # name: (parts trained, adapter?, student states cached?, objective)
    "align": (("adapter",), True, True, "align"),
    "head_cached": (("head",), False, True, "task"),
    "head_live": (("head",), False, False, "task"),
    "frozen_cached": (("adapter", "head"), True, True, "task"),
    "frozen_live": (("adapter", "head"), True, False, "task"),
    "finetune": (("student", "head"), False, False, "task"),
    "finetune_foreach": (("student", "head"), False, False, "task"),
}
FOREACH = "_foreach"  # variants timed with the unfused AdamW: the ratio shows what the fused kernel gains


def _step_fn(student, teacher_dim: int, variant: str, precision: str, batch: dict, window: int,
             device: str = "cpu") -> Callable[[], None]:
    import copy

    trainable, use_adapter, cached, objective = VARIANTS[variant]
    encoder = copy.deepcopy(student) if "student" in trainable else student
    dim = teacher_dim if use_adapter else encoder.config.hidden_size
    adapter = AlignmentAdapter(encoder.config.hidden_size, teacher_dim, window=window) if use_adapter else None
    model = AladModel(encoder, adapter, TokenClassificationHead(dim, 9)).to(device)
    phase = PhaseConfig("bench", objective=objective, lr=1e-4, trainable=trainable, precision=precision)
    model.set_trainable(trainable)
    if variant.endswith(FOREACH):
        optimizer = torch.optim.AdamW(parameter_groups(model, phase), foreach=True)
    else:
        optimizer = make_optimizer(model, phase)
    model.train()
    inputs = dict(batch) if not cached else {k: v for k, v in batch.items() if k != "input_ids"}
    if not cached:
        inputs.pop("student_hidden")

    def step() -> None:
        with autocast(precision, device):
            if objective == "align":
                out = model(inputs, use_head=False)
                loss = F.mse_loss(out.float(), inputs["target"])
            else:
                loss = TokenClassificationHead.loss(model(inputs), inputs)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _batch(student, tokenizer, teacher_dim: int, batch_size: int, seq_len: int, device: str = "cpu") -> dict:
    from .bench import _fixed_batch

    batch = {k: v for k, v in _fixed_batch(tokenizer, batch_size, seq_len, device).items() if k != "token_type_ids"}
    with torch.no_grad():
        student.eval()
        batch["student_hidden"] = student(**batch).last_hidden_state  # (B, T, D_C), what the cache holds
    g = torch.Generator().manual_seed(0)
    batch["target"] = torch.randn(batch_size, seq_len, teacher_dim, generator=g).to(device)  # (B, T, D_L)
    batch["labels"] = torch.randint(0, 9, (batch_size, seq_len), generator=g).to(device)
    return batch


def training_bench(student: tuple, teacher_dim: int = 768, batch_size: int = 32, seq_len: int = 32,
                   repeats: int = 5, steps: int = 3, window: int = 5, variants=tuple(VARIANTS),
                   precisions=("fp32", "bf16"), device: str = "cpu") -> dict:
    """Steps/s and tokens/s of every (variant, precision) on ``device``, interleaved; ratios bf16/fp32 and
    cached/live. The student is moved to ``device`` for the bench and back afterwards."""
    from .bench import environment

    device = resolve_device(device)  # a missing GPU is one line, before any model moves
    model, tokenizer = student
    home = _device_of(model)
    try:
        model.to(device)
        batch = _batch(model, tokenizer, teacher_dim, batch_size, seq_len, device)
        fns = {(v, p): _step_fn(model, teacher_dim, v, p, batch, window, device) for v in variants for p in precisions}
        seconds = _time_interleaved(fns, repeats, steps, device)
    finally:
        model.to(home)
    rows = []
    for (variant, precision), times in seconds.items():
        median = statistics.median(times)
        rows.append({"variant": variant, "precision": precision, "median_s_per_step": median,
                     "steps_per_s": 1 / median, "tokens_per_s": batch_size * seq_len / median,
                     "spread_s": [min(times), max(times)]})
    return {"batch_size": batch_size, "seq_len": seq_len, "repeats": repeats, "steps_per_repeat": steps,
            "window": window, "device": device, "environment": environment(), "rows": rows, "ratios": _ratios(rows)}


def _time_interleaved(fns: dict, repeats: int, steps: int, device: str) -> dict[tuple, list[float]]:
    """Seconds per step of every function, ``repeats`` rounds of ``steps`` calls each, after one warm-up call."""
    for fn in fns.values():  # warm-up: first calls allocate and pick kernels
        fn()
    seconds: dict[tuple, list[float]] = {key: [] for key in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            synchronize(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            synchronize(device)
            seconds[key].append((time.perf_counter() - t0) / steps)
    return seconds


def _ratios(rows: list[dict]) -> dict:
    speed = {(r["variant"], r["precision"]): r["steps_per_s"] for r in rows}
    ratios = {}
    for (variant, precision), value in speed.items():
        if precision == "bf16" and (variant, "fp32") in speed:
            ratios[f"bf16_over_fp32/{variant}"] = value / speed[(variant, "fp32")]
        if variant.endswith("_cached") and (variant.replace("_cached", "_live"), precision) in speed:
            ratios[f"cached_over_live/{variant.removesuffix('_cached')}/{precision}"] = (
                value / speed[(variant.replace("_cached", "_live"), precision)])
        if variant.endswith(FOREACH) and (variant.removesuffix(FOREACH), precision) in speed:
            ratios[f"fused_over_foreach/{variant.removesuffix(FOREACH)}/{precision}"] = (
                speed[(variant.removesuffix(FOREACH), precision)] / value)
    return ratios
