"""``alad clean``: free the disk a finished run no longer needs, below the folders given and nowhere else.

Two kinds of thing go:

* ``checkpoints/`` of a finished run (its ``metrics.json`` is written): the resumable state of phases that
  have ended; ``--resume`` has nothing left to continue, and a rerun recomputes them.
* an embedding/adapter cache folder (``.alad_cache``) that no finished run below the folders refers to
  (``config.cache_dir``, or the default ``<run>/../.alad_cache``): left behind by deleted or moved runs.

Nothing else is touched: model folders, metrics, histories and probes stay. Without ``apply`` it only
lists what it would remove (the default of the command). A removal renames the folder aside first and then
deletes it (:func:`alad_kit.core.io.remove_dir`), so an interrupted clean leaves whole folders behind.
Symbolic links are never followed, and a path outside the folders given is never removed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from alad_kit.core import rundir

CACHE_NAME = ".alad_cache"


@dataclass(frozen=True)
class Removal:
    path: Path  # the folder to remove (inside one of the roots)
    bytes: int  # its size on disk
    why: str  # one line: what it is and why it can go


def _size(path: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):  # os.walk does not follow links by default
        for name in files:
            try:
                total += (Path(folder) / name).lstat().st_size
            except OSError:
                pass
    return total


def _inside(path: Path, root: Path) -> bool:
    """``path`` is no link and lies strictly inside ``root`` (a resolved folder), links resolved."""
    if path.is_symlink():
        return False
    real = path.resolve()
    return real != root and real.is_relative_to(root)


def _referred_caches(root: Path) -> set[Path]:
    """The cache folders the finished runs below ``root`` use."""
    caches = set()
    for metrics in rundir.metrics_files(root):
        try:
            config = json.loads(metrics.read_text()).get("config") or {}
        except (OSError, ValueError, AttributeError):
            config = {}
        run = metrics.parent
        caches.add((run.parent / CACHE_NAME).resolve())
        if config.get("cache_dir"):
            given = Path(config["cache_dir"])
            caches.add((given if given.is_absolute() else run.parent / given).resolve())
    return caches


def plan_clean(roots: list[str | os.PathLike]) -> list[Removal]:
    """What ``clean`` would remove below ``roots`` (module docstring); every root must be a folder."""
    plan = []
    for given in roots:
        root = Path(given).expanduser()
        if not root.is_dir() or root.is_symlink():
            raise NotADirectoryError(f"alad clean: {given} is not a folder (give a runs folder, e.g. runs/nb)")
        root = root.resolve()
        if root == Path(root.anchor) or root == Path.home().resolve():
            raise ValueError(f"alad clean: refusing {root}; give a runs folder, not / or the home folder")
        for metrics in rundir.metrics_files(root):
            checkpoints = rundir.checkpoints_dir(metrics.parent)
            if checkpoints.is_dir() and _inside(checkpoints, root):
                plan.append(Removal(checkpoints, _size(checkpoints), "checkpoints of a finished run"))
        referred = _referred_caches(root)
        for cache in sorted(root.rglob(CACHE_NAME)):
            if cache.is_dir() and _inside(cache, root) and cache.resolve() not in referred:
                plan.append(Removal(cache, _size(cache), "cache no finished run refers to"))
    return plan


def clean(roots: list[str | os.PathLike], apply: bool = False) -> list[Removal]:
    """Remove (with ``apply``) or only list what :func:`plan_clean` finds; returns the plan."""
    from alad_kit.core.io import remove_dir

    plan = plan_clean(roots)
    if apply:
        for item in plan:
            remove_dir(item.path)
    return plan
