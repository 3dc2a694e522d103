"""Files and versions: the one atomic writer of the package, its JSON helpers and ``versions()``.

Every file alad_kit writes for others to read (metrics, reports, tables, markers, probe frames) goes through
:func:`atomic_path`: the content is written to a temporary file in the same directory and renamed into place,
so a reader (or a crash) never sees half a file. :func:`write_text_atomic` and :func:`write_json_atomic` are
the two ways to use it for text; anything else (a DataFrame, ``torch.save``) writes to the path it yields.
Whole directories are staged the same way by their owners (``compress._io.atomic_dir``, ``rundir``).
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes 0600 (and safetensors replaces the file with another 0600 one): outputs are as readable
        # as any other file the user writes, so set the mode only once the content is there.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


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
