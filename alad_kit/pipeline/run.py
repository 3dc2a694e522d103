"""One ALAd experiment: phases 1-3 for a (task, teacher, student, mode, window, seed, scale).

    phase 1  adapter <- MSE to M_L on plain corpus text         (cached per teacher/student/window/seed)
    phase 2  adapter <- MSE to M_L on the task's *train* text   (cached per task as well)
    phase 3  head [+ adapter] [+ M_C | LoRA] <- task loss        (best validation epoch kept, test reported)

Everything a run writes lands in ``cfg.out``: ``metrics.json`` (atomically, last), ``history.json`` (loss
curves), ``probes.csv`` (per-token alignment error on held-out text, for the notebooks' explorer) and
``checkpoints/`` for ``--resume``. Phase-1/2 adapters and frozen-encoder embeddings live in a shared cache
(``cfg.cache_dir``) so that the other modes, windows and seeds reuse them.
"""

from __future__ import annotations

import logging
import shutil
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path

from alad_kit.adapter import AlignmentAdapter
from alad_kit.core import rundir
from alad_kit.core.checkpoint import digest as _digest
from alad_kit.core.config import (
    FROZEN_STUDENT_MODES,
    RunConfig,
    alignment_phases,
    phase3_config,
    scale_config,
)
from alad_kit.core.device import resolve_device
from alad_kit.core.locks import owned, sole_owner
from alad_kit.core.precision import resolve_precision
from alad_kit.core.preflight import check_writable
from alad_kit.core.progress import progress as tqdm
from alad_kit.core.runkey import checkpoint_digest
from alad_kit.core.timing import BUCKETS
from alad_kit.data.task_data import load_corpus_texts, load_task_data, subsample
from alad_kit.models.model import AladModel
from alad_kit.models.quant_safetensors import is_int8_directory
from alad_kit.pipeline import adapter_cache
from alad_kit.pipeline.build import Encoders, cache_root, initial_adapter, load_encoders, phase3_model
from alad_kit.pipeline.record import Tally, phase_record, run_metrics, run_size, write_run_outputs
from alad_kit.tasks.specs import Batcher, get_task
from alad_kit.training.cache import EmbeddingCache, model_fingerprint
from alad_kit.training.phases import (
    OBJECTIVES,
    AlignmentData,
    build_alignment_data,
    chunk_texts,
    token_probe_frame,
)
from alad_kit.training.tracking import RunTracker
from alad_kit.training.trainer import PhaseResult, load_finished, phase_digest, train_phase

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
class Experiment:
    """Runs one run: ``run()`` is the whole pipeline. Its models are built by :mod:`.build`; what it records
    goes to ``self.tally``, which :mod:`.record` turns into metrics.json (with the record of what it built)."""

    def __init__(self, cfg: RunConfig, resume: bool = False, callbacks=(), corpus_fallback=None, task_data=None):
        from accelerate import PartialState

        # What the run is: fixed here, read by every step.
        self.cfg, self.resume, self.callbacks = cfg, resume, tuple(callbacks)
        self.scale = scale_config(cfg.scale)
        self.device = resolve_device(cfg.device)  # one line for a missing GPU, before any model loads
        self.precision = run_precision(cfg, self.scale.precision, self.device)
        self.task = get_task(cfg.task)
        self.out = Path(cfg.out)
        self.cache_root = cache_root(cfg)
        self.embeddings = EmbeddingCache(self.cache_root / "embeddings", enabled=cfg.use_cache)
        self.corpus_fallback = corpus_fallback  # phase-1 texts when no corpus is found (None: the default)
        self._task_data = task_data  # (splits, labels) given by the caller instead of loading them
        self.dist = PartialState(cpu=self.device == "cpu")  # under torchrun / accelerate launch: one writer, all wait

        # Models and data: set by load_models() and load_data().
        self.enc: Encoders | None = None  # M_L and M_C with their tokenizers (pipeline.build.load_encoders)
        self.student = self.student_tok = None  # self.enc's M_C (cut to cfg.student_layers) and its tokenizer
        self.splits: dict | None = None  # the task's splits, train / validation / test
        self.labels: list[str] | None = None  # label set (None for QA)
        # Set by make_adapter() and phase3(): what later steps and the run's files need.
        self.probe: AlignmentData | None = None  # held-out text every alignment measurement reads
        self.model: AladModel | None = None  # the phase-3 model (the deployed one)
        self.phase3_result: PhaseResult | None = None  # phase 3's steps, history and best epoch

        # What the run records as it goes (metrics.json, history.json, probes.csv): pipeline.record reads it.
        self.tally = Tally()
        self.truncation: dict | None = None  # words cut by max_length per split (POS/NER)
        self.phase3_student_fills = 0  # student passes that filled the phase-3 feature cache
        self.phase_bar = None  # the outer progress bar over the phases, while run() runs

    # ---------------------------------------------------------------------------------------------
    def load_models(self):
        t0 = time.perf_counter()
        self.enc = load_encoders(self.cfg, self.device)
        self.student, self.student_tok = self.enc.student, self.enc.student_tok
        # hashed once, before phase 3 may train M_C: every cache key and the run's record name these
        self.tally.fingerprints = {"teacher": model_fingerprint(self.enc.teacher),
                                   "student": model_fingerprint(self.student)}
        self.tally.timings["load_models"] = time.perf_counter() - t0

    def load_data(self):
        t0 = time.perf_counter()
        if self._task_data is not None:
            self.splits, self.labels = self._task_data
        else:
            self.splits, self.labels = load_task_data(self.task, self.cfg.data_dir, self.scale,
                                                      strict=self.cfg.strict_data)
        for name, split in self.splits.items():
            if len(split) == 0:
                raise ValueError(f"task {self.cfg.task}: the {name} split is empty")
        self.tally.timings["load_data"] = time.perf_counter() - t0

    # ---------------------------------------------------------------------------------------------
    def alignment_data(self, texts, desc: str) -> AlignmentData:
        s = self.scale
        return build_alignment_data(
            texts, self.student, self.student_tok, self.enc.teacher, self.enc.teacher_tok,
            self.embeddings if self.cfg.use_cache else None, s.max_length, s.eval_batch_size, self.device, desc,
            self.precision,
        )

    def adapter_key(self, phase_name: str, parent: str | None, texts_digest: str | None = None) -> str:
        """Cache key of the adapter a phase produces (see ``adapter_cache.adapter_key``)."""
        phases = alignment_phases(self.scale, self.precision, self.cfg.phase2_epochs)
        epochs = {p.name: p.epochs for p in phases}[phase_name]
        return adapter_cache.adapter_key(self.cfg, phase_name, epochs, self.tally.fingerprints["teacher"],
                                         self.tally.fingerprints["student"], self.precision, parent, texts_digest)

    def phase_texts(self, phase_name: str) -> list:
        """The exact texts an alignment phase trains on (and that its adapter cache key names)."""
        if phase_name == "phase1":  # long lines cut into pieces, so that max_length truncates none of them
            return chunk_texts(load_corpus_texts(self.cfg.corpus_dir or self.cfg.data_dir, self.scale.corpus_texts,
                                                 self.corpus_fallback), self.scale.corpus_chunk_words)
        return self.task.texts(self.splits["train"])

    def alignment_steps(self):
        """``(phase, texts, key, adapter directory)`` of each alignment phase the run goes through, in order.

        The one definition of the adapter chain: phase 2's parent is phase 1's key ("none" when phase 1 is
        skipped), and each key names the exact texts (other task text or the fallback corpus is another key).
        Texts are read lazily, so phase 2's are only loaded once phase 1 is done.
        """
        cfg = self.cfg
        if not cfg.uses_adapter or cfg.random_adapter:
            return
        parent = None
        phases = alignment_phases(self.scale, self.precision, cfg.phase2_epochs)
        for phase, skipped in zip(phases, (cfg.skip_phase1, cfg.skip_phase2)):
            if skipped:
                continue
            texts = self.phase_texts(phase.name)
            key = self.adapter_key(phase.name, None if phase.name == "phase1" else (parent or "none"), _digest(texts))
            yield phase, texts, key, adapter_cache.folder(self.cache_root, phase.name, key)
            parent = key

    def align_phase(self, phase, texts, final: Path, adapter: AlignmentAdapter) -> None:
        """Train (or load from the adapter cache at ``final``) one alignment phase."""
        # one process owns the .partial folder; an identical run waits here, then loads the finished adapter
        with owned(final) if self.dist.is_main_process else nullcontext():
            model = self._train_or_load(phase, texts, final, adapter)
        self._phase_done(phase.name)
        self.measure_alignment(f"after_{phase.name}", model)

    def _train_or_load(self, phase, texts, final: Path, adapter: AlignmentAdapter) -> AladModel:
        model = AladModel(self.student, adapter).to(self.device)
        # --no-cache is how phase timings without any cache are measured: it never reads a finished adapter
        saved = adapter_cache.read_record(final, remove=self.dist.is_main_process) if self.cfg.use_cache else None
        if saved is not None:
            adapter.load_state_dict(AlignmentAdapter.from_pretrained(final).state_dict())
            self.tally.history[phase.name] = saved["history"]
            self.tally.timings[phase.name] = 0.0
            self.tally.timings[f"{phase.name}_cached_from"] = saved["seconds"]
            self.tally.phases[phase.name] = saved.get("phase", {}) | {
                "seconds": 0.0, "student_passes": 0, "reused": True, "timing": dict.fromkeys([*BUCKETS, "other"], 0.0),
                "prepare_seconds": 0.0}
        else:
            partial = adapter_cache.partial_dir(final)
            if partial.exists() and not self.resume and self.dist.is_main_process:
                shutil.rmtree(partial)
            self.dist.wait_for_everyone()
            misses, t0 = self.embeddings.stats.misses, time.perf_counter()
            data = self.alignment_data(texts, phase.name)
            prepared = time.perf_counter() - t0
            t0 = time.perf_counter()
            result = train_phase(
                phase, model, len(data), data.make_batch, OBJECTIVES[phase.objective](self.task),
                batch_size=self.scale.batch_size, seed=self.cfg.seed, checkpoint_dir=partial, resume=self.resume,
                callbacks=self.callbacks, device=self.device, lengths=data.student_lengths(), config_digest=final.name,
                prefetch=data.cached,  # live encoders run a model (and dropout) per batch: those stay in line
            )
            self.tally.timings[phase.name] = time.perf_counter() - t0
            self.tally.history[phase.name] = result.history
            # student and teacher each cost one pass when their cache entry was filled now, none when it was warm
            passes = min(self.embeddings.stats.misses - misses, 1) if self.cfg.use_cache else result.examples / len(data)
            self.tally.phases[phase.name] = phase_record(result, passes, prepared)
            if self.dist.is_main_process:
                adapter_cache.publish(adapter, final, {"history": result.history, "seconds": result.seconds,
                                                       "steps": result.steps, "tokens": result.tokens,
                                                       "phase": self.tally.phases[phase.name]})
            self.dist.wait_for_everyone()
        return model

    @contextmanager
    def phase_progress(self):
        """The outer progress bar over the phases (closed on errors too, so an error starts a line of its own)."""
        self.phase_bar = tqdm(total=len(planned_phases(self.cfg)), desc=f"{self.cfg.task} {self.cfg.mode}",
                              unit="phase", leave=True, disable=not self.dist.is_main_process)
        try:
            yield self.phase_bar
        finally:
            self.phase_bar.close()
            self.phase_bar = None

    def _phase_done(self, name: str) -> None:
        record = self.tally.phases.get(name, {})
        how = "reused from the cache" if record.get("reused") else f"{record.get('steps')} steps, {record.get('seconds')} s"
        log.info("%s done: %s (%s)", name, how, self.out)
        if self.phase_bar is not None:
            self.phase_bar.set_postfix_str(f"{name} done")
            self.phase_bar.update(1)

    def measure_alignment(self, stage: str, model: AladModel, live_student: bool = False) -> None:
        """Held-out alignment after ``stage``: the mean MSE/cosine and the per-token rows behind them."""
        # One pass over the probe text: the summary is the mean of the per-token rows.
        probe = self.probe
        if live_student:
            probe = probe.with_student(model.encoder)  # the fine-tuned M_C: the cache holds the original's states
        frame = token_probe_frame(model, probe, self.student_tok, stage, self.scale.eval_batch_size, self.device,
                                  self.precision)
        self.tally.probe_frames.append(frame)
        self.tally.alignment[stage] = {"mse": float(frame["mse"].mean()), "cosine": float(frame["cosine"].mean()),
                                 "tokens": len(frame)}

    def make_adapter(self) -> AlignmentAdapter | None:
        cfg = self.cfg
        if not cfg.uses_adapter:
            return None
        adapter = initial_adapter(cfg, self.student.config.hidden_size, self.enc.teacher.config.hidden_size)
        probe_texts = self.task.texts(subsample(self.splits["validation"], self.scale.probe_texts))
        probe = self.alignment_data(probe_texts, "probe")
        self.probe = probe
        self.measure_alignment("before_phase1", AladModel(self.student, adapter).to(self.device))
        for phase, texts, key, final in self.alignment_steps():
            self.tally.adapters.append({"phase": phase.name, "key": key, "folder": str(final)})
            self.align_phase(phase, texts, final, adapter)
        return adapter

    # ---------------------------------------------------------------------------------------------
    def phase3(self, adapter: AlignmentAdapter | None):
        cfg, scale, task = self.cfg, self.scale, self.task
        model = phase3_model(cfg, task, self.labels, self.student, adapter).to(self.device)
        self.model = model
        t0 = time.perf_counter()
        batchers = self.phase3_batchers()
        prepared = time.perf_counter() - t0
        phase = phase3_config(cfg.mode, cfg.task, scale, lr=cfg.lr, part_lr=cfg.part_lr, precision=self.precision,
                              epochs=cfg.phase3_epochs, patience=cfg.patience)

        def evaluate(m, split="validation"):
            return task.evaluate(m, self.splits[split], batchers[split], scale.eval_batch_size, self.device,
                                 self.labels, batchers[split].pad_token_id, self.precision)

        ckpt_dir, train = rundir.checkpoints_dir(self.out), batchers["train"]
        run_digest = checkpoint_digest(cfg)
        t0 = time.perf_counter()
        result = None
        if self.resume:  # a finished phase 3 of another configuration is refused, never reported as this one
            expected = phase_digest(phase, len(train), scale.batch_size, cfg.seed, run_digest, self.dist.num_processes)
            result = load_finished(phase.name, ckpt_dir, model, expected)
        if result is None:
            result = train_phase(
                phase, model, len(train), train, OBJECTIVES[phase.objective](task), batch_size=scale.batch_size,
                seed=cfg.seed, checkpoint_dir=ckpt_dir, resume=self.resume, callbacks=self.callbacks,
                device=self.device, evaluate=lambda m: evaluate(m)[task.selection_metric], lengths=train.lengths(),
                config_digest=run_digest, prefetch=True,  # a Batcher only collates features (and cached states)
            )
        self.tally.timings["phase3"] = time.perf_counter() - t0
        self.tally.history["phase3"] = result.history
        self.phase3_result = result
        passes = 0 if train.hidden is not None else result.examples / len(train)
        self.tally.phases["phase3"] = phase_record(result, passes, prepared)
        if train.hidden is not None:
            self.tally.phases["phase3"]["student_passes"] = self.phase3_student_fills
        self._phase_done("phase3")
        t0 = time.perf_counter()
        scores = evaluate(model, "test")
        self.tally.timings["evaluate_test"] = time.perf_counter() - t0
        return scores

    def phase3_batchers(self) -> dict[str, Batcher]:
        """Phase-3 features of every split; for a frozen M_C (modes head, frozen) with its hidden states read
        from the embedding cache: one student pass fills it, none once it is warm."""
        cfg, scale, task = self.cfg, self.scale, self.task
        kw = dict(max_length=task.max_length(scale), doc_stride=task.doc_stride(scale))
        pad = self.student_tok.pad_token_id or 0
        feats = {name: task.features(self.splits[name], self.student_tok, self.labels, **kw) for name in self.splits}
        truncation = {name: task.truncation(f) for name, f in feats.items()}  # words cut (POS, NER); else None
        if None not in truncation.values():
            self.truncation = truncation
        cached = cfg.use_cache and cfg.mode in FROZEN_STUDENT_MODES  # M_L frozen in a teacher head run too
        batchers, misses = {}, self.embeddings.stats.misses
        for name, f in feats.items():
            hidden = None
            # the test split runs M_C live, once, as the deployed model does (alad evaluate gives the same scores)
            if cached and name != "test":
                segments = [x["token_type_ids"] for x in f] if "token_type_ids" in f[0] and task.pairs else None
                hidden = self.embeddings.get(
                    self.student, [x["input_ids"] for x in f], pad, scale.eval_batch_size, self.device,
                    f"student {name}", self.precision, token_type_ids=segments,
                    dtype="float32" if self.precision == "fp32" else "float16",  # fp32: cached == live batches
                )
                if name == "train":
                    self.phase3_student_fills = self.embeddings.stats.misses - misses
            batchers[name] = Batcher(f, pad, hidden)
        return batchers

    # ---------------------------------------------------------------------------------------------
    def run(self) -> dict:
        cfg, start = self.cfg, time.perf_counter()
        from transformers import set_seed

        set_seed(cfg.seed)
        # one run per --out, checked before anything is written: a second one is refused at once
        with sole_owner(self.out) if self.dist.is_main_process else nullcontext():
            return self._run(start)

    def _run(self, start: float) -> dict:
        cfg = self.cfg
        if self.scale.name == "smoke" and self.dist.is_main_process:
            log.warning("scale smoke: a few dozen examples, so the scores only test the pipeline, not the method")
        if self.scale.name == "full" and self.device == "cpu" and self.dist.is_main_process:
            log.warning("scale full on a CPU: all of the data at the paper's budgets is meant for a GPU and takes "
                        "many hours to days here (--scale cpu: about a quarter of an hour per run on two cores)")
        check_writable(self.out)  # a read-only --out must fail now, not after phases 1-2
        check_writable(self.cache_root, "cache folder")
        self.load_data()
        self.load_models()
        with self.phase_progress():
            adapter = self.make_adapter()
            scores = self.phase3(adapter)
        if adapter is not None:
            self.measure_alignment("after_phase3", self.model, live_student=cfg.mode not in FROZEN_STUDENT_MODES)
        size = run_size(self)
        self.tally.timings["total"] = time.perf_counter() - start
        metrics = run_metrics(self, adapter, scores, size)
        if not self.dist.is_main_process:
            return metrics
        write_run_outputs(self, metrics, adapter)
        return metrics


def run_precision(cfg: RunConfig, default: str, device: str) -> str:
    """The run's compute precision: ``cfg.precision``, else the scale's default (``resolve_precision``), except
    that a torch.ao int8 student (an ``alad compress dynamic_int8 / static_int8`` folder) computes in fp32: its
    quantized kernels take fp32 activations only (under bf16 autocast they fail with "expected scalar type Float
    but found BFloat16"). Asking for bf16 with such a student is an error naming the folder."""
    if Path(cfg.student).is_dir() and is_int8_directory(cfg.student):
        if cfg.precision == "bf16":
            raise ValueError(f"{cfg.student}: an int8 (torch.ao) student computes in fp32 only; drop --precision bf16")
        return "fp32"
    return resolve_precision(cfg.precision, default, device)


def planned_phases(cfg: RunConfig) -> list[str]:
    """The phases a run of ``cfg`` goes through (a cached one counts: it is loaded instead of trained)."""
    aligned = cfg.uses_adapter and not cfg.random_adapter
    skipped = {"phase1": cfg.skip_phase1, "phase2": cfg.skip_phase2}
    return [name for name, skip in skipped.items() if aligned and not skip] + ["phase3"]


def run(cfg: RunConfig, resume: bool = False, callbacks=(), log_with: str | None = None, **kwargs) -> dict:
    """Run one experiment and return its metrics (also written to ``cfg.out/metrics.json``).

    ``log_with`` (an accelerate tracker, e.g. "tensorboard") writes loss and lr per step and the validation
    score per epoch under ``cfg.out/logs/`` (see :class:`alad_kit.training.tracking.RunTracker`).
    """
    tracker = RunTracker(log_with, cfg.out, asdict(cfg)) if log_with else None
    try:
        return Experiment(cfg, resume=resume, callbacks=(*callbacks, *([tracker] if tracker else [])), **kwargs).run()
    finally:
        if tracker is not None:
            tracker.close()
