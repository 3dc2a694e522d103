"""Seconds per kind of work (alad_kit.core.timing)."""

import time

import pytest

from alad_kit.core.timing import BUCKETS, PhaseClock, synchronize


def test_measure_adds_to_its_bucket_only_and_goes_on_from_earlier_seconds():
    clock = PhaseClock("cpu", {"data": 1.0})
    with clock.measure("compute"):
        time.sleep(0.01)
    assert set(clock.seconds) == set(BUCKETS)
    assert clock.seconds["data"] == 1.0 and clock.seconds["compute"] >= 0.01
    assert clock.seconds["eval"] == clock.seconds["io"] == 0.0


def test_a_failing_block_is_still_counted_and_unknown_buckets_are_refused():
    clock = PhaseClock()
    with pytest.raises(KeyError), clock.measure("io"):
        raise KeyError("boom")
    assert clock.seconds["io"] > 0
    with pytest.raises(ValueError, match="unknown bucket 'gpu'"), clock.measure("gpu"):
        pass


def test_synchronize_is_a_no_op_off_cuda():
    synchronize("cpu")
    synchronize(None)
