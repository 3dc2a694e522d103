"""Digests of cached files, recorded when they are written and checked every time they are read.

A cached adapter or embedding entry is a file someone else's process (or a failing disk) may have
changed; a mismatch must lead to a rebuild or a refusal, never to silently wrong numbers. The check
cannot be switched off from inside the cache: whatever a cached JSON says, every file is hashed.
"""

from __future__ import annotations

import hashlib
import json
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
