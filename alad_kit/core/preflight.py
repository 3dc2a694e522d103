"""Checks made before any work starts, so a bad setting fails in a second, not after phases 1-2.

Each raises a one-line error naming the cause (and the folder or model) that ``alad`` prints as is.
"""

from __future__ import annotations

import os
import uuid
from contextlib import suppress
from pathlib import Path


def check_writable(folder: str | Path, what: str = "output folder") -> Path:
    """Create ``folder`` if needed and prove a file can be written there (then remove it)."""
    folder = Path(folder)
    probe = folder / f".alad-write-test-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as handle:
            handle.write(b"ok")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        raise OSError(error.errno, f"{what} {folder} is not writable ({error.strerror or error})") from error
    finally:
        with suppress(OSError):  # the probe may never have been created (e.g. the parent is a file)
            probe.unlink(missing_ok=True)
    return folder


def max_sequence_length(model, tokenizer=None) -> int | None:
    """Longest input (tokens) the model's position embeddings cover, when it says so."""
    limits = []
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        if getattr(model.config, "model_type", "") in ("roberta", "mpnet", "xlm-roberta"):
            # their position ids start after padding_idx: pad_token_id + 1 positions are never a token's
            positions -= (getattr(model.config, "pad_token_id", 0) or 0) + 1
        limits.append(positions)
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_limit, int) and 0 < tok_limit < 1_000_000:
        limits.append(tok_limit)
    return min(limits) if limits else None


def check_seq_len(seq_len: int, models: dict) -> None:
    """ValueError when ``seq_len`` exceeds what one of ``models`` ({name: (model, tokenizer)}) accepts."""
    for name, (model, tokenizer) in models.items():
        limit = max_sequence_length(model, tokenizer)
        if limit is not None and seq_len > limit:
            raise ValueError(f"--seq-len {seq_len} is longer than model {name!r} accepts ({limit} tokens)")
