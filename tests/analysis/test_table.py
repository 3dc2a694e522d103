import json
import warnings

import pandas as pd
import pytest

from alad_kit.analysis import table


def write_run(root, name, **overrides):
    metrics = {
        "task": "pos",
        "teacher": "mpnet-base",
        "student": "minilm-l6",
        "mode": "frozen",
        "window": 3,
        "seed": 0,
        "scale": "cpu",
        "scores": {"accuracy": 0.9, "f1": 0.8},
        "params": {"deployed": 1, "teacher_reference": 4},
        "size_pct": 25.0,
        "alignment": {},
        "timings": {},
        "versions": {},
        "is_teacher": False,
    }
    metrics.update(overrides)
    run = root / name
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    # written in an order unlike the table's, nested at different depths
    write_run(root, "lora-alad/w1", mode="lora+alad", window=1)
    write_run(root, "lora", mode="lora", window=None)
    write_run(root, "joint5", mode="joint", window=5, speed={"spd": 1.75})
    for seed, acc in enumerate([0.90, 0.92, 0.94]):
        write_run(root, f"frozen3/s{seed}", seed=seed, scores={"accuracy": acc, "f1": 0.8})
    for seed, acc in enumerate([0.80, 0.84]):
        write_run(root, f"frozen1/s{seed}", window=1, seed=seed, scores={"accuracy": acc, "f1": 0.7})
    write_run(root, "frozen3-qa", task="qa", scores={"exact": 55.5, "f1": 61.25, "total": 10})
    write_run(
        root, "frozen3-ner", task="ner", scores={"f1_overall": 0.5, "f1_macro": 0.4, "per_type": {"X": 1}}
    )
    write_run(root, "student-ft", mode="finetune", window=None, size_pct=24.0)
    write_run(root, "teacher-ft", mode="finetune", window=None, is_teacher=True, student=None, size_pct=100.0)
    return root


def test_collect_runs_reads_every_run_and_counts_unreadable(runs):
    (runs / "broken").mkdir()
    (runs / "broken" / "metrics.json").write_text("{not json")
    (runs / "incomplete").mkdir()
    (runs / "incomplete" / "metrics.json").write_text(json.dumps({"task": "pos"}))
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        df = table.collect_runs(runs)
    assert len(df) == 12
    row = df[df.run_dir.str.endswith("frozen3-ner")].iloc[0]
    assert row["score.f1_overall"] == 0.5 and "score.per_type" not in df.columns  # nested scores skipped
    assert df.loc[df.run_dir.str.endswith("joint5"), "spd"].item() == 1.75
    assert df.loc[df.run_dir.str.endswith("lora"), "window"].isna().all()
    with pytest.raises(FileNotFoundError):
        table.collect_runs(runs / "missing")


def test_results_table_row_order_and_group_labels(runs):
    t = table.results_table(table.collect_runs(runs))
    assert list(t.columns) == [
        "Model", "Setting", "W", "POS Acc", "POS F1", "NER F1_O", "NER F1_M", "QA EM", "QA F1", "Sz", "Spd", "Seeds"
    ]  # fmt: skip
    assert list(zip(t["Model"], t["Setting"], t["W"])) == [
        ("mpnet-base", "Teacher fine-tuned", ""),
        ("minilm-l6", "Student fine-tuned", ""),
        ("minilm-l6", "Frozen + ALAd", "W1"),
        ("minilm-l6", "Frozen + ALAd", "W3"),
        ("minilm-l6", "Jointly fine-tuned + ALAd", "W5"),
        ("minilm-l6", "LoRA", ""),
        ("minilm-l6", "LoRA + ALAd", "W1"),
    ]


def test_results_table_means_spreads_and_units(runs):
    t = table.results_table(table.collect_runs(runs)).set_index(["Setting", "W"])
    w3 = t.loc[("Frozen + ALAd", "W3")]
    assert w3["POS Acc"] == "92.00 ± 2.00"  # 3 seeds: sample std of 90, 92, 94
    assert w3["POS F1"] == "80.00 ± 0.00"
    assert w3["NER F1_O"] == "50.00 (n=1)" and w3["NER F1_M"] == "40.00 (n=1)"  # fractions shown x100
    assert w3["QA EM"] == "55.50 (n=1)" and w3["QA F1"] == "61.25 (n=1)"  # percentages as they are
    assert w3["Seeds"] == "3" and w3["Sz"] == "25.0" and w3["Spd"] == ""
    w1 = t.loc[("Frozen + ALAd", "W1")]
    assert w1["POS Acc"] == "82.00 [80.00–84.00]" and w1["Seeds"] == "2"  # 2 seeds: min–max range
    assert t.loc[("Jointly fine-tuned + ALAd", "W5"), "Spd"] == "1.75"
    assert t.loc[("Teacher fine-tuned", ""), "Sz"] == "100.0"
    assert t.loc[("Student fine-tuned", ""), "POS Acc"] == "90.00"
    assert t.loc[("LoRA", ""), "QA EM"] == ""
    std_only = table.results_table(table.collect_runs(runs), spread="std").set_index(["Setting", "W"])
    assert std_only.loc[("Frozen + ALAd", "W1"), "POS Acc"] == "82.00 ± 2.83"


def test_format_cell():
    assert table.format_cell(1.0, 0.0, 1.0, 1.0, 1) == "1.00"
    assert table.format_cell(1.5, 0.7, 1.0, 2.0, 2, spread="auto") == "1.50 [1.00–2.00]"
    assert table.format_cell(1.5, 0.5, 1.0, 2.0, 3, spread="range", digits=1) == "1.5 [1.0–2.0]"
    with pytest.raises(ValueError, match="spread"):
        table.format_cell(1, 0, 1, 1, 3, spread="iqr")


def test_results_table_keeps_the_largest_scale_and_dedupes_seeds(tmp_path):
    write_run(tmp_path, "smoke", scale="smoke", scores={"accuracy": 0.1, "f1": 0.1})
    write_run(tmp_path, "full-a", scale="full", scores={"accuracy": 0.5, "f1": 0.5})
    write_run(tmp_path, "full-b", scale="full", scores={"accuracy": 0.7, "f1": 0.7})  # same seed: a rerun
    runs = table.collect_runs(tmp_path)
    with pytest.warns(UserWarning, match="scale='full'"):
        t = table.results_table(runs)
    assert t["POS Acc"].tolist() == ["70.00"] and t["Seeds"].tolist() == ["1"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert table.results_table(runs, scale="smoke")["POS Acc"].tolist() == ["10.00"]


def test_several_teachers_get_a_teacher_column(tmp_path):
    write_run(tmp_path, "a", teacher="t1")
    write_run(tmp_path, "b", teacher="t2")
    t = table.results_table(table.collect_runs(tmp_path))
    assert t.columns[0] == "Teacher" and t["Teacher"].tolist() == ["t1", "t2"]


def test_write_table_writes_three_files(runs, tmp_path):
    paths = table.write_table(runs, tmp_path / "out")
    assert {k: p.name for k, p in paths.items()} == {
        "md": "results.md",
        "csv": "results.csv",
        "html": "results.html",
    }
    csv = pd.read_csv(paths["csv"], keep_default_na=False)
    assert len(csv) == 7 and csv["Setting"].iloc[0] == "Teacher fine-tuned"
    assert "92.00 ± 2.00" in paths["md"].read_text()
    html = paths["html"].read_text()
    assert html.startswith("<!DOCTYPE html>") and "<table" in html and "Jointly fine-tuned + ALAd" in html
    assert not list((tmp_path / "out").glob("*.tmp"))
    default = table.write_table(runs)
    assert default["md"].parent == runs
    with pytest.raises(ValueError, match="no readable metrics.json"):
        table.write_table(tmp_path / "out")


def test_attach_speed_from_bench(tmp_path):
    import math

    import pandas as pd

    from alad_kit.analysis.table import attach_speed

    runs = pd.DataFrame([
        {"student": "minilm-l6", "teacher": "mpnet-base", "is_teacher": False, "window": 5.0, "spd": math.nan},
        {"student": "minilm-l6:0,1", "teacher": "mpnet-base", "is_teacher": False, "window": None, "spd": math.nan},
        {"student": "mpnet-base", "teacher": "mpnet-base", "is_teacher": True, "window": None, "spd": math.nan},
        {"student": "other", "teacher": "mpnet-base", "is_teacher": False, "window": None, "spd": math.nan},
    ])
    bench = {"rows": [
        {"device": "cpu", "model": "mpnet-base", "window": None, "spd": 1.0},
        {"device": "cpu", "model": "minilm-l6", "window": 5, "spd": 6.2},
        {"device": "cpu", "model": "minilm-l6:0,1", "window": None, "spd": 22.0},
        {"device": "cuda", "model": "minilm-l6", "window": 5, "spd": 3.0},
    ]}
    out = attach_speed(runs, bench)
    assert out["spd"].tolist()[:3] == [6.2, 22.0, 1.0]
    assert math.isnan(out["spd"].iloc[3])
    # a factorised adapter's row never stands in for the dense one of the same window, nor the other way
    bench["rows"].append({"device": "cpu", "model": "minilm-l6", "window": 5, "kind": "factorised", "spd": 6.6})
    both = pd.concat([runs.iloc[:1].assign(kind="dense"), runs.iloc[:1].assign(kind="factorised")], ignore_index=True)
    assert attach_speed(both, bench)["spd"].tolist() == [6.2, 6.6]


def test_ablation_runs_never_replace_main_rows(tmp_path):
    import json

    from alad_kit.analysis.table import collect_runs, summarize_runs

    for name, ablation, f1 in (("main", {}, 0.5), ("zz_ablation", {"skip_phase1": True}, 0.1)):
        d = tmp_path / name
        d.mkdir()
        (d / "metrics.json").write_text(json.dumps({
            "task": "ner", "mode": "frozen", "window": 3, "seed": 0, "scale": "cpu", "student": "s", "teacher": "t",
            "scores": {"f1_overall": f1, "f1_macro": f1}, "size_pct": 20.0, "ablation": ablation,
        }))
    with pytest.warns(UserWarning, match="ablation"):
        summary = summarize_runs(collect_runs(tmp_path))
    assert summary.loc[summary["column"] == "NER F1_O", "mean"].tolist() == [50.0]


def test_students_given_by_path_show_their_directory_name(tmp_path):
    write_run(tmp_path / "runs", "asc", student="/students/asc_mpnet4", mode="head", window=None)
    shown = table.results_table(table.collect_runs(tmp_path / "runs"))
    assert shown["Model"].tolist() == ["asc_mpnet4"]


def test_a_run_made_under_another_default_lr_is_kept_out_of_table_1(tmp_path):
    from alad_kit.analysis.table import collect_runs
    from alad_kit.core.config import HEAD_LR

    write_run(tmp_path, "now", phase3_lr={"adapter": 1e-4, "head": HEAD_LR})
    write_run(tmp_path, "before", phase3_lr={"adapter": 1e-4, "head": HEAD_LR / 2})  # before the default moved
    write_run(tmp_path, "unrecorded")  # older runs without phase3_lr are taken as they are
    runs = collect_runs(tmp_path).set_index(collect_runs(tmp_path)["run_dir"].map(lambda p: p.split("/")[-1]))
    assert runs["ablation"].to_dict() == {"before": True, "now": False, "unrecorded": False}
