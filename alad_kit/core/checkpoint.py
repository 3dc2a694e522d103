"""Resumable training checkpoints as safetensors + JSON: loading one can never execute code.

A checkpoint ``DIR/<name>.safetensors`` holds every tensor (trainable weights, the best epoch's weights,
the optimizer's moments, the RNG states) under flat names; ``DIR/<name>.json`` holds everything else (the
position, the scheduler, the optimizer's hyper-parameters, the phase's history), the sha256 of the tensor
file and the digest of the configuration that wrote it. The JSON is written last, so a checkpoint without
it, or whose tensor file does not match its recorded sha256, is incomplete or corrupt and is refused.

Old pickled checkpoints (``*.ckpt.pt``, ``*.ckpt.done``) are never opened.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from .integrity import sha256_file
from .io import atomic_path

FORMAT = "alad-checkpoint-1"
LEGACY_SUFFIXES = (".ckpt.pt", ".ckpt.done")  # torch pickles of alad_kit 0.1: ignored, never unpickled


class CheckpointError(ValueError):
    """A checkpoint is corrupt, incomplete, or was written by another configuration."""


def paths(directory: str | Path, name: str) -> tuple[Path, Path]:
    directory = Path(directory)
    return directory / f"{name}.safetensors", directory / f"{name}.json"


def exists(directory: str | Path, name: str) -> bool:
    return paths(directory, name)[1].is_file()


def remove(directory: str | Path, name: str) -> None:
    for p in paths(directory, name):
        p.unlink(missing_ok=True)


def save(directory: str | Path, name: str, tensors: dict[str, torch.Tensor], state: dict, config_digest: str) -> None:
    """Write ``tensors`` and the JSON-serialisable ``state`` atomically (tensor file first, JSON last)."""
    from safetensors.torch import save_file

    weights, meta = paths(directory, name)
    weights.parent.mkdir(parents=True, exist_ok=True)
    # both written before either is renamed into place; the inner one (the tensors) is renamed first
    with atomic_path(meta) as tmp_m, atomic_path(weights) as tmp_w:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp_w))
        record = {"format": FORMAT, "config_digest": config_digest, "sha256": sha256_file(tmp_w), "state": state}
        tmp_m.write_text(json.dumps(record))


def load(directory: str | Path, name: str, config_digest: str | None) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and state of a checkpoint; CheckpointError when it is corrupt or from another configuration."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights, meta = paths(directory, name)
    try:
        record = json.loads(meta.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{meta}: unreadable checkpoint ({e.__class__.__name__}); delete it") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{meta}: not an alad_kit checkpoint; delete it")
    if config_digest is not None and record.get("config_digest") != config_digest:
        raise CheckpointError(
            f"{meta} was written by another configuration (its digest {record.get('config_digest')!r} is not "
            f"{config_digest!r}); use another --out, or drop --resume to start over"
        )
    if not weights.is_file() or sha256_file(weights) != record.get("sha256"):
        raise CheckpointError(f"{weights} is missing or does not match its checksum in {meta.name}; delete both")
    try:
        tensors = load_file(str(weights))
    except SafetensorError as e:
        raise CheckpointError(f"{weights}: corrupt tensor file ({e}); delete it") from None
    return tensors, record["state"]


def pack_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into flat tensors and JSON (param groups, non-tensor state)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, entry in sd["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def unpack_optimizer(tensors: dict[str, torch.Tensor], packed: dict) -> dict:
    """Rebuild the ``state_dict`` that :func:`pack_optimizer` split."""
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for name, value in packed["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g for g in packed["param_groups"]]
    return {"state": state, "param_groups": groups}


def with_prefix(prefix: str, tensors: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v for k, v in (tensors or {}).items()}


def strip_prefix(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def digest(obj) -> str:
    """Short digest of a JSON-serialisable configuration."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
