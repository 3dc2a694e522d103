"""Scales, phases, modes and run settings (alad_kit.core.config); the task/mode/window checks of RunConfig are in
test_run.py."""

import dataclasses
from dataclasses import replace

import pytest

from alad_kit.core.config import (
    FROZEN_STUDENT_MODES,
    HEAD_LR,
    MODES,
    PHASE1,
    PHASE2,
    SCALE_PRESETS,
    SCALES,
    TASKS,
    TRAINABLE,
    PhaseConfig,
    RunConfig,
    alignment_phases,
    phase3_config,
    scale_config,
)

RUN = dict(task="ner", teacher="minilm-l6", student="minilm-l6")


def test_scale_comes_from_the_name_then_alad_scale_then_smoke(monkeypatch):
    monkeypatch.delenv("ALAD_SCALE", raising=False)
    assert scale_config().name == "smoke"
    monkeypatch.setenv("ALAD_SCALE", "cpu")
    assert scale_config() is SCALE_PRESETS["cpu"]
    assert scale_config("full").name == "full"  # an explicit name wins over the environment
    monkeypatch.setenv("ALAD_SCALE", "huge")
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        scale_config()


def test_scales_shrink_monotonically():
    smoke, tiny, cpu, full = (SCALE_PRESETS[n] for n in ("smoke", "tiny", "cpu", "full"))
    assert SCALES == ("smoke", "tiny", "cpu", "full")
    assert smoke.train_examples < tiny.train_examples < cpu.train_examples and full.train_examples is None
    assert smoke.corpus_texts < tiny.corpus_texts and cpu.corpus_texts is None
    assert smoke.max_length <= tiny.max_length <= cpu.max_length <= full.max_length
    assert smoke.phase2_epochs < tiny.phase2_epochs < cpu.phase2_epochs
    assert full.phase2_epochs == 10 and full.phase3_epochs == {"pos": 4, "ner": 4, "qa": 3}  # the paper's
    for s in (smoke, tiny, cpu, full):
        assert set(s.phase3_epochs) == set(TASKS)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(name="medium"), "unknown scale"),
        (dict(batch_size=0), "batch_size must be positive"),
        (dict(max_length=-1), "max_length must be positive"),
        (dict(qa_doc_stride=128), "qa_doc_stride"),
        (dict(qa_doc_stride=0), "qa_doc_stride"),
    ],
)
def test_bad_scale_configs(change, message):
    with pytest.raises(ValueError, match=message):
        replace(SCALE_PRESETS["smoke"], **change)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PHASE1.lr = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig(**RUN).window = 3


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(objective="mse"), "unknown objective"),
        (dict(trainable=()), "non-empty subset"),
        (dict(trainable=("adapter", "encoder")), "non-empty subset"),
        (dict(lr=0.0), "lr must be positive"),
        (dict(epochs=0), "epochs must be >= 1"),
        (dict(max_steps=0), "max_steps must be positive"),
        (dict(max_tokens=-5), "max_tokens must be positive"),
        (dict(max_seconds=0.0), "max_seconds must be positive"),
    ],
)
def test_bad_phase_configs(change, message):
    with pytest.raises(ValueError, match=message):
        replace(PHASE1, **change)


def test_alignment_phases_keep_the_paper_learning_rates():
    for scale in SCALE_PRESETS.values():
        p1, p2 = alignment_phases(scale)
        assert (p1.lr, p2.lr) == ({"adapter": 5e-4}, {"adapter": 1e-4}) == (PHASE1.lr, PHASE2.lr)
        assert (p1.epochs, p2.epochs) == (scale.phase1_epochs, scale.phase2_epochs)
        assert p1.trainable == p2.trainable == ("adapter",) and p1.objective == p2.objective == "align"
        assert p1.checkpoint_every == p2.checkpoint_every == scale.checkpoint_every


def test_modes_are_consistent():
    for name, mode in MODES.items():
        assert mode.name == name and all(lr > 0 for lr in mode.lr.values())
        assert mode.trainable and set(mode.trainable) <= set(TRAINABLE) and "head" in mode.trainable
        assert ("adapter" in mode.trainable) == mode.use_adapter  # adapter modes always tune the adapter
        assert mode.lr["head"] == HEAD_LR  # the paper gives none: ours comes from a validation sweep
    # the paper's phase-3 rates for everything but the head
    assert MODES["frozen"].lr["adapter"] == 1e-4 and MODES["joint"].lr == {"student": 5e-5, "adapter": 5e-5,
                                                                           "head": HEAD_LR}
    assert MODES["lora"].lr["lora"] == MODES["lora+alad"].lr["lora"] == 1e-4
    assert set(FROZEN_STUDENT_MODES) == {"head", "frozen"}


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("task", TASKS)
def test_phase3_config_for_every_mode_and_task(mode, task):
    scale = SCALE_PRESETS["cpu"]
    p = phase3_config(mode, task, scale)
    assert p.objective == "task" and p.trainable == MODES[mode].trainable and p.lr == MODES[mode].lr
    assert p.precision == scale.precision
    assert p.epochs == scale.phase3_epochs[task] and p.checkpoint_every == scale.checkpoint_every


def test_phase3_lr_defaults_to_the_paper_and_can_be_overridden():
    scale = SCALE_PRESETS["smoke"]
    assert phase3_config("frozen", "ner", scale).lr == {"adapter": 1e-4, "head": HEAD_LR}
    assert phase3_config("frozen", "ner", scale, lr=1e-3).lr == {"adapter": 1e-3, "head": 1e-3}
    p = phase3_config("joint", "ner", scale, lr=1e-3, part_lr={"head": 5e-3, "lora": 9e-4, "student": None})
    assert p.lr == {"student": 1e-3, "adapter": 1e-3, "head": 5e-3}  # lora is not trained in joint mode
    cfg = RunConfig(task="ner", teacher="t", student="s", head_lr=3e-3)
    assert cfg.lr_overridden and cfg.part_lr["head"] == 3e-3
    assert not RunConfig(task="ner", teacher="t", student="s").lr_overridden
    for name in ("lr", "head_lr", "adapter_lr", "student_lr", "lora_lr"):
        for bad in (0, -1e-4, 1.5, "1e-3"):
            with pytest.raises(ValueError, match=f"{name} must be a number in"):
                RunConfig(task="ner", teacher="t", student="s", **{name: bad})


def test_phase_lr_per_part_and_precision():
    p = PhaseConfig("p", objective="task", lr={"head": 1e-3, "adapter": 1e-4}, trainable=("adapter", "head"))
    assert p.lr == {"adapter": 1e-4, "head": 1e-3}
    assert PhaseConfig("p", objective="task", lr=1e-3, trainable=("head",)).lr == {"head": 1e-3}
    with pytest.raises(ValueError, match="every trained part"):
        PhaseConfig("p", objective="task", lr={"head": 1e-3}, trainable=("adapter", "head"))
    with pytest.raises(ValueError, match="unknown precision"):
        PhaseConfig("p", objective="task", lr=1e-3, trainable=("head",), precision="fp16")
    with pytest.raises(ValueError, match="unknown precision"):
        RunConfig(task="ner", teacher="t", student="s", precision="int8")
    assert SCALE_PRESETS["smoke"].precision == "fp32" and SCALE_PRESETS["cpu"].precision == "bf16"


def test_phase3_config_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown mode"):
        phase3_config("adapter", "ner", SCALE_PRESETS["smoke"])
    with pytest.raises(ValueError, match="unknown task"):
        phase3_config("frozen", "nli", SCALE_PRESETS["smoke"])


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(scale="huge"), "unknown scale"),
        (dict(window=0), "odd integer"),
        (dict(window=-3), "odd integer"),
        (dict(window=3.0), "odd integer"),
        (dict(window=True), "odd integer"),  # a bool is an int to Python: True would be a window of 1
        (dict(teacher=""), "teacher and student"),
        (dict(student=""), "teacher and student"),
        (dict(adapter_kind="sparse"), "unknown adapter_kind"),
    ],
)
def test_bad_run_configs(change, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**(RUN | change))


def test_uses_adapter():
    assert RunConfig(**RUN, mode="frozen").uses_adapter
    assert RunConfig(**RUN, mode="lora+alad").uses_adapter
    assert not RunConfig(**RUN, mode="lora").uses_adapter
    assert not RunConfig(**RUN, mode="finetune", is_teacher_run=True).uses_adapter
    cfg = RunConfig(**RUN, extra={"note": 1})
    assert cfg == RunConfig(**RUN)  # free-form notes do not make a different run


def test_epoch_overrides_replace_the_scale_budget_and_are_checked():
    from alad_kit.core.config import alignment_phases, phase3_config, scale_config

    cpu = scale_config("cpu")
    assert phase3_config("frozen", "ner", cpu, epochs=3).epochs == 3
    assert phase3_config("frozen", "ner", cpu).epochs == cpu.phase3_epochs["ner"]
    assert [p.epochs for p in alignment_phases(cpu, phase2_epochs=4)] == [cpu.phase1_epochs, 4]
    cfg = RunConfig(task="ner", teacher="t", student="s", phase2_epochs=5, phase3_epochs=5)
    assert (cfg.phase2_epochs, cfg.phase3_epochs) == (5, 5)
    for bad in (0, 2.5, "3"):
        with pytest.raises(ValueError, match="phase3_epochs must be a whole number"):
            RunConfig(task="ner", teacher="t", student="s", phase3_epochs=bad)
