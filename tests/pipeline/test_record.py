"""pipeline.record: the record of what a run built, inside metrics.json."""

from types import SimpleNamespace

import pytest

from alad_kit.core.checkpoint import digest
from alad_kit.core.config import RunConfig
from alad_kit.core.runkey import run_key
from alad_kit.pipeline.build import Encoders
from alad_kit.pipeline.record import RECORD_KEY, Tally, read_record, run_record


def test_the_record_names_what_the_run_built(tmp_path):
    cfg = RunConfig(task="ner", teacher="t", student="s", out=str(tmp_path / "run"))
    enc = Encoders(None, None, None, None, teacher_depth=12, teacher_layer=7, teacher_params=1)
    steps = [{"phase": "phase1", "key": "k1", "folder": str(tmp_path / "cache/adapters/phase1-k1")}]
    tally = Tally(fingerprints={"teacher": "t", "student": "s"}, adapters=steps)
    exp = SimpleNamespace(cfg=cfg, enc=enc, tally=tally, labels=["O", "B-x"], cache_root=tmp_path / "cache")
    record = run_record(exp)
    assert record["fingerprints"] == {"teacher": "t", "student": "s"} and record["adapters"] == steps
    assert record["adapters"][0] is not steps[0]  # a copy: the run's list can change no written record
    assert (record["teacher_layer"], record["teacher_depth"], record["labels"]) == (7, 12, ["O", "B-x"])
    assert record["run_key"] == digest(run_key(cfg))
    moved = RunConfig(task="ner", teacher="t", student="s", out=str(tmp_path / "b"), device="cpu")
    assert run_record(SimpleNamespace(**{**vars(exp), "cfg": moved}))["run_key"] == record["run_key"]
    assert read_record({RECORD_KEY: record, "scores": {}}, tmp_path / "run") == record


def test_a_metrics_json_without_a_record_is_named():
    with pytest.raises(ValueError, match=r"^runs/old/metrics.json: no 'record' of what the run built .*rerun"):
        read_record({"scores": {}, "config": {}}, "runs/old")
