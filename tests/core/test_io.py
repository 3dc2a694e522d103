"""core.io: files and folders replaced whole, and the leftovers of killed writers removed by the next one."""

import subprocess
import sys
import threading

import pytest

from alad_kit.core import io
from alad_kit.core.io import atomic_dir, atomic_path, clean_stale, publish_dir, write_text_atomic


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The id of a process that has exited (what a killed writer's names carry)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _folder(path, text):
    path.mkdir()
    (path / "README.md").write_text(text)
    (path / "weights").write_text(text * 3)


def test_atomic_dir_replaces_the_old_folder_and_leaves_nothing_else(tmp_path):
    _folder(tmp_path / "model", "old")
    with atomic_dir(tmp_path / "model") as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".model.")
        (staging / "README.md").write_text("new")
    assert (tmp_path / "model" / "README.md").read_text() == "new"
    assert not (tmp_path / "model" / "weights").exists()  # the old folder is gone, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_an_error_while_writing_keeps_the_old_folder_and_removes_the_staging(tmp_path):
    _folder(tmp_path / "model", "old")
    with pytest.raises(KeyboardInterrupt), atomic_dir(tmp_path / "model") as staging:
        (staging / "README.md").write_text("half")
        raise KeyboardInterrupt
    assert (tmp_path / "model" / "README.md").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename-aside"])
def test_publish_dir_replaces_without_a_half_folder(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(io, "_exchange", lambda a, b: False)
    target = tmp_path / "model"
    _folder(target, "0")
    seen, stop = set(), threading.Event()

    def reader():
        while not stop.is_set():
            for name in ("README.md", "weights"):
                try:
                    seen.add(len((target / name).read_text()) > 0)  # never an empty, half-written file
                except FileNotFoundError:
                    seen.add("missing")

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(1, 150):
        _folder(tmp_path / "new", str(i % 10))
        publish_dir(tmp_path / "new", target)
    stop.set()
    thread.join()
    assert (target / "README.md").read_text() == "9"
    assert False not in seen
    if exchange and sys.platform.startswith("linux"):
        assert "missing" not in seen  # swapped in one step: model/ is there at every instant
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_stale_leftovers_of_a_dead_writer_are_removed_by_the_next_writer(tmp_path, dead_pid):
    stale_dir = tmp_path / f".model.{dead_pid}.tmp"  # a staging folder of a killed run
    _folder(stale_dir, "half")
    stale_file = tmp_path / f".x.onnx.{dead_pid}.tmp"  # the 0-byte ONNX temp file of a killed export
    stale_file.write_bytes(b"")
    live = tmp_path / f".x.onnx.{io.os.getpid()}.abcd1234.tmp"  # a writer still at work keeps its file
    live.write_bytes(b"")
    with atomic_dir(tmp_path / "model") as staging:
        (staging / "README.md").write_text("new")
    write_text_atomic(tmp_path / "x.onnx", "graph")
    assert not stale_dir.exists() and not stale_file.exists()
    assert live.exists()


def test_an_old_folder_set_aside_comes_back_when_the_writer_died_before_renaming_in(tmp_path, dead_pid):
    aside = tmp_path / f".model.{dead_pid}.0badc0de.old"
    _folder(aside, "old")
    staged = tmp_path / f".model.{dead_pid}.12345678.tmp"
    _folder(staged, "new")
    assert sorted(p.name for p in clean_stale(tmp_path / "model")) == sorted([aside.name, staged.name])
    assert (tmp_path / "model" / "README.md").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_an_aside_is_deleted_when_the_new_folder_is_in_place(tmp_path, dead_pid):
    _folder(tmp_path / "model", "new")
    _folder(tmp_path / f".model.{dead_pid}.0badc0de.old", "old")
    clean_stale(tmp_path / "model")
    assert (tmp_path / "model" / "README.md").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_other_names_are_never_touched(tmp_path, dead_pid):
    keep = [tmp_path / f".modelx.{dead_pid}.tmp", tmp_path / f".model.{dead_pid}.tmp.bak", tmp_path / "model.tmp"]
    for path in keep:
        path.write_text("x")
    clean_stale(tmp_path / "model")
    assert all(path.exists() for path in keep)


def test_atomic_path_removes_its_temporary_file_on_failure(tmp_path):
    with pytest.raises(ValueError), atomic_path(tmp_path / "out.onnx") as tmp:
        tmp.write_bytes(b"partial")
        raise ValueError("export failed")
    assert list(tmp_path.iterdir()) == []
