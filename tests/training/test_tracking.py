"""Callback forms and the accelerate tracker callback (alad_kit.training.tracking)."""

import pytest
from _tracking_events import scalars

from alad_kit.training.tracking import RunTracker, StepInfo, notify, takes_step_info


def test_callback_forms():
    class Recorder:
        def __call__(self, info):
            pass

    assert takes_step_info(lambda info: None) and takes_step_info(Recorder())
    assert not takes_step_info(lambda name, step: None)
    assert not takes_step_info(lambda name, step, phase="p3": None)  # the tests' kill callbacks
    assert not takes_step_info(lambda *args: None) and not takes_step_info(print)


def test_notify_tells_old_callbacks_only_of_steps():
    old, new = [], []
    callbacks = (lambda name, step: old.append((name, step)), new.append)
    step = StepInfo("phase3", 4, 0.5, {"head": 1e-3}, epoch=1)
    epoch = StepInfo("phase3", 4, 0.5, {"head": 1e-3}, {"validation": 0.7}, 1, "epoch")
    notify(callbacks, step)
    notify(callbacks, epoch)
    assert old == [("phase3", 4)] and new == [step, epoch]


def test_run_tracker_writes_tensorboard_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    tracker = RunTracker("tensorboard", tmp_path, {"task": "ner", "window": 3, "student_layers": (0,), "lr": None})
    for step in (1, 2, 3):
        tracker(StepInfo("phase1", step, 1.0 / step, {"adapter": 1e-4 * step}, epoch=1))
    tracker(StepInfo("phase1", 3, 1 / 3, {"adapter": 3e-4}, {"validation": 0.25}, 1, "epoch"))
    tracker.close()
    found = scalars(tmp_path)
    assert [s for s, _ in found["phase1/loss"]] == [1, 2, 3]
    assert found["phase1/loss"][1][1] == pytest.approx(0.5)
    assert found["phase1/lr/adapter"][2][1] == pytest.approx(3e-4)
    assert found["phase1/validation"] == [(1, pytest.approx(0.25))]
