"""Files and versions: the one atomic writer of the package, its JSON helpers and ``versions()``.

Every file alad_kit writes for others to read (metrics, reports, tables, markers, probe frames) goes through
:func:`atomic_path`: the content is written to a temporary file in the same directory and renamed into place,
so a reader (or a crash) never sees half a file. :func:`write_text_atomic` and :func:`write_json_atomic` are
the two ways to use it for text; anything else (a DataFrame, ``torch.save``) writes to the path it yields.
Whole directories (a run's ``model/``, a compressed model, a cached adapter) go through :func:`atomic_dir` or,
when they were built elsewhere, :func:`publish_dir`: the new folder takes the old one's place in one step, so a
complete old or new folder is there at every instant. This module is the only caller of ``os.replace``.

Temporary names carry the writer's process id: ``.<name>.<pid>.<token>.tmp`` (being written, or an old folder
swapped out) and ``.<name>.<pid>.<token>.old`` (an old folder set aside). A process that is killed cannot
remove them; the next writer of the same name does (:func:`clean_stale`), and puts an old folder back when the
kill came between setting it aside and renaming the new one in. Process ids are those of this machine: two
machines writing one name on a shared disk at the same time are not supported (nor is that what a run does).
"""

from __future__ import annotations

import ctypes
import errno
import glob
import json
import os
import platform
import re
import secrets
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; restored at once
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block ends without error it replaces ``path``.

    The parent directory is created; the temporary file is removed whatever happens.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    tmp = temp_name(path)
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    try:
        yield tmp
        # the temporary is made 0600 (and safetensors replaces the file with another 0600 one): outputs are as
        # readable as any other file the user writes, so set the mode only once the content is there.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def replace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """``os.replace`` for writers that stage several files themselves (``core.checkpoint``, caches)."""
    os.replace(src, dst)


# --------------------------------------------------------------------------------------------------
# Whole folders, and the leftovers of killed writers.
_LEFTOVER = re.compile(r"(?P<pid>\d+)(?:\.[0-9a-z]+)?\.(?P<kind>tmp|old)")


def temp_name(target: str | os.PathLike, kind: str = "tmp") -> Path:
    """A fresh ``.<name>.<pid>.<token>.<kind>`` next to ``target`` (``kind``: tmp or old)."""
    target = Path(target)
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.{kind}")


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` exists on this machine (one of another user counts too)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_stale(target: str | os.PathLike) -> list[Path]:
    """Remove what killed writers of ``target`` left next to it (see the module docstring); returns them.

    An old folder set aside comes back when ``target`` is missing (the writer died between its two renames);
    otherwise it, and every temporary file or folder of a dead writer, is deleted."""
    target = Path(target)
    prefix = f".{target.name}."
    if not target.parent.is_dir():
        return []
    found = []
    for path in target.parent.glob(glob.escape(prefix) + "*"):
        match = _LEFTOVER.fullmatch(path.name[len(prefix):])
        if match and not pid_alive(int(match["pid"])):
            found.append((match["kind"] != "old", path))
    for _, path in sorted(found):  # asides first: one of them may have to come back
        if path.name.endswith(".old") and not os.path.lexists(target):
            path.rename(target)
        else:
            _remove(path)
    return [path for _, path in found]


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh empty folder next to ``target``; when the block ends without error it takes ``target``'s
    place (:func:`publish_dir`). On an error, or Ctrl-C, the staged folder is removed and ``target`` is as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target)
    staging = temp_name(target)
    staging.mkdir()
    try:
        yield staging
        publish_dir(staging, target)
    finally:
        if staging.exists():
            _remove(staging)


def publish_dir(src: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the finished folder ``src`` in ``target``'s place; the previous ``target`` (if any) is deleted.

    Linux swaps the two in one step (``renameat2(RENAME_EXCHANGE)``), so ``target`` is never missing. Elsewhere
    the old folder is renamed aside, the new one renamed in, the old one deleted: a kill in between leaves the
    aside, which the next :func:`clean_stale` puts back."""
    src, target = Path(src), Path(target)
    if not os.path.lexists(target):
        src.rename(target)
        return
    if _exchange(src, target):  # src now holds the old folder
        _remove(src)
        return
    aside = temp_name(target, "old")
    target.rename(aside)
    src.rename(target)
    _remove(aside)


def remove_dir(target: str | os.PathLike) -> None:
    """Delete the folder ``target`` so that no reader sees it half-deleted: renamed away first, then removed."""
    target = Path(target)
    if os.path.lexists(target):
        doomed = temp_name(target)
        target.rename(doomed)
        _remove(doomed)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap the paths ``a`` and ``b`` atomically; False where the system or file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)  # glibc >= 2.28
    if renameat2 is None:
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_cwd = -100  # AT_FDCWD: relative paths are relative to the working directory
    if renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def chmod_as_umask(*paths: str | os.PathLike) -> None:
    """Give every file under ``paths`` mode 0666 and every folder 0777, less the umask, as a plain ``open`` and
    ``mkdir`` would: for trees written by libraries that make their files private (safetensors writes 0600),
    so that a model saved on a group folder loads for a colleague when the umask says so."""
    mask = _umask()
    for root in map(Path, paths):
        for path in [root, *root.rglob("*")] if root.is_dir() else [root]:
            if not path.is_symlink():
                os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def jsonable(value: Any) -> Any:
    """``json.dumps`` default: numpy / torch scalars and arrays as numbers and lists, paths as strings."""
    if hasattr(value, "tolist"):  # numpy arrays / scalars, torch tensors
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int | None = 2, allow_nan: bool = True) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (see :func:`jsonable` for what it converts)."""
    return write_text_atomic(path, json.dumps(data, indent=indent, default=jsonable, allow_nan=allow_nan))


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def versions() -> dict[str, str]:
    """The versions a result depends on (recorded in metrics.json, reports and ``alad info``)."""
    import datasets
    import peft
    import torch
    import transformers

    return {
        "alad_kit": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "transformers": transformers.__version__, "datasets": datasets.__version__, "peft": peft.__version__,
    }
