"""Progress of long steps: a bar on a terminal or in a notebook, an ``alad:`` line every ~10 s elsewhere.

``progress`` is a drop-in for ``tqdm.auto.tqdm``. Where its stream is a terminal (or in a Jupyter kernel) it is
that bar. Where it is not (output piped to a file or a CI log, a recorder that keeps only whole lines) a
carriage-return bar would print nothing readable for minutes, so the bar is drawn nowhere and instead
an ``alad: INFO:`` line goes through the package logger at most every ``ALAD_PROGRESS_SECONDS`` (default 10):

    alad: INFO: phase2: step 120/300 (40%), 0:42 elapsed, ~1:03 left, loss=0.0123

A step that ends after at least one such line gets a closing line too; a short one stays silent. When a
single step takes longer than the interval (a busy machine), a heartbeat thread repeats the line of the
innermost open step, marked "still at", so the log never goes quiet for much longer than the interval.
``ALAD_PROGRESS=lines`` forces the lines (a terminal recorded by ``script``), ``bar`` the bar.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

from tqdm.auto import tqdm as _auto_tqdm
from tqdm.std import tqdm as _std_tqdm  # the base of the line form

log = logging.getLogger("alad_kit.progress")
DEFAULT_SECONDS = 10.0  # seconds between two progress lines when the stream is no terminal


def _interval() -> float:
    value = os.environ.get("ALAD_PROGRESS_SECONDS", "")
    try:
        return max(float(value), 0.0) if value else DEFAULT_SECONDS
    except ValueError:
        raise ValueError(f"ALAD_PROGRESS_SECONDS must be a number of seconds, got {value!r}") from None


def wants_lines(stream=None) -> bool:
    """True where progress should be lines, not a bar: ``ALAD_PROGRESS`` says so, or the stream is no
    terminal and this is not a Jupyter kernel (where tqdm.auto draws a widget)."""
    choice = os.environ.get("ALAD_PROGRESS", "auto")
    if choice not in ("auto", "lines", "bar"):
        raise ValueError(f"ALAD_PROGRESS must be auto, lines or bar, got {choice!r}")
    if choice != "auto":
        return choice == "lines"
    if "ipykernel" in sys.modules:  # a notebook: tqdm.auto's widget (or its text bar, which the cell shows)
        return False
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    try:
        return not (isatty and isatty())
    except (OSError, ValueError):  # a closed stream
        return True


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


_open_bars: list = []  # the open line bars, innermost last (read by the heartbeat)
_open_lock = threading.Lock()
_heartbeat: threading.Thread | None = None


def _beat() -> None:
    """Every second: if the innermost open bar has been silent for its interval, log its line again."""
    while True:
        time.sleep(1.0)
        with _open_lock:
            bar = _open_bars[-1] if _open_bars else None
        if bar is not None:
            bar.heartbeat()


def _register(bar) -> None:
    global _heartbeat
    with _open_lock:
        _open_bars.append(bar)
        if _heartbeat is None or not _heartbeat.is_alive():
            _heartbeat = threading.Thread(target=_beat, name="alad-progress", daemon=True)
            _heartbeat.start()


def _unregister(bar) -> None:
    if _open_bars is None or _open_lock is None:  # interpreter shutdown: the module globals are gone already
        return
    with _open_lock:
        if bar in _open_bars:
            _open_bars.remove(bar)


class _LineProgress(_std_tqdm):
    """tqdm's counting and timing, shown as a logged line every ``interval`` seconds instead of a bar."""

    clock = staticmethod(time.monotonic)  # what the lines are spaced by

    def __init__(self, *args, interval: float = DEFAULT_SECONDS, **kwargs):
        self._interval = interval
        self._last_line = None  # time of the last line (None: none yet)
        self._closing = False
        self._last_n = None  # the count the last line showed: a line only when it moved
        kwargs["file"] = open(os.devnull, "w")  # noqa: SIM115 - closed in close(); tqdm draws nothing there
        kwargs["mininterval"] = 0.0  # every update reaches display(), which throttles by itself
        kwargs["miniters"] = 1
        kwargs.pop("position", None)
        self._began_line = self.clock()
        super().__init__(*args, **kwargs)
        if not self.disable:
            _register(self)

    def line(self) -> str:
        """The current state as one line: what, step k of N, elapsed and remaining time, the postfix."""
        d = self.format_dict
        n, total, elapsed = d["n"], d["total"], d["elapsed"]
        what = (d.get("prefix") or "progress").rstrip(": ")
        unit = "step" if d.get("unit", "it") == "it" else d["unit"]
        if total:
            text = f"{what}: {unit} {n}/{total} ({100 * n / total:.0f}%), {_clock(elapsed)} elapsed"
            if 0 < n < total:
                text += f", ~{_clock(elapsed * (total - n) / n)} left"
        else:
            text = f"{what}: {unit} {n}, {_clock(elapsed)} elapsed"
        postfix = d.get("postfix")
        return f"{text}, {postfix}" if postfix else text

    def display(self, msg=None, pos=None):
        now = self.clock()
        if self._closing:  # close() writes the closing line itself
            return True
        due = now - (self._last_line if self._last_line is not None else self._began_line) >= self._interval
        if due and self.n != self._last_n and self.n > 0:  # a new postfix alone (same count) waits for the next step
            self._last_line, self._last_n = now, self.n
            log.info("%s", self.line())
        return True

    def heartbeat(self) -> None:
        """Called by the heartbeat thread: the line again when this bar has said nothing for its interval."""
        now = self.clock()
        if self._closing or now - (self._last_line if self._last_line is not None else self._began_line) < self._interval:
            return
        self._last_line, moved = now, self.n != (self._last_n if self._last_n is not None else 0)
        self._last_n = self.n
        # "still at" only when no step ended since the last line (tqdm may skip display() between steps)
        log.info("%s", self.line() if moved else self.line().replace(": ", ": still at ", 1))

    def close(self):
        if getattr(self, "disable", True):  # closed already, or __init__ never finished
            return
        self._closing = True
        _unregister(self)
        # a long step says that it ended (a short one stays silent), unless its last line showed the end already
        if self._last_line is not None and self.n != self._last_n:
            log.info("%s", self.line())
        file = self.fp
        super().close()
        try:
            file.close()
        except Exception:  # noqa: S110 - the devnull handle; nothing to report
            pass


def progress(*args, **kwargs):
    """``tqdm.auto.tqdm(*args, **kwargs)`` on a terminal or in a notebook, else logged lines (module docstring)."""
    if kwargs.get("disable") or not wants_lines(kwargs.get("file")):
        return _auto_tqdm(*args, **kwargs)
    return _LineProgress(*args, interval=_interval(), **kwargs)
