"""Configuration: scales, phases and run settings, all frozen dataclasses.

One switch, ``scale``, shrinks every run (data slices, phase budgets, sequence lengths) the way big_vision's
``runlocal`` does: ``smoke`` runs in seconds on a CPU (tests, CI), ``cpu`` uses the offline models and real
data sub-sampled so one task x student x mode run takes about a quarter of an hour on two cores, ``full``
uses all of the data and the paper's budgets (meant for a GPU).

The three training phases are *data* (:class:`PhaseConfig`); :mod:`alad_kit.trainer` runs any of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

TASKS = ("pos", "ner", "qa")
SCALES = ("smoke", "cpu", "full")


def _check_choice(what: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(map(str, choices))}")


@dataclass(frozen=True)
class ScaleConfig:
    name: str  # smoke | cpu | full
    train_examples: int | None  # task training examples used (None: all)
    eval_examples: int | None  # validation examples (model selection)
    test_examples: int | None  # test examples (reported scores)
    corpus_texts: int | None  # phase-1 corpus lines
    phase1_epochs: int  # passes over the phase-1 corpus slice
    phase2_epochs: int  # paper: 10
    phase3_epochs: dict  # per task; paper: POS/NER 4, QA 3
    max_length: int  # token limit for POS/NER/corpus sentences
    qa_max_length: int  # token limit of one QA window (question + context)
    qa_doc_stride: int  # overlap between QA windows of a long context
    batch_size: int  # training batch size
    eval_batch_size: int  # inference batch size
    probe_texts: int  # held-out texts for the alignment MSE/cosine report
    checkpoint_every: int = 50  # optimizer steps between resumable checkpoints

    def __post_init__(self):
        _check_choice("scale", self.name, SCALES)
        for name in ("max_length", "qa_max_length", "batch_size", "eval_batch_size", "probe_texts"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ScaleConfig.{name} must be positive")
        if not 0 < self.qa_doc_stride < self.qa_max_length:
            raise ValueError("ScaleConfig.qa_doc_stride must lie in (0, qa_max_length)")


SCALE_PRESETS = {
    "smoke": ScaleConfig(
        "smoke", train_examples=48, eval_examples=24, test_examples=24, corpus_texts=96,
        phase1_epochs=1, phase2_epochs=2, phase3_epochs={"pos": 2, "ner": 2, "qa": 1},
        max_length=48, qa_max_length=128, qa_doc_stride=48, batch_size=16, eval_batch_size=32, probe_texts=16,
        checkpoint_every=2,
    ),
    "cpu": ScaleConfig(
        "cpu", train_examples=3000, eval_examples=300, test_examples=600, corpus_texts=3000,
        phase1_epochs=1, phase2_epochs=10, phase3_epochs={"pos": 4, "ner": 4, "qa": 2},
        max_length=64, qa_max_length=256, qa_doc_stride=96, batch_size=32, eval_batch_size=64, probe_texts=200,
    ),
    "full": ScaleConfig(
        "full", train_examples=None, eval_examples=None, test_examples=None, corpus_texts=None,
        phase1_epochs=1, phase2_epochs=10, phase3_epochs={"pos": 4, "ner": 4, "qa": 3},
        max_length=128, qa_max_length=384, qa_doc_stride=128, batch_size=32, eval_batch_size=128, probe_texts=1000,
    ),
}


def scale_config(name: str | None = None) -> ScaleConfig:
    """The preset for ``name``; with no name, the ``ALAD_SCALE`` environment variable, else ``smoke``."""
    name = name or os.environ.get("ALAD_SCALE", "smoke")
    _check_choice("scale", name, SCALES)
    return SCALE_PRESETS[name]


# --------------------------------------------------------------------------------------------------
# Phases
TRAINABLE = ("adapter", "student", "head", "lora")


@dataclass(frozen=True)
class PhaseConfig:
    name: str  # phase1 | phase2 | phase3 (used in file names and logs)
    objective: str  # "align": MSE to teacher embeddings; "task": the task head's loss
    lr: float  # AdamW learning rate
    trainable: tuple[str, ...]  # parts that receive gradients (subset of TRAINABLE)
    epochs: int = 1  # passes over the phase's data
    max_steps: int | None = None  # optional budget in optimizer steps
    max_tokens: int | None = None  # optional budget in (student) tokens seen
    max_seconds: float | None = None  # optional wall-clock budget
    weight_decay: float = 0.01  # AdamW weight decay
    warmup_ratio: float = 0.1  # linear warm-up share of the total steps, then linear decay
    grad_clip: float = 1.0  # max global grad norm
    checkpoint_every: int = 50  # optimizer steps between resumable checkpoints

    def __post_init__(self):
        _check_choice("objective", self.objective, ("align", "task"))
        if not self.trainable or any(t not in TRAINABLE for t in self.trainable):
            raise ValueError(f"PhaseConfig.trainable must be a non-empty subset of {TRAINABLE}, got {self.trainable}")
        if not self.lr > 0:
            raise ValueError(f"PhaseConfig.lr must be positive, got {self.lr}")
        if self.epochs < 1:
            raise ValueError(f"PhaseConfig.epochs must be >= 1, got {self.epochs}")
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
    trainable: tuple[str, ...]  # what phase 3 trains
    lr: float  # phase-3 learning rate (paper: 1e-4 frozen, 5e-5 joint)


MODES = {
    "finetune": ModeConfig("finetune", use_adapter=False, trainable=("student", "head"), lr=5e-5),
    "head": ModeConfig("head", use_adapter=False, trainable=("head",), lr=1e-4),  # frozen M_C, no adapter
    "frozen": ModeConfig("frozen", use_adapter=True, trainable=("adapter", "head"), lr=1e-4),
    "joint": ModeConfig("joint", use_adapter=True, trainable=("student", "adapter", "head"), lr=5e-5),
    "lora": ModeConfig("lora", use_adapter=False, trainable=("lora", "head"), lr=1e-4),
    "lora+alad": ModeConfig("lora+alad", use_adapter=True, trainable=("lora", "adapter", "head"), lr=1e-4),
}


def phase3_config(mode: str, task: str, scale: ScaleConfig, lr: float | None = None) -> PhaseConfig:
    """Phase 3 of ``mode``: what it trains, the scale's epochs for ``task``, the paper's lr unless ``lr``."""
    _check_choice("mode", mode, tuple(MODES))
    _check_choice("task", task, TASKS)
    m = MODES[mode]
    return PhaseConfig("phase3", objective="task", lr=m.lr if lr is None else lr, trainable=m.trainable,
                       epochs=scale.phase3_epochs[task],
                       checkpoint_every=scale.checkpoint_every)


def alignment_phases(scale: ScaleConfig) -> tuple[PhaseConfig, PhaseConfig]:
    """Phase 1 and 2 with the scale's epoch budgets (learning rates stay the paper's)."""
    every = scale.checkpoint_every
    return (replace(PHASE1, epochs=scale.phase1_epochs, checkpoint_every=every),
            replace(PHASE2, epochs=scale.phase2_epochs, checkpoint_every=every))


# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunConfig:
    task: str  # pos | ner | qa
    teacher: str  # M_L: offline alias, hub id or local dir
    student: str  # M_C: offline alias, hub id or local dir (e.g. a compressed model)
    student_layers: tuple[int, ...] | None = None  # keep only these encoder layers of the student (e.g. (0, 1))
    mode: str = "frozen"  # one of MODES
    window: int = 5  # adapter window n (odd); ignored by modes without adapter
    seed: int = 0  # seeds data order, init and dropout
    scale: str = "smoke"  # smoke | cpu | full
    out: str = "runs/latest"  # output directory (metrics.json, checkpoints, history)
    data_dir: str | None = None  # ALAD_DATA_DIR override, a task file/folder, or "wnut16" (offline NER)
    corpus_dir: str | None = None  # phase-1 corpus (default: <data root>/corpus_en_wiki, else Python's docs)
    cache_dir: str | None = None  # embedding / adapter cache root (default: <out>/../.alad_cache)
    teacher_finetuned: str | None = None  # path of a task-fine-tuned M_L to use as the phase 1-2 teacher
    skip_phase1: bool = False  # ablation: no task-independent alignment
    skip_phase2: bool = False  # ablation: no task-specific alignment
    random_adapter: bool = False  # ablation: same-size adapter, randomly initialised, no phases 1-2
    use_cache: bool = True  # memory-mapped embedding cache for phases 1-2
    strict_data: bool = False  # refuse NER files whose BIO tags seqeval would repair (default: repair + warn)
    adapter_hidden: int = 1280  # adapter hidden units (paper: 1280)
    lora_r: int = 8  # LoRA rank
    lora_alpha: int = 16  # LoRA scaling numerator
    lr: float | None = None  # phase-3 learning rate; None = the mode's paper value (MODES[mode].lr)
    is_teacher_run: bool = False  # fine-tune M_L itself (the teacher baseline row of Table 1)
    device: str | None = None  # cpu | cuda (default: cuda when available)
    extra: dict = field(default_factory=dict, compare=False)  # free-form notes copied into metrics.json

    def __post_init__(self):
        _check_choice("task", self.task, TASKS)
        _check_choice("mode", self.mode, tuple(MODES))
        _check_choice("scale", self.scale, SCALES)
        if not isinstance(self.window, int) or self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"window must be an odd integer >= 1, got {self.window!r}")
        if not self.teacher or not self.student:
            raise ValueError("teacher and student must be given")
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and 0 < self.lr < 1):
            raise ValueError(f"lr must be a number in (0, 1), got {self.lr!r}")
        if self.is_teacher_run and self.mode != "finetune":
            raise ValueError("the teacher baseline (is_teacher_run) is only defined for mode 'finetune'")

    @property
    def uses_adapter(self) -> bool:
        return MODES[self.mode].use_adapter and not self.is_teacher_run
