"""The lr sweep table (alad_kit.analysis.sweep_table) on hand-made metrics.json files."""

import json

import pytest

from alad_kit.analysis.sweep_table import sweep_rows, write_sweep_table
from alad_kit.cli import main


def _metrics(path, mode, head_lr, curve, test, steps=1500):
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({
        "task": "ner", "mode": mode, "window": 5 if mode == "frozen" else None,
        "phase3_lr": {"head": head_lr} | ({"adapter": 1e-4} if mode == "frozen" else {}),
        "selection": {"metric": "f1_overall", "best_epoch": 1 + max(range(len(curve)), key=curve.__getitem__),
                      "validation": [[i + 1, s] for i, s in enumerate(curve)]},
        "phases": {"phase3": {"steps": steps}}, "scores": {"f1_overall": test}}))


def test_sweep_rows_read_lr_curve_and_scores(tmp_path):
    _metrics(tmp_path / "head_a", "head", 1e-3, [0.1, 0.2, 0.25], 0.24)
    _metrics(tmp_path / "head_b", "head", 3e-4, [0.05, 0.1, 0.12], 0.11)
    _metrics(tmp_path / "frozen", "frozen", 2e-3, [0.3, 0.35, 0.34], 0.33)
    (tmp_path / "lora").mkdir()
    (tmp_path / "lora" / "metrics.json").write_text(json.dumps({"task": "ner", "phase3_lr": {"lora": 1e-4}}))
    rows = sweep_rows(tmp_path, "head")
    assert list(rows["run"]) == ["frozen", "head_b", "head_a"]  # by mode, then lr
    head_a = rows.set_index("run").loc["head_a"]
    assert (head_a["best_validation"], head_a["last_validation"], head_a["best_epoch"]) == (0.25, 0.25, 3)
    assert rows.set_index("run").loc["frozen", "best_epoch"] == 2 and head_a["steps"] == 1500
    with pytest.raises(ValueError, match="trained the part 'student'"):
        sweep_rows(tmp_path, "student")


def test_sweep_table_files_and_cli(tmp_path, capsys):
    _metrics(tmp_path / "a", "head", 1e-3, [0.1, 0.2], 0.2)
    paths = write_sweep_table(tmp_path, "head")
    assert {p.name for p in paths.values()} == {"sweep_head.md", "sweep_head.csv", "sweep_head.html"}
    assert "| a | ner | head |" in (tmp_path / "sweep_head.md").read_text() and "20.0" in paths["md"].read_text()
    assert main(["table", str(tmp_path), "--sweep", "head"]) == 0
    assert "sweep_head.md" in capsys.readouterr().out
