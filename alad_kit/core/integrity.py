"""Digests of cached files, recorded when they are written and checked every time they are read.

A cached adapter or embedding entry is a file someone else's process (or a failing disk) may have
changed; a mismatch must lead to a rebuild or a refusal, never to silently wrong numbers. The check
cannot be switched off from inside the cache: whatever a cached JSON says, every file is hashed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 4 MB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def file_digests(folder: str | Path, names) -> dict[str, str]:
    """``{name: sha256}`` of the files ``names`` inside ``folder`` (to store next to them)."""
    folder = Path(folder)
    return {name: sha256_file(folder / name) for name in names}


def digest_problem(folder: str | Path, recorded, names) -> str | None:
    """Why the files ``names`` of ``folder`` do not match ``recorded`` (a ``file_digests`` dict), or None.

    A record that is missing, not a dict or lacks one of ``names`` is a problem too: an entry written
    without digests cannot be trusted.
    """
    folder = Path(folder)
    if not isinstance(recorded, dict):
        return "no recorded digests"
    for name in names:
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if recorded.get(name) != sha256_file(path):
            return f"{name} does not match its recorded sha256"
    return None


def read_json_record(path: str | Path) -> dict | None:
    """The JSON object in ``path``, or None when it is missing, unreadable or not an object."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def verified_record(folder: str | Path, record_name: str, names, what: str, remove: bool = True) -> dict | None:
    """The JSON record ``folder/record_name`` when the files ``names`` match its ``"digests"``; else None.

    A folder that exists but fails the check is reported (one warning naming the folder and the file at
    fault) and, with ``remove``, deleted so that the caller rebuilds it.
    """
    folder = Path(folder)
    if not folder.exists():
        return None
    record = read_json_record(folder / record_name)
    problem = f"{record_name} is missing or not valid JSON" if record is None else None
    problem = problem or digest_problem(folder, record.get("digests"), names)
    if problem is None:
        return record
    warnings.warn(f"{what} {folder}: {problem}; it is not used but rebuilt", stacklevel=2)
    if remove:
        shutil.rmtree(folder, ignore_errors=True)
    return None
