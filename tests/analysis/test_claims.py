"""Verdict rule and claims.json schema, on hand-made metrics.json files."""

import json
import math

import pytest

from alad_kit.analysis.claims import (
    CHECKS,
    TESTS,
    claims_json,
    claims_markdown,
    compute_claims,
    decide,
    load_studies,
    paired_stats,
)

SCHEMA = {"id", "claim", "task", "student", "a", "b", "metric", "delta_mean", "delta_se", "n_seeds", "t", "p", "df",
          "verdict", "runs"}
EXTRAS = {"test", "threshold", "margin", "bench", "n_repeats", "gap_recovered", "teacher_runs"}


def write_run(root, row, seed, score, task="ner", size_pct=10.0, flops=None, window=None, student="minilm-l6",
              layers=(0, 1), kind=None, teacher=False):
    metric = {"ner": "f1_overall", "pos": "f1", "qa": "f1"}[task]
    metrics = {
        "task": task, "teacher": "mpnet-base", "student": "mpnet-base" if teacher else student,
        "student_layers": None if teacher else list(layers), "mode": "finetune", "window": window, "seed": seed,
        "scale": "cpu", "is_teacher": teacher, "scores": {metric: score, "f1_macro": 0.0}, "size_pct": size_pct,
        "adapter_flops_per_token": flops, "config": {"adapter_kind": kind} if kind else {},
    }
    path = root / row / f"seed{seed}" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(metrics))


@pytest.mark.parametrize(
    "test, delta, se, n, threshold, exact, verdict",
    [
        ("greater", 0.44, 0.1, 3, 0.0, False, "confirmed"),  # t 4.4 > 4.30 (2 degrees of freedom)
        ("greater", 0.42, 0.1, 3, 0.0, False, "inconclusive"),  # t 4.2: was "confirmed" under the old 2-SE rule
        ("greater", 0.29, 0.1, 5, 0.0, False, "confirmed"),  # t 2.9 > 2.78 (4 degrees of freedom)
        ("greater", -0.44, 0.1, 3, 0.0, False, "refuted"),
        ("greater", 0.5, None, 1, 0.0, False, "inconclusive"),  # one seed: no standard error
        ("greater", None, None, 0, 0.0, False, "inconclusive"),
        ("greater", 0.01, 0.0, 2, 0.0, False, "confirmed"),  # identical differences: SE 0
        ("at_most", 3.9, 0.0, 3, 4.0, True, "confirmed"),
        ("at_most", 4.2, 0.0, 3, 4.0, True, "refuted"),
        ("at_most", 3.9, None, 1, 4.0, True, "confirmed"),  # sizes carry no seed noise
        ("at_least", 0.70, 0.02, 7, 0.8, False, "refuted"),  # bench repeats: t -5 < -2.45
        ("at_least", 0.79, 0.02, 7, 0.8, False, "inconclusive"),  # one noisy point below the bar is not enough
    ],
)
def test_verdict_rule(test, delta, se, n, threshold, exact, verdict):
    assert decide(test, delta, se, n, threshold, exact) == verdict


def test_verdict_rejects_unknown_test():
    with pytest.raises(ValueError, match="test must be one of"):
        decide("bigger", 1.0, 0.1, 3)
    assert set(TESTS) == {c.test for c in CHECKS}


def test_paired_stats_pairs_seeds():
    seeds, mean, se = paired_stats({0: 0.5, 1: 0.6, 2: 0.7}, {0: 0.4, 1: 0.4, 2: 0.5, 3: 0.9})
    assert seeds == [0, 1, 2]
    assert mean == pytest.approx(1 / 6)
    assert se == pytest.approx(math.sqrt(((0.1 - 1 / 6) ** 2 + 2 * (0.2 - 1 / 6) ** 2) / 2 / 3))
    assert paired_stats({0: 1.0}, {0: 0.5}) == ([0], 0.5, None)
    assert paired_stats({0: 1.0}, {1: 0.5}) == ([], None, None)


@pytest.fixture
def study(tmp_path):
    root = tmp_path / "ner-l2"
    write_run(root, "teacher", 0, 0.80, teacher=True, size_pct=100.0)
    for seed, (ft, head, w1, w3, w5, j5, fac) in enumerate(
        [(0.40, 0.30, 0.41, 0.45, 0.50, 0.60, 0.49), (0.50, 0.31, 0.43, 0.46, 0.40, 0.62, 0.50),
         (0.45, 0.29, 0.40, 0.46, 0.52, 0.58, 0.40)]
    ):
        write_run(root, "finetune", seed, ft, size_pct=8.0)
        write_run(root, "head", seed, head, size_pct=8.0)
        write_run(root, "frozen-w1", seed, w1, window=1, size_pct=9.0, flops=100)
        write_run(root, "frozen-w3", seed, w3, window=3, size_pct=10.0, flops=300)
        write_run(root, "frozen-w5", seed, w5, window=5, size_pct=11.0, flops=500)
        write_run(root, "joint-w5", seed, j5, window=5, size_pct=11.0, flops=500)
        write_run(root, "frozen-w5-factorised", seed, fac, window=5, size_pct=9.5, flops=200, kind="factorised")
    return tmp_path


def by_pair(entries):
    return {(e["id"], e["a"], e["b"], e["metric"]): e for e in entries}


def test_claims_schema_and_values(study):
    entries = by_pair(compute_claims(study))
    for e in entries.values():
        assert SCHEMA <= set(e) and set(e) - SCHEMA <= EXTRAS
        assert e["task"] == "ner" and e["student"] == "minilm-l6:0,1"
        assert all(d.startswith("ner-l2/") for side in e["runs"].values() for d in side)
    # rows without runs (joint-w1, lora, random controls, ablations) give no entry
    assert {k[:3] for k in entries} == {
        ("C1", "frozen-w5", "frozen-w3"), ("C1", "frozen-w3", "frozen-w1"), ("C2", "joint-w5", "frozen-w5"),
        ("C4", "frozen-w5", "finetune"), ("C5", "joint-w5", "finetune"), ("C9", "frozen-w5", "head"),
        ("C10", "frozen-w5-factorised", "frozen-w5"), ("C10", "frozen-w5-factorised", "head"),
    }
    c1 = entries["C1", "frozen-w3", "frozen-w1", "f1_overall"]  # differences .04, .03, .06
    assert c1["n_seeds"] == 3 and c1["delta_mean"] == pytest.approx(0.13 / 3)
    assert c1["delta_se"] == pytest.approx(0.0152753 / math.sqrt(3), abs=1e-6) and c1["verdict"] == "confirmed"
    assert c1["t"] == pytest.approx(4.9135, abs=1e-3) and c1["df"] == 2 and c1["p"] == pytest.approx(0.039, abs=1e-3)
    assert entries["C1", "frozen-w5", "frozen-w3", "f1_overall"]["verdict"] == "inconclusive"  # .05, -.06, .06
    assert c1["runs"] == {"a": [f"ner-l2/frozen-w3/seed{k}" for k in range(3)],
                          "b": [f"ner-l2/frozen-w1/seed{k}" for k in range(3)]}
    c5 = entries["C5", "joint-w5", "finetune", "f1_overall"]  # .20, .12, .13 over a gap of .80 - .45
    assert c5["delta_mean"] == pytest.approx(0.15) and c5["verdict"] == "confirmed"
    assert c5["gap_recovered"] == pytest.approx(0.15 / 0.35)
    assert c5["teacher_runs"] == ["ner-l2/teacher/seed0"]
    size = entries["C9", "frozen-w5", "head", "size_pct"]
    assert (size["delta_mean"], size["delta_se"], size["verdict"]) == (3.0, 0.0, "confirmed")
    speed = entries["C9", "frozen-w5", "head", "speed_kept"]
    assert speed["delta_mean"] is None and speed["verdict"] == "inconclusive" and speed["bench"] is None
    flops = entries["C10", "frozen-w5-factorised", "frozen-w5", "adapter_flops_ratio"]
    assert flops["delta_mean"] == pytest.approx(0.4) and flops["verdict"] == "confirmed"
    score = entries["C10", "frozen-w5-factorised", "frozen-w5", "f1_overall"]  # -.01, .10, -.12: SE .064
    # mean -1 point on a margin of ±1 point with an SE of 6 points: neither equivalent nor surely outside
    assert score["verdict"] == "inconclusive" and score["test"] == "equivalent" and score["margin"] == 1.0


def test_every_number_recomputes_from_the_runs(study):
    for e in compute_claims(study):
        if e["metric"] != "f1_overall":
            continue
        a = [json.loads((study / d / "metrics.json").read_text())["scores"]["f1_overall"] for d in e["runs"]["a"]]
        b = [json.loads((study / d / "metrics.json").read_text())["scores"]["f1_overall"] for d in e["runs"]["b"]]
        assert e["delta_mean"] == pytest.approx(sum(x - y for x, y in zip(a, b)) / len(a))


def bench_with_times(alone, dense, factorised):
    windows = {"5": {"times_ms": dense}, "5-factorised": {"times_ms": factorised}}
    return {"timings": {"cpu": {"students": {"minilm-l6:0,1": {"alone": {"times_ms": alone}, "windows": windows}}}}}


def test_speed_from_bench_pairs_the_interleaved_repeats(study, tmp_path):
    bench = tmp_path / "bench.json"
    alone = [100.0, 110.0, 90.0, 105.0, 95.0]
    bench.write_text(json.dumps(bench_with_times(alone, [140.0, 160.0, 125.0, 150.0, 135.0],
                                                 [110.0, 121.0, 99.0, 115.5, 104.5])))
    entries = by_pair(compute_claims(study, bench))
    speed = entries["C9", "frozen-w5", "head", "speed_kept"]
    ratios = [a / d for a, d in zip(alone, [140.0, 160.0, 125.0, 150.0, 135.0])]
    assert speed["delta_mean"] == pytest.approx(sum(ratios) / 5) and speed["verdict"] == "refuted"
    assert speed["bench"] == "bench.json" and speed["n_seeds"] == 0 and speed["n_repeats"] == 5 and speed["df"] == 4
    factorised = entries["C10", "frozen-w5-factorised", "head", "speed_kept"]  # 1/1.1 every time: SE 0
    assert factorised["delta_mean"] == pytest.approx(1 / 1.1) and factorised["verdict"] == "confirmed"


def test_a_bench_without_its_repeats_gives_no_speed_verdict(study, tmp_path):
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"rows": [{"device": "cpu", "model": "minilm-l6:0,1", "window": 5, "spd": 3.5}]}))
    speed = by_pair(compute_claims(study, bench))["C9", "frozen-w5", "head", "speed_kept"]
    assert speed["delta_mean"] is None and speed["verdict"] == "inconclusive"


def test_one_seed_is_inconclusive(tmp_path):
    write_run(tmp_path, "frozen-w3", 0, 0.9, window=3)
    write_run(tmp_path, "frozen-w1", 0, 0.1, window=1)
    [entry] = compute_claims(tmp_path)
    assert entry["n_seeds"] == 1 and entry["delta_se"] is None and entry["verdict"] == "inconclusive"


def test_json_and_markdown_are_deterministic(study):
    entries = compute_claims(study)
    assert claims_json(entries) == claims_json(compute_claims(study))
    assert json.loads(claims_json(entries)) == entries
    md = claims_markdown(entries)
    assert "| C5 |" in md and "gap recovered 43%" in md and "+15.00 ± " in md and "needs --bench" in md
    assert "within ±1.0" in md and "| 4.91 |" in md
    assert "0.40 ± 0.00" in md  # a ratio, not a signed difference
    assert "No claim" in claims_markdown([])


def test_bad_metrics_name_the_file(tmp_path):
    bad = tmp_path / "frozen-w1" / "seed0" / "metrics.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"frozen-w1/seed0/metrics.json: unreadable"):
        compute_claims(tmp_path)


def test_one_study_holds_one_student(tmp_path):
    write_run(tmp_path, "frozen-w3", 0, 0.9, window=3)
    write_run(tmp_path, "frozen-w1", 0, 0.1, window=1, layers=(0,))
    with pytest.raises(ValueError, match="one task and one student"):
        compute_claims(tmp_path)


def test_runs_of_the_teacher_in_any_row_do_not_count_as_another_student(tmp_path):
    write_run(tmp_path, "frozen-w5", 0, 0.4, window=5)
    write_run(tmp_path, "teacher-head", 0, 0.3, teacher=True)  # frozen M_L + head: a teacher run, not "teacher"
    write_run(tmp_path, "teacher", 0, 0.6, teacher=True)
    [study] = load_studies(tmp_path)
    assert study.student == "minilm-l6:0,1" and set(study.runs) == {"frozen-w5", "teacher-head", "teacher"}
