"""The generated claim prose: blocks between markers, numbers from the entries, and the committed study."""

import json
import shutil
from pathlib import Path

import pytest

from alad_kit.analysis.claims import claims_json, compute_claims
from alad_kit.analysis.claims_report import (
    brief_markdown,
    claims_file_markdown,
    fill,
    headline_markdown,
    summary_markdown,
)

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "results" / "cpu-study"
PATIENCE = ROOT / "results" / "cpu-study-patience"  # the headline NER rows again, stopped early on validation


def entry(**kw):
    base = {"id": "C5", "claim": "joint > finetune", "task": "ner", "student": "minilm-l6:0,1", "a": "joint-w5",
            "b": "finetune", "metric": "f1_overall", "delta_mean": 0.0462, "delta_se": 0.0094, "n_seeds": 3,
            "t": 4.93, "p": 0.0388, "df": 2, "verdict": "confirmed", "gap_recovered": 0.17}
    return {**base, **kw}


def test_summary_and_brief_carry_the_entry_numbers():
    entries = [entry(), entry(task="pos", metric="f1", delta_mean=0.0022, delta_se=0.0041, t=0.53, p=0.648,
                              verdict="inconclusive", gap_recovered=0.03)]
    summary = summary_markdown(entries)
    assert "1 confirmed, 1 inconclusive" in summary
    assert "+4.62 ± 0.94, t 4.93, p 0.039, n 3, gap recovered 17%: **confirmed**" in summary
    assert "+0.22 ± 0.41, t 0.53, p 0.648, n 3, gap recovered 3%: inconclusive" in summary
    brief = brief_markdown(entries)
    assert brief.count("\n") == 1 and "joint-w5 vs finetune: NER minilm-l6:0,1 +4.62 ± 0.94 **confirmed**" in brief


def test_the_headline_says_where_each_claim_holds():
    entries = [entry(), entry(task="pos", verdict="inconclusive", gap_recovered=0.03),
               entry(id="C6", claim="aligned > random", a="joint-w5", b="random-joint-w5", verdict="refuted",
                     gap_recovered=None),
               entry(id="C7", claim="phase 1 helps", verdict="confirmed", gap_recovered=None)]  # not a headline claim
    lines = headline_markdown(entries).splitlines()
    assert lines == [
        "- **C5** *joint > finetune*: **confirmed** in 1 of 2: NER minilm-l6 layers 0,1 joint-w5 vs finetune. "
        "open (inconclusive) in 1 of 2: POS minilm-l6 layers 0,1 joint-w5 vs finetune. "
        "Gap to the teacher recovered: 3% to 17%.",
        "- **C6** *aligned > random*: **refuted** in 1 of 1: NER minilm-l6 layers 0,1 joint-w5 vs random-joint-w5."]
    assert headline_markdown([]) == "- no headline claim has runs of both of its rows yet\n"


def test_fill_rewrites_only_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- alad:claims-brief:begin -->\nstale 84.6\n<!-- alad:claims-brief:end -->\noutro\n")
    assert fill(readme, [entry()]) is True
    text = readme.read_text()
    assert text.startswith("intro\n<!-- alad:claims-brief:begin -->\n- **C5**") and text.endswith("end -->\noutro\n")
    assert "84.6" not in text
    assert fill(readme, [entry()]) is False  # already up to date: the file is not rewritten


def test_fill_refuses_files_without_or_with_broken_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match=r"README.md: no <!-- alad:claims"):
        fill(readme, [entry()])
    readme.write_text("<!-- alad:claims-table:begin -->\nno end\n")
    with pytest.raises(ValueError, match="must appear once each"):
        fill(readme, [entry()])


# (study folder, its bench, the READMEs filled from it, the study its budget-effect block compares with)
COMMITTED = {"cpu-study": (STUDY, STUDY / "bench_students.json", (ROOT / "README.md", STUDY / "README.md"), None),
             "cpu-study-patience": (PATIENCE, None, (PATIENCE / "README.md",), STUDY)}


@pytest.mark.parametrize("name", COMMITTED)
def test_the_committed_study_reproduces_byte_for_byte(tmp_path, name):
    """claims.json and the generated README blocks are what --report-only writes from the committed runs."""
    study, bench, readmes, against = COMMITTED[name]
    entries = compute_claims(study, bench)
    assert claims_json(entries) == (study / "claims.json").read_text()
    assert claims_file_markdown(entries, study) == (study / "claims.md").read_text()
    for readme in readmes:
        copy = tmp_path / readme.parent.name / "README.md"
        copy.parent.mkdir()
        shutil.copy(readme, copy)
        assert fill(copy, entries, study, against) is False, (
            f"{readme} differs from what alad study --report-only --fill writes")
    for folder in sorted(p.parent for p in study.glob("*/claims.json")):  # each study keeps its own, in step
        assert claims_json(compute_claims(folder, bench)) == (folder / "claims.json").read_text(), folder


def test_runs_still_rising_at_their_last_epoch_are_counted(tmp_path):
    from alad_kit.analysis.claims_report import budgets_markdown, last_epoch_peaks

    def run(row, seed, best, epochs=4):
        path = tmp_path / "ner-x" / row / f"seed{seed}" / "metrics.json"
        path.parent.mkdir(parents=True)
        history = [[e, 0.1 * e] for e in range(1, epochs + 1)]
        path.write_text(json.dumps({"task": "ner", "student": "s", "scores": {"f1_overall": 0.3},
                                    "selection": {"best_epoch": best, "validation": history}}))

    run("joint-w5", 0, 4)  # best = last: still rising
    run("joint-w5", 1, 2)
    run("frozen-w3", 0, 4)  # not a headline row
    assert last_epoch_peaks(tmp_path) == {"ner-x": ["ner-x/joint-w5/seed0"]}
    assert "`ner-x`: 1 run(s) of the headline rows peaked at their last epoch (joint-w5/seed0)" in budgets_markdown(
        tmp_path)


def test_the_seed_table_groups_rows_by_their_seeds(tmp_path):
    from alad_kit.analysis.claims_report import seeds_markdown

    def run(study, row, seed):
        path = tmp_path / study / row / f"seed{seed}" / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"task": "ner", "student": "s", "scores": {"f1_overall": 0.3}}))

    for seed in range(5):
        run("ner-a", "joint-w5", seed)
    run("ner-a", "head", 0)
    run("ner-b", "head", 0)
    lines = seeds_markdown(tmp_path).splitlines()
    assert lines[2:] == ["| `ner-a` | 5: joint-w5; 1: head | — |", "| `ner-b` | 1: head | joint-w5 |"]


def test_the_budget_effect_pairs_each_headline_row_with_the_reference(tmp_path):
    from alad_kit.analysis.claims_report import budget_effect_markdown, fill

    def run(root, row, seed, score, epochs, best):
        path = tmp_path / root / "ner-x" / row / f"seed{seed}" / "metrics.json"
        path.parent.mkdir(parents=True)
        history = [[e, 0.01 * e] for e in range(1, epochs + 1)]
        path.write_text(json.dumps({"task": "ner", "student": "s", "scores": {"f1_overall": score},
                                    "selection": {"best_epoch": best, "validation": history}}))

    for seed, (fixed, patient) in enumerate([(0.30, 0.33), (0.34, 0.34)]):
        run("fixed", "finetune", seed, 0.20, 8, 8)  # fixed budget: still rising at epoch 8
        run("fixed", "joint-w5", seed, fixed, 8, 8)
        run("patience", "finetune", seed, 0.20, 6 + seed, 3 + seed)
        run("patience", "joint-w5", seed, patient, 10 + 2 * seed, 7 + 2 * seed)
    run("fixed", "teacher", 0, 0.60, 8, 5)
    run("patience", "frozen-w5", 0, 0.25, 5, 2)  # no reference run: not in the table
    lines = budget_effect_markdown(tmp_path / "patience", tmp_path / "fixed").splitlines()
    assert lines[2:] == [
        "| `ner-x` | finetune | 2 | 20.00 | 20.00 | +0.00 ± 0.00 | 8.0 (8–8) → 6.5 (6–7) | 2 → 0 |",
        "| `ner-x` | joint-w5 | 2 | 32.00 | 33.50 | +1.50 ± 1.50 | 8.0 (8–8) → 11.0 (10–12) | 2 → 0 |",
        "",
        "- `ner-x` C5, joint-w5 vs finetune (seeds 0, 1): 30% of the gap to the teacher with the reference's "
        "budgets, 34% here (teacher: the reference's `teacher` row, 1 seed(s))"]
    assert budget_effect_markdown(tmp_path / "fixed", tmp_path / "nothing-here").startswith("- no study here")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- alad:claims-budget-effect:begin -->\n<!-- alad:claims-budget-effect:end -->\n")
    fill(readme, [], tmp_path / "patience")  # no reference: the block says which flag gives one
    assert "alad study --against" in readme.read_text()
    assert fill(readme, [], tmp_path / "patience", tmp_path / "fixed") is True
    assert "| `ner-x` | joint-w5 | 2 |" in readme.read_text()
