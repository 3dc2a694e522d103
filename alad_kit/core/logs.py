"""How alad_kit talks: ``alad: LEVEL: message`` lines on stderr, written around progress bars, and alad_kit's own
``warnings.warn`` routed through the same logger (the CLI calls :func:`configure_logging` once per command)."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path


class _TqdmHandler(logging.StreamHandler):
    """Writes through ``tqdm.write``, so a message never lands in the middle of a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # logging's contract: a failing handler reports, never raises
            self.handleError(record)


class _NotebookHandler(logging.StreamHandler):
    """Writes to the sys.stdout of the moment (a notebook cell's, a test's capture), not the one it was made
    with, and each message once: a sweep of eight smoke runs says "scale smoke: ..." once, not eight times."""

    def __init__(self):
        super().__init__(sys.stdout)
        self.said: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message in self.said:
            return
        self.said.add(message)
        self.stream = sys.stdout
        super().emit(record)


_PACKAGE = Path(__file__).resolve().parents[1]  # alad_kit/
_python_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A ``warnings.warn`` of alad_kit (a repaired BIO tag, a skipped sentence, ...) as an ``alad: WARNING:`` line
    like every other message, not Python's "path:line: UserWarning:" form; other packages' warnings unchanged."""
    try:
        ours = Path(filename).resolve().is_relative_to(_PACKAGE)
    except (OSError, ValueError):
        ours = False
    if ours:
        logging.getLogger("alad_kit").warning("%s", message)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


def configure_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Level of the package logger ("alad_kit"): DEBUG with -v, WARNING with -q, else INFO. A stderr handler
    is added only where the application has none (a notebook's or pytest's handlers are left to do it).
    alad_kit's own ``warnings.warn`` go through that logger too."""
    warnings.showwarning = _show_warning
    logger = logging.getLogger("alad_kit")
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    for handler in [h for h in logger.handlers if getattr(h, "alad_cli", False)]:
        logger.removeHandler(handler)  # main() called again in one process: one handler, today's stderr
    if not logging.getLogger().handlers:
        handler = _TqdmHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("alad: %(levelname)s: %(message)s"))
        handler.alad_cli = True
        logger.addHandler(handler)


def configure_notebook_logging() -> None:
    """In a notebook: alad_kit's warnings (its own ``warnings.warn`` too) as ``alad: WARNING:`` lines in the
    cell's output, on stdout, instead of Python's "path:line: UserWarning" in a red stderr box; each message
    once per kernel. Information stays quiet (the bars show progress). Calling it again replaces the handler."""
    warnings.showwarning = _show_warning
    logger = logging.getLogger("alad_kit")
    for handler in [h for h in logger.handlers if getattr(h, "alad_notebook", False)]:
        logger.removeHandler(handler)
    handler = _NotebookHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("alad: %(levelname)s: %(message)s"))
    handler.alad_notebook = True
    logger.addHandler(handler)


# Failures with a message meant for the user (bad input, missing file, full disk, failed checks).
EXPECTED = (ValueError, OSError, ImportError, FloatingPointError, RuntimeError)


def one_line(error: BaseException) -> str:
    """The error as one line. Our own errors (ValueError, OSError, ...) carry their cause and file; anything
    else (a KeyError, an IndexError deep in a library) also gets its type, which is then half the message."""
    text = " ".join(str(error).split())
    if isinstance(error, EXPECTED) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
