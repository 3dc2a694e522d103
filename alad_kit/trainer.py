"""One trainer for every phase.

A :class:`~alad_kit.config.PhaseConfig` says what trains, at which learning rate, for how long; the
caller supplies the examples (as a ``make_batch(indices)`` function) and the loss. The trainer never asks
which phase it is running.

Determinism and resume: the order of examples in epoch e is ``randperm(n, seed=seed*1000+e)``; a
checkpoint holds the trainable weights, optimizer, scheduler, torch RNG, position (epoch, batch) and the
history, so a run killed at any point and resumed takes exactly the same steps as one that never stopped.

Data parallel: under ``accelerate launch`` / ``torchrun`` each process takes every world-size-th batch
and accelerate's DistributedDataParallel averages the gradients; nothing else changes.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .config import PhaseConfig


class TrainingInterrupted(RuntimeError):
    """Raised by a callback to stop a phase (the last checkpoint stays on disk for --resume)."""


@dataclass
class PhaseResult:
    name: str
    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0
    history: list = field(default_factory=list)  # [step, loss] per optimizer step
    eval_history: list = field(default_factory=list)  # [epoch, score] per epoch when evaluated
    best_score: float | None = None
    best_epoch: int | None = None
    stopped_by: str = "epochs"  # epochs | max_steps | max_tokens | max_seconds


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone().cpu() for n, p in model.named_parameters() if p.requires_grad}


def train_phase(
    phase: PhaseConfig,
    model: torch.nn.Module,
    n_examples: int,
    make_batch: Callable[[list[int]], dict],
    loss_fn: Callable[[torch.nn.Module, dict], torch.Tensor],
    *,
    batch_size: int,
    seed: int,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    evaluate: Callable[[torch.nn.Module], float] | None = None,
    callbacks: tuple[Callable[[str, int], None], ...] = (),
    device: str | None = None,
) -> PhaseResult:
    """Train the parts ``phase.trainable`` of ``model`` (an :class:`~alad_kit.model.AladModel`).

    ``evaluate(model) -> score`` (higher is better) runs after every epoch; the best epoch's weights are
    restored at the end. ``callbacks`` are called as ``cb(phase_name, step)`` after every step.
    """
    from accelerate import Accelerator
    from transformers import get_linear_schedule_with_warmup

    if n_examples <= 0:
        raise ValueError(f"{phase.name}: no training examples")
    accelerator = Accelerator(cpu=(device == "cpu"))
    params = model.set_trainable(phase.trainable)
    optimizer = torch.optim.AdamW(params, lr=phase.lr, weight_decay=phase.weight_decay)
    world, rank = accelerator.num_processes, accelerator.process_index
    batches_per_epoch = math.ceil(n_examples / batch_size) // world or 1
    total = phase.epochs * batches_per_epoch
    if phase.max_steps:
        total = min(total, phase.max_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(phase.warmup_ratio * total), total)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw = accelerator.unwrap_model(model)

    result = PhaseResult(phase.name)
    start_epoch, skip, best_state = 0, 0, None
    ckpt = Path(checkpoint_dir) / f"{phase.name}.ckpt.pt" if checkpoint_dir else None
    if ckpt is not None and resume and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        _load_trainable(raw, state["trainable"], ckpt)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():  # dropout on GPU draws from here
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        result, start_epoch, skip, best_state = state["result"], state["epoch"], state["batch"], state["best_state"]

    def save(epoch: int, batch: int) -> None:
        if ckpt is None or not accelerator.is_main_process:
            return
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        _atomic_save(
            {
                "trainable": _trainable_state(raw), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(), "result": result,
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "epoch": epoch, "batch": batch, "best_state": best_state,
            },
            ckpt,
        )

    began = time.perf_counter() - result.seconds
    model.train()
    bar = tqdm(total=total, initial=result.steps, desc=phase.name, leave=False, disable=not accelerator.is_main_process)
    for epoch in range(start_epoch, phase.epochs):
        order = torch.randperm(n_examples, generator=torch.Generator().manual_seed(seed * 1000 + epoch)).tolist()
        batches = [order[i : i + batch_size] for i in range(0, n_examples, batch_size)]
        if len(batches) < world:  # fewer batches than processes: repeat, or the idle ranks hang DDP's all-reduce
            batches = (batches * world)[:world]
        batches = batches[rank::world][:batches_per_epoch]
        for b in range(skip, len(batches)):
            if result.stopped_by != "epochs":
                break
            batch = {k: v.to(accelerator.device) for k, v in make_batch(batches[b]).items()}
            loss = loss_fn(model, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{phase.name}: loss is {loss.item()} at step {result.steps + 1}; stopping")
            accelerator.backward(loss)
            if phase.grad_clip:
                accelerator.clip_grad_norm_(params, phase.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            result.steps += 1
            result.tokens += int(batch["attention_mask"].sum()) * world
            result.seconds = time.perf_counter() - began
            result.history.append([result.steps, float(accelerator.reduce(loss.detach(), "mean"))])
            bar.update(1)
            bar.set_postfix(loss=f"{result.history[-1][1]:.4f}")
            result.stopped_by = _budget_hit(phase, result)
            if result.steps % phase.checkpoint_every == 0:
                save(epoch, b + 1)
            for cb in callbacks:
                cb(phase.name, result.steps)
        skip = 0
        if evaluate is not None:
            score = evaluate(raw)
            model.train()
            result.eval_history.append([epoch + 1, score])
            if result.best_score is None or score > result.best_score:
                result.best_score, result.best_epoch, best_state = score, epoch + 1, _trainable_state(raw)
        save(epoch + 1, 0)
        if result.stopped_by != "epochs":
            break
    bar.close()
    if best_state is not None:
        raw.load_state_dict(best_state, strict=False)
    accelerator.wait_for_everyone()
    result.seconds = time.perf_counter() - began
    if ckpt is not None and accelerator.is_main_process:
        _atomic_save({"finished": True, "result": result, "trainable": _trainable_state(raw)}, ckpt.with_suffix(".done"))
    return result


def load_finished(phase_name: str, checkpoint_dir: str | Path, model: torch.nn.Module) -> PhaseResult | None:
    """If ``phase_name`` already finished in ``checkpoint_dir``, load its final weights and return its result."""
    done = Path(checkpoint_dir) / f"{phase_name}.ckpt.done"
    if not done.is_file():
        return None
    state = torch.load(done, map_location="cpu", weights_only=False)
    _load_trainable(model, state["trainable"], done)
    return state["result"]


def _load_trainable(model: torch.nn.Module, trainable: dict, source: Path) -> None:
    # strict=False because only the trained parts are stored; names the model lacks mean a wrong checkpoint.
    unexpected = model.load_state_dict(trainable, strict=False).unexpected_keys
    if unexpected:
        raise ValueError(f"{source} does not fit this model (unknown weights {unexpected[:3]}); delete it")


def _budget_hit(phase: PhaseConfig, result: PhaseResult) -> str:
    if phase.max_steps and result.steps >= phase.max_steps:
        return "max_steps"
    if phase.max_tokens and result.tokens >= phase.max_tokens:
        return "max_tokens"
    if phase.max_seconds and result.seconds >= phase.max_seconds:
        return "max_seconds"
    return "epochs"
