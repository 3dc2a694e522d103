"""One owner per cache folder: a lock file next to what is being built.

Two identical runs that share a cache would otherwise build the same ``.partial`` adapter folder or
embedding entry at once and delete each other's files. The first to take the lock builds; the second
waits for it and then finds the finished result and reuses it.

``filelock`` uses ``flock``/``LockFileEx``: the operating system releases the lock when its process
dies, so a killed run never leaves a stale lock behind (the empty ``.lock`` file itself is harmless).

A run's output folder has one owner too (:func:`sole_owner`): a second ``alad run`` into the same ``--out``
is refused at once, with the id of the process that holds it, instead of both training and overwriting
each other's files.
"""

from __future__ import annotations

import os
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


RUN_LOCK_NAME = ".alad-run.lock"  # in the run folder; holds the owner's process id


class InUseError(RuntimeError):
    """The folder is owned by another live process."""


@contextmanager
def sole_owner(folder: str | Path, what: str = "alad run"):
    """Own ``folder`` for the duration of the block, or raise :class:`InUseError` at once naming the owner.

    The lock file is opened without truncating it, so a refused process changes nothing in ``folder``."""
    try:
        import fcntl
    except ImportError:  # not POSIX: filelock's lock, without the owner's process id
        with _filelock_owner(folder, what):
            yield
        return
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / RUN_LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise OSError(error.errno, f"output folder {folder} is not writable ({error.strerror or error})") from error
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "?"
            raise InUseError(f"{folder} is in use by another {what} (pid {owner})") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def _filelock_owner(folder: str | Path, what: str):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / RUN_LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise InUseError(f"{folder} is in use by another {what}") from None
    try:
        yield
    finally:
        lock.release()
