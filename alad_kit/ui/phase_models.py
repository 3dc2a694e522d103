"""A finished run's models, phase by phase, and the word-level views computed from them.

``alad_kit.pipeline.run`` keeps the phase-1 and phase-2 adapters in its adapter cache and the phase-3 weights in
``RUN_DIR/checkpoints``; the adapter before phase 1 is its seeded initialisation. ``load_phase_models`` puts
them back together as one ``AladModel`` (student encoder + adapter) per phase -- from the run's record in its
metrics.json (``pipeline.record``), with the run's own builders (``pipeline.build``), never by rebuilding the
run or hashing its models -- so a notebook can look at what each phase changed:

* ``word_probes``   -- per-word MSE/cosine to the teacher with the task's tags (POS/NER), per phase;
* ``phase_umap``    -- ONE UMAP map of the teacher's word vectors and the adapted vectors of every phase,
  so the teacher points stay put and the adapted points can be seen moving towards them;
* ``write_phase_umap`` -- the same written as ``RUN_DIR/umap.csv`` (read by the window explorer and the
  run report);
* ``sentence_prober`` -- the window explorer's "type a sentence" callback for several windows' runs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alad_kit.analysis.probes import PHASES, UMAP_COLUMNS, fit_umap, probe_frame, save_run_frame
from alad_kit.core import rundir
from alad_kit.core.config import MODES, RunConfig, scale_config

SHARED_SPACE_NAME = "teacher+adapted"  # the ``space`` label umap_projection gives the teacher's space


@dataclass
class PhaseModels:
    cfg: RunConfig  # the run these models come from
    models: dict  # phase (PHASES order) -> AladModel(student encoder, adapter[, head])
    student_tokenizer: object  # M_C's tokenizer
    teacher: object  # M_L (the phase 1-2 alignment target)
    teacher_tokenizer: object  # M_L's tokenizer
    splits: dict  # the run's task splits (train / validation / test, cut to its scale)
    labels: list | None  # tag set (POS/NER), None for QA
    probe_texts: int  # how many validation texts the run probed (its scale's probe_texts)

    @property
    def phases(self) -> list[str]:
        return [p for p in PHASES if p in self.models]

    def adapter(self, phase: str):
        return self._model(phase).adapter

    def encoder(self, phase: str):
        return self._model(phase).encoder

    def _model(self, phase: str):
        if phase not in self.models:
            raise ValueError(f"run {self.cfg.out} has no phase {phase!r}; it has {self.phases}")
        return self.models[phase]


def load_phase_models(cfg: RunConfig, ensure_run: bool = True) -> PhaseModels:
    """The student + adapter of every phase the run went through (before phase 1 ... after phase 3).

    With ``ensure_run`` a missing or different run in ``cfg.out``, or one made before runs recorded what they
    built, is run first (``experiments.run_or_reuse``; phases 1-2 come from the cache). The models are built
    from the run's record (``metrics.json["record"]``: adapter folders, teacher layer, labels) with
    ``pipeline.build``, as the run built them. Raises ValueError for modes without an adapter or (without
    ``ensure_run``) a run without a record, and FileNotFoundError when the run, the adapter cache or the
    phase-3 checkpoint of the run is gone.
    """
    from alad_kit.core.device import resolve_device
    from alad_kit.core.runkey import run_state
    from alad_kit.models.model import AladModel
    from alad_kit.pipeline import adapter_cache, build
    from alad_kit.pipeline.experiments import run_or_reuse
    from alad_kit.pipeline.record import RECORD_KEY, read_record
    from alad_kit.tasks.specs import get_task
    from alad_kit.training.trainer import load_finished

    if not cfg.uses_adapter:
        raise ValueError(f"load_phase_models: mode {cfg.mode!r} has no adapter, so there are no phases to load")
    metrics = run_or_reuse(cfg) if ensure_run else run_state(cfg).metrics
    if metrics is None:
        raise FileNotFoundError(f"load_phase_models: {cfg.out} holds no finished run of this configuration")
    if ensure_run and RECORD_KEY not in metrics:  # made before runs recorded what they built: run it again
        metrics = run_or_reuse(cfg, rerun=True)
    record = read_record(metrics, cfg.out)
    enc = build.load_encoders(cfg, resolve_device(cfg.device), teacher_layer=record["teacher_layer"])
    splits, labels = _task_data(cfg)
    adapter = build.initial_adapter(cfg, enc.student.config.hidden_size, enc.teacher.config.hidden_size)
    models = {"before_phase1": AladModel(enc.student, adapter)}  # the run's own draw: the adapter before phase 1
    for step in record["adapters"]:  # the run's adapter chain, as it recorded it
        adapter = _cached_adapter(adapter_cache.folder(build.cache_root(cfg), step["phase"], step["key"]))
        models[f"after_{step['phase']}"] = AladModel(enc.student, adapter)

    trains_encoder = bool({"student", "lora"} & set(MODES[cfg.mode].trainable))
    encoder = copy.deepcopy(enc.student) if trains_encoder else enc.student
    final = build.phase3_model(cfg, get_task(cfg.task), record["labels"], encoder, copy.deepcopy(adapter))
    if load_finished("phase3", rundir.checkpoints_dir(cfg.out), final) is None:
        raise FileNotFoundError(f"load_phase_models: {cfg.out}/checkpoints has no finished phase 3; rerun the run")
    models["after_phase3"] = final
    for model in models.values():
        model.eval()
    return PhaseModels(cfg, models, enc.student_tok, enc.teacher, enc.teacher_tok, splits, labels,
                       scale_config(cfg.scale).probe_texts)


def _task_data(cfg: RunConfig):
    """The run's task splits and labels, as its scale cut them (probe words are read from them)."""
    from alad_kit.data.task_data import load_task_data

    return load_task_data(cfg.task, cfg.data_dir, scale_config(cfg.scale), strict=cfg.strict_data)


def _cached_adapter(directory: Path):
    from alad_kit.adapter import AlignmentAdapter
    from alad_kit.pipeline import adapter_cache

    # remove=False: this only reads; the run that owns the cache rebuilds a damaged adapter
    if adapter_cache.read_record(directory, remove=False) is None:
        raise FileNotFoundError(
            f"load_phase_models: the cached adapter {directory} is missing (cache deleted or another cache_dir); "
            "rerun the run with experiments.run_or_reuse(cfg, rerun=True)"
        )
    return AlignmentAdapter.from_pretrained(directory)
# --------------------------------------------------------------------------------------------------
# Word-level views
def probe_words(pm: PhaseModels, n_sentences: int | None = None) -> tuple[list, list | None]:
    """Words (and POS/NER tags, else None) of the run's held-out probe texts: the first ``n_sentences``
    (default: as many as the run probed) of the same validation sample the run's ``probes.csv`` uses."""
    from alad_kit.data.task_data import subsample
    from alad_kit.tasks.specs import get_task

    task = get_task(pm.cfg.task)
    split = subsample(pm.splits["validation"], n_sentences or pm.probe_texts)
    texts = task.texts(split)
    field = getattr(task, "label_field", None)
    tags = [list(t) for t in split[field]] if field else None
    return texts, tags


def _phases(pm: PhaseModels, phases: Sequence[str] | None) -> list[str]:
    chosen = pm.phases if phases is None else list(phases)
    missing = [p for p in chosen if p not in pm.models]
    if missing:
        raise ValueError(f"phases {missing} are not in run {pm.cfg.out} (it has {pm.phases})")
    if not chosen:
        raise ValueError("no phases chosen")
    return chosen


def phase_vectors(pm: PhaseModels, words, phases: Sequence[str] | None = None, batch_size: int = 16,
                  max_length: int = 128) -> tuple[list, list, dict]:
    """(words, teacher vectors, {phase: adapted vectors}) of the same words, per sentence, at each word's
    first sub-word. The teacher runs once; sentences are cut to the words every model kept after truncation."""
    from alad_kit.analysis.probes import embed_tokens

    chosen = _phases(pm, phases)
    teacher = embed_tokens(pm.teacher, pm.teacher_tokenizer, None, words, batch_size, max_length)
    adapted = {
        p: embed_tokens(pm.encoder(p), pm.student_tokenizer, pm.adapter(p), words, batch_size, max_length)
        for p in chosen
    }
    keep = [min(len(w), *(len(a.words[i]) for a in adapted.values())) for i, w in enumerate(teacher.words)]
    kept_words = [w[:k] for w, k in zip(teacher.words, keep)]
    return (kept_words, [h[:k] for h, k in zip(teacher.hidden, keep)],
            {p: [h[:k] for h, k in zip(a.adapted, keep)] for p, a in adapted.items()})


def word_probes(pm: PhaseModels, n_sentences: int | None = None, phases: Sequence[str] | None = None,
                max_length: int = 128) -> pd.DataFrame:
    """Per-word MSE/cosine of adapted vs teacher vectors (``probes.PROBE_COLUMNS``, tags filled) per phase.

    Unlike the run's ``probes.csv`` (every sub-word the adapter was trained on) this reads each word's first
    sub-word, so rows carry the word's tag and ``viz.mse_by_tag`` can group them.
    """
    words, tags = probe_words(pm, n_sentences)
    kept, teacher, adapted = phase_vectors(pm, words, phases, max_length=max_length)
    kept_tags = None if tags is None else [t[: len(w)] for t, w in zip(tags, kept)]
    frames = [probe_frame(kept, kept_tags, vectors, teacher, phase) for phase, vectors in adapted.items()]
    return pd.concat(frames, ignore_index=True)


def phase_umap(pm: PhaseModels, n_sentences: int | None = 12, phases: Sequence[str] | None = None,
               n_neighbors: int = 15, seed: int = 0, max_length: int = 128) -> pd.DataFrame:
    """One 2-D UMAP of the teacher's word vectors and the adapted vectors of each phase.

    Rows: ``probes.UMAP_COLUMNS`` + ``phase``; every phase repeats the teacher's rows (same coordinates)
    next to its adapted rows, so filtering one phase gives a frame ``viz.umap_scatter`` draws, with a
    segment from each word's teacher point to its adapted point. Fitting a single map (not one per phase)
    is what keeps the teacher points in place while the phases change. A few hundred words make a readable
    map (and a fast fit), hence the default of 12 probe sentences; None takes all the run probed.
    """
    words, tags = probe_words(pm, n_sentences)
    kept, teacher_list, adapted = phase_vectors(pm, words, phases, max_length=max_length)
    teacher = np.concatenate(teacher_list)
    n = len(teacher)
    coords = fit_umap(np.concatenate([teacher, *(np.concatenate(a) for a in adapted.values())]),
                       n_neighbors, seed, 0.1, "euclidean")
    flat_words = [w for ws in kept for w in ws]
    flat_tags = [""] * n if tags is None else [t for ts, ws in zip(tags, kept) for t in ts[: len(ws)]]
    sentence = np.repeat(np.arange(len(kept)), [len(w) for w in kept])
    frames = []
    for k, phase in enumerate(adapted):
        for source, xy in (("teacher", coords[:n]), ("adapted", coords[(k + 1) * n : (k + 2) * n])):
            frames.append(pd.DataFrame({
                "x": xy[:, 0], "y": xy[:, 1], "source": source, "space": SHARED_SPACE_NAME, "token": flat_words,
                "tag": flat_tags, "sentence": sentence, "index": np.arange(n), "phase": phase,
            }))
    return pd.concat(frames, ignore_index=True)[[*UMAP_COLUMNS, "phase"]]


def write_phase_umap(pm: PhaseModels, **kwargs) -> Path:
    """``phase_umap`` saved as ``RUN_DIR/umap.csv`` (atomically), where the explorer and report find it."""
    return save_run_frame(phase_umap(pm, **kwargs), pm.cfg.out, stem=rundir.UMAP_STEM)


def sentence_prober(runs: Mapping[int, PhaseModels]):
    """``ExplorerData.embed`` callback: probe a typed sentence with each window's adapters.

    One student is shared by the callback, so only phases whose encoder is the runs' untouched student are
    offered (all four for ``frozen``; phase 3 is left out for modes that fine-tune the student or LoRA).
    """
    from .widgets import make_sentence_prober

    if not runs:
        raise ValueError("sentence_prober: no runs given")
    first = next(iter(runs.values()))
    student = first.encoder("before_phase1")
    adapters = {
        window: {p: pm.adapter(p) for p in pm.phases if pm.encoder(p) is pm.encoder("before_phase1")}
        for window, pm in runs.items()
    }
    return make_sentence_prober(student, first.student_tokenizer, first.teacher, first.teacher_tokenizer, adapters)


def explorer_data(configs, umap_sentences: int | None = 12, prober: bool = True, rewrite_umap: bool = False):
    """``widgets.ExplorerData`` for runs that differ in their window: runs (or reuses) them, writes each
    run's ``umap.csv`` (``write_phase_umap``) unless one newer than its metrics.json exists, and, with ``prober``, lets the explorer probe
    typed sentences with every window's adapters."""
    from alad_kit.pipeline.experiments import sweep

    from .widgets import ExplorerData

    configs = list(configs)
    if len({c.window for c in configs}) != len(configs):
        raise ValueError("explorer_data: give one configuration per window")
    sweep(configs)
    runs = {cfg.window: load_phase_models(cfg, ensure_run=False) for cfg in configs}
    for pm in runs.values():
        if rewrite_umap or not _fresh_umap(Path(pm.cfg.out)):
            write_phase_umap(pm, n_sentences=umap_sentences)
    first = configs[0]
    return ExplorerData.from_runs([c.out for c in configs], task=first.task, mode=first.mode,
                                  embed=sentence_prober(runs) if prober else None)


def _fresh_umap(run_dir: Path) -> bool:
    """A UMAP file written after the run's metrics.json (a rerun makes the old map stale)."""
    metrics = rundir.metrics_path(run_dir)
    maps = rundir.frame_paths(run_dir, rundir.UMAP_STEM)
    return metrics.is_file() and any(p.stat().st_mtime_ns >= metrics.stat().st_mtime_ns for p in maps)
