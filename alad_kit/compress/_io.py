"""Writing a compressed model: all of it or nothing.

Every compression method ends by writing a directory (weights, config, tokenizer, ``compression_report.json``,
and for quantized models an ``alad_student.json`` marker naming the loader). We build that directory under a
temporary sibling name and rename it into place only when everything is written (``core.io.atomic_dir``), so an
exception half-way (bad input found late, full disk, Ctrl-C) never leaves a directory that looks like a finished
model, and what a killed compression left behind is removed by the next one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from alad_kit.core.io import atomic_dir, write_json_atomic

REPORT_NAME = "compression_report.json"


def save_hf(model: nn.Module, tokenizer, directory: Path) -> None:
    """save_pretrained of the model (and tokenizer when given) into an existing directory."""
    model.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)


def save_model_dir(out_dir: str | Path, report: dict, write_model) -> Path:
    """Atomically write ``write_model(tmp_dir)`` + the report; returns the final directory."""
    with atomic_dir(out_dir) as tmp:
        write_model(tmp)
        write_json_atomic(tmp / REPORT_NAME, report)
    return Path(out_dir)


def linear_modules(model: nn.Module) -> dict[str, nn.Linear]:
    """Every float ``nn.Linear`` by qualified name (the layers the compression methods act on)."""
    return {name: m for name, m in model.named_modules() if type(m) is nn.Linear}


def is_quantized(model: nn.Module) -> bool:
    """True when any submodule is already a torch.ao quantized (static or dynamic) module."""
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules())


def check_quantizable(model: nn.Module, what: str) -> dict[str, nn.Linear]:
    """The model's float Linear layers, or a ValueError saying why ``what`` cannot be applied."""
    if is_quantized(model):
        raise ValueError(f"{what}: the model is already quantized; start from the float model")
    linears = linear_modules(model)
    if not linears:
        raise ValueError(f"{what}: the model has no nn.Linear layer to act on ({type(model).__name__})")
    return linears


def check_texts(texts, what: str) -> list[str]:
    """Non-empty list of non-blank strings (calibration / similarity / distillation text)."""
    if isinstance(texts, str):
        raise ValueError(f"{what}: texts must be a list of strings, not one string")
    texts = [t for t in (texts or []) if isinstance(t, str) and t.strip()]
    if not texts:
        raise ValueError(f"{what}: no text given (need a non-empty list of non-blank strings)")
    return texts


def model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def batched_inputs(tokenizer, texts: list[str], batch_size: int, max_length: int, device) -> Iterator[dict]:
    """Tokenized, padded batches of ``texts`` moved to ``device``."""
    if batch_size <= 0 or max_length <= 0:
        raise ValueError(f"batch_size and max_length must be positive, got {batch_size}, {max_length}")
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            texts[start : start + batch_size], padding=True, truncation=True, max_length=max_length,
            return_tensors="pt",
        )
        yield {k: v.to(device) for k, v in enc.items()}
