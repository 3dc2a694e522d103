"""alad clean: checkpoints of finished runs and caches no finished run refers to; nothing else, nowhere else."""

import json

import pytest

from alad_kit.cli import main
from alad_kit.pipeline.clean import clean, plan_clean


def _run(folder, cache_dir=None, finished=True):
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "phase3.done.safetensors").write_bytes(b"x" * 1000)
    (folder / "model").mkdir()
    (folder / "model" / "adapter.safetensors").write_bytes(b"m")
    if finished:
        (folder / "metrics.json").write_text(json.dumps({"config": {"cache_dir": cache_dir}}))


def _cache(folder):
    (folder / "adapters" / "phase1-abc").mkdir(parents=True)
    (folder / "adapters" / "phase1-abc" / "alad_adapter.safetensors").write_bytes(b"a" * 500)


def test_it_lists_then_removes_only_finished_checkpoints_and_orphan_caches(tmp_path):
    root = tmp_path / "runs"
    _run(root / "smoke-ner" / "frozen_w3")  # default cache: smoke-ner/.alad_cache (kept)
    _run(root / "smoke-ner" / "killed", finished=False)  # unfinished: its checkpoints serve --resume (kept)
    _cache(root / "smoke-ner" / ".alad_cache")
    _cache(root / "old-ner" / ".alad_cache")  # its runs were deleted
    _run(root / "demo" / "head", cache_dir=str(root / "shared_cache"))
    _cache(root / "shared_cache")  # not named .alad_cache, and referred to: kept anyway
    plan = plan_clean([root])
    assert sorted(str(p.path.relative_to(root)) for p in plan) == [
        "demo/head/checkpoints", "old-ner/.alad_cache", "smoke-ner/frozen_w3/checkpoints"]
    assert {p.bytes for p in plan} == {1000, 500}
    assert (root / "old-ner" / ".alad_cache").is_dir()  # a plan deletes nothing
    clean([root], apply=True)
    assert not (root / "old-ner" / ".alad_cache").exists() and not (root / "smoke-ner/frozen_w3/checkpoints").exists()
    assert (root / "smoke-ner/.alad_cache/adapters/phase1-abc").is_dir() and (root / "smoke-ner/killed/checkpoints").is_dir()
    assert (root / "smoke-ner/frozen_w3/metrics.json").is_file() and (root / "smoke-ner/frozen_w3/model").is_dir()
    assert plan_clean([root]) == []


def test_links_out_of_the_folder_are_never_followed(tmp_path):
    outside = tmp_path / "precious" / ".alad_cache"
    _cache(outside)
    root = tmp_path / "runs"
    root.mkdir()
    (root / ".alad_cache").symlink_to(outside, target_is_directory=True)
    assert plan_clean([root]) == []
    clean([root], apply=True)
    assert (outside / "adapters" / "phase1-abc").is_dir()


def test_a_missing_folder_or_the_home_folder_is_refused(tmp_path, monkeypatch):
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        plan_clean([tmp_path / "nowhere"])
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ValueError, match="refusing"):
        plan_clean([tmp_path])


def test_the_command_lists_by_default_and_deletes_with_apply(tmp_path, capsys):
    _cache(tmp_path / "runs" / "gone" / ".alad_cache")
    assert main(["clean", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "would remove" in out and "cache no finished run refers to" in out and "--apply" in out
    assert (tmp_path / "runs" / "gone" / ".alad_cache").is_dir()
    assert main(["clean", str(tmp_path / "runs"), "--apply"]) == 0
    assert "removed 1 folders" in capsys.readouterr().out and not (tmp_path / "runs" / "gone" / ".alad_cache").exists()
