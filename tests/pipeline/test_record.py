"""pipeline.record: the record of what a run built, inside metrics.json."""

from types import SimpleNamespace

import pytest

from alad_kit.core.config import RunConfig
from alad_kit.core.runkey import run_key
from alad_kit.pipeline.build import Encoders
from alad_kit.pipeline.record import RECORD_KEY, read_record, run_record


def test_the_record_names_what_the_run_built(tmp_path):
    cfg = RunConfig(task="ner", teacher="t", student="s", out=str(tmp_path / "run"))
    enc = Encoders(None, None, None, None, teacher_depth=12, teacher_layer=7, teacher_params=1)
    steps = [{"phase": "phase1", "key": "k1", "folder": str(tmp_path / "cache/adapters/phase1-k1")}]
    exp = SimpleNamespace(cfg=cfg, enc=enc, fingerprints={"teacher": "t", "student": "s"}, labels=["O", "B-x"],
                          cache_root=tmp_path / "cache", adapters=steps)
    record = run_record(exp)
    assert record["fingerprints"] == {"teacher": "t", "student": "s"} and record["adapters"] == steps
    assert record["adapters"] is not steps  # a copy: the run's list can change no written record
    assert (record["teacher_layer"], record["teacher_depth"], record["labels"]) == (7, 12, ["O", "B-x"])
    same_run = run_record(SimpleNamespace(**{**vars(exp), "cfg": RunConfig(task="ner", teacher="t", student="s", out=str(tmp_path / "b"))}))
    assert record["run_key"] == same_run["run_key"] and run_key(cfg) == run_key(RunConfig(task="ner", teacher="t", student="s", out="x"))
    assert read_record({RECORD_KEY: record, "scores": {}}, tmp_path / "run") == record


def test_a_metrics_json_without_a_record_is_named():
    with pytest.raises(ValueError, match=r"^runs/old/metrics.json: no 'record' of what the run built .*rerun"):
        read_record({"scores": {}, "config": {}}, "runs/old")
