"""Knowledge distillation: train a real, smaller student to imitate the teacher.

Two generic loops, both training the student in place:

* :func:`distill_encoder` -- task-agnostic, on plain text (TinyBERT's general distillation): the student's
  hidden states (embedding output + every layer) regress onto the teacher's at mapped layers, through one
  learned Linear projection when the widths differ, optionally plus the attention maps.
* :func:`distill_task` -- with heads, on labelled batches (Hinton et al.):
  ``alpha_kl * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha_kl) * CE(s, y)`` (+ hidden-state MSE).
  Any module returning logits works; task heads and the trainer live elsewhere.

:func:`make_student` builds the smaller model: fewer layers initialised from the teacher's own layers
(``alad_kit.models.zoo.keep_layers``), or a narrower fresh model of the same architecture.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from alad_kit.core.io import versions
from alad_kit.models.cost import count_params, eager_attention

from ._io import batched_inputs, check_texts, model_device, save_hf, save_model_dir


@dataclass(frozen=True)
class DistillConfig:
    temperature: float = 2.0  # T: softens teacher and student distributions in the KL term
    alpha_kl: float = 0.5  # weight of T^2 * KL; the task cross-entropy gets 1 - alpha_kl
    alpha_hidden: float = 0.0  # weight of the hidden-state MSE in distill_task (distill_encoder always uses it)
    alpha_attention: float = 0.0  # weight of the attention-map MSE (needs eager attention: slower)
    lr: float = 5e-5  # AdamW learning rate (student and projection)
    weight_decay: float = 0.01  # AdamW weight decay
    epochs: int = 1  # passes over the texts / batches
    batch_size: int = 16  # texts per step in distill_encoder
    max_length: int = 128  # token limit of a text in distill_encoder
    max_steps: int | None = None  # stop after this many optimizer steps (None: all epochs)
    grad_clip: float | None = 1.0  # max gradient norm (None: no clipping)
    layer_map: tuple[int, ...] | None = None  # teacher layer (1-based) per student layer; None: uniform
    seed: int = 0  # initialisation of the projection and text order

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError(f"DistillConfig.temperature must be positive, got {self.temperature}")
        for name in ("alpha_kl",):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"DistillConfig.{name} must lie in [0, 1], got {getattr(self, name)}")
        for name in ("alpha_hidden", "alpha_attention", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"DistillConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"DistillConfig.lr must be positive, got {self.lr}")
        for name in ("epochs", "batch_size", "max_length"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"DistillConfig.{name} must be a positive integer, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"DistillConfig.max_steps must be positive or None, got {self.max_steps}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"DistillConfig.grad_clip must be positive or None, got {self.grad_clip}")
        if self.layer_map is not None and any(not isinstance(i, int) or i < 1 for i in self.layer_map):
            raise ValueError(f"DistillConfig.layer_map must hold 1-based teacher layers, got {self.layer_map}")


# ------------------------------------------------------------------------------------------------ student
def make_student(
    teacher: nn.Module,
    layers: list[int] | None = None,
    hidden_size: int | None = None,
    intermediate_size: int | None = None,
    num_attention_heads: int | None = None,
) -> nn.Module:
    """A smaller model of the teacher's architecture; the teacher is untouched.

    Same width: a copy keeping the teacher's encoder layers ``layers`` (0-based), weights included.
    Narrower (``hidden_size`` given): a fresh random model with ``len(layers)`` layers (default: as many
    as the teacher), FFN 4x wide and 64-wide heads unless given; it shares the teacher's vocabulary.
    """
    n_teacher = int(teacher.config.num_hidden_layers)
    layers = list(range(n_teacher)) if layers is None else list(layers)
    if not layers:
        raise ValueError("make_student: the student needs at least one layer")
    if hidden_size is None or hidden_size == teacher.config.hidden_size:
        from alad_kit.models.zoo import keep_layers

        return keep_layers(teacher, layers)
    if hidden_size <= 0:
        raise ValueError(f"make_student: hidden_size must be positive, got {hidden_size}")
    heads = num_attention_heads or max(1, hidden_size // 64)
    if hidden_size % heads:
        raise ValueError(f"make_student: hidden_size {hidden_size} is not divisible by {heads} attention heads")
    config = copy.deepcopy(teacher.config)
    config.hidden_size, config.num_attention_heads = hidden_size, heads
    config.intermediate_size = intermediate_size or 4 * hidden_size
    config.num_hidden_layers = len(layers)
    return type(teacher)(config)


def uniform_layer_map(n_student: int, n_teacher: int) -> tuple[int, ...]:
    """TinyBERT's uniform mapping: student layer i (1-based) imitates teacher layer round(i * Lt / Ls)."""
    return tuple(max(1, round(i * n_teacher / n_student)) for i in range(1, n_student + 1))


# ------------------------------------------------------------------------------------------------ losses
def _masked_mean(per_token: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None or tuple(mask.shape) != tuple(per_token.shape):
        return per_token.mean()
    mask = mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp_min(1)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float, mask=None):
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)), mean over (unmasked) positions."""
    t = temperature
    per = F.kl_div(
        F.log_softmax(student_logits / t, -1), F.log_softmax(teacher_logits / t, -1), log_target=True,
        reduction="none",
    ).sum(-1)
    return t * t * _masked_mean(per, mask)


def hidden_mse(student_hidden, teacher_hidden, layer_map, projection, mask) -> torch.Tensor:
    """Mean over (embeddings + mapped layers) of masked MSE(projection(h_s), h_t)."""
    pairs = [(0, 0), *((i + 1, j) for i, j in enumerate(layer_map))]
    losses = [_masked_mean((projection(student_hidden[s]) - teacher_hidden[t]).pow(2).mean(-1), mask)
              for s, t in pairs]
    return torch.stack(losses).mean()


def attention_mse(student_attn, teacher_attn, layer_map, mask) -> torch.Tensor:
    """Mean over mapped layers of MSE between head-averaged attention maps on real query/key pairs."""
    pair_mask = None if mask is None else mask.unsqueeze(-1) * mask.unsqueeze(-2)  # (B, T, T)
    losses = [_masked_mean((student_attn[i].mean(1) - teacher_attn[j - 1].mean(1)).pow(2), pair_mask)
              for i, j in enumerate(layer_map)]
    return torch.stack(losses).mean()


def _layer_map(config: DistillConfig, n_student: int, n_teacher: int) -> tuple[int, ...]:
    layer_map = config.layer_map or uniform_layer_map(n_student, n_teacher)
    if len(layer_map) != n_student or max(layer_map) > n_teacher:
        raise ValueError(
            f"distill: layer_map {layer_map} must give one teacher layer in 1..{n_teacher} "
            f"for each of the {n_student} student layers"
        )
    return tuple(layer_map)


def _projection(d_student: int, d_teacher: int, seed: int, device) -> nn.Module:
    if d_student == d_teacher:
        return nn.Identity()
    torch.manual_seed(seed)
    return nn.Linear(d_student, d_teacher).to(device)


# ------------------------------------------------------------------------------------------------ loops
class _Loop:
    """AdamW over the student (+ projection) with clipping, step budget and a loss history."""

    def __init__(self, modules: list[nn.Module], config: DistillConfig):
        self.params = [p for m in modules for p in m.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay)
        self.config, self.history = config, []

    @property
    def done(self) -> bool:
        return self.config.max_steps is not None and len(self.history) >= self.config.max_steps

    def step(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(f"distillation loss became {loss.item()} at step {len(self.history)}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.optimizer.step()
        self.history.append(float(loss.detach()))


def _summary(loop: _Loop, teacher, student, layer_map, start: float, **extra) -> dict:
    history = loop.history
    window = max(1, min(10, len(history) // 4))  # mean of the first / last few steps (single steps are noisy)
    return {
        "method": "distill",
        "steps": len(history),
        "loss_first": sum(history[:window]) / window if history else math.nan,
        "loss_last": sum(history[-window:]) / window if history else math.nan,
        "loss_history": history,
        "layer_map": list(layer_map),
        "params_teacher": count_params(teacher),
        "params": count_params(student),
        "params_pct": 100.0 * count_params(student) / count_params(teacher),
        "student_layers": getattr(getattr(student, "config", None), "num_hidden_layers", None),
        "student_hidden_size": getattr(getattr(student, "config", None), "hidden_size", None),
        "config": asdict(loop.config),
        "seconds": time.perf_counter() - start,
        "versions": versions(),
        **extra,
    }


def distill_encoder(
    teacher: nn.Module, student: nn.Module, tokenizer, texts: list[str], config: DistillConfig = DistillConfig(),
    out_dir: str | Path | None = None,
) -> tuple[nn.Module, dict]:
    """Task-agnostic distillation on plain text; trains ``student`` in place and returns it with a report.

    Runs on the student's device (the teacher is moved there). Both read the same token ids, so the
    student must share the teacher's vocabulary (:func:`make_student` students do).
    """
    texts = check_texts(texts, "distill_encoder")
    if student.config.vocab_size != teacher.config.vocab_size:
        raise ValueError("distill_encoder: student and teacher must share the vocabulary (same tokenizer)")
    start = time.perf_counter()
    device = model_device(student)
    teacher.to(device).eval()
    layer_map = _layer_map(config, student.config.num_hidden_layers, teacher.config.num_hidden_layers)
    projection = _projection(student.config.hidden_size, teacher.config.hidden_size, config.seed, device)
    loop = _Loop([student, projection], config)
    use_attn = config.alpha_attention > 0
    order = torch.Generator().manual_seed(config.seed)
    student.train()
    with ExitStack() as stack:
        if use_attn:  # SDPA kernels do not return attention maps
            stack.enter_context(eager_attention(teacher))
            stack.enter_context(eager_attention(student))
        for _epoch in range(config.epochs):
            shuffled = [texts[i] for i in torch.randperm(len(texts), generator=order).tolist()]
            for batch in batched_inputs(tokenizer, shuffled, config.batch_size, config.max_length, device):
                if loop.done:
                    break
                with torch.no_grad():
                    t_out = teacher(**batch, output_hidden_states=True, output_attentions=use_attn)
                s_out = student(**batch, output_hidden_states=True, output_attentions=use_attn)
                mask = batch["attention_mask"]
                loss = hidden_mse(s_out.hidden_states, t_out.hidden_states, layer_map, projection, mask)
                if use_attn:
                    loss = loss + config.alpha_attention * attention_mse(
                        s_out.attentions, t_out.attentions, layer_map, mask)
                loop.step(loss)
    student.eval()
    report = _summary(loop, teacher, student, layer_map, start, n_texts=len(texts), objective="encoder")
    if out_dir is not None:
        save_student(student, tokenizer, out_dir, report)
    return student, report


def _logits(output) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict) and "logits" in output:
        return output["logits"]
    logits = getattr(output, "logits", None)
    if logits is None:
        raise ValueError(f"distill_task: cannot find logits in a {type(output).__name__}; pass logits_fn")
    return logits


def _task_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def distill_task(
    teacher: nn.Module,
    student: nn.Module,
    batches: Iterable[dict],
    config: DistillConfig = DistillConfig(),
    *,
    logits_fn: Callable[[object], torch.Tensor] = _logits,
    task_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = _task_ce,
) -> dict:
    """Logit (+ hidden) distillation on labelled batches; trains ``student`` in place, returns a report.

    ``batches``: dicts of tensors, model inputs plus ``labels`` (needed when alpha_kl < 1); re-iterable
    (a list or DataLoader) when ``epochs > 1``. ``alpha_hidden > 0`` needs models that accept
    ``output_hidden_states=True`` and students built by :func:`make_student` (one projection, mapped layers).
    """
    if iter(batches) is batches and config.epochs > 1:
        raise ValueError("distill_task: batches is a one-shot iterator; give a list or DataLoader for epochs > 1")
    start = time.perf_counter()
    device = model_device(student)
    teacher.to(device).eval()
    use_hidden = config.alpha_hidden > 0
    layer_map, projection = (), nn.Identity()
    if use_hidden:
        layer_map = _layer_map(config, student.config.num_hidden_layers, teacher.config.num_hidden_layers)
        projection = _projection(student.config.hidden_size, teacher.config.hidden_size, config.seed, device)
    loop = _Loop([student, projection], config)
    student.train()
    for _epoch in range(config.epochs):
        for batch in batches:
            if loop.done:
                break
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            labels = batch.pop("labels", None)
            if labels is None and config.alpha_kl < 1:
                raise ValueError("distill_task: batches need 'labels' unless alpha_kl == 1")
            extra = {"output_hidden_states": True} if use_hidden else {}
            with torch.no_grad():
                t_out = teacher(**batch, **extra)
            s_out = student(**batch, **extra)
            s_logits, t_logits = logits_fn(s_out), logits_fn(t_out)
            mask = batch.get("attention_mask")
            loss = config.alpha_kl * kd_loss(s_logits, t_logits, config.temperature, mask)
            if config.alpha_kl < 1:
                loss = loss + (1 - config.alpha_kl) * task_loss(s_logits, labels)
            if use_hidden:
                loss = loss + config.alpha_hidden * hidden_mse(
                    s_out.hidden_states, t_out.hidden_states, layer_map, projection, mask)
            loop.step(loss)
    student.eval()
    return _summary(loop, teacher, student, layer_map, start, objective="task")


def save_student(student: nn.Module, tokenizer, out_dir: str | Path, report: dict) -> Path:
    """save_pretrained of the student (+ tokenizer) and its report, all or nothing."""
    return save_model_dir(out_dir, report, lambda d: save_hf(student, tokenizer, d))
