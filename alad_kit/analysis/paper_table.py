"""Our studies next to the paper's Table 1, generated from the runs (the ``claims-paper`` block of a README).

The paper (``../shared/reference/paper_table1.md``; each task keeps its numbers in ``Task.paper_table1``)
reports one run per cell for BERT-base students; our two-layer MiniLM stands in for BERT-Tiny and MiniLM-L6
for BERT-Mini (``STAND_INS``). Each of our cells is the mean ± sample
standard deviation over the seeds a row has (their number in brackets), recomputed from the runs' metrics.json
every time the README is filled, so the table cannot drift from the runs as seeds are added.
"""

from __future__ import annotations

import statistics

from .formats import percent

# Our students and the paper's ones they stand in for (the paper's numbers: Task.paper_table1).
STAND_INS = {"minilm-l6:0,1": ("two layers", "BERT-Tiny"), "minilm-l6": ("MiniLM-L6", "BERT-Mini")}
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


def row_scores(study, row: str, metric: str, factor: float) -> list[float]:
    """The row's score (in table points: x ``factor``) of every seed, in seed order."""
    return [factor * metrics["scores"][metric] for _seed, (_rel, metrics) in sorted(study.runs.get(row, {}).items())
            if metrics.get("scores", {}).get(metric) is not None]


def cell(values: list[float]) -> str:
    """``35.25 ± 0.79 (5)``; one seed: ``64.47 (1)``; none: ``not run``."""
    if not values:
        return "not run"
    mean = statistics.fmean(values)
    spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{mean:.2f}{spread} ({len(values)})"


def _gap(study, metric: str, factor: float, row: str) -> float | None:
    """(row − student fine-tuned) / (teacher − student fine-tuned), from the row means."""
    means = {r: row_scores(study, r, metric, factor) for r in (row, "finetune", "teacher")}
    if not all(means.values()):
        return None
    a, ft, teacher = (statistics.fmean(means[r]) for r in (row, "finetune", "teacher"))
    return (a - ft) / (teacher - ft) if teacher != ft else None


def study_table(study) -> str | None:
    """Our study next to the paper's column of the student it stands in for; None when the paper has none."""
    from alad_kit.tasks import get_task

    task = get_task(study.task)
    ours, theirs = STAND_INS.get(study.student, (None, None))
    paper = task.paper_table1.get(theirs)
    if paper is None:
        return None
    metric = task.paper_table1["metric"]
    factor = 100.0 / task.score_scale
    label = next((name for key, name, _ in task.score_columns if key == metric), metric)
    lines = [f"**{task.title} ({label}), {ours} vs {theirs}**", "",
             f"| row | paper ({theirs}) | ours ({study.path.name}) |", "|---|---|---|"]
    for text, rows in LINES:
        mine = " / ".join(cell(row_scores(study, r, metric, factor)) for r in rows)
        published = " / ".join(str(paper[r]) if r in paper else "not run" for r in rows)
        lines.append(f"| {text} | {published} | {mine} |")
    paper_gap = (paper["joint-w5"] - paper["finetune"]) / (paper["teacher"] - paper["finetune"])
    gaps = [(name, _gap(study, metric, factor, row)) for name, row in GAP_ROWS]
    mine = "; ".join(f"{name} {percent(g)}" for name, g in gaps if g is not None) or "not run"
    lines.append(f"| gap recovered: (row − FT) / (teacher − FT), row means | joint W5 {percent(paper_gap)} | {mine} |")
    return "\n".join(lines)


def paper_markdown(root) -> str:
    """One table per study below ``root`` (a folder, or the studies themselves) whose task and student the paper
    has (see the module doc)."""
    from .claims import studies_of

    tables = [t for t in (study_table(s) for s in studies_of(root)) if t is not None]
    return "\n\n".join(tables or ["No study below this folder matches a column of the paper's Table 1."]) + "\n"
