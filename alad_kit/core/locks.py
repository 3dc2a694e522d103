"""One owner per cache folder: a lock file next to what is being built.

Two identical runs that share a cache would otherwise build the same ``.partial`` adapter folder or
embedding entry at once and delete each other's files. The first to take the lock builds; the second
waits for it and then finds the finished result and reuses it.

``filelock`` uses ``flock``/``LockFileEx``: the operating system releases the lock when its process
dies, so a killed run never leaves a stale lock behind (the empty ``.lock`` file itself is harmless).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout


@contextmanager
def owned(target: str | Path, timeout: float = -1):
    """Hold ``<target>.lock`` for the duration of the block; ``timeout`` seconds (-1: wait for ever).

    Prints one line when another process holds the lock, so a waiting run does not look hung.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target.with_name(target.name + ".lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"alad: waiting for another process that is building {target}", file=sys.stderr)
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise TimeoutError(f"{target}: still locked by another process after {timeout:.0f} s") from None
    try:
        yield
    finally:
        lock.release()
