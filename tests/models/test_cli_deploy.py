"""``alad predict`` / ``alad evaluate`` / ``alad export`` on a run's OUT/model/ (alad_kit.cli's deploy commands)."""

import json

from alad_kit.cli import main


def _json_lines(capsys):
    return [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]


def test_predict_texts_and_file(deployed, capsys, tmp_path):
    model = str(deployed("pos")[0] / "model")
    assert main(["predict", model, "Der Hund schläft.", "Ich lese ein Buch."]) == 0
    rows = _json_lines(capsys)
    assert [r["words"] for r in rows] == [["Der", "Hund", "schläft", "."], ["Ich", "lese", "ein", "Buch", "."]]
    assert set(rows[0]) == {"text", "words", "tags"}
    texts = tmp_path / "texts.txt"
    texts.write_text("Der Hund schläft.\n\nIch lese ein Buch.\n", encoding="utf-8")
    assert main(["predict", model, "--file", str(texts)]) == 0
    assert _json_lines(capsys) == rows


def test_predict_qa(deployed, capsys):
    model = str(deployed("qa")[0] / "model")
    assert main(["predict", model, "--question", "Where is the Nile?", "--context", "The Nile is in Africa."]) == 0
    (row,) = _json_lines(capsys)
    assert set(row) == {"answer", "start", "end", "score", "no_answer"}
    assert main(["predict", model, "some text"]) == 2
    assert "give --question and --context" in capsys.readouterr().err


def test_evaluate_prints_and_writes_the_runs_scores(deployed, pos_data_folder, capsys, tmp_path):
    run_dir, metrics = deployed("pos")
    out = tmp_path / "scores.json"
    argv = ["evaluate", str(run_dir / "model"), "--data", str(pos_data_folder), "--sample", "run", "--out", str(out)]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == metrics["scores"] == json.loads(out.read_text())
    on_disk = json.loads((run_dir / "metrics.json").read_text())["scores"]
    assert printed == on_disk


def test_export_onnx_reports_parity_and_latency(deployed, capsys, tmp_path):
    model = str(deployed("pos")[0] / "model")
    assert main(["export", model, "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["max_abs_diff"] <= 1e-4 and set(report["latency_ms"]) == {"pytorch", "onnxruntime"}
    assert (tmp_path / "m.onnx").is_file()


def test_missing_model_folder_is_one_line(capsys, tmp_path):
    assert main(["predict", str(tmp_path / "none"), "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such folder" in err[0]
