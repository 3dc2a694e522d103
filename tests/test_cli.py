"""The ``alad`` command line (alad_kit.cli): bad input is exit code 2 and one line, never a traceback."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from alad_kit.cli import main


def _error_line(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    return lines[-1], lines


def test_bad_config_value_is_exit_2_and_one_line_in_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "alad_kit.cli", "run", "--task", "ner", "--window", "4"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["alad run: error: window must be an odd integer >= 1, got 4"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--task", "sentiment"], "argument --task: invalid choice: 'sentiment'"),
        (["run"], "the following arguments are required: --task"),
        (["run", "--task", "ner", "--window", "three"], "argument --window: invalid int value: 'three'"),
        (["run", "--task", "ner", "--mode", "adapter"], "argument --mode: invalid choice"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_argparse_errors_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    last, _ = _error_line(capsys)
    assert last.startswith("alad") and "error:" in last and message in last


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--task", "ner", "--window", "4"], "alad run: error: window must be an odd integer >= 1, got 4"),
        (["run", "--task", "ner", "--mode", "frozen", "--teacher-baseline"], "alad run: error: the teacher baseline"),
        (["run", "--task", "ner", "--student-layers", "a,b"], "--student-layers wants comma-separated integers"),
    ],
)
def test_invalid_run_settings_exit_2(capsys, argv, message):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse may reject it while parsing: also exit code 2
        code = exc.code
    assert code == 2
    last, lines = _error_line(capsys)
    assert message in last


def test_missing_model_is_exit_2_and_names_it(capsys, tmp_path):
    missing = tmp_path / "no-such-model"
    code = main(["run", "--task", "ner", "--data-dir", "wnut16", "--teacher", str(missing),
                 "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert code == 2
    last, lines = _error_line(capsys)
    assert lines == [last] and last.startswith("alad run: error:") and "no such folder" in last
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_info_runs(capsys, tmp_path):
    assert main(["info", "--json", "--data-dir", str(tmp_path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info) >= {"versions", "device", "offline_models", "datasets"}
    assert {m["alias"] for m in info["offline_models"]} >= {"minilm-l6", "mpnet-base"}
    assert main(["info", "--data-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("alad_kit ") and "minilm-l6" in text


def test_version_in_a_real_process(tmp_path):
    from alad_kit import __version__

    proc = subprocess.run([sys.executable, "-m", "alad_kit.cli", "--version"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"alad {__version__}"


@pytest.mark.parametrize("command", [["run", "--task", "ner"], ["bench"]])
def test_cuda_missing_is_one_line_not_an_assertion(capsys, tmp_path, monkeypatch, command):
    import torch

    monkeypatch.setattr(torch.version, "cuda", None)  # a CPU-only build, also on a GPU machine
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main([*command, "--device", "cuda", "--out", str(tmp_path / "out")])
    assert code == 2
    last, lines = _error_line(capsys)
    assert lines == [last] and last.startswith(f"alad {command[0]}: error: --device cuda: this torch ")
    assert "CPU-only build" in last and not (tmp_path / "out").exists()


def test_study_unknown_row_is_exit_2_and_one_line(tmp_path, capsys):
    assert main(["study", "--task", "ner", "--out", str(tmp_path), "--rows", "frozen-w7"]) == 2
    line, _ = _error_line(capsys)
    assert line.startswith("alad study: error: unknown study row(s) ['frozen-w7']")


def test_study_on_finished_runs_only_writes_the_claims(tmp_path, capsys):
    from alad_kit.core.io import write_json_atomic
    from alad_kit.pipeline.study import plan, select_rows

    base = dict(task="pos", teacher="mpnet-base", student="minilm-l6", scale="cpu", cache_dir=str(tmp_path / ".c"))
    for _row, cfg in plan(select_rows(["frozen-w1", "frozen-w3"]), [0, 1], tmp_path, **base):
        score = 0.5 + 0.1 * cfg.window + 0.01 * cfg.seed
        write_json_atomic(Path(cfg.out) / "metrics.json", {
            "task": "pos", "student": "minilm-l6", "mode": cfg.mode, "window": cfg.window, "seed": cfg.seed,
            "scores": {"f1": score}, "size_pct": 20.0, "config": cfg.__dict__})
    argv = ["study", "--task", "pos", "--scale", "cpu", "--seeds", "0", "1", "--out", str(tmp_path),
            "--rows", "frozen-w1", "frozen-w3", "--cache-dir", str(tmp_path / ".c")]
    assert main(argv) == 0
    [entry] = json.loads((tmp_path / "claims.json").read_text())
    assert (entry["id"], entry["delta_mean"], entry["delta_se"]) == ("C1", pytest.approx(0.2), pytest.approx(0, abs=1e-12))
    assert entry["verdict"] == "confirmed"
    assert "| C1 |" in capsys.readouterr().out


def test_study_report_only_rewrites_the_claims_of_the_runs_present(tmp_path, capsys):
    from alad_kit.core.io import write_json_atomic

    for row, seed, score in [("frozen-w3", 0, 0.8), ("frozen-w3", 1, 0.82), ("frozen-w1", 0, 0.6), ("frozen-w1", 1, 0.61)]:
        write_json_atomic(tmp_path / "pos-2l" / row / f"seed{seed}" / "metrics.json", {
            "task": "pos", "student": "minilm-l6", "student_layers": [0, 1], "mode": "frozen", "window": int(row[-1]),
            "seed": seed, "scores": {"f1": score}, "size_pct": 20.0, "config": {"data_dir": "/elsewhere"}})
    assert main(["study", "--out", str(tmp_path), "--report-only"]) == 0  # no --task, nothing trained or checked
    [entry] = json.loads((tmp_path / "claims.json").read_text())
    assert (entry["id"], entry["a"], entry["b"], entry["n_seeds"]) == ("C1", "frozen-w3", "frozen-w1", 2)
    assert entry["delta_mean"] == pytest.approx(0.205)
    assert main(["study", "--out", str(tmp_path)]) == 2  # training needs --task
    assert "--task is required" in capsys.readouterr().err
    readme = tmp_path / "README.md"
    readme.write_text("<!-- alad:claims-budget-effect:begin -->\n<!-- alad:claims-budget-effect:end -->\n")
    assert main(["study", "--out", str(tmp_path), "--report-only", "--fill", str(readme), "--against",
                 str(tmp_path)]) == 0
    assert "- no study here has a same-named study with the same rows" in readme.read_text()  # no headline row
    assert main(["study", "--task", "pos", "--out", str(tmp_path), "--against", str(tmp_path)]) == 2
    assert "--against go with --report-only" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ robustness
@pytest.mark.parametrize("error, shown", [
    (TypeError("__init__() got an unexpected keyword argument 'x'"), "TypeError: __init__() got an unexpected"),
    (KeyError("history"), "KeyError: 'history'"),
    (EOFError(), "EOFError"),
    (IndexError("index out of range in self"), "IndexError: index out of range in self"),
    (AssertionError("Torch not compiled with CUDA enabled"), "AssertionError: Torch not compiled with CUDA"),
    (ValueError("a.conll:3: invalid BIO\nsecond line"), "a.conll:3: invalid BIO second line"),
])
def test_every_failure_is_one_line_and_v_shows_the_traceback(capsys, monkeypatch, error, shown):
    def fail(args):
        raise error

    monkeypatch.setattr("alad_kit.cli._report", fail)
    assert main(["report", "somewhere"]) == 2
    last, lines = _error_line(capsys)
    assert lines == [last] and last.startswith(f"alad report: error: {shown}")
    for argv in (["-v", "report", "somewhere"], ["report", "somewhere", "--verbose"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and err.strip().splitlines()[-1].startswith("alad report")


def test_a_safetensor_error_is_one_line(capsys, monkeypatch):
    from safetensors import SafetensorError

    def fail(args):
        raise SafetensorError("Error while deserializing header: HeaderTooLarge")

    monkeypatch.setattr("alad_kit.cli._report", fail)
    assert main(["report", "x"]) == 2
    last, lines = _error_line(capsys)
    assert lines == [last] and "SafetensorError: Error while deserializing header" in last


def test_ctrl_c_is_one_line_and_exit_130(capsys, monkeypatch):
    def interrupt(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("alad_kit.cli._report", interrupt)
    assert main(["report", "x"]) == 130
    assert capsys.readouterr().err.strip() == "alad report: interrupted"


def test_bench_seq_len_beyond_the_position_embeddings_is_one_line(capsys, tmp_path):
    assert main(["bench", "--seq-len", "600", "--students", "minilm-l6", "--out", str(tmp_path / "b.json")]) == 2
    last, lines = _error_line(capsys)
    assert lines == [last] and "--seq-len 600 is longer than model 'mpnet-base' accepts (512 tokens)" in last
    assert not (tmp_path / "b.json").exists()


def test_read_only_out_is_one_line_before_anything_runs(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    assert main(["run", "--task", "ner", "--data-dir", "wnut16", "--device", "cpu",
                 "--out", str(tmp_path / "file" / "run")]) == 2
    last, lines = _error_line(capsys)
    assert lines == [last] and "output folder" in last and "is not writable (Not a directory)" in last


def test_strict_ner_data_is_one_line_naming_file_and_line(capsys, tmp_path):
    data = tmp_path / "train.conll"
    data.write_text("# id a\tdomain=en\nParis _ _ I-LOC\n\n")
    assert main(["run", "--task", "ner", "--data-dir", str(data), "--device", "cpu", "--strict",
                 "--out", str(tmp_path / "out")]) == 2
    last, lines = _error_line(capsys)
    assert lines == [last] and f"{data}:2: invalid BIO sequence: 'I-LOC' at the sentence start continues no entity" in last


@pytest.mark.parametrize("flags, level", [([], "INFO"), (["-v"], "DEBUG"), (["--quiet"], "WARNING")])
def test_verbosity_flags_set_the_package_logger(tmp_path, capsys, flags, level):
    import logging

    logger = logging.getLogger("alad_kit")
    before = logger.level
    try:
        assert main([*flags, "info", "--json", "--data-dir", str(tmp_path)]) == 0
        assert logging.getLevelName(logger.level) == level
    finally:
        logger.setLevel(before)
    with pytest.raises(SystemExit):
        main(["-v", "-q", "info"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_log_lines_reach_stderr_in_a_real_process(tmp_path):
    code = ("import logging; from alad_kit.cli import configure_logging; log = logging.getLogger('alad_kit.x')\n"
            "configure_logging(); log.info('shown'); configure_logging(quiet=True); log.info('hidden')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr.strip().splitlines() == ["alad: INFO: shown"]


def test_a_mistyped_relative_model_path_is_no_such_folder_not_a_hub_request(capsys, tmp_path, monkeypatch):
    import huggingface_hub

    def hub(*args, **kwargs):
        raise AssertionError(f"sent to the hub: {args} {kwargs}")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for argv in (["predict", "runs/modle", "x"], ["evaluate", "runs/modle", "--data", "runs"]):
        assert main(argv) == 2
        last, lines = _error_line(capsys)
        assert lines == [last] and last.startswith(f"alad {argv[0]}: error: no such folder: runs/modle ")


def test_bench_training_times_one_device_not_a_list(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["bench", "--training", "--device", "cpu,cuda", "--out", str(tmp_path / "b.json")])
    assert "bench --training times one device" in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()


def test_study_takes_every_run_field_the_rows_do_not_set(tmp_path, monkeypatch):
    import alad_kit.pipeline.study as study

    seen = {}
    monkeypatch.setattr(study, "run_study", lambda **kw: seen.update(kw) or {"claims_md": _empty(tmp_path)})
    argv = ["study", "--task", "ner", "--out", str(tmp_path), "--head-lr", "0.001", "--patience", "2",
            "--phase3-epochs", "12", "--student-layers", "0,1", "--no-cache"]
    assert main(argv) == 0
    assert seen["options"] == {"head_lr": 0.001, "patience": 2, "phase3_epochs": 12, "use_cache": False}
    assert seen["student_layers"] == (0, 1) and seen["task"] == "ner" and seen["out"] == str(tmp_path)
    with pytest.raises(SystemExit):  # the rows set the mode: no such flag on alad study
        main(["study", "--task", "ner", "--out", str(tmp_path), "--mode", "joint"])


def _empty(tmp_path):
    path = tmp_path / "claims.md"
    path.write_text("# Claims\n")
    return path


HOLD_OUT = ("import sys, time; from alad_kit.core.locks import sole_owner\n"
            "with sole_owner(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)")


def test_a_second_run_into_an_out_in_use_is_one_line_and_touches_nothing(capsys, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_OUT, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        (out / "metrics.json").write_text('{"scores": {}}')  # the first run's files
        before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
        code = main(["run", "--task", "ner", "--data-dir", "wnut16", "--device", "cpu", "--mode", "frozen",
                     "--teacher", "minilm-l6", "--student", "minilm-l6", "--out", str(out)])
        last, lines = _error_line(capsys)
        assert code == 2 and lines == [last]
        assert last == f"alad run: error: {out} is in use by another alad run (pid {holder.pid})"
        assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    finally:
        holder.kill()
        holder.wait()


def test_alad_warnings_are_alad_lines_not_python_warnings(tmp_path):
    """The BIO repair warning (data.readers, raised through data.loaders) as one ``alad: WARNING:`` line."""
    for split in ("train", "validation", "test"):
        (tmp_path / f"{split}.conll").write_text("Paris I-LOC\nis O\n\n" * 3)
    code = ("from alad_kit.cli import configure_logging; configure_logging()\n"
            "from alad_kit.data.loaders import load_ner; load_ner('.')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 0 and len(lines) == 3, proc.stderr
    assert all(line.startswith("alad: WARNING: ") and "repaired 3 BIO tag(s)" in line for line in lines)
    assert "UserWarning" not in proc.stderr and ".py:" not in proc.stderr


def test_study_with_a_seed_twice_is_one_line(capsys, tmp_path):
    assert main(["study", "--task", "ner", "--out", str(tmp_path), "--seeds", "0", "1", "0"]) == 2
    last, lines = _error_line(capsys)
    assert lines == [last] and last == "alad study: error: --seeds: seed 0 is given more than once (one run per seed)"
    assert list(tmp_path.iterdir()) == []
