"""The claims in words, generated from claims.json: prose that cannot disagree with the numbers.

A README keeps the generated text between two markers, and ``alad study --report-only --fill README.md`` rewrites
what lies between them (nothing else in the file changes):

    <!-- alad:claims-brief:begin -->         one line per claim: every comparison's Δ ± SE, p and verdict
    <!-- alad:claims-brief:end -->
    <!-- alad:claims-summary:begin -->       one bullet per claim: every comparison's Δ ± SE, t, p and verdict
    <!-- alad:claims-summary:end -->
    <!-- alad:claims-table:begin -->         the verdict table of claims.md
    <!-- alad:claims-table:end -->
    <!-- alad:claims-budgets:begin -->       runs whose validation score peaked at their last epoch
    <!-- alad:claims-budgets:end -->
    <!-- alad:claims-headline:begin -->      the headline claims in short: where each is confirmed, refuted, open
    <!-- alad:claims-headline:end -->
    <!-- alad:claims-paper:begin -->         our grids next to the paper's Table 1 (analysis.paper_table)
    <!-- alad:claims-paper:end -->
    <!-- alad:claims-seeds:begin -->         how many seeds each row of each study has
    <!-- alad:claims-seeds:end -->
    <!-- alad:claims-budget-effect:begin -->  the headline rows next to a reference study's (other budgets)
    <!-- alad:claims-budget-effect:end -->

A file may hold either block or both. Every number is taken from the entries of
:func:`alad_kit.analysis.claims.compute_claims`, in the units of claims.md (points x100 for POS/NER scores).
"""

from __future__ import annotations

import re
from pathlib import Path

from alad_kit.core.io import write_text_atomic

from .claims import (
    EXACT_METRICS,
    RATIO_METRICS,
    TEACHER_ROW,
    claims_markdown,
    gap_share,
    paired_stats,
    points,
    row_values,
    selection_metric,
    studies_of,
)
from .formats import percent
from .paper_table import paper_markdown

BLOCKS = ("claims-brief", "claims-summary", "claims-table", "claims-budgets", "claims-headline", "claims-paper",
          "claims-seeds", "claims-budget-effect")
HEADLINE_CLAIMS = ("C5", "C6", "C12")  # the paper's headline, aligned against random, the probe-chosen layer
HEADLINE_ROWS = ("finetune", "frozen-w5", "random-frozen-w5", "joint-w5", "random-joint-w5", "frozen-w5-probed-layer",
                 "joint-w5-probed-layer")  # the rows the headline claims (C5, C6, C12) compare


def study_label(entry: dict) -> str:
    """``NER 2L`` style names: task, then the student (``minilm-l6:0,1`` -> its layers)."""
    student = entry["student"]
    name, _, layers = student.partition(":")
    short = f"{name} layers {layers}" if layers else name
    return f"{entry['task'].upper()} {short}"


def delta_text(entry: dict) -> str:
    """``+4.62 ± 0.94`` in table points (a ratio without sign for FLOPs and speed)."""
    if entry["delta_mean"] is None:
        return "not measured"
    f = points(entry["task"], entry["metric"])
    sign = "" if entry["metric"] in RATIO_METRICS else "+"
    text = f"{entry['delta_mean'] * f:{sign}.2f}"
    if entry["delta_se"] is not None and entry["metric"] not in EXACT_METRICS:
        text += f" ± {entry['delta_se'] * f:.2f}"
    return text


def _evidence(entry: dict) -> str:
    parts = [delta_text(entry)]
    if entry.get("t") is not None:
        n = entry.get("n_repeats") or entry["n_seeds"]
        parts.append(f"t {entry['t']:.2f}, p {entry['p']:.3f}, n {n}")
    elif entry["delta_mean"] is not None and entry["metric"] not in EXACT_METRICS:  # one seed: no SE, no test
        parts.append(f"n {entry.get('n_repeats') or entry['n_seeds']}")
    if entry.get("gap_recovered") is not None:
        parts.append(f"gap recovered {percent(entry['gap_recovered'])}")
    verdict = entry["verdict"]
    return f"{', '.join(parts)}: " + (f"**{verdict}**" if verdict != "inconclusive" else verdict)


def summary_markdown(entries: list[dict]) -> str:
    """One bullet per claim id (in claims.json order), one sub-bullet per comparison."""
    if not entries:
        return "No claim has runs of both of its rows yet.\n"
    lines, seen = [], {}
    for e in entries:
        seen.setdefault(e["id"], []).append(e)
    for claim_id, group in sorted(seen.items(), key=lambda kv: int(kv[0][1:])):
        verdicts = [e["verdict"] for e in group]
        tally = ", ".join(f"{verdicts.count(v)} {v}" for v in ("confirmed", "refuted", "inconclusive")
                          if verdicts.count(v))
        lines.append(f"- **{claim_id}** *{group[0]['claim']}*: {tally}.")
        for e in group:
            lines.append(f"  - {study_label(e)}, {e['a']} vs {e['b']} ({e['metric']}): {_evidence(e)}")
    return "\n".join(lines) + "\n"


def brief_markdown(entries: list[dict]) -> str:
    """One line per claim id, each comparison as ``study Δ ± SE verdict (p)``, for a top-level README."""
    if not entries:
        return "No claim has runs of both of its rows yet.\n"
    grouped: dict[str, list[dict]] = {}
    for e in entries:
        grouped.setdefault(e["id"], []).append(e)
    lines = []
    for claim_id, group in sorted(grouped.items(), key=lambda kv: int(kv[0][1:])):
        one_pair = len({(e["a"], e["b"]) for e in group}) == 1
        parts = []
        for e in group:
            p = "" if e.get("p") is None else f" (p {e['p']:.3f})"
            if e.get("gap_recovered") is not None:
                p += f", {percent(e['gap_recovered'])} of the gap to the teacher"
            verdict = f"**{e['verdict']}**" if e["verdict"] != "inconclusive" else e["verdict"]
            pair = "" if one_pair else f" {e['a']} vs {e['b']}"
            pair += f" {e['metric']}" if e["metric"] in (*EXACT_METRICS, "speed_kept") else ""  # else: the score
            parts.append(f"{e['task'].upper()} {e['student']}{pair} {delta_text(e)} {verdict}{p}")
        head = f"{group[0]['a']} vs {group[0]['b']}: " if one_pair else ""
        lines.append(f"- **{claim_id}** *{group[0]['claim']}*. {head}" + "; ".join(parts) + ".")
    return "\n".join(lines) + "\n"


def headline_markdown(entries: list[dict], claims: tuple[str, ...] = HEADLINE_CLAIMS) -> str:
    """One line per headline claim: the comparisons (study, a vs b) it is confirmed for, refuted for, and
    still open for: the short answer a README gives, generated so that it cannot drift from the numbers."""
    lines = []
    for claim_id in claims:
        group = [e for e in entries if e["id"] == claim_id]
        if not group:
            continue
        parts = []
        for verdict in ("confirmed", "refuted", "inconclusive"):
            names = [f"{study_label(e)} {e['a']} vs {e['b']}" for e in group if e["verdict"] == verdict]
            if names:
                label = "open (inconclusive)" if verdict == "inconclusive" else f"**{verdict}**"
                parts.append(f"{label} in {len(names)} of {len(group)}: {'; '.join(names)}")
        gaps = [e["gap_recovered"] for e in group if e.get("gap_recovered") is not None]
        gap = f". Gap to the teacher recovered: {percent(min(gaps))} to {percent(max(gaps))}" if gaps else ""
        lines.append(f"- **{claim_id}** *{group[0]['claim']}*: " + ". ".join(parts) + gap + ".")
    return "\n".join(lines or ["- no headline claim has runs of both of its rows yet"]) + "\n"


def table_markdown(entries: list[dict]) -> str:
    """claims.md without its title."""
    return claims_markdown(entries).split("\n", 2)[2]


def _validation(metrics: dict) -> list:
    """The run's phase-3 validation history, ``[[epoch, score], ...]`` (empty when it kept none)."""
    return (metrics.get("selection") or {}).get("validation") or []


def peaked_at_last_epoch(metrics: dict) -> bool:
    """The best validation epoch is the last one run: the score was still rising when the budget ended."""
    history = _validation(metrics)
    return bool(history) and (metrics.get("selection") or {}).get("best_epoch") == history[-1][0]


def last_epoch_peaks(root, rows: tuple[str, ...] = HEADLINE_ROWS) -> dict[str, list[str]]:
    """``{study: [run directories]}`` of the runs of ``rows`` whose best validation epoch is their last one: their
    score was still rising when the budget ended (every study below ``root``, sorted)."""
    out = {}
    for study in studies_of(root):
        peaks = out.setdefault(study.path.name, [])
        for row in rows:
            for _seed, (rel, metrics) in sorted(study.runs.get(row, {}).items()):
                if peaked_at_last_epoch(metrics):
                    peaks.append(rel)
    return out


def budgets_markdown(root) -> str:
    """How many headline runs peaked at their last epoch, per study (the target is 0)."""
    lines = []
    for study, runs in last_epoch_peaks(root).items():
        names = ", ".join(r.split("/", 1)[-1] for r in runs)
        lines.append(f"- `{study}`: {len(runs)} run(s) of the headline rows peaked at their last epoch"
                     + (f" ({names})" if runs else ""))
    return "\n".join(lines or ["- no study found"]) + "\n"


def claims_file_markdown(entries: list[dict], root) -> str:
    """claims.md: the verdict table, then how many headline runs of each study below ``root`` (a folder or its
    studies) were still rising at their last epoch, so a verdict read there comes with its budgets."""
    return (claims_markdown(entries) + "\n## Budgets\n\nRuns of the headline rows (" + ", ".join(HEADLINE_ROWS)
            + ") whose validation score peaked at their last epoch, i.e. were still rising when the budget ended "
            "(target: 0):\n\n" + budgets_markdown(root))


def seeds_markdown(root) -> str:
    """One table line per study: its rows grouped by their number of seeds (most first), and the rows other
    studies below ``root`` have that it lacks."""
    studies = studies_of(root)
    every = sorted({row for study in studies for row in study.runs})
    lines = ["| study | rows by number of seeds | rows not run here |", "|---|---|---|"]
    for study in studies:
        by_count: dict[int, list[str]] = {}
        for row, seeds in study.runs.items():
            by_count.setdefault(len(seeds), []).append(row)
        groups = "; ".join(f"{n}: {', '.join(sorted(rows))}" for n, rows in sorted(by_count.items(), reverse=True))
        missing = ", ".join(row for row in every if row not in study.runs) or "—"
        lines.append(f"| `{study.path.name}` | {groups} | {missing} |")
    return "\n".join(lines) + "\n"


def budget_effect_markdown(root, reference) -> str:
    """The headline rows of each study below ``root`` next to the same rows of the same-named study below
    ``reference`` (the same runs under other budgets), over the seeds both have: the test score, its paired change
    (here - reference, ± SE), the epochs phase 3 ran and how many runs peaked at their last epoch. Then C5's
    share of the gap to the teacher under each budget, both against the reference's teacher row."""
    others = {study.path.name: study for study in studies_of(reference)}
    lines = ["| study | row | n | test, reference | test, here | here − reference | epochs run, reference → here "
             "| peaked at the last epoch, reference → here |", "|---|---|---|---|---|---|---|---|"]
    gaps = []
    for study in studies_of(root):
        other = others.get(study.path.name)
        if other is None:
            continue
        metric = selection_metric(study.task)
        f = points(study.task, metric)
        for row in HEADLINE_ROWS:
            here, there = row_values(study, row, metric), row_values(other, row, metric)
            seeds, delta, se = paired_stats(here, there)
            if not seeds:
                continue
            runs = [[side.runs[row][s][1] for s in seeds] for side in (other, study)]
            epochs = [_epochs_text(side) for side in runs]
            peaks = [sum(map(peaked_at_last_epoch, side)) for side in runs]
            change = f"{delta * f:+.2f}" + ("" if se is None else f" ± {se * f:.2f}")
            lines.append(f"| `{study.path.name}` | {row} | {len(seeds)} | {_mean(there, seeds) * f:.2f} | "
                         f"{_mean(here, seeds) * f:.2f} | {change} | {epochs[0]} → {epochs[1]} | "
                         f"{peaks[0]} → {peaks[1]} |")
        gaps += _gap_lines(study, other, metric)
    if len(lines) == 2:
        return "- no study here has a same-named study with the same rows in the reference\n"
    gaps = gaps or ["- C5's gap: no seed has a joint row, finetune and the teacher in both studies yet"]
    return "\n".join(lines + [""] + gaps) + "\n"


def _epochs_text(runs: list[dict]) -> str:
    """``mean (min–max)`` of the phase-3 epochs the runs ran (their last validated epoch)."""
    epochs = [_validation(m)[-1][0] for m in runs if _validation(m)]
    return f"{sum(epochs) / len(epochs):.1f} ({min(epochs)}–{max(epochs)})" if epochs else "—"


def _mean(values: dict[int, float], seeds: list[int]) -> float:
    return sum(values[s] for s in seeds) / len(seeds)


def _gap_lines(study, reference, metric: str) -> list[str]:
    """C5's share of the student -> teacher gap under both budgets (``claims.gap_share``), over the seeds every
    row has in both, with the reference's teacher row (mean over its seeds) as the top of the gap."""
    teacher = row_values(reference, TEACHER_ROW, metric)
    if not teacher:
        return []
    out = []
    for row in ("joint-w5", "joint-w5-probed-layer"):
        sides = [(row_values(s, row, metric), row_values(s, "finetune", metric)) for s in (reference, study)]
        seeds = sorted(set.intersection(*(set(v) for pair in sides for v in pair)))
        if not seeds:
            continue
        shares = [gap_share(_mean(a, seeds) - _mean(b, seeds), teacher, b, seeds) for a, b in sides]
        text = ["—" if share is None else percent(share) for share in shares]
        which = f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
        out.append(f"- `{study.path.name}` C5, {row} vs finetune ({which}): "
                   f"{text[0]} of the gap to the teacher with the reference's budgets, "
                   f"{text[1]} here (teacher: the reference's `{TEACHER_ROW}` row, {len(teacher)} seed(s))")
    return out


def fill(path: str | Path, entries: list[dict], root=None, reference=None) -> bool:
    """Rewrite the generated blocks of ``path`` (``root``: the study folder, or its studies, that the budgets,
    paper and seeds blocks read; ``reference``: the study folder the budget-effect block compares it with); True
    when the
    file changed. A file without any marker, or with a begin marker missing its end, is an error naming the file."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    studies = None if root is None else studies_of(root)  # read once for every block that needs the runs
    makers = {"claims-brief": brief_markdown, "claims-summary": summary_markdown, "claims-table": table_markdown,
              "claims-headline": headline_markdown,
              "claims-budgets": lambda _entries: budgets_markdown(studies) if root is not None else "- (no study given)\n",
              "claims-paper": lambda _entries: paper_markdown(studies) if root is not None else "(no study given)\n",
              "claims-seeds": lambda _entries: seeds_markdown(studies) if root is not None else "(no study given)\n",
              "claims-budget-effect": lambda _entries: (budget_effect_markdown(studies, reference)
                                                        if root is not None and reference is not None
                                                        else "- (no reference study given: alad study --against)\n")}
    found = False
    for name in BLOCKS:
        begin, end = f"<!-- alad:{name}:begin -->", f"<!-- alad:{name}:end -->"
        if begin not in text:
            continue
        if text.count(begin) != 1 or text.count(end) != 1 or text.index(end) < text.index(begin):
            raise ValueError(f"{path}: the markers {begin} ... {end} must appear once each, in that order")
        found = True
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        text = pattern.sub(lambda _m, n=name, b=begin, e=end: f"{b}\n{makers[n](entries)}{e}", text)
    if not found:
        raise ValueError(f"{path}: no <!-- alad:claims-...:begin --> marker to fill (blocks: {', '.join(BLOCKS)})")
    if text == path.read_text(encoding="utf-8"):
        return False
    write_text_atomic(path, text)
    return True
