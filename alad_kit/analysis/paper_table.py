"""Our studies next to the paper's Table 1, generated from the runs (the ``claims-paper`` block of a README).

The paper (``../shared/reference/paper_table1.md``) reports one run per cell for BERT-base students; our
two-layer MiniLM stands in for BERT-Tiny and MiniLM-L6 for BERT-Mini. Each of our cells is the mean ± sample
standard deviation over the seeds a row has (their number in brackets), recomputed from the runs' metrics.json
every time the README is filled, so the table cannot drift from the runs as seeds are added.
"""

from __future__ import annotations

import statistics
from pathlib import Path

# The paper's Table 1 (x100): NER F1_O and POS accuracy of BERT-base and of the students we stand in for.
PAPER = {
    ("ner", "BERT-Tiny"): {"teacher": 63, "finetune": 19, "frozen-w1": 32, "frozen-w3": 39, "frozen-w5": 42,
                           "joint-w1": 37, "joint-w3": 41, "joint-w5": 43, "lora": 10, "lora-alad-w5": 40},
    ("ner", "BERT-Mini"): {"teacher": 63, "finetune": 38, "frozen-w1": 38, "frozen-w3": 46, "frozen-w5": 48,
                           "joint-w1": 50, "joint-w3": 52, "joint-w5": 53, "lora": 22, "lora-alad-w5": 49},
    ("pos", "BERT-Tiny"): {"teacher": 93, "finetune": 73, "frozen-w1": 73, "frozen-w3": 79, "frozen-w5": 80,
                           "joint-w1": 82, "joint-w3": 84, "joint-w5": 85, "lora": 55, "lora-alad-w5": 76},
}
# study folder -> (heading, task, the paper's student, our score key)
STUDIES = {
    "ner-minilm-2l": ("NER (MultiCoNER II, F1_O), two layers vs BERT-Tiny", "ner", "BERT-Tiny", "f1_overall"),
    "ner-minilm-l6": ("NER, MiniLM-L6 vs BERT-Mini", "ner", "BERT-Mini", "f1_overall"),
    "pos-minilm-2l": ("POS (UD German GSD, accuracy), two layers vs BERT-Tiny", "pos", "BERT-Tiny", "accuracy"),
}
# table line -> the rows it shows, separated by " / "
LINES = (
    ("teacher fine-tuned", ("teacher",)),
    ("student fine-tuned", ("finetune",)),
    ("frozen W1 / W3 / W5", ("frozen-w1", "frozen-w3", "frozen-w5")),
    ("joint W1 / W3 / W5", ("joint-w1", "joint-w3", "joint-w5")),
    ("LoRA / LoRA + W5", ("lora", "lora-alad-w5")),
    ("random adapter, frozen / joint W5 (control)", ("random-frozen-w5", "random-joint-w5")),
    ("aligned to the probed teacher layer, frozen / joint W5", ("frozen-w5-probed-layer", "joint-w5-probed-layer")),
    ("frozen teacher + head", ("teacher-head",)),
)
GAP_ROWS = (("joint W5", "joint-w5"), ("probed layer", "joint-w5-probed-layer"), ("random joint adapter", "random-joint-w5"))


def row_scores(study, row: str, metric: str) -> list[float]:
    """The row's score (x100) of every seed, in seed order."""
    return [100 * metrics["scores"][metric] for _seed, (_rel, metrics) in sorted(study.runs.get(row, {}).items())
            if metrics.get("scores", {}).get(metric) is not None]


def cell(values: list[float]) -> str:
    """``35.25 ± 0.79 (5)``; one seed: ``64.47 (1)``; none: ``not run``."""
    if not values:
        return "not run"
    mean = statistics.fmean(values)
    spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{mean:.2f}{spread} ({len(values)})"


def _gap(study, metric: str, row: str) -> float | None:
    """(row − student fine-tuned) / (teacher − student fine-tuned), from the row means."""
    means = {r: row_scores(study, r, metric) for r in (row, "finetune", "teacher")}
    if not all(means.values()):
        return None
    a, ft, teacher = (statistics.fmean(means[r]) for r in (row, "finetune", "teacher"))
    return (a - ft) / (teacher - ft) if teacher != ft else None


def study_table(study, heading: str, task: str, paper_student: str, metric: str) -> str:
    paper = PAPER[(task, paper_student)]
    lines = [f"**{heading}**", "", f"| row | paper ({paper_student}) | ours ({study.path.name}) |", "|---|---|---|"]
    for label, rows in LINES:
        ours = " / ".join(cell(row_scores(study, r, metric)) for r in rows)
        theirs = " / ".join(str(paper[r]) if r in paper else "not run" for r in rows)
        lines.append(f"| {label} | {theirs} | {ours} |")
    paper_gap = (paper["joint-w5"] - paper["finetune"]) / (paper["teacher"] - paper["finetune"])
    gaps = [(name, _gap(study, metric, row)) for name, row in GAP_ROWS]
    ours = "; ".join(f"{name} {100 * g:.0f}%" for name, g in gaps if g is not None) or "not run"
    lines.append(f"| gap recovered: (row − FT) / (teacher − FT), row means | joint W5 {100 * paper_gap:.0f}% | {ours} |")
    return "\n".join(lines)


def paper_markdown(root: str | Path) -> str:
    """One table per study of ``STUDIES`` found below ``root`` (see the module doc)."""
    from .claims import load_studies

    studies = {s.path.name: s for s in load_studies(root)}
    tables = [study_table(studies[name], *spec) for name, spec in STUDIES.items() if name in studies]
    return "\n\n".join(tables or ["No study of the paper's grids below this folder."]) + "\n"
