import io
import logging
import time

import pytest
from tqdm.std import tqdm as std_tqdm

from alad_kit.core.progress import _LineProgress, progress, wants_lines


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def _auto(monkeypatch):
    monkeypatch.delenv("ALAD_PROGRESS", raising=False)
    monkeypatch.delenv("ALAD_PROGRESS_SECONDS", raising=False)


def test_a_stream_that_is_no_terminal_gets_lines_and_a_terminal_gets_the_bar():
    assert wants_lines(io.StringIO())
    assert not wants_lines(_Terminal())
    lines = progress(total=3, file=io.StringIO())
    bar = progress(total=3, file=_Terminal())
    assert isinstance(lines, _LineProgress) and isinstance(bar, std_tqdm) and not isinstance(bar, _LineProgress)
    lines.close()
    bar.close()


def test_the_environment_forces_either_form_and_a_bad_value_is_one_error(monkeypatch):
    monkeypatch.setenv("ALAD_PROGRESS", "lines")
    assert wants_lines(_Terminal())
    monkeypatch.setenv("ALAD_PROGRESS", "bar")
    assert not wants_lines(io.StringIO())
    monkeypatch.setenv("ALAD_PROGRESS", "sometimes")
    with pytest.raises(ValueError, match="ALAD_PROGRESS must be auto, lines or bar"):
        wants_lines(io.StringIO())


def test_each_line_names_the_step_its_position_the_times_and_the_loss(monkeypatch, caplog):
    monkeypatch.setenv("ALAD_PROGRESS_SECONDS", "0")  # a line at every update
    stream = io.StringIO()
    with caplog.at_level(logging.INFO, logger="alad_kit.progress"):
        bar = progress(total=4, desc="phase2", file=stream, leave=False)
        for _ in range(2):
            bar.update(1)
            bar.set_postfix(loss="0.5000")
        bar.update(2)
        bar.close()
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("phase2: step 2/4 (50%), 0:00 elapsed, ~0:00 left, loss=0.5000") for m in messages)
    assert messages[-1].startswith("phase2: step 4/4 (100%)")  # the closing line
    assert stream.getvalue() == ""  # no bar drawn into the stream


def test_the_end_is_said_once(monkeypatch, caplog):
    monkeypatch.setenv("ALAD_PROGRESS_SECONDS", "0")  # the last update already logs the 100% line
    monkeypatch.setattr("alad_kit.core.progress._register", lambda bar: None)
    with caplog.at_level(logging.INFO, logger="alad_kit.progress"):
        bar = progress(total=1, desc="ner finetune: phase", file=io.StringIO())
        bar.update(1)
        bar.close()
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if "1/1 (100%)" in m] == messages[-1:]  # one closing line, not two


def test_a_short_step_stays_silent_and_a_long_one_is_throttled(monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger="alad_kit.progress"):
        for _ in progress(range(50), desc="encode", file=io.StringIO()):
            pass
    assert caplog.records == []  # default: a line every 10 s, so a short step prints nothing
    clock = iter(range(0, 1000, 4))  # 4 s between two looks at the clock: never two lines within 10 s
    monkeypatch.setattr("alad_kit.core.progress._register", lambda bar: None)  # no heartbeat reading the clock
    monkeypatch.setattr(_LineProgress, "clock", staticmethod(lambda: next(clock)))
    with caplog.at_level(logging.INFO, logger="alad_kit.progress"):
        bar = progress(total=9, desc="phase3", file=io.StringIO())
        for _ in range(9):
            bar.update(1)
        bar.close()
    assert 2 <= len(caplog.records) <= 4
    assert caplog.records[-1].getMessage().startswith("phase3: step 9/9")


def test_a_bad_interval_is_one_error(monkeypatch):
    monkeypatch.setenv("ALAD_PROGRESS_SECONDS", "often")
    with pytest.raises(ValueError, match="ALAD_PROGRESS_SECONDS"):
        progress(total=2, file=io.StringIO())


def test_a_step_longer_than_the_interval_still_gets_a_line(monkeypatch, caplog):
    monkeypatch.setenv("ALAD_PROGRESS_SECONDS", "0.3")
    with caplog.at_level(logging.INFO, logger="alad_kit.progress"):
        bar = progress(total=3, desc="teacher phase1", file=io.StringIO())
        deadline = time.monotonic() + 10
        while not caplog.records and time.monotonic() < deadline:  # one step that takes long: no update at all
            time.sleep(0.1)
        bar.close()
    assert caplog.records[0].getMessage().startswith("teacher phase1: still at step 0/3 (0%)")
