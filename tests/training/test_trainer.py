"""The one trainer of all phases (alad_kit.training.trainer), on a tiny BERT with dropout and a token head."""

import math
from dataclasses import replace

import pytest
import torch

from alad_kit.core import checkpoint
from alad_kit.core.config import PhaseConfig
from alad_kit.models.heads import TokenClassificationHead
from alad_kit.models.model import AladModel
from alad_kit.tasks.specs import collate
from alad_kit.training.trainer import (
    TrainingInterrupted,
    epoch_batches,
    load_finished,
    make_optimizer,
    parameter_groups,
    train_phase,
)

N, BATCH = 40, 8  # 5 batches per epoch
PHASE = PhaseConfig("p3", objective="task", lr=5e-3, trainable=("student", "head"), epochs=3, checkpoint_every=2)


def _features(n=N, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = []
    for _ in range(n):
        length = int(torch.randint(4, 10, (1,), generator=g))
        ids = torch.randint(5, 50, (length,), generator=g).tolist()
        feats.append({"input_ids": ids, "attention_mask": [1] * length, "labels": [i % 3 for i in ids]})
    return feats


FEATURES = _features()


def make_batch(indices):
    return collate([FEATURES[i] for i in indices], pad_token_id=0)


def loss_fn(model, batch):
    return TokenClassificationHead.loss(model(batch), batch)


def tiny_model(seed=0):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, hidden_dropout_prob=0.2,
                        attention_probs_dropout_prob=0.2)
    return AladModel(BertModel(config), head=TokenClassificationHead(16, 3, dropout=0.2))


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def train(model, phase=PHASE, **kw):
    return train_phase(phase, model, N, kw.pop("make_batch", make_batch), kw.pop("loss_fn", loss_fn),
                       batch_size=BATCH, seed=0, device="cpu", **kw)


def test_full_run_trains_and_reports():
    model = tiny_model()
    before = state(model)
    result = train(model)
    assert result.stopped_by == "epochs" and result.steps == 3 * math.ceil(N / BATCH)
    assert [s for s, _ in result.history] == list(range(1, result.steps + 1))
    assert result.tokens == sum(len(f["input_ids"]) for f in FEATURES) * 3
    first, last = (sum(loss for _, loss in h) / 3 for h in (result.history[:3], result.history[-3:]))
    assert last < first
    assert any(not torch.equal(before[k], v) for k, v in state(model).items())


def test_nan_loss_names_the_step():
    calls = []

    def nan_at_three(model, batch):
        calls.append(1)
        loss = loss_fn(model, batch)
        return loss * float("nan") if len(calls) == 3 else loss

    with pytest.raises(FloatingPointError, match="at step 3"):
        train(tiny_model(), loss_fn=nan_at_three)


@pytest.mark.parametrize(
    "budget, stopped_by, steps",
    [
        (dict(max_steps=4), "max_steps", 4),
        (dict(max_tokens=1), "max_tokens", 1),
        (dict(max_seconds=1e-9), "max_seconds", 1),
    ],
)
def test_budgets_stop_training(budget, stopped_by, steps):
    result = train(tiny_model(), replace(PHASE, **budget))
    assert result.stopped_by == stopped_by and result.steps == steps


def test_token_budget_counts_real_tokens():
    first_two = sum(int(make_batch(b)["attention_mask"].sum()) for b in _epoch_batches(0)[:2])
    result = train(tiny_model(), replace(PHASE, max_tokens=first_two))
    assert result.stopped_by == "max_tokens" and result.steps == 2 and result.tokens == first_two


def _epoch_batches(epoch, seed=0):
    order = torch.randperm(N, generator=torch.Generator().manual_seed(seed * 1000 + epoch)).tolist()
    return [order[i : i + BATCH] for i in range(0, N, BATCH)]


LENGTHS = [len(f["input_ids"]) for f in FEATURES]


def test_best_epoch_weights_are_restored():
    model, snapshots, scores = tiny_model(), [], iter([0.1, 0.9, 0.5])

    def evaluate(m):
        snapshots.append(state(m))
        return next(scores)

    result = train(model, evaluate=evaluate)
    assert result.best_epoch == 2 and result.best_score == 0.9
    assert result.eval_history == [[1, 0.1], [2, 0.9], [3, 0.5]]
    assert_same(state(model), snapshots[1])
    assert any(not torch.equal(snapshots[1][k], snapshots[2][k]) for k in snapshots[1])


def test_patience_stops_after_epochs_without_a_better_score_and_keeps_the_best(tmp_path):
    phase = replace(PHASE, epochs=6, patience=2)
    model, snapshots, scores = tiny_model(), [], iter([0.1, 0.9, 0.5, 0.6, 0.95, 0.2])

    def evaluate(m):
        snapshots.append(state(m))
        return next(scores)

    result = train(model, phase, evaluate=evaluate)
    assert result.stopped_by == "patience" and result.eval_history == [[1, 0.1], [2, 0.9], [3, 0.5], [4, 0.6]]
    assert result.best_epoch == 2 and result.steps == 4 * N // BATCH  # the capped epochs 5-6 never ran
    assert_same(state(model), snapshots[1])

    def kill(info):  # killed right after the epoch that ran out of patience was saved
        if info.event == "epoch" and info.epoch == 4:
            raise TrainingInterrupted("killed")

    scores = iter([0.1, 0.9, 0.5, 0.6])
    with pytest.raises(TrainingInterrupted):
        train(tiny_model(), phase, evaluate=lambda m: next(scores), checkpoint_dir=tmp_path, callbacks=(kill,))
    resumed = train(tiny_model(), phase, evaluate=lambda m: 1 / 0, checkpoint_dir=tmp_path, resume=True)
    assert resumed.eval_history == result.eval_history and resumed.steps == result.steps  # nothing more ran


def test_patience_is_validated_and_leaves_old_digests_alone():
    from alad_kit.training.trainer import phase_digest

    with pytest.raises(ValueError, match="patience must be a whole number"):
        replace(PHASE, patience=0)
    assert phase_digest(PHASE, N, BATCH, 0) != phase_digest(replace(PHASE, patience=2), N, BATCH, 0)
    fields = {k: v for k, v in __import__("dataclasses").asdict(PHASE).items() if k != "patience"}
    assert phase_digest(PHASE, N, BATCH, 0) == checkpoint.digest(
        {"phase": fields, "n": N, "batch": BATCH, "seed": 0, "world": 1, "caller": ""})


def test_dropout_makes_the_rng_matter():
    """Guard for the resume test: with another global seed the run really ends elsewhere."""
    runs = []
    for seed in (0, 1):
        model = tiny_model()
        torch.manual_seed(seed)
        train(model, replace(PHASE, epochs=1))
        runs.append(state(model))
    assert any(not torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["shuffled", "length-grouped"])
@pytest.mark.parametrize("kill_at", [6, 7])  # 6: a checkpoint step mid-epoch 2; 7: one step past it
def test_resume_mid_epoch_reproduces_the_uninterrupted_run(tmp_path, kill_at, lengths):
    def evaluate(m):  # deterministic score of the weights, so best-epoch bookkeeping is resumed too
        m.eval()
        with torch.no_grad():
            return -float(loss_fn(m, make_batch(list(range(8)))))

    reference = tiny_model()
    torch.manual_seed(123)
    expected = train(reference, evaluate=evaluate, lengths=lengths)

    def kill(name, step):
        if step == kill_at:
            raise TrainingInterrupted(f"killed at {step}")

    killed = tiny_model()
    torch.manual_seed(123)
    with pytest.raises(TrainingInterrupted):
        train(killed, checkpoint_dir=tmp_path, callbacks=(kill,), evaluate=evaluate, lengths=lengths)
    assert checkpoint.exists(tmp_path, "p3.ckpt") and not checkpoint.exists(tmp_path, "p3.done")

    resumed = tiny_model()
    torch.manual_seed(999)  # a fresh process: its RNG must come from the checkpoint
    result = train(resumed, checkpoint_dir=tmp_path, resume=True, evaluate=evaluate, lengths=lengths)
    assert result.steps == expected.steps
    assert result.history == expected.history
    assert result.eval_history == expected.eval_history and result.best_epoch == expected.best_epoch
    assert_same(state(resumed), state(reference))


def test_load_finished_restores_final_weights(tmp_path):
    assert load_finished("p3", tmp_path, tiny_model()) is None
    model = tiny_model()
    result = train(model, replace(PHASE, epochs=1), checkpoint_dir=tmp_path)
    fresh = tiny_model(seed=5)
    loaded = load_finished("p3", tmp_path, fresh)
    assert not checkpoint.exists(tmp_path, "p3.ckpt"), "a finished phase keeps no resume state"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p3.done.json", "p3.done.safetensors"]
    assert loaded.steps == result.steps and loaded.history == result.history
    assert_same(state(fresh), state(model))
    other = AladModel(tiny_model().encoder, head=torch.nn.Linear(16, 3))  # a different head layout
    with pytest.raises(ValueError, match="does not fit"):
        load_finished("p3", tmp_path, other)


def test_only_the_chosen_parts_train():
    model = tiny_model()
    before = state(model)
    params = model.set_trainable(("head",))
    assert {id(p) for p in params} == {id(p) for p in model.head.parameters()}
    train(model, replace(PHASE, trainable=("head",), epochs=1))
    after = state(model)
    assert all(not p.requires_grad for p in model.encoder.parameters())
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))
    assert all(not torch.equal(before[k], after[k]) for k in before if k.startswith("head."))


def test_no_examples_is_an_error():
    with pytest.raises(ValueError, match="no training examples"):
        train_phase(PHASE, tiny_model(), 0, make_batch, loss_fn, batch_size=BATCH, seed=0, device="cpu")


def test_length_grouping_is_seeded_covers_every_example_and_cuts_padding():
    grouped = epoch_batches(N, BATCH, seed=0, epoch=1, lengths=LENGTHS)
    assert grouped == epoch_batches(N, BATCH, seed=0, epoch=1, lengths=LENGTHS)
    assert grouped != epoch_batches(N, BATCH, seed=0, epoch=2, lengths=LENGTHS)
    assert sorted(i for b in grouped for i in b) == list(range(N))

    def padding(batches):
        return sum(max(LENGTHS[i] for i in b) * len(b) - sum(LENGTHS[i] for i in b) for b in batches)

    assert padding(grouped) < padding(epoch_batches(N, BATCH, seed=0, epoch=1))
    assert all(LENGTHS[b[0]] >= LENGTHS[b[-1]] for b in grouped)  # each batch sorted, longest first


def test_parameter_groups_give_each_part_its_lr_and_no_decay_to_biases_and_norms():
    model = tiny_model()
    phase = PhaseConfig("p3", objective="task", lr={"student": 1e-5, "head": 3e-3}, trainable=("student", "head"))
    model.set_trainable(phase.trainable)
    groups = parameter_groups(model, phase)
    assert {(g["part"], g["lr"], g["weight_decay"] > 0) for g in groups} == {
        ("student", 1e-5, True), ("student", 1e-5, False), ("head", 3e-3, True), ("head", 3e-3, False)}
    no_decay = {id(p) for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[i] for i in no_decay} == {n for n, p in model.named_parameters() if p.ndim == 1}
    assert "head.classifier.bias" in {names[i] for i in no_decay}
    assert any("LayerNorm.weight" in names[i] for i in no_decay)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    result = train(model, replace(phase, epochs=1))
    assert result.lr == {"student": 1e-5, "head": 3e-3}


def test_the_optimizer_is_fused_on_cpu_and_steps_like_the_foreach_one():
    phase = PhaseConfig("p3", objective="task", lr={"student": 1e-3, "head": 3e-3}, trainable=("student", "head"))
    models = [tiny_model(), tiny_model()]
    models[1].load_state_dict(models[0].state_dict())
    for model in models:
        model.set_trainable(phase.trainable)
    fused = make_optimizer(models[0], phase)
    plain = torch.optim.AdamW(parameter_groups(models[1], phase), foreach=True)
    assert fused.defaults["fused"] and [g["lr"] for g in fused.param_groups] == [g["lr"] for g in plain.param_groups]
    for model, optimizer in zip(models, (fused, plain)):
        for p in model.parameters():
            p.grad = torch.ones_like(p) * 0.1
        optimizer.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_bf16_autocast_trains_on_cpu_and_stays_close_to_fp32():
    runs = {}
    for precision in ("fp32", "bf16"):
        model = tiny_model()
        torch.manual_seed(0)
        result = train(model, replace(PHASE, precision=precision, epochs=1))
        runs[precision] = (result, state(model))
        assert all(v.dtype == torch.float32 for v in state(model).values() if v.is_floating_point())
    (r32, s32), (r16, s16) = runs["fp32"], runs["bf16"]
    assert r16.precision == "bf16" and r16.steps == r32.steps
    losses32, losses16 = [loss for _, loss in r32.history], [loss for _, loss in r16.history]
    assert losses16 != losses32  # bf16 really ran
    assert max(abs(a - b) for a, b in zip(losses32, losses16)) < 0.05
    assert max(float((s32[k] - s16[k]).abs().max()) for k in s32) < 0.05


def test_resume_refuses_a_checkpoint_of_another_configuration(tmp_path):
    def kill(name, step):
        if step == 3:
            raise TrainingInterrupted("killed")

    with pytest.raises(TrainingInterrupted):
        train(tiny_model(), checkpoint_dir=tmp_path, callbacks=(kill,), config_digest="run-a")
    with pytest.raises(checkpoint.CheckpointError, match="another configuration"):
        train(tiny_model(), checkpoint_dir=tmp_path, resume=True, config_digest="run-b")
    with pytest.raises(checkpoint.CheckpointError, match="another configuration"):
        train(tiny_model(), replace(PHASE, lr=1e-3), checkpoint_dir=tmp_path, resume=True, config_digest="run-a")
    assert train(tiny_model(), checkpoint_dir=tmp_path, resume=True, config_digest="run-a").steps == 15


def test_corrupt_checkpoint_is_refused_never_used(tmp_path):
    train(tiny_model(), replace(PHASE, epochs=1), checkpoint_dir=tmp_path)
    weights, _ = checkpoint.paths(tmp_path, "p3.done")
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(checkpoint.CheckpointError, match="checksum"):
        load_finished("p3", tmp_path, tiny_model())


class _Boom:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_planted_pickles_never_run(tmp_path, monkeypatch):
    """A crafted pickle at every checkpoint path, old (torch pickle) and new (safetensors/JSON), runs nothing."""
    import pickle

    monkeypatch.chdir(tmp_path)
    payload = pickle.dumps(_Boom())
    for name in ("p3.ckpt.pt", "p3.ckpt.done", "p3.ckpt.safetensors", "p3.done.safetensors"):
        (tmp_path / name).write_bytes(payload)
    (tmp_path / "p3.ckpt.json").write_bytes(payload)
    with pytest.raises(checkpoint.CheckpointError):
        train(tiny_model(), checkpoint_dir=tmp_path, resume=True)
    (tmp_path / "p3.done.json").write_bytes(payload)
    with pytest.raises(checkpoint.CheckpointError):
        load_finished("p3", tmp_path, tiny_model())
    assert not (tmp_path / "PWNED").exists()


def test_callbacks_receive_step_info_and_the_old_form_still_works():
    from alad_kit.training.tracking import StepInfo

    infos, pairs = [], []
    result = train(tiny_model(), replace(PHASE, epochs=2), evaluate=lambda m: 0.5,
                   callbacks=(infos.append, lambda name, step: pairs.append((name, step))))
    steps = [i for i in infos if i.event == "step"]
    assert pairs == [("p3", i.step) for i in steps] and len(steps) == result.steps == 10
    assert all(isinstance(i, StepInfo) and i.phase == "p3" for i in infos)
    assert [i.loss for i in steps] == [loss for _, loss in result.history]
    assert set(steps[0].lr) == {"student", "head"} and steps[-1].lr["head"] < steps[2].lr["head"]  # decays
    epochs = [(i.epoch, i.step, i.metrics) for i in infos if i.event == "epoch"]
    assert epochs == [(1, 5, {"validation": 0.5}), (2, 10, {"validation": 0.5})]


def test_timing_splits_the_wall_into_data_compute_eval_and_io(tmp_path):
    result = train(tiny_model(), evaluate=lambda m: 0.5, checkpoint_dir=tmp_path)
    timing = result.timing
    assert set(timing) == {"data", "compute", "eval", "io"}
    assert all(v >= 0 for v in timing.values()) and timing["compute"] > 0
    assert timing["eval"] > 0 and timing["io"] > 0  # three validations, checkpoints every 2 steps and .done
    assert sum(timing.values()) <= result.seconds + 1e-3


@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_prefetched_batches_train_exactly_as_inline_ones(lengths):
    """The background thread only assembles batches: same batches, same RNG draws (dropout), same weights."""
    phase = replace(PHASE, group_by_length=lengths is not None)
    inline, ahead = tiny_model(), tiny_model()
    torch.manual_seed(7)
    first = train(inline, phase, lengths=lengths)
    torch.manual_seed(7)
    second = train(ahead, phase, lengths=lengths, prefetch=True)
    assert first.history == second.history and first.tokens == second.tokens
    assert_same(state(inline), state(ahead))


def test_prefetch_stops_at_a_budget_and_reports_a_failing_batch():
    result = train(tiny_model(), replace(PHASE, max_steps=3), prefetch=True)
    assert result.steps == 3 and result.stopped_by == "max_steps"

    def broken(indices):
        raise ValueError("batch cannot be built")

    with pytest.raises(ValueError, match="cannot be built"):
        train(tiny_model(), make_batch=broken, prefetch=True)
