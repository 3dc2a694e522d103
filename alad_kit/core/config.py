"""Configuration: scales, phases and run settings, all frozen dataclasses.

One switch, ``scale``, shrinks every run (data slices, phase budgets, sequence lengths) the way big_vision's
``runlocal`` does: ``smoke`` runs in seconds on a CPU (tests, CI: the pipeline, not the method), ``tiny``
shows the method in a minute or two per run on two cores (``alad demo``, the notebooks run by a person),
``cpu`` uses the offline models and real data sub-sampled so one task x student x mode run takes about a
quarter of an hour on two cores, ``full`` uses all of the data and the paper's budgets (meant for a GPU).

The three training phases are *data* (:class:`PhaseConfig`); :mod:`alad_kit.training.trainer` runs any of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from alad_kit.adapter import ADAPTER_KINDS

from .registry import Registry

# The tasks, filled by alad_kit.tasks (built-ins) and alad_kit.tasks.register (plug-ins): name -> task spec.
TASKS = Registry("task")
SCALES = ("smoke", "tiny", "cpu", "full")  # smallest to largest
PRECISIONS = ("fp32", "bf16")  # training / evaluation autocast
ADAPTER_PRECISIONS = ("fp32", "int8", "bf16")  # the deployed adapter (int8: dynamic quantization)


def _check_choice(what: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(map(str, choices))}")


@dataclass(frozen=True)
class ScaleConfig:
    name: str  # smoke | tiny | cpu | full
    train_examples: int | None  # task training examples used (None: all)
    eval_examples: int | None  # validation examples (model selection)
    test_examples: int | None  # test examples (reported scores)
    corpus_texts: int | None  # phase-1 corpus lines
    phase1_epochs: int  # passes over the phase-1 corpus slice
    phase2_epochs: int  # paper: 10
    phase3_epochs: dict  # per task, filled from each task's own budget (Task.phase3_epochs) when it registers
    max_length: int  # token limit for POS/NER/corpus sentences
    qa_max_length: int  # token limit of one QA window (question + context)
    qa_doc_stride: int  # overlap between QA windows of a long context
    batch_size: int  # training batch size
    eval_batch_size: int  # inference batch size
    probe_texts: int  # held-out texts for the alignment MSE/cosine report
    checkpoint_every: int = 50  # optimizer steps between resumable checkpoints
    precision: str = "fp32"  # default compute precision (bf16 falls back to fp32 where the hardware lacks it)
    corpus_chunk_words: int = 64  # phase-1 lines longer than this are cut into pieces, so no text is truncated

    def __post_init__(self):
        _check_choice("scale", self.name, SCALES)
        for name in ("max_length", "qa_max_length", "batch_size", "eval_batch_size", "probe_texts"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ScaleConfig.{name} must be positive")
        if not 0 < self.qa_doc_stride < self.qa_max_length:
            raise ValueError("ScaleConfig.qa_doc_stride must lie in (0, qa_max_length)")
        _check_choice("precision", self.precision, PRECISIONS)


SCALE_PRESETS = {
    "smoke": ScaleConfig(
        "smoke", train_examples=48, eval_examples=24, test_examples=24, corpus_texts=96,
        phase1_epochs=1, phase2_epochs=2, phase3_epochs={},
        max_length=48, qa_max_length=128, qa_doc_stride=48, batch_size=16, eval_batch_size=32, probe_texts=16,
        checkpoint_every=2,
    ),
    # tiny: enough steps for the losses to fall and the scores to leave zero, little enough text for the teacher
    # (mpnet-base, the costly forward pass) that a run takes a minute or two on two idle cores: phase 1 reads 480
    # pieces of <= 40 words (30 steps), phase 2 sees 1,000 task texts 4 times (252 steps), phase 3 5 NER epochs.
    "tiny": ScaleConfig(
        "tiny", train_examples=1000, eval_examples=200, test_examples=300, corpus_texts=480,
        phase1_epochs=1, phase2_epochs=4, phase3_epochs={},
        max_length=64, qa_max_length=192, qa_doc_stride=64, batch_size=16, eval_batch_size=64, probe_texts=80,
        checkpoint_every=25, precision="bf16", corpus_chunk_words=40,
    ),
    # cpu: phase 3 long enough for the validation score to flatten (NER 1,504 steps, best epoch 4-7 of 8; POS
    # 1,380; QA ~450; curves in results/cpu), phase 1 reads the whole corpus once (cut into <= 64-word
    # pieces), bf16 where the CPU has it.
    "cpu": ScaleConfig(
        "cpu", train_examples=6000, eval_examples=500, test_examples=None, corpus_texts=None,
        phase1_epochs=1, phase2_epochs=10, phase3_epochs={},
        max_length=128, qa_max_length=256, qa_doc_stride=96, batch_size=32, eval_batch_size=64, probe_texts=200,
        precision="bf16",
    ),
    "full": ScaleConfig(
        "full", train_examples=None, eval_examples=None, test_examples=None, corpus_texts=None,
        phase1_epochs=1, phase2_epochs=10, phase3_epochs={},
        max_length=128, qa_max_length=384, qa_doc_stride=128, batch_size=32, eval_batch_size=128, probe_texts=1000,
        precision="bf16",
    ),
}


def register_task(task, replace: bool = False) -> None:
    """Add ``task`` (a spec with ``name`` and ``epochs(scale_name)``) to TASKS and its phase-3 budget to every
    scale preset. Called by ``alad_kit.tasks.register``, which checks the spec first."""
    TASKS.add(task.name, task, replace=replace)
    for preset in SCALE_PRESETS.values():
        preset.phase3_epochs[task.name] = task.epochs(preset.name)


def scale_config(name: str | None = None) -> ScaleConfig:
    """The preset for ``name``; with no name, the ``ALAD_SCALE`` environment variable, else ``smoke``."""
    name = name or os.environ.get("ALAD_SCALE", "smoke")
    _check_choice("scale", name, SCALES)
    return SCALE_PRESETS[name]


# --------------------------------------------------------------------------------------------------
# Phases
TRAINABLE = ("adapter", "student", "head", "lora")
# The paper gives no learning rate for the freshly initialised task head; at its 1e-4 a fresh head barely
# leaves its initialisation. 5e-3 is chosen by the validation sweep of results/cpu/sweep/sweep_head.md (NER,
# cpu scale, seed 0, best validation F1_O): frozen + ALAd W5 3e-4 31.0, 1e-3 32.9, 2e-3 33.7, 5e-3 34.1;
# head only 3e-4 10.2, 1e-3 14.5, 2e-3 17.4, 5e-3 18.9, 1e-2 19.3. 5e-3 is the best rate tried in both modes
# (1e-2 is 0.4 better in head-only mode, one seed, and untried with the adapter).
HEAD_LR = 5e-3


@dataclass(frozen=True)
class PhaseConfig:
    name: str  # phase1 | phase2 | phase3 (used in file names and logs)
    objective: str  # "align": MSE to teacher embeddings; "task": the task head's loss
    lr: dict | float  # AdamW learning rate of each trained part {part: lr}; one number serves every part
    trainable: tuple[str, ...]  # parts that receive gradients (subset of TRAINABLE)
    epochs: int = 1  # passes over the phase's data
    max_steps: int | None = None  # optional budget in optimizer steps
    max_tokens: int | None = None  # optional budget in (student) tokens seen
    max_seconds: float | None = None  # optional wall-clock budget
    weight_decay: float = 0.01  # AdamW weight decay (never on biases and LayerNorm weights)
    warmup_ratio: float = 0.1  # linear warm-up share of the total steps, then linear decay
    grad_clip: float = 1.0  # max global grad norm
    checkpoint_every: int = 50  # optimizer steps between resumable checkpoints
    precision: str = "fp32"  # fp32 | bf16 (autocast of forward and loss; weights and optimizer stay fp32)
    group_by_length: bool = True  # batches of similar length (less padding), still seeded and resumable
    patience: int | None = None  # stop after this many validated epochs without a better score (None: all epochs)

    def __post_init__(self):
        _check_choice("objective", self.objective, ("align", "task"))
        _check_choice("precision", self.precision, PRECISIONS)
        if not self.trainable or any(t not in TRAINABLE for t in self.trainable):
            raise ValueError(f"PhaseConfig.trainable must be a non-empty subset of {TRAINABLE}, got {self.trainable}")
        lr = self.lr if isinstance(self.lr, dict) else {part: self.lr for part in self.trainable}
        if not set(self.trainable) <= set(lr):  # parts it does not train may be named (and are dropped)
            raise ValueError(f"PhaseConfig.lr must name every trained part {self.trainable}, got {sorted(lr)}")
        for part, value in lr.items():
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"PhaseConfig.lr must be positive, got {value!r} for {part!r}")
        object.__setattr__(self, "lr", {part: float(lr[part]) for part in self.trainable})
        if self.epochs < 1:
            raise ValueError(f"PhaseConfig.epochs must be >= 1, got {self.epochs}")
        if self.patience is not None and (isinstance(self.patience, bool) or not isinstance(self.patience, int)
                                          or self.patience < 1):
            raise ValueError(f"PhaseConfig.patience must be a whole number >= 1, got {self.patience!r}")
        for name in ("max_steps", "max_tokens", "max_seconds"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"PhaseConfig.{name} must be positive when given, got {value}")


PHASE1 = PhaseConfig("phase1", objective="align", lr=5e-4, trainable=("adapter",))
PHASE2 = PhaseConfig("phase2", objective="align", lr=1e-4, trainable=("adapter",), epochs=10)


@dataclass(frozen=True)
class ModeConfig:
    name: str  # finetune | head | frozen | joint | lora | lora+alad
    use_adapter: bool  # the ALAd adapter sits between M_C and the head
    lr: dict  # phase-3 learning rate of each trained part (paper: 1e-4 frozen/LoRA, 5e-5 joint; head: HEAD_LR)

    @property
    def trainable(self) -> tuple[str, ...]:  # what phase 3 trains
        return tuple(self.lr)


MODES = {
    "finetune": ModeConfig("finetune", use_adapter=False, lr={"student": 5e-5, "head": HEAD_LR}),
    "head": ModeConfig("head", use_adapter=False, lr={"head": HEAD_LR}),  # frozen M_C, no adapter
    "frozen": ModeConfig("frozen", use_adapter=True, lr={"adapter": 1e-4, "head": HEAD_LR}),
    "joint": ModeConfig("joint", use_adapter=True, lr={"student": 5e-5, "adapter": 5e-5, "head": HEAD_LR}),
    "lora": ModeConfig("lora", use_adapter=False, lr={"lora": 1e-4, "head": HEAD_LR}),
    "lora+alad": ModeConfig("lora+alad", use_adapter=True, lr={"lora": 1e-4, "adapter": 1e-4, "head": HEAD_LR}),
}
# Modes M_L itself can run in (is_teacher_run): fine-tuned (the paper's upper reference), and frozen with a head
# only: the ceiling of a frozen student + ALAd that imitated M_L perfectly.
TEACHER_MODES = ("finetune", "head")
# Modes whose phase 3 leaves M_C untouched: its hidden states come from the embedding cache, not a pass per step.
# The parts phase 3 can train (keys of ModeConfig.lr), in the order tables show them.
TRAINABLE_PARTS = ("head", "adapter", "student", "lora")
FROZEN_STUDENT_MODES = tuple(name for name, m in MODES.items() if not {"student", "lora"} & set(m.trainable))


def phase3_config(mode: str, task: str, scale: ScaleConfig, lr: float | None = None,
                  part_lr: dict | None = None, precision: str | None = None, epochs: int | None = None,
                  patience: int | None = None) -> PhaseConfig:
    """Phase 3 of ``mode``: what it trains, the scale's epochs for ``task`` (or ``epochs``), the mode's per-part
    learning rates (``lr`` replaces all of them, then ``part_lr`` = {part: lr} replaces single parts it trains)."""
    _check_choice("mode", mode, tuple(MODES))
    _check_choice("task", task, TASKS)
    rates = {part: (value if lr is None else lr) for part, value in MODES[mode].lr.items()}
    rates |= {part: value for part, value in (part_lr or {}).items() if part in rates and value is not None}
    return PhaseConfig("phase3", objective="task", lr=rates, trainable=MODES[mode].trainable,
                       epochs=epochs or scale.phase3_epochs[task], checkpoint_every=scale.checkpoint_every,
                       precision=precision or scale.precision, patience=patience)


def alignment_phases(scale: ScaleConfig, precision: str | None = None,
                     phase2_epochs: int | None = None) -> tuple[PhaseConfig, PhaseConfig]:
    """Phase 1 and 2 with the scale's epoch budgets, or ``phase2_epochs`` (learning rates stay the paper's)."""
    common = dict(checkpoint_every=scale.checkpoint_every, precision=precision or scale.precision)
    return (replace(PHASE1, epochs=scale.phase1_epochs, **common),
            replace(PHASE2, epochs=phase2_epochs or scale.phase2_epochs, **common))


# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunConfig:
    task: str  # a registered task (TASKS): pos | ner | qa built in
    teacher: str  # M_L: offline alias, hub id or local dir
    student: str  # M_C: offline alias, hub id or local dir (e.g. a compressed model)
    student_layers: tuple[int, ...] | None = None  # keep only these encoder layers of the student (e.g. (0, 1))
    mode: str = "frozen"  # one of MODES
    window: int = 5  # adapter window n (odd); ignored by modes without adapter
    seed: int = 0  # seeds data order, init and dropout
    scale: str = "smoke"  # smoke | tiny | cpu | full
    out: str = "runs/latest"  # output directory (metrics.json, checkpoints, history)
    data_dir: str | None = None  # ALAD_DATA_DIR override, a task file/folder, or "wnut16" (offline NER)
    corpus_dir: str | None = None  # phase-1 corpus (default: <data root>/corpus_en_wiki, else Python's docs)
    cache_dir: str | None = None  # embedding / adapter cache root (default: <out>/../.alad_cache)
    teacher_finetuned: str | None = None  # path of a task-fine-tuned M_L to use as the phase 1-2 teacher
    teacher_layer: int | None = None  # hidden state k (1..L) of M_L that phases 1-2 align to (None: the last, the paper's)
    teacher_probe: str | None = None  # probe_layers.json (alad probe-layers): align to its best layer of M_L ("auto")
    skip_phase1: bool = False  # ablation: no task-independent alignment
    skip_phase2: bool = False  # ablation: no task-specific alignment
    random_adapter: bool = False  # ablation: same-size adapter, randomly initialised, no phases 1-2
    use_cache: bool = True  # memory-mapped embedding cache for phases 1-2
    strict_data: bool = False  # refuse NER files whose BIO tags seqeval would repair (default: repair + warn)
    adapter_hidden: int = 1280  # adapter hidden units (paper: 1280)
    adapter_kind: str = "dense"  # adapter first layer, one of adapter.ADAPTER_KINDS (dense: the paper's)
    lora_r: int = 8  # LoRA rank
    lora_alpha: int = 16  # LoRA scaling numerator
    lr: float | None = None  # phase-3 learning rate of every trained part; None = the mode's values (MODES[mode].lr)
    head_lr: float | None = None  # phase-3 lr of the task head (default: HEAD_LR)
    adapter_lr: float | None = None  # phase-3 lr of the adapter (default: the paper's, 1e-4 frozen / 5e-5 joint)
    student_lr: float | None = None  # phase-3 lr of M_C when fine-tuned (default: the paper's 5e-5)
    lora_lr: float | None = None  # phase-3 lr of the LoRA weights (default: 1e-4)
    precision: str | None = None  # fp32 | bf16 for training and evaluation; None = the scale's default
    phase2_epochs: int | None = None  # phase-2 epochs instead of the scale's (None: the scale's budget)
    phase3_epochs: int | None = None  # phase-3 epochs instead of the scale's for the task (None: the scale's)
    patience: int | None = None  # phase 3 stops after this many epochs without a better validation score (None: never)
    is_teacher_run: bool = False  # train M_L itself (finetune: the teacher row of Table 1; head: frozen M_L)
    device: str | None = None  # cpu | cuda (default: cuda when available)
    extra: dict = field(default_factory=dict, compare=False)  # free-form notes copied into metrics.json

    def __post_init__(self):
        _check_choice("task", self.task, TASKS)
        _check_choice("mode", self.mode, tuple(MODES))
        _check_choice("scale", self.scale, SCALES)
        _check_choice("adapter_kind", self.adapter_kind, ADAPTER_KINDS)
        if type(self.window) is not int or self.window < 1 or self.window % 2 == 0:  # True is no window
            raise ValueError(f"window must be an odd integer >= 1, got {self.window!r}")
        if not self.teacher or not self.student:
            raise ValueError("teacher and student must be given")
        for name in ("lr", "head_lr", "adapter_lr", "student_lr", "lora_lr"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and 0 < value < 1):
                raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
        if self.precision is not None:
            _check_choice("precision", self.precision, PRECISIONS)
        for name in ("phase2_epochs", "phase3_epochs", "patience"):
            value = getattr(self, name)
            if value is not None and not (type(value) is int and value >= 1):
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        if self.teacher_layer is not None and not (isinstance(self.teacher_layer, int)
                                                   and not isinstance(self.teacher_layer, bool) and self.teacher_layer >= 1):
            raise ValueError(f"teacher_layer must be a hidden state >= 1 of the teacher, got {self.teacher_layer!r}")
        if self.teacher_layer is not None and self.teacher_probe is not None:
            raise ValueError("give teacher_layer or teacher_probe (its best layer), not both")
        if self.is_teacher_run and self.mode not in TEACHER_MODES:
            raise ValueError(f"the teacher baseline (is_teacher_run) is defined for modes {', '.join(TEACHER_MODES)}, "
                             f"not {self.mode!r}")

    @property
    def uses_adapter(self) -> bool:
        return MODES[self.mode].use_adapter and not self.is_teacher_run

    @property
    def part_lr(self) -> dict:
        """The per-part phase-3 learning rates given on the command line (None: the mode's default)."""
        return {"head": self.head_lr, "adapter": self.adapter_lr, "student": self.student_lr, "lora": self.lora_lr}

    @property
    def lr_overridden(self) -> bool:
        """A phase-3 lr other than the defaults makes a variant: tables keep such runs out of Table 1."""
        return self.lr is not None or any(v is not None for v in self.part_lr.values())


# RunConfig fields whose flags keep their historic names; every other field is --field-name.
RUN_FLAGS = {"use_cache": "cache", "is_teacher_run": "teacher-baseline", "strict_data": "strict"}
# What `alad run` uses where RunConfig has no default (the scale comes from ALAD_SCALE, see cli).
RUN_DEFAULTS = {"teacher": "mpnet-base", "student": "minilm-l6"}
# The allowed values of RunConfig's choice fields (the command line offers exactly these).
RUN_CHOICES = {"task": TASKS, "mode": tuple(MODES), "scale": SCALES, "precision": PRECISIONS,
               "adapter_kind": ADAPTER_KINDS}
