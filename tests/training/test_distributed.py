"""Phase 1 under data parallelism: ``torchrun --nproc_per_node 2`` on CPU (gloo), against one process.

The training code is the library's own (``tests/training/distributed_phase1.py`` calls ``train_phase``); this test
checks that two processes really split the data, average their gradients (both ranks end with identical
weights although they never saw the same batch), and that the result trains and saves like a 1-process run.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("distributed_phase1.py")
ROOT = Path(__file__).resolve().parents[2]


def _launch(args, timeout):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    # Own process group: on a timeout (a rank stuck in an all-reduce) the workers die with the launcher.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(map(str, args))} still running after {timeout} s (a rank hangs?):\n{err[-5000:]}")
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed:\n{out[-3000:]}\n{err[-5000:]}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    cache = tmp / "cache"
    _launch([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
             str(SCRIPT), str(tmp / "two"), str(cache)], timeout=240)
    _launch([sys.executable, str(SCRIPT), str(tmp / "one"), str(cache)], timeout=180)
    return tmp


def _report(out: Path, rank: int) -> dict:
    return json.loads((out / f"rank{rank}.json").read_text())


def _weights(out: Path, rank: int) -> dict:
    from safetensors.torch import load_file

    return load_file(str(out / f"rank{rank}.safetensors"))


def _falls(history, k=4):
    losses = [loss for _, loss in history]
    return sum(losses[-k:]) / k < sum(losses[:k]) / k


def test_two_processes_on_gloo(runs):
    reports = [_report(runs / "two", r) for r in (0, 1)]
    assert [r["rank"] for r in reports] == [0, 1]
    assert all(r["world_size"] == 2 and r["backend"] == "gloo" for r in reports)
    assert all(r["distributed_type"].endswith("MULTI_CPU") for r in reports)
    # Both ranks filled the one embedding cache at the same time: one entry per encoder, no leftovers.
    entries = [p for p in (runs / "cache").iterdir() if p.suffix != ".lock"]  # lock files may stay
    assert sorted(p.name.startswith(".tmp") for p in entries) == [False, False]


def test_each_rank_trains_on_its_own_shard(runs):
    r0, r1 = (_report(runs / "two", r) for r in (0, 1))
    n, epochs = r0["n_examples"], r0["epochs"]
    per_epoch = n // 2  # 64 texts in batches of 8: 4 batches per rank and epoch
    assert r0["steps"] == r1["steps"] == epochs * per_epoch // r0["batch_size"]
    for e in range(epochs):
        a = set(r0["seen"][e * per_epoch : (e + 1) * per_epoch])
        b = set(r1["seen"][e * per_epoch : (e + 1) * per_epoch])
        assert not a & b and len(a | b) == n  # disjoint halves covering the whole epoch


def test_gradients_are_averaged_across_ranks(runs):
    from alad_kit.adapter import AlignmentAdapter

    w0, w1 = _weights(runs / "two", 0), _weights(runs / "two", 1)
    for k in w0:  # different batches, identical weights: only gradient all-reduce explains it
        assert torch.equal(w0[k], w1[k]), k
    torch.manual_seed(0)
    init = AlignmentAdapter(384, 384, window=3, hidden=256).state_dict()
    assert all(not torch.equal(init[k], w0[k]) for k in init)
    r0, r1 = (_report(runs / "two", r) for r in (0, 1))
    assert r0["history"] == r1["history"]  # the logged loss is the mean over ranks


def test_both_runs_train_and_differ(runs):
    two, one = _report(runs / "two", 0), _report(runs / "one", 0)
    assert one["world_size"] == 1 and one["backend"] is None
    assert one["steps"] == 2 * two["steps"]  # one process takes every batch
    assert _falls(two["history"]) and _falls(one["history"])
    w_two, w_one = _weights(runs / "two", 0), _weights(runs / "one", 0)
    assert any(not torch.equal(w_two[k], w_one[k]) for k in w_two)


def test_fewer_batches_than_ranks_does_not_stall(runs):
    assert [_report(runs / "two", r)["tiny_steps"] for r in (0, 1)] == [1, 1]
    assert _report(runs / "one", 0)["tiny_steps"] == 1


def test_saved_adapter_loads_and_runs(runs):
    from alad_kit.adapter import AlignmentAdapter

    adapter = AlignmentAdapter.from_pretrained(runs / "two" / "adapter")
    saved = _weights(runs / "two", 0)
    assert all(torch.equal(v, saved[k]) for k, v in adapter.state_dict().items())
    out = adapter(torch.randn(2, 7, 384), torch.ones(2, 7))
    assert out.shape == (2, 7, 384) and torch.isfinite(out).all()
