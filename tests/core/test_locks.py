"""One owner per cache folder (alad_kit.core.locks): a second holder waits, and a dead holder frees the lock."""

import os
import subprocess
import sys
import time

import pytest

from alad_kit.core.locks import owned

HOLD = "import sys, time; from alad_kit.core.locks import owned\nwith owned(sys.argv[1]):\n    print('held', flush=True); time.sleep(float(sys.argv[2]))"


def test_a_second_owner_waits_for_the_first(tmp_path, capsys):
    target = tmp_path / "phase1-abc"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(target), "2"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    start = time.perf_counter()
    with owned(target):
        waited = time.perf_counter() - start
    holder.wait(timeout=30)
    assert waited > 1.0
    assert "waiting for another process that is building" in capsys.readouterr().err


def test_a_killed_owner_leaves_no_stale_lock(tmp_path):
    target = tmp_path / "entry"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(target), "60"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()  # kill -9: the operating system releases the lock with the process
    holder.wait(timeout=30)
    with owned(target, timeout=5):
        pass


def test_a_timeout_names_the_folder(tmp_path):
    target = tmp_path / "entry"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(target), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TimeoutError, match=r"entry: still locked by another process after 1 s"):
            with owned(target, timeout=1):
                pass
    finally:
        holder.kill()
        holder.wait(timeout=30)


HOLD_FOLDER = ("import sys, time; from alad_kit.core.locks import sole_owner\n"
               "with sole_owner(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)")


def test_a_folder_has_one_owner_the_second_is_refused_with_the_owners_pid(tmp_path):
    from alad_kit.core.locks import InUseError, sole_owner

    holder = subprocess.Popen([sys.executable, "-c", HOLD_FOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(InUseError, match=rf"^{tmp_path} is in use by another alad run \(pid {holder.pid}\)$"):
        with sole_owner(tmp_path):
            pass
    holder.kill()  # a killed owner frees the folder: the next run takes it
    holder.wait()
    with sole_owner(tmp_path):
        assert (tmp_path / ".alad-run.lock").read_text() == str(os.getpid())
