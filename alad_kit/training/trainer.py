"""One trainer for every phase.

A :class:`~alad_kit.core.config.PhaseConfig` says what trains, at which learning rate per part, in which precision,
for how long; the caller supplies the examples (as a ``make_batch(indices)`` function) and the loss. The
trainer never asks which phase it is running.

* Parameter groups: one per trained part (head, adapter, student, LoRA) with the phase's lr for that part,
  each split in two so that biases and LayerNorm weights (every 1-D parameter) get no weight decay.
* Precision: ``bf16`` runs forward and loss under autocast; weights, gradients and AdamW stay fp32.
* Order: epoch e shuffles with ``randperm(n, seed=seed*1000+e)``. With ``lengths`` and
  ``phase.group_by_length`` the shuffled examples are cut into mega-batches of 50 batches, each sorted by
  length and split into batches, and the batches are shuffled again with the same generator (as
  transformers' ``LengthGroupedSampler``): batches carry little padding and the order stays a pure
  function of (seed, epoch), so resume is exact.
* Resume: a checkpoint (:mod:`alad_kit.core.checkpoint`, safetensors + JSON) holds the trainable weights, the
  optimizer, scheduler, torch RNG, position (epoch, batch), history and the digest of the configuration;
  a run killed at any point and resumed takes exactly the same steps as one that never stopped, and a
  checkpoint of another configuration is refused.

* Timing: ``PhaseResult.timing`` splits the phase's wall seconds into ``data`` (waiting for the next batch:
  collation, cache reads, host-to-device copies), ``compute`` (forward, backward, optimizer; synchronised on
  CUDA), ``eval`` (the per-epoch validation) and ``io`` (checkpoints); the rest (progress bar, callbacks) is
  ``seconds`` less their sum.
* Data path: with ``prefetch`` the next batch is assembled in a background thread (in pinned memory on
  CUDA, copied with ``non_blocking``) while the current one trains. Only for a ``make_batch`` that draws no
  random numbers and runs no model (cached embeddings, plain collation): the batches are then the same
  tensors in the same order, so the results are too.

Data parallel: under ``accelerate launch`` / ``torchrun`` each process takes every world-size-th batch
and accelerate's DistributedDataParallel averages the gradients; nothing else changes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from alad_kit.core import checkpoint
from alad_kit.core.config import PhaseConfig
from alad_kit.core.precision import autocast
from alad_kit.core.progress import progress as tqdm
from alad_kit.core.timing import PhaseClock

from .tracking import StepInfo, current_lr, notify

MEGABATCH = 50  # batches per length-sorted group


class TrainingInterrupted(RuntimeError):
    """Raised by a callback to stop a phase (the last checkpoint stays on disk for --resume)."""


@dataclass
class PhaseResult:
    name: str
    steps: int = 0
    tokens: int = 0
    examples: int = 0  # training examples consumed (an example seen twice counts twice)
    seconds: float = 0.0
    history: list = field(default_factory=list)  # [step, loss] per optimizer step
    eval_history: list = field(default_factory=list)  # [epoch, score] per epoch when evaluated
    best_score: float | None = None
    best_epoch: int | None = None
    stopped_by: str = "epochs"  # epochs | max_steps | max_tokens | max_seconds | patience
    lr: dict = field(default_factory=dict)  # {part: peak learning rate}
    precision: str = "fp32"
    timing: dict = field(default_factory=dict)  # seconds per kind of work: data, compute, eval, io (core.timing)


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone().cpu() for n, p in model.named_parameters() if p.requires_grad}


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, lengths: Sequence[int] | None = None) -> list[list[int]]:
    """The batches of one epoch: a seeded shuffle, optionally grouped by length (see the module docstring)."""
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    if lengths is None:
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    batches, chunk = [], batch_size * MEGABATCH
    for lo in range(0, n, chunk):
        group = sorted(order[lo : lo + chunk], key=lambda i: -lengths[i])  # stable: ties keep the shuffle
        batches += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def parameter_groups(model: torch.nn.Module, phase: PhaseConfig) -> list[dict]:
    """One AdamW group per trained part and decay class; 1-D parameters (biases, norms) get no weight decay."""
    parts = model.parts()
    groups = []
    for part in phase.trainable:
        for decay in (True, False):
            params = [p for p in parts[part] if p.requires_grad and (p.ndim >= 2) == decay]
            if params:
                groups.append({"params": params, "lr": phase.lr[part], "part": part,
                               "weight_decay": phase.weight_decay if decay else 0.0})
    return groups


def make_optimizer(model: torch.nn.Module, phase: PhaseConfig) -> torch.optim.AdamW:
    """AdamW over :func:`parameter_groups`, fused where every parameter allows it (fp32/bf16 on CPU or CUDA).

    Why fused: the default (foreach) AdamW spends most of a fine-tuning step on a 2-core CPU updating M_C's
    embedding matrix (MiniLM, 2 layers, batch 32x32, bf16: 150-350 ms per optimizer step against 20-40 ms
    fused). Both compute the same update; results agree to float rounding, not bit for bit.
    """
    groups = parameter_groups(model, phase)
    params = [p for g in groups for p in g["params"]]
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.bfloat16) for p in params)
    return torch.optim.AdamW(groups, fused=fused or None)


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
    callbacks: tuple[Callable[..., None], ...] = (),
    device: str | None = None,
    lengths: Sequence[int] | None = None,
    config_digest: str = "",
    prefetch: bool = False,
) -> PhaseResult:
    """Train the parts ``phase.trainable`` of ``model`` (an :class:`~alad_kit.models.model.AladModel`).

    ``evaluate(model) -> score`` (higher is better) runs after every epoch; the best epoch's weights are
    restored at the end. ``callbacks`` are called after every step, as ``cb(phase_name, step)`` or, when they
    take one argument, ``cb(StepInfo)``, which also hears of each epoch's validation (:mod:`alad_kit.training.tracking`).
    ``lengths[i]`` (tokens of example i) turns on length-grouped batches. ``config_digest`` names the
    configuration; ``resume`` refuses a checkpoint written under another one. ``prefetch`` assembles the
    next batch in a background thread; only for a ``make_batch`` without randomness or model passes.
    """
    if n_examples <= 0:
        raise ValueError(f"{phase.name}: no training examples")
    run = _PhaseRun.start(phase, model, n_examples, batch_size, seed, checkpoint_dir, device, config_digest)
    start_epoch, skip = run.resume() if resume else (0, 0)
    result, grouped = run.result, (lengths if phase.group_by_length else None)
    run.began = time.perf_counter() - result.seconds  # a resumed phase keeps counting its earlier seconds
    run.clock = PhaseClock(run.accelerator.device, result.timing)  # a resumed phase keeps its split too
    result.timing = run.clock.seconds
    run.model.train()
    bar = tqdm(total=run.total, initial=result.steps, desc=phase.name, leave=False,
               disable=not run.accelerator.is_main_process)
    for epoch in range(start_epoch, phase.epochs):
        if result.stopped_by != "epochs":  # resumed after a budget or the patience had already ended the phase
            break
        batches = run.rank_batches(n_examples, batch_size, seed, epoch, grouped)
        stream = run.batch_stream(batches[skip:], make_batch, prefetch)
        for b in range(skip, len(batches)):  # a resumed epoch starts after the checkpointed batch
            if result.stopped_by != "epochs":
                break
            with run.clock.measure("data"):
                batch = next(stream)
            loss = run.step(batches[b], batch, loss_fn)
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            bar.update(1)
            result.stopped_by = _budget_hit(phase, result)
            if result.steps % phase.checkpoint_every == 0:
                run.save(epoch, b + 1)
            notify(callbacks, StepInfo(phase.name, result.steps, loss, current_lr(run.optimizer), epoch=epoch + 1))
        stream.close()  # a phase stopped by its budget drops the batch assembled ahead
        skip = 0
        run.end_epoch(epoch, evaluate, callbacks)
        if result.stopped_by != "epochs":
            break
    bar.close()
    return run.finish()


@dataclass
class _PhaseRun:
    """What one ``train_phase`` call trains with, where it checkpoints and how far it got.

    The loop itself stays in ``train_phase``, readable top to bottom; this holds its state and the steps
    that would otherwise make it a page long (set-up, resume, one optimizer step, the end of an epoch)."""

    phase: PhaseConfig
    accelerator: Any  # accelerate.Accelerator: device placement, data parallel, reductions
    model: torch.nn.Module  # as accelerate prepared it (DDP-wrapped under a launcher): forward and backward
    raw: torch.nn.Module  # the unwrapped model: evaluation, checkpoints, best weights
    params: list  # the trained parameters (for gradient clipping)
    optimizer: torch.optim.Optimizer
    scheduler: Any  # linear warm-up and decay over `total` steps
    total: int  # the optimizer steps planned (schedule and progress bar)
    batches_per_epoch: int  # per process
    digest: str  # names the configuration; a checkpoint of another one is refused
    ckpt_dir: Path | None  # None: no checkpoints
    result: PhaseResult
    best_state: dict | None = None  # trainable weights of the best epoch so far (with `evaluate`)
    began: float = 0.0  # perf_counter() at the start, less the seconds a resumed run had already spent
    clock: PhaseClock = field(default_factory=PhaseClock)  # seconds per kind of work (result.timing)

    @classmethod
    def start(cls, phase, model, n_examples, batch_size, seed, checkpoint_dir, device, config_digest) -> _PhaseRun:
        from accelerate import Accelerator
        from transformers import get_linear_schedule_with_warmup

        accelerator = Accelerator(cpu=(device == "cpu"))
        params = model.set_trainable(phase.trainable)
        optimizer = make_optimizer(model, phase)
        world = accelerator.num_processes
        batches_per_epoch = math.ceil(n_examples / batch_size) // world or 1
        total = phase.epochs * batches_per_epoch
        if phase.max_steps:
            total = min(total, phase.max_steps)
        scheduler = get_linear_schedule_with_warmup(optimizer, int(phase.warmup_ratio * total), total)
        model, optimizer = accelerator.prepare(model, optimizer)
        return cls(phase, accelerator, model, accelerator.unwrap_model(model), params, optimizer, scheduler, total,
                   batches_per_epoch, phase_digest(phase, n_examples, batch_size, seed, config_digest, world),
                   Path(checkpoint_dir) if checkpoint_dir else None,
                   PhaseResult(phase.name, lr=dict(phase.lr), precision=phase.precision))

    @property
    def ckpt_name(self) -> str:
        return f"{self.phase.name}.ckpt"

    def resume(self) -> tuple[int, int]:
        """Load the phase's checkpoint, if any; returns where to go on: (epoch, batch within it)."""
        if self.ckpt_dir is None or not checkpoint.exists(self.ckpt_dir, self.ckpt_name):
            return 0, 0
        self.result, epoch, batch, self.best_state = _restore(self.ckpt_dir, self.ckpt_name, self.digest, self.raw,
                                                              self.optimizer, self.scheduler)
        return epoch, batch

    def save(self, epoch: int, batch: int) -> None:
        """Checkpoint the position (epoch, next batch); only the main process writes."""
        if self.ckpt_dir is not None and self.accelerator.is_main_process:
            with self.clock.measure("io"):
                _save(self.ckpt_dir, self.ckpt_name, self.digest, self.raw, self.optimizer, self.scheduler,
                      self.result, epoch, batch, self.best_state)

    def rank_batches(self, n_examples, batch_size, seed, epoch, lengths) -> list[list[int]]:
        """This process's batches of ``epoch``: every world-size-th batch of the seeded order."""
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        batches = epoch_batches(n_examples, batch_size, seed, epoch, lengths)
        if len(batches) < world:  # fewer batches than processes: repeat, or the idle ranks hang DDP's all-reduce
            batches = (batches * world)[:world]
        return batches[rank::world][: self.batches_per_epoch]

    def batch_stream(self, batches: list[list[int]], make_batch, prefetch: bool) -> Iterator[tuple[dict, int]]:
        """``(batch on the device, its real tokens)`` for each of ``batches``, in order. With ``prefetch`` a
        background thread assembles the next batch (pinned on CUDA) while the current one trains."""
        device = self.accelerator.device
        cuda = device.type == "cuda"

        def assemble(indices):
            batch = make_batch(indices)
            tokens = int(batch["attention_mask"].sum())  # counted on the host: no device sync per step
            if cuda and prefetch:  # page-locked memory: the non_blocking copy overlaps the GPU's work
                batch = {k: v.pin_memory() for k, v in batch.items()}
            return batch, tokens

        def to_device(host):
            batch, tokens = host
            return {k: v.to(device, non_blocking=cuda) for k, v in batch.items()}, tokens

        if not prefetch:
            for indices in batches:
                yield to_device(assemble(indices))
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="alad-batches") as pool:
            pending = pool.submit(assemble, batches[0]) if batches else None
            for i in range(len(batches)):
                host = pending.result()
                if i + 1 < len(batches):
                    pending = pool.submit(assemble, batches[i + 1])
                yield to_device(host)

    def step(self, indices: list[int], batch: tuple[dict, int], loss_fn) -> float:
        """One optimizer step on ``batch`` (the device tensors of the examples ``indices`` and their real
        tokens); records it in ``result`` and returns the mean loss."""
        phase, result, world = self.phase, self.result, self.accelerator.num_processes
        batch, tokens = batch
        with self.clock.measure("compute"):
            with autocast(phase.precision, self.accelerator.device):
                loss = loss_fn(self.model, batch).float()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{phase.name}: loss is {loss.item()} at step {result.steps + 1}; stopping")
            self.accelerator.backward(loss)
            if phase.grad_clip:
                self.accelerator.clip_grad_norm_(self.params, phase.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            mean_loss = float(self.accelerator.reduce(loss.detach(), "mean"))
        result.steps += 1
        result.tokens += tokens * world
        result.examples += len(indices) * world
        result.seconds = time.perf_counter() - self.began
        result.history.append([result.steps, mean_loss])
        return mean_loss

    def end_epoch(self, epoch: int, evaluate, callbacks) -> None:
        """Validate (keeping the best epoch's weights), checkpoint the finished epoch, tell the callbacks."""
        result = self.result
        if evaluate is not None:
            with self.clock.measure("eval"):
                score = evaluate(self.raw)
            self.model.train()
            result.eval_history.append([epoch + 1, score])
            if result.best_score is None or score > result.best_score:
                result.best_score, result.best_epoch, self.best_state = score, epoch + 1, _trainable_state(self.raw)
            if self.phase.patience and epoch + 1 - result.best_epoch >= self.phase.patience:
                result.stopped_by = "patience"  # no better score for `patience` epochs: the loop ends here
        self.save(epoch + 1, 0)
        if evaluate is not None:  # after the save: a callback that stops here loses nothing of this epoch
            last_loss = result.history[-1][1] if result.history else math.nan
            notify(callbacks, StepInfo(self.phase.name, result.steps, last_loss, current_lr(self.optimizer),
                                       {"validation": score}, epoch + 1, "epoch"))

    def finish(self) -> PhaseResult:
        """Restore the best epoch's weights, record the finished phase and return its result."""
        if self.best_state is not None:
            self.raw.load_state_dict(self.best_state, strict=False)
        self.accelerator.wait_for_everyone()
        self.result.seconds = time.perf_counter() - self.began
        if self.ckpt_dir is not None and self.accelerator.is_main_process:
            with self.clock.measure("io"):
                checkpoint.save(self.ckpt_dir, f"{self.phase.name}.done", _trainable_state(self.raw),
                                {"result": asdict(self.result)}, self.digest)
                # the mid-phase state (optimizer moments, best epoch) is never read once .done exists: for a
                # fine-tuned MPNet it is over a gigabyte a run, so a study or a notebook would keep gigabytes of it
                checkpoint.remove(self.ckpt_dir, self.ckpt_name)
        self.result.seconds = time.perf_counter() - self.began  # the wall includes the final write
        return self.result


def _save(directory, name, digest, model, optimizer, scheduler, result, epoch, batch, best_state) -> None:
    optim_tensors, optim_state = checkpoint.pack_optimizer(optimizer)
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    tensors = {**checkpoint.with_prefix("trainable.", _trainable_state(model)), **optim_tensors,
               **checkpoint.with_prefix("best.", best_state), "rng.cpu": torch.get_rng_state(),
               **{f"rng.cuda.{i}": state for i, state in enumerate(cuda)}}
    state = {"optimizer": optim_state, "scheduler": scheduler.state_dict(), "result": asdict(result),
             "epoch": epoch, "batch": batch, "has_best": best_state is not None, "cuda_devices": len(cuda)}
    checkpoint.save(directory, name, tensors, state, digest)


def _restore(directory, name, digest, model, optimizer, scheduler):
    tensors, state = checkpoint.load(directory, name, digest)
    _load_trainable(model, checkpoint.strip_prefix("trainable.", tensors), Path(directory) / name)
    optimizer.load_state_dict(checkpoint.unpack_optimizer(tensors, state["optimizer"]))
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(tensors["rng.cpu"])
    if state["cuda_devices"] and torch.cuda.is_available():  # dropout on GPU draws from here
        torch.cuda.set_rng_state_all([tensors[f"rng.cuda.{i}"] for i in range(state["cuda_devices"])])
    best = checkpoint.strip_prefix("best.", tensors) if state["has_best"] else None
    return PhaseResult(**state["result"]), state["epoch"], state["batch"], best


def load_finished(phase_name: str, checkpoint_dir: str | Path, model: torch.nn.Module,
                  config_digest: str | None = None) -> PhaseResult | None:
    """If ``phase_name`` already finished in ``checkpoint_dir``, load its final weights and return its result.

    With ``config_digest`` (the ``train_phase`` digest of the phase to run) a finished phase of another
    configuration is refused with a CheckpointError instead of being reported under the new one.
    """
    name = f"{phase_name}.done"
    if not checkpoint.exists(checkpoint_dir, name):
        return None
    tensors, state = checkpoint.load(checkpoint_dir, name, config_digest)
    _load_trainable(model, tensors, Path(checkpoint_dir) / name)
    return PhaseResult(**state["result"])


def phase_digest(phase: PhaseConfig, n_examples: int, batch_size: int, seed: int, config_digest: str = "",
                 world: int = 1) -> str:
    """The digest ``train_phase`` records for these arguments (to check a finished phase before loading it)."""
    fields = asdict(phase)
    if fields["patience"] is None:  # runs without early stopping keep the digests they had before it existed
        del fields["patience"]
    return checkpoint.digest({"phase": fields, "n": n_examples, "batch": batch_size, "seed": seed,
                              "world": world, "caller": config_digest})


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
