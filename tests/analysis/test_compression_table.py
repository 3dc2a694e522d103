import json
import subprocess
import sys

import pytest

from alad_kit.analysis.compression_table import (
    compression_table,
    method_detail,
    student_label,
    write_compression_table,
)
from alad_kit.analysis.table import collect_runs


def write_run(root, name, student, mode, window, f1, seed=0, size_pct=20.0, **extra):
    run = root / name
    run.mkdir(parents=True)
    metrics = {"task": "ner", "teacher": "mpnet-base", "student": student, "mode": mode, "window": window,
               "seed": seed, "scale": extra.pop("scale", "cpu"), "is_teacher": False, "size_pct": size_pct,
               "scores": {"f1_overall": f1, "f1_macro": f1 / 2}, **extra}
    (run / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture
def runs(tmp_path):
    student_dir = tmp_path / "students" / "asc4"
    student_dir.mkdir(parents=True)
    (student_dir / "compression_report.json").write_text(json.dumps(
        {"method": "asc", "kept_layers": [1, 4, 8, 11], "num_layers_original": 12}))
    root = tmp_path / "runs"
    write_run(root, "l6/head", "minilm-l6", "head", None, 0.10, size_pct=20.8)
    write_run(root, "l6/w5/s0", "minilm-l6", "frozen", 5, 0.20, size_pct=23.9)
    write_run(root, "l6/w5/s1", "minilm-l6", "frozen", 5, 0.30, seed=1, size_pct=23.9)
    write_run(root, "l6/w5/s1-copy", "minilm-l6", "frozen", 5, 0.30, seed=1, size_pct=23.9)  # counted once
    write_run(root, "l6/w3", "minilm-l6", "frozen", 3, 0.99)  # other window: not in a W5 table
    write_run(root, "asc/head", str(student_dir), "head", None, 0.05, size_pct=48.3)
    write_run(root, "gone/w5", "/nowhere/l1_50", "frozen", 5, 0.15, size_pct=23.9)
    write_run(root, "abl/w5", "minilm-l6", "frozen", 5, 0.90, ablation={"skip_phase1": True})
    write_run(root, "pos/head", "minilm-l6", "head", None, 0.70, task="pos")
    return root, student_dir


BENCH = {
    "environment": {"cpu": "x86_64", "torch_num_threads": 2},
    "settings": {"batch_size": 8, "seq_len": 128},
    "students": {"minilm-l6": {"num_layers": 6, "hidden_size": 384, "disk_mb": 86.68, "flops_per_token": 22415616.0}},
    "rows": [
        {"device": "cpu", "model": "minilm-l6", "window": None, "spd": 5.15},
        {"device": "cpu", "model": "minilm-l6", "window": 5, "spd": 4.72, "adapter_flops_per_token": 6881280},
        {"device": "cuda", "model": "minilm-l6", "window": None, "spd": 99.0},
    ],
}


def test_one_row_per_student_with_head_and_alad_scores(runs):
    root, student_dir = runs
    table = compression_table(collect_runs(root), bench=BENCH, reports={"l1_50": {"method": "l1", "linear_sparsity": 0.5}})
    assert table["Student"].tolist() == ["minilm-l6", "asc4", "l1_50"]
    l6 = table.iloc[0]
    assert (l6["F1_O head"], l6["F1_O +W5"], l6["F1_M +W5"]) == ("10.00", "25.00", "12.50")  # mean of 2 seeds
    assert (l6["Sz"], l6["Sz +W5"], l6["Seeds"]) == ("20.8", "23.9", "2")
    assert (l6["Spd"], l6["Spd +W5"], l6["MB"]) == ("5.15", "4.72", "86.7")  # cpu rows only
    assert (l6["GFLOPs/tok"], l6["adapter W5 GFLOPs/tok"]) == ("0.0224", "0.0069")
    assert (l6["Method"], l6["Layers"]) == ("pretrained", 6)
    asc = table.iloc[1]
    assert (asc["Method"], asc["Detail"]) == ("asc", "kept layers [1, 4, 8, 11] of 12")  # from the student dir
    assert (asc["F1_O head"], asc["F1_O +W5"], asc["Spd"]) == ("5.00", "", "")  # no run / no bench: blank
    gone = table.iloc[2]
    assert (gone["Method"], gone["Detail"], gone["F1_O +W5"]) == ("l1", "50% of Linear weights zero", "15.00")


def test_bench_may_name_students_by_directory_name(runs):
    root, _ = runs
    bench = {"students": {"asc4": {"num_layers": 4}, "minilm-l6": {"num_layers": 6}},
             "rows": [{"device": "cpu", "model": "asc4", "window": None, "spd": 3.0}]}
    table = compression_table(collect_runs(root), bench=bench)
    assert table["Student"].tolist()[:2] == ["asc4", "minilm-l6"]  # the benchmark's order
    assert (table.iloc[0]["Spd"], table.iloc[0]["Layers"]) == ("3.00", 4)


def test_other_task_or_window_and_bad_task(runs):
    root, _ = runs
    df = collect_runs(root)
    assert compression_table(df, task="pos")["Student"].tolist() == ["minilm-l6"]
    by_student = compression_table(df, window=3).set_index("Student")
    assert by_student.loc["minilm-l6", "F1_O +W3"] == "99.00" and by_student.loc["asc4", "F1_O +W3"] == ""
    with pytest.raises(ValueError, match="unknown task 'xyz'"):
        compression_table(df, task="xyz")
    with pytest.raises(ValueError, match="no 'qa' runs"):
        compression_table(df, task="qa")


def test_method_detail_and_labels():
    assert method_detail(None) == ("pretrained", "")
    assert method_detail({"method": "static_int8", "fraction_quantized": 0.959, "layers_quantized": 34,
                          "layers_total": 37}) == ("static_int8", "95.9% of Linear weights int8, 34/37 layers")
    assert student_label("/tmp/x/minilm2") == "minilm2" and student_label("minilm-l6:0,1") == "minilm-l6:0,1"


def test_cli_writes_three_files(runs, tmp_path):
    root, _ = runs
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(BENCH))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "alad_kit.cli", "table", str(root), "--compression",
                           "--bench", str(bench), "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["compression.csv", "compression.html", "compression.md"]
    md = (out / "compression.md").read_text()
    assert "| minilm-l6 | pretrained |" in md and "x86_64 CPU, 2 threads, batch 8 x 128 tokens" in md


def test_write_compression_table_without_runs_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError):
        write_compression_table(tmp_path / "empty", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_one_scale_and_one_device(runs):
    root, _ = runs
    write_run(root, "smoke/head", "minilm-l6", "head", None, 0.77, scale="smoke")
    df = collect_runs(root)
    with pytest.warns(UserWarning, match="several scales"):
        largest = compression_table(df, bench=BENCH)
    assert largest.set_index("Student").loc["minilm-l6", "F1_O head"] == "10.00"  # the cpu run, not smoke
    assert compression_table(df, scale="smoke")["F1_O head"].tolist() == ["77.00"]
    on_cuda = compression_table(df, scale="cpu", bench=BENCH, device="cuda").set_index("Student")
    assert on_cuda.loc["minilm-l6", "Spd"] == "99.00"
