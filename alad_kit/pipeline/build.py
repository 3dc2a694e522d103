"""A run's models, built from its configuration: plain functions, for the runner and for every reader.

``pipeline.run`` trains with what these build; ``ui.phase_models`` rebuilds a finished run's models with the
same functions (and the run's record in ``metrics.json``), so seeds, layer cuts and heads are never re-derived.

* :func:`load_encoders` -- M_L (cut to the hidden state phases 1-2 align to) and M_C (cut to
  ``student_layers``), with their tokenizers;
* :func:`initial_adapter` -- the adapter before phase 1, drawn from the run's seed;
* :func:`phase3_model` -- M_C [+ LoRA] [+ adapter] + a fresh task head, as phase 3 trains it;
* :func:`cache_root` -- where the run's embedding and adapter caches live.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from alad_kit.adapter import AlignmentAdapter
from alad_kit.core.config import MODES, RunConfig
from alad_kit.models.model import AladModel, add_lora


@dataclass
class Encoders:
    teacher: torch.nn.Module  # M_L (frozen), cut to its first teacher_layer layers
    teacher_tok: object  # M_L's tokenizer
    student: torch.nn.Module  # M_C, cut to cfg.student_layers (M_L itself in a teacher run)
    student_tok: object  # M_C's tokenizer
    teacher_depth: int  # layers of the whole M_L
    teacher_layer: int  # the hidden state of M_L that phases 1-2 align to (1..teacher_depth)
    teacher_params: int  # parameters of the whole M_L (the reference of Sz)


def load_encoders(cfg: RunConfig, device: str, teacher_layer: int | None = None) -> Encoders:
    """M_L and M_C of the run on ``device``; ``teacher_layer`` as a run recorded it (None: resolve it now)."""
    from alad_kit.models.zoo import keep_layers, load_encoder

    teacher, teacher_tok = load_encoder(cfg.teacher_finetuned or cfg.teacher, device=device)
    student, student_tok = load_encoder(cfg.teacher if cfg.is_teacher_run else cfg.student, device=device)
    if cfg.student_layers and not cfg.is_teacher_run:
        student = keep_layers(student, list(cfg.student_layers)).to(device)
    params = sum(p.numel() for p in teacher.parameters())  # Sz is relative to all of M_L
    depth = teacher.config.num_hidden_layers
    layer = resolved_teacher_layer(cfg, depth) if teacher_layer is None else teacher_layer
    if layer < depth and not cfg.is_teacher_run:
        # hidden state k of M_L is the last hidden state of its first k layers: the cut model is the target
        # (its fingerprint differs, so cache keys follow), and phases 1-2 pay for k layers only
        teacher = keep_layers(teacher, list(range(layer))).to(device)
    teacher.requires_grad_(False)
    return Encoders(teacher, teacher_tok, student, student_tok, depth, layer, params)


def resolved_teacher_layer(cfg: RunConfig, n_layers: int) -> int:
    """The hidden state of M_L that phases 1-2 align to: ``teacher_layer``, the best layer of ``teacher_probe``
    for this teacher (chosen on validation by ``alad probe-layers``), or the last (the paper's)."""
    if cfg.teacher_probe is not None:
        from alad_kit.analysis.probes.layers import best_layer

        layer = best_layer(cfg.teacher_probe, cfg.teacher_finetuned or cfg.teacher)
        if layer == 0:  # the embeddings alone: nothing for the adapter to learn from the encoder
            raise ValueError(f"{cfg.teacher_probe}: the best probe layer of {cfg.teacher} is 0 (the embeddings); "
                             "give --teacher-layer explicitly")
    else:
        layer = cfg.teacher_layer if cfg.teacher_layer is not None else n_layers
    if not 1 <= layer <= n_layers:
        raise ValueError(f"teacher_layer {layer} is outside 1..{n_layers} ({cfg.teacher} has {n_layers} layers)")
    return layer


def initial_adapter(cfg: RunConfig, student_dim: int, teacher_dim: int) -> AlignmentAdapter:
    """The adapter before phase 1: drawn from the run's seed, so every reader of the run gets the same."""
    torch.manual_seed(cfg.seed)
    return AlignmentAdapter(student_dim, teacher_dim, window=cfg.window, hidden=cfg.adapter_hidden,
                            kind=cfg.adapter_kind)


def phase3_model(cfg: RunConfig, task, labels, encoder, adapter: AlignmentAdapter | None) -> AladModel:
    """M_C [+ LoRA] [+ adapter] + a fresh head of ``task`` (seeded), as phase 3 trains it."""
    if "lora" in MODES[cfg.mode].trainable:
        encoder = add_lora(encoder, r=cfg.lora_r, alpha=cfg.lora_alpha)
    dim = adapter.config.teacher_dim if adapter is not None else encoder.config.hidden_size
    torch.manual_seed(cfg.seed + 1)
    return AladModel(encoder, adapter, task.make_head(dim, labels))


def cache_root(cfg: RunConfig) -> Path:
    """The run's cache folder: ``cfg.cache_dir``, else ``.alad_cache`` beside the run folder."""
    return Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.out).parent / ".alad_cache"
