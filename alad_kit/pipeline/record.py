"""What a finished run records: the ``metrics.json`` dictionary and the files of its run directory.

``Experiment.run`` (in :mod:`.run`) trains; this module only turns what it holds into the run's records, so
the list of metrics keys and the order the files are written in (metrics.json last: a run directory with it
is a finished run, see :mod:`alad_kit.core.rundir`) have one place.

``metrics.json["record"]`` is **the record of what the run built**, for readers that need the run's models
(``ui.phase_models``): the run key, the models' fingerprints, M_L's hidden state the run aligned to, the
label set, the cache folder and, per alignment phase, its adapter cache key and folder. With the resolved
configuration beside it (``config``, ``scale_config``, ``precision``) a reader rebuilds the run's models with
``pipeline.build`` and never loads the phase-1 corpus or hashes a model to find them. It is written once,
inside metrics.json (atomically, last, by the run that owns the folder under ``core.locks.sole_owner``);
:func:`read_record` reads it back. Runs made before it existed have metrics.json without it: tables, studies
and reports read them as before; only readers of the models need a rerun.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from alad_kit.core import rundir
from alad_kit.core.checkpoint import digest
from alad_kit.core.io import atomic_dir, versions
from alad_kit.core.runkey import run_key
from alad_kit.training.trainer import PhaseResult


@dataclass
class Tally:
    """What a run records as it goes; :func:`run_metrics` and :func:`write_run_outputs` turn it into files."""

    timings: dict = field(default_factory=dict)  # seconds per step, "<phase>_cached_from" for reused adapters
    history: dict = field(default_factory=dict)  # [step, loss] per phase
    alignment: dict = field(default_factory=dict)  # mean MSE / cosine / tokens per stage (before_phase1, ...)
    probe_frames: list = field(default_factory=list)  # the per-token rows behind `alignment`
    phases: dict = field(default_factory=dict)  # metrics["phases"]: what each phase that ran cost and used
    fingerprints: dict = field(default_factory=dict)  # model_fingerprint of M_L and M_C as loaded (cache keys')
    adapters: list = field(default_factory=list)  # the record's adapters: phase, cache key, folder, in order


def phase_record(result: PhaseResult, student_passes: float, prepare_seconds: float = 0.0) -> dict:
    """What metrics.json records of a phase that ran: its cost, precision, learning rates, student passes.

    ``timing`` splits the phase's ``seconds`` (the training loop's wall) into data, compute, eval and io
    seconds (see :mod:`alad_kit.core.timing`) and ``other`` (progress bar, callbacks: the rest);
    ``prepare_seconds`` is what the run spent before the loop (tokenising, filling the embedding cache).
    """
    split = {bucket: round(value, 3) for bucket, value in result.timing.items()}
    split["other"] = round(max(result.seconds - sum(result.timing.values()), 0.0), 3)
    return {"steps": result.steps, "tokens": result.tokens, "seconds": round(result.seconds, 2),
            "precision": result.precision, "lr": dict(result.lr), "student_passes": round(float(student_passes), 3),
            "stopped_by": result.stopped_by, "timing": split, "prepare_seconds": round(prepare_seconds, 2)}


def run_size(exp) -> dict:
    """Deployed parameters of the run's phase-3 model, and Sz: in % of M_L with the same head."""
    head_on_teacher = exp.task.make_head(exp.enc.teacher.config.hidden_size, exp.labels)
    reference = exp.enc.teacher_params + sum(p.numel() for p in head_on_teacher.parameters())
    deployed = exp.model.deployed_parameters()
    return {"deployed": deployed, "teacher_reference": reference, "size_pct": 100.0 * deployed / reference}


def run_metrics(exp, adapter, scores: dict, size: dict) -> dict:
    """``metrics.json`` of the finished :class:`~alad_kit.pipeline.run.Experiment` ``exp``."""
    cfg = exp.cfg
    metrics = {
        "task": cfg.task, "teacher": cfg.teacher, "student": cfg.teacher if cfg.is_teacher_run else cfg.student,
        "student_layers": list(cfg.student_layers) if cfg.student_layers else None, "mode": cfg.mode,
        "window": cfg.window if adapter is not None else None, "seed": cfg.seed, "scale": cfg.scale,
        "scale_config": asdict(exp.scale),
        "is_teacher": cfg.is_teacher_run, "teacher_layer": exp.enc.teacher_layer, "scores": scores,
        "params": {"deployed": size["deployed"], "teacher_reference": size["teacher_reference"]},
        "size_pct": size["size_pct"], "alignment": exp.tally.alignment,
        "adapter_flops_per_token": adapter.flops_per_token() if adapter is not None else None,
        "selection": {"metric": exp.task.selection_metric, "best_epoch": exp.phase3_result.best_epoch,
                      "validation": exp.phase3_result.eval_history, "stopped_by": exp.phase3_result.stopped_by},
        # a phase-3 lr other than the paper's is a variant too: tables keep such runs out of Table 1
        "ablation": {"skip_phase1": cfg.skip_phase1, "skip_phase2": cfg.skip_phase2,
                     "random_adapter": cfg.random_adapter,
                     # aligned to another hidden state of M_L than the last: a variant of its row
                     "teacher_layer": exp.enc.teacher_layer if exp.enc.teacher_layer != exp.enc.teacher_depth else None,
                     "lr_override": ({"all": cfg.lr} if cfg.lr else {}) | {k: v for k, v in cfg.part_lr.items() if v}
                     if cfg.lr_overridden else None,
                     "adapter_kind": None if cfg.adapter_kind == "dense" else cfg.adapter_kind},
        "phase3_lr": exp.phase3_result.lr, "precision": exp.precision, "phases": exp.tally.phases,
        "truncation": None if exp.truncation is None else {
            "test_words_cut_pct": exp.truncation["test"]["words_cut_pct"], "by_split": exp.truncation},
        "data": {name: len(split) for name, split in exp.splits.items()},
        "cache": exp.embeddings.stats.as_dict() | {"enabled": cfg.use_cache},
        "timings": exp.tally.timings, "versions": versions(), "device": exp.device,
        "config": {k: v for k, v in asdict(cfg).items() if k != "extra"}, "extra": cfg.extra,
        RECORD_KEY: run_record(exp),
    }
    return metrics


RECORD_KEY = "record"  # metrics.json's section of what the run built (see the module doc)


def run_record(exp) -> dict:
    """``metrics.json["record"]`` of the run ``exp``: what it built, so readers never rebuild it."""
    return {
        "run_key": digest(run_key(exp.cfg)),  # core.runkey.run_key of the configuration, as a digest
        "fingerprints": dict(exp.tally.fingerprints),  # training.cache.model_fingerprint of M_L and M_C as loaded
        "teacher_layer": exp.enc.teacher_layer, "teacher_depth": exp.enc.teacher_depth,
        "labels": exp.labels,  # the head's label set (None for QA)
        "cache_dir": str(exp.cache_root),  # the embedding / adapter cache the run used
        # per alignment phase, in order: phase, cache key, folder (as the run saw it; readers take the key
        # and their own cache folder, adapter_cache.folder, since a study folder may move)
        "adapters": [dict(a) for a in exp.tally.adapters],
    }


def read_record(metrics: dict, run_dir) -> dict:
    """The record of the finished run in ``run_dir`` (its ``metrics``); a one-line ValueError naming the file
    when the run was made before runs recorded what they built."""
    record = metrics.get(RECORD_KEY)
    if not isinstance(record, dict):
        raise ValueError(f"{rundir.metrics_path(run_dir)}: no '{RECORD_KEY}' of what the run built (made by an "
                         "older alad_kit); rerun the run to read its models")
    return record


def write_run_outputs(exp, metrics: dict, adapter) -> None:
    """The run's files, in an order that never pairs them with an earlier run's (see core.rundir): the old
    record goes, then OUT/model/ and the tuned teacher (teacher runs) are replaced whole, then history.json and
    probes are written and, last, metrics.json."""
    from alad_kit.models.deploy import save_run_model

    rundir.clear_record(exp.out)
    # OUT/model/: the deployable model (alad predict / evaluate / export)
    save_run_model(rundir.model_dir(exp.out), exp.model, exp.labels, exp.student_tok, exp.cfg, metrics)
    if exp.cfg.is_teacher_run:  # the task-fine-tuned M_L, usable as a phase 1-2 teacher (--teacher-finetuned)
        _save_encoder(exp.model.encoder, exp.student_tok, rundir.teacher_dir(exp.out))
    rundir.write_history(exp.out, exp.tally.history)
    if adapter is not None:  # per-token MSE/cosine on the held-out probe text after every stage (explorer)
        import pandas as pd

        from alad_kit.analysis.probes import save_run_frame

        save_run_frame(pd.concat(exp.tally.probe_frames, ignore_index=True), exp.out, rundir.PROBES_STEM)
    rundir.write_metrics(exp.out, metrics)


def _save_encoder(encoder, tokenizer, directory: Path) -> None:
    with atomic_dir(directory) as staging:
        encoder.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
