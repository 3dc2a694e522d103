"""The adapter cache on disk: one folder per trained alignment phase, ``<cache>/adapters/<phase>-<key>/``.

A folder holds the adapter (``adapter.save_pretrained``) and ``result.json`` (loss history, seconds, steps,
tokens, the phase's record and the digests of the adapter files). It is built as ``<folder>.partial`` (where
the trainer also keeps its checkpoints for --resume) and renamed into place when complete, so a reader
never sees half an adapter. ``pipeline.run`` writes and reads it; ``ui.phase_models`` only reads it.
"""

from __future__ import annotations

from pathlib import Path

from alad_kit.adapter import CONFIG_NAME, WEIGHTS_NAME
from alad_kit.core.checkpoint import digest
from alad_kit.core.config import RunConfig
from alad_kit.core.integrity import file_digests, verified_record
from alad_kit.core.io import publish_dir, write_json_atomic

ADAPTER_FILES = (CONFIG_NAME, WEIGHTS_NAME)  # what a cached adapter's result.json records digests of


def adapter_key(cfg: RunConfig, phase_name: str, epochs: int, teacher_fingerprint: str, student_fingerprint: str,
                precision: str, parent: str | None, texts_digest: str | None = None) -> str:
    """Cache key of the adapter a phase produces: same teacher/student weights, window, seed, scale,
    task (phase 2 only), parent adapter and training texts give the same key, so finished phases are re-used.

    Entries that were added later appear only when they differ from the old default, so the keys of
    adapters cached before them stay valid."""
    return digest({
        "phase": phase_name, "epochs": epochs, "teacher": teacher_fingerprint, "student": student_fingerprint,
        "window": cfg.window, "hidden": cfg.adapter_hidden, "seed": cfg.seed, "scale": cfg.scale,
        "task": cfg.task if phase_name == "phase2" else None, "parent": parent, "texts": texts_digest,
        # bf16 trains a (slightly) different adapter
        **({"precision": precision} if precision != "fp32" else {}),
        # fp32 live teacher outputs train a (slightly) different adapter than the fp16 cache
        **({} if cfg.use_cache else {"teacher_cache": False}),
        **({} if cfg.adapter_kind == "dense" else {"kind": cfg.adapter_kind}),
    })


def folder(cache_root: Path, phase_name: str, key: str) -> Path:
    """Where the adapter cache under ``cache_root`` keeps the adapter a phase produced under ``key``."""
    return Path(cache_root) / "adapters" / f"{phase_name}-{key}"


def read_record(final: Path, remove: bool) -> dict | None:
    """``result.json`` of the finished adapter folder ``final`` when its files match their digests, else None.

    With ``remove`` a damaged folder is deleted so that the caller retrains it (only the cache's owner)."""
    return verified_record(final, "result.json", ADAPTER_FILES, "cached adapter", remove=remove)


def partial_dir(final: Path) -> Path:
    """Where the adapter of ``final`` is trained and checkpointed until it is complete."""
    return final.with_name(final.name + ".partial")


def publish(adapter, final: Path, record: dict) -> None:
    """Save ``adapter`` and its ``record`` into the partial folder and rename it to ``final``.

    The trainer's checkpoints in the partial folder are dropped first: a finished adapter needs none."""
    partial = partial_dir(final)
    adapter.save_pretrained(partial)
    write_json_atomic(partial / "result.json", {**record, "digests": file_digests(partial, ADAPTER_FILES)})
    for ckpt in [*partial.glob("*.ckpt.*"), *partial.glob("*.done.*")]:
        ckpt.unlink()
    publish_dir(partial, final)  # an old one is there only when --no-cache retrained it: the new one replaces it
