"""``alad check-gpu`` (alad_kit.pipeline.gpu_check): its CPU dry run end to end, and the pieces it reads."""

import json

import pytest
import torch

from alad_kit.cli import main
from alad_kit.pipeline.gpu_check import check_gpu, junit_counts


def test_the_dry_run_writes_one_json_with_tests_and_the_timed_run(tmp_path, capsys):
    out = tmp_path / "gpu_check.json"
    assert main(["check-gpu", "--dry-run", "--out", str(out), "--work-dir", str(tmp_path / "work")]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    report = json.loads(out.read_text())
    assert report["schema"] == "alad-check-gpu/1" and report["dry_run"] and report["device"] == "cpu"
    assert report["environment"]["torch"] == torch.__version__
    tests = report["tests"]  # no GPU visible in a dry run: every CUDA test is collected and skipped
    assert tests["failed"] == tests["errors"] == tests["passed"] == 0 and tests["skipped"] >= 7
    run = report["run"]
    assert "--scale smoke --device cpu" in run["command"] and "error" not in run
    assert list(run["phases"]) == ["phase1", "phase2", "phase3"]
    for name, phase in run["phases"].items():
        split = phase["timing"]
        assert set(split) == {"data", "compute", "eval", "io", "other"} and split["compute"] > 0, name
        assert all(v >= 0 for v in split.values()) and sum(split.values()) <= phase["seconds"] + 0.02, name
    assert 0 < run["wall_seconds"] <= report["wall_seconds"]
    assert (tmp_path / "work" / "run" / "metrics.json").is_file()


def test_without_a_gpu_the_real_check_is_one_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from alad_kit.core.device import DeviceUnavailableError

    with pytest.raises(DeviceUnavailableError, match="--device cuda"):
        check_gpu(tmp_path / "g.json")
    assert not (tmp_path / "g.json").exists()


def test_junit_counts_passed_failed_errors_and_skipped(tmp_path):
    xml = tmp_path / "junit.xml"
    xml.write_text('<testsuites><testsuite tests="4" failures="1" errors="1" skipped="1">'
                   '<testcase classname="t" name="ok"/><testcase classname="t" name="bad"><failure/></testcase>'
                   '<testcase classname="t" name="broken"><error/></testcase>'
                   '<testcase classname="t" name="later"><skipped/></testcase></testsuite></testsuites>')
    assert junit_counts(xml) == {"passed": 1, "failed": 1, "errors": 1, "skipped": 1,
                                 "failed_tests": ["t::bad", "t::broken"]}
