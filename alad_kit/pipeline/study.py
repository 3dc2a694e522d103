"""``alad study``: the grid of rows that tests the paper's claims, every row with several seeds.

    DIR/<row>/seed<k>/        one run (alad_kit.pipeline.run) per row and seed
    DIR/.alad_cache/          one embedding / adapter cache for the whole study (phases 1-2 are shared
                              by every frozen, joint and LoRA + ALAd row of the same window and seed)
    DIR/claims.json, .md      the verdicts of alad_kit.analysis.claims
    DIR/study.md, .csv, .html the grid in the layout of the paper's Table 1: mean ± std over seeds, Sz, Spd

A run whose metrics.json exists and holds the same run (``core.runkey``: same run key, same budgets) is
skipped; any other run is started with ``resume=True``, so a killed one continues from its checkpoints. Run
on a finished directory, the command trains nothing and rewrites the same claims.json.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from alad_kit.analysis.claims import (
    TEACHER_ROW,
    bench_spd,
    claims_json,
    compute_claims,
    load_studies,
    rebased,
    studies_of,
)
from alad_kit.analysis.formats import write_formats
from alad_kit.analysis.table import format_cell, score_columns, student_label
from alad_kit.core import rundir
from alad_kit.core.config import RunConfig
from alad_kit.core.io import write_text_atomic
from alad_kit.core.progress import progress as tqdm
from alad_kit.core.runkey import run_state

_RUN_FIELDS = {f.name for f in fields(RunConfig)}
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Row:
    name: str  # directory under the study (DIR/<name>/seed<k>) and the name claims refer to
    setting: str  # Table-1 setting it belongs to, with its variant
    mode: str  # phase-3 mode (config.MODES)
    window: int | None = None  # adapter window; None for modes without adapter
    options: tuple = ()  # further RunConfig fields as (name, value) pairs
    max_seeds: int | None = None  # run only the first k seeds (None: all)
    tuned_teacher: bool = False  # phases 1-2 align to the study's task-fine-tuned teacher (DIR/teacher/seed0)
    probed_layer: bool = False  # phases 1-2 align to M_L's best probe layer (DIR/probe_layers.json, alad probe-layers)

    def __post_init__(self):
        unknown = [k for k, _ in self.options if k not in _RUN_FIELDS]
        if unknown:
            raise ValueError(f"study row {self.name}: unknown RunConfig field(s) {unknown}")


_FROZEN, _JOINT = "Frozen + ALAd", "Jointly fine-tuned + ALAd"
# In the order of the paper's Table 1, each variant next to the row it varies.
ROWS = (
    Row("teacher", "Teacher fine-tuned", "finetune", options=(("is_teacher_run", True),), max_seeds=1),
    # frozen M_L + head: what a frozen student + ALAd that imitated M_L perfectly could reach (not in the paper)
    Row("teacher-head", "Teacher frozen, head only", "head", options=(("is_teacher_run", True),)),
    Row("finetune", "Student fine-tuned", "finetune"),
    Row("head", "Frozen student, head only", "head"),
    Row("frozen-w1", _FROZEN, "frozen", 1),
    Row("frozen-w3", _FROZEN, "frozen", 3),
    Row("frozen-w5", _FROZEN, "frozen", 5),
    Row("frozen-w5-factorised", _FROZEN + ", factorised window", "frozen", 5, (("adapter_kind", "factorised"),)),
    # the authors' code aligns to the task-fine-tuned M_L; the paper's text, and the rows above, to the pre-trained one
    Row("frozen-w5-tuned-teacher", _FROZEN + ", aligned to the fine-tuned teacher", "frozen", 5, tuned_teacher=True),
    # issue 19: the teacher's layer that a linear probe reads the task from best (validation), not its last
    Row("frozen-w5-probed-layer", _FROZEN + ", aligned to the teacher's best probe layer", "frozen", 5,
        probed_layer=True),
    Row("random-frozen-w5", "Frozen + random adapter (control)", "frozen", 5, (("random_adapter", True),)),
    Row("frozen-w5-no-phase1", _FROZEN + ", no phase 1", "frozen", 5, (("skip_phase1", True),)),
    Row("frozen-w5-no-phase2", _FROZEN + ", no phase 2", "frozen", 5, (("skip_phase2", True),)),
    Row("joint-w1", _JOINT, "joint", 1),
    Row("joint-w3", _JOINT, "joint", 3),
    Row("joint-w5", _JOINT, "joint", 5),
    Row("joint-w5-probed-layer", _JOINT + ", aligned to the teacher's best probe layer", "joint", 5, probed_layer=True),
    Row("random-joint-w5", "Jointly fine-tuned + random adapter (control)", "joint", 5, (("random_adapter", True),)),
    Row("lora", "LoRA", "lora"),
    Row("lora-alad-w5", "LoRA + ALAd", "lora+alad", 5),
)
ROW_NAMES = tuple(r.name for r in ROWS)
# RunConfig fields that the rows and seeds set; every other field is one setting of the whole study (alad study
# takes it as the same flag as alad run, e.g. --patience, --head-lr, --phase3-epochs)
ROW_FIELDS = ("mode", "window", "seed", "out", "is_teacher_run", "random_adapter", "skip_phase1", "skip_phase2",
              "teacher_finetuned", "teacher_probe", "adapter_kind", "extra")
STUDY_STEM = "study"  # DIR/study.md|csv|html


def probe_path(out: str | Path) -> Path:
    """The layer probe a study's probed_layer rows read: ``alad probe-layers --task T --models TEACHER --out DIR``."""
    return Path(out) / "probe_layers.json"


def tuned_teacher_path(out: str | Path) -> Path:
    """Where a study's fine-tuned teacher is: the M_L saved by its teacher run (row TEACHER_ROW, seed 0)."""
    return rundir.teacher_dir(Path(out) / TEACHER_ROW / "seed0")


def select_rows(names: Sequence[str] | None) -> tuple[Row, ...]:
    """The rows called ``names`` (in ROWS order); all rows for None."""
    if not names:
        return ROWS
    unknown = [n for n in names if n not in ROW_NAMES]
    if unknown:
        raise ValueError(f"unknown study row(s) {unknown}; choose from {', '.join(ROW_NAMES)}")
    return tuple(r for r in ROWS if r.name in names)


def plan(rows: Sequence[Row], seeds: Sequence[int], out: str | Path, **base) -> list[tuple[Row, RunConfig]]:
    """One RunConfig per (row, seed), writing to ``out/<row>/seed<k>``; ``base``: the fields every run shares."""
    if not seeds:
        raise ValueError("alad study: give at least one seed")
    repeated = sorted({seed for seed in seeds if list(seeds).count(seed) > 1})
    if repeated:  # the same seed twice would train one run twice into one folder
        raise ValueError(f"--seeds: seed {', '.join(map(str, repeated))} is given more than once (one run per seed)")
    runs = []
    for row in rows:
        for seed in list(seeds)[: row.max_seeds]:
            window = {} if row.window is None else {"window": row.window}
            options = dict(row.options)
            if options.get("is_teacher_run"):  # M_L alone: the same run for every student's study
                options["student_layers"] = None
            if row.tuned_teacher:
                options["teacher_finetuned"] = str(tuned_teacher_path(out))
            if row.probed_layer:
                options["teacher_probe"] = str(probe_path(out))
            cfg = RunConfig(**(base | options), mode=row.mode, seed=seed,
                            out=str(Path(out) / row.name / f"seed{seed}"), **window)
            runs.append((row, cfg))
    return runs


def is_finished(cfg: RunConfig) -> bool:
    """True when ``cfg.out`` holds this run finished (``core.runkey.run_state``, the rule sweeps use too); a
    study never overwrites anything else there: another run, or a damaged metrics.json, is an error."""
    state = run_state(cfg)
    if state.problem is not None:
        raise ValueError(f"{state.problem}; move it away or use another --out")
    return state.metrics is not None


def _check_tuned_teacher(runs: list[tuple[Row, RunConfig]], pending: list[bool], out: Path) -> None:
    """A tuned_teacher row to train needs the fine-tuned teacher on disk, or the teacher run in this plan."""
    needs = [row.name for (row, _), todo in zip(runs, pending) if todo and row.tuned_teacher]
    path = tuned_teacher_path(out)
    teacher_planned = any(row.name == TEACHER_ROW for row, _ in runs)
    if needs and not path.is_dir() and not teacher_planned:
        raise ValueError(f"{path}: no fine-tuned teacher for row(s) {', '.join(sorted(set(needs)))}; "
                         f"run the {TEACHER_ROW!r} row first (alad study --rows {TEACHER_ROW} ...)")


def _with_probe(selected: tuple[Row, ...], asked: Sequence[str] | None, out: Path, log) -> tuple[Row, ...]:
    """The probed_layer rows need DIR/probe_layers.json: asked for by name without it, an error; in the default
    set without it, left out with one line saying how to make it."""
    probed = [r.name for r in selected if r.probed_layer]
    if not probed or probe_path(out).is_file():
        return selected
    how = f"alad probe-layers --task T --models TEACHER --out {out}"
    if asked:
        raise ValueError(f"{probe_path(out)}: no layer probe for row(s) {', '.join(probed)}; make it with {how}")
    log(f"alad study: rows {', '.join(probed)} left out: no {probe_path(out)} (make it with {how})")
    return tuple(r for r in selected if not r.probed_layer)


class Progress:
    """"run k of N ... time left ~" lines; the estimate is the mean time of the runs trained so far."""

    def __init__(self, total: int, to_train: int, log: Callable[[str], None]):
        self.total, self.to_train, self.log = total, to_train, log
        self.trained, self.seconds = 0, 0.0

    def start(self, k: int, what: str) -> None:
        left = self.to_train - self.trained
        eta = "?" if not self.trained else _duration(self.seconds / self.trained * left)
        self.log(f"alad study: run {k} of {self.total}: {what} (to train: {left}, time left ~{eta})")

    def done(self, seconds: float) -> None:
        self.trained += 1
        self.seconds += seconds


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def run_study(task: str, teacher: str, student: str, out: str | Path, seeds: Sequence[int] = (0, 1, 2),
              scale: str = "smoke", student_layers: tuple[int, ...] | None = None, rows: Sequence[str] | None = None,
              data_dir: str | None = None, cache_dir: str | None = None, device: str | None = None,
              bench: str | Path | None = None, log: Callable[[str], None] | None = None, options: dict | None = None,
              **run_kwargs) -> dict:
    """Run (or skip, or resume) every row x seed, then write the claims and the grid table; returns paths.

    ``options``: further RunConfig fields every run shares (not the ROW_FIELDS); ``run_kwargs`` go to
    :func:`alad_kit.pipeline.run.run` (tests pass tiny ``task_data`` and ``corpus_fallback``).
    """
    from .run import run

    log = log or logger.info
    out = Path(out)
    owned = sorted(set(options or {}) & set(ROW_FIELDS))
    if owned:
        raise ValueError(f"alad study: {', '.join(owned)} are set by the study's rows, not for the whole study")
    base = dict(task=task, teacher=teacher, student=student, student_layers=student_layers, scale=scale,
                data_dir=data_dir, cache_dir=str(Path(cache_dir) if cache_dir else out / ".alad_cache"), device=device)
    base |= options or {}
    runs = plan(_with_probe(select_rows(rows), rows, out, log), seeds, out, **base)
    pending = [not is_finished(cfg) for _, cfg in runs]  # checks every finished run before training any
    _check_tuned_teacher(runs, pending, out)
    progress = Progress(len(runs), sum(pending), log)
    bar = tqdm(total=len(runs), initial=len(runs) - sum(pending), desc="study", unit="run", leave=True)
    for k, ((row, cfg), todo) in enumerate(zip(runs, pending), start=1):
        if not todo:
            continue
        progress.start(k, f"{row.name} seed{cfg.seed}")
        bar.set_postfix_str(f"{row.name} seed{cfg.seed}")
        t0 = time.perf_counter()
        run(cfg, resume=True, **run_kwargs)
        progress.done(time.perf_counter() - t0)
        bar.update(1)
    bar.close()
    log(f"alad study: {len(runs)} run(s), {sum(pending)} trained now, {len(runs) - sum(pending)} already finished")
    return write_outputs(out, bench)


def write_outputs(out: str | Path, bench: str | Path | None = None, fill: Sequence[str | Path] = (),
                  against: str | Path | None = None) -> dict:
    """claims.json, claims.md and study.md/.csv/.html of the runs below ``out`` (all from their metrics.json), and
    the same files of each study folder below it, so that none is left behind by runs added elsewhere; the
    generated claim blocks of every README in ``fill`` (see alad_kit.analysis.claims_report; ``against``: the
    study folder, e.g. the same rows under other budgets, that their budget-effect block compares with)."""
    from alad_kit.analysis.claims_report import fill as fill_blocks

    out = Path(out)
    bench_data = json.loads(Path(bench).read_text()) if bench is not None else None
    studies = load_studies(out)  # the runs, read once for the claims, claims.md's budgets, every README, the table
    entries, paths = _write_study_files(out, studies, bench, bench_data)
    for study in studies:
        if study.path != out:
            _write_study_files(study.path, [rebased(study, out)], bench, bench_data)
    for k, readme in enumerate(fill):
        fill_blocks(readme, entries, studies, against)
        paths[f"filled_{k}"] = Path(readme)
    return paths


def _write_study_files(out: Path, studies: list, bench, bench_data: dict | None) -> tuple[list[dict], dict]:
    """claims.json, claims.md and study.md/.csv/.html of ``studies`` in ``out``: the entries and the paths."""
    from alad_kit.analysis.claims_report import claims_file_markdown

    entries = compute_claims(studies, bench)
    paths = {"claims_json": write_text_atomic(out / "claims.json", claims_json(entries)),
             "claims_md": write_text_atomic(out / "claims.md", claims_file_markdown(entries, studies))}
    note = ("Mean ± sample std over seeds (POS/NER x100, QA in %). Sz: deployed size in % of the teacher; "
            "Spd: speed-up over the teacher from `alad bench` (blank without --bench).")
    table = grid_table(studies, bench_data)
    paths.update({f"study_{k}": v for k, v in write_formats(table, out, STUDY_STEM, note, "ALAd study").items()})
    return entries, paths


def grid_table(out, bench: dict | None = None) -> pd.DataFrame:
    """Table-1 layout of every study below ``out`` (a folder or its studies): one line per row, in ROWS order."""
    lines = []
    for study in studies_of(out):
        columns = [(key, label, f) for task, key, label, f in score_columns() if task == study.task]
        for row in ROWS:
            seeds = study.runs.get(row.name)
            if not seeds:
                continue
            metrics = [m for _, (_, m) in sorted(seeds.items())]
            model = metrics[0].get("teacher", "?") if metrics[0].get("is_teacher") else student_label(study.student)
            line = {"Model": model, "Row": row.name, "Setting": row.setting,
                    "W": "" if row.window is None else f"W{row.window}"}
            for key, label, factor in columns:
                values = [m["scores"][key] * factor for m in metrics if isinstance(m["scores"].get(key), (int, float))]
                line[label] = _cell(values)
            line["Sz"] = f"{sum(m['size_pct'] for m in metrics) / len(metrics):.1f}"
            line["Spd"] = _speed_cell(bench, study, row, metrics[0])
            line["Seeds"] = str(len(metrics))
            lines.append(line)
    return pd.DataFrame(lines)


def _cell(values: list[float]) -> str:
    if not values:
        return ""
    s = pd.Series(values, dtype=float)
    std = float(s.std(ddof=1)) if len(s) > 1 else 0.0
    return format_cell(float(s.mean()), std, float(s.min()), float(s.max()), len(s), spread="std")


def _speed_cell(bench: dict | None, study, row: Row, metrics: dict) -> str:
    if bench is None:
        return ""
    if metrics.get("is_teacher"):  # M_L itself: the reference speed
        return "1.00"
    kind = dict(row.options).get("adapter_kind", "dense")
    spd = bench_spd(bench, study.student, metrics.get("window"), kind)
    return "" if spd is None else f"{spd:.2f}"
