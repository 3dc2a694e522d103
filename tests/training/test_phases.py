"""Alignment data, loss and quality measures of phases 1-2 (alad_kit.training.phases)."""

import pytest
import torch

from alad_kit.adapter import AlignmentAdapter
from alad_kit.models.model import AladModel
from alad_kit.training.align import UNPAIRED
from alad_kit.training.cache import EmbeddingCache
from alad_kit.training.phases import (
    AlignmentData,
    alignment_loss,
    alignment_quality,
    build_alignment_data,
    token_probe_frame,
)

TEXTS = [
    "Alignment adapters map small models onto large ones.",
    "Hi.",
    "The teacher reads the same text as the student, token for token.",
    "Every student token is paired with a teacher token.",
    "Padding never counts.",
]


@pytest.fixture(scope="module")
def encoders():
    """Teacher: MiniLM; student: MiniLM's first layer; teacher tokenizer: MPNet's (ids shifted by 4)."""
    from transformers import AutoTokenizer

    from alad_kit.models.zoo import keep_layers, load_encoder, offline_model_dir

    teacher, tokenizer = load_encoder("minilm-l6")
    # The teacher sees MPNet ids only if it understands them, so keep MiniLM's tokenizer for the teacher;
    # MPNet's tokenizer is used where only the pairing matters.
    mpnet_tok = AutoTokenizer.from_pretrained(offline_model_dir("mpnet-base"))
    return teacher, keep_layers(teacher, [0]), tokenizer, mpnet_tok


@pytest.fixture(scope="module")
def cached_data(encoders, tmp_path_factory):
    teacher, student, tok, _ = encoders
    cache = EmbeddingCache(tmp_path_factory.mktemp("cache"))
    return build_alignment_data(TEXTS, student, tok, teacher, tok, cache, max_length=16, batch_size=2)


def _model(seed=0, window=3):
    torch.manual_seed(seed)
    return AladModel(torch.nn.Identity(), AlignmentAdapter(384, 384, window=window, hidden=64))


def test_batch_layout_and_targets(cached_data, encoders):
    teacher, _, tok, _ = encoders
    idx = [1, 2, 0]
    batch = cached_data.make_batch(idx)
    width = max(len(cached_data.pairing.student_input_ids[i]) for i in idx)
    assert batch["student_hidden"].shape == (3, width, 384) and batch["target"].shape == (3, width, 384)
    assert batch["attention_mask"].shape == batch["target_mask"].shape == (3, width)
    lengths = [len(cached_data.pairing.student_input_ids[i]) for i in idx]
    assert batch["attention_mask"].sum(1).tolist() == lengths
    mask = batch["target_mask"]
    assert not batch["target"][~mask].any() and not batch["student_hidden"][batch["attention_mask"] == 0].any()
    assert (mask <= batch["attention_mask"].bool()).all() and not mask[:, 0].any()  # [CLS] never paired
    # The target of a paired token is the teacher's hidden state at its partner position.
    b, j = 1, 3
    t = cached_data.pairing.student_to_teacher[idx[b]][j]
    ids = torch.tensor([cached_data.pairing.teacher_input_ids[idx[b]]])
    with torch.no_grad():
        direct = teacher(input_ids=ids).last_hidden_state[0, t]
    torch.testing.assert_close(batch["target"][b, j], direct, rtol=2e-3, atol=2e-3)


def test_live_encoders_give_the_cached_batches(cached_data, encoders):
    teacher, student, tok, _ = encoders
    live = build_alignment_data(TEXTS, student, tok, teacher, tok, cache=None, max_length=16)
    assert isinstance(live, AlignmentData) and live.student_rows is student
    a, b = cached_data.make_batch([0, 3]), live.make_batch([0, 3])
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k].float(), b[k].float(), rtol=2e-3, atol=2e-3)


def test_alignment_loss_reads_only_paired_tokens(cached_data):
    model, batch = _model(), cached_data.make_batch([0, 1, 2])
    loss = alignment_loss(model, batch)
    mask = batch["target_mask"]
    with torch.no_grad():
        adapted = model(batch, use_head=False)
    assert loss.item() == pytest.approx(float(((adapted - batch["target"])[mask] ** 2).mean()), rel=1e-5)
    garbage = dict(batch, target=batch["target"] + 100.0 * (~mask).unsqueeze(-1))  # change unpaired targets
    assert alignment_loss(model, garbage).item() == pytest.approx(loss.item(), rel=1e-6)
    perfect = dict(batch, target=adapted)
    assert alignment_loss(model, perfect).item() == 0.0
    loss.backward()
    assert model.adapter.out_proj.weight.grad is not None


def test_alignment_quality_and_probe_frame_agree(cached_data, encoders):
    tok = encoders[2]
    model = _model().train()
    quality = alignment_quality(model, cached_data, batch_size=2)
    assert model.training  # mode restored
    n_paired = sum(sum(t != UNPAIRED for t in row) for row in cached_data.pairing.student_to_teacher)
    assert quality["tokens"] == n_paired
    whole = cached_data.make_batch(range(len(cached_data)))
    with torch.no_grad():
        assert quality["mse"] == pytest.approx(float(alignment_loss(model.eval(), whole)), rel=1e-4)
    assert -1 <= quality["cosine"] <= 1
    frame = token_probe_frame(model, cached_data, tok, "before_phase1", batch_size=2)
    assert list(frame.columns) == ["sentence", "position", "token", "phase", "mse", "cosine"]
    assert len(frame) == n_paired and set(frame["phase"]) == {"before_phase1"}
    assert frame["mse"].mean() == pytest.approx(quality["mse"], rel=1e-4)
    assert frame["cosine"].mean() == pytest.approx(quality["cosine"], rel=1e-4)
    row = frame.iloc[0]
    assert row["token"] == tok.convert_ids_to_tokens(cached_data.pairing.student_input_ids[row["sentence"]])[
        row["position"]]
    assert not frame["token"].isin(tok.all_special_tokens).any()


def test_training_the_adapter_improves_quality(cached_data):
    model = _model()
    before = alignment_quality(model, cached_data)
    opt = torch.optim.Adam(model.adapter.parameters(), lr=2e-3)
    batch = cached_data.make_batch(range(len(cached_data)))
    for _ in range(10):
        opt.zero_grad()
        alignment_loss(model, batch).backward()
        opt.step()
    after = alignment_quality(model, cached_data)
    assert after["mse"] < before["mse"] and after["cosine"] > before["cosine"]


def test_different_tokenizers_still_pair(encoders):
    teacher, student, tok, mpnet_tok = encoders
    # Pairing only (no teacher pass): MiniLM student tokens vs MPNet teacher tokens pair one to one.
    data = build_alignment_data(TEXTS, student, tok, student, mpnet_tok, cache=None, max_length=16)
    assert data.pairing.exact_fraction == 1.0
    assert data.pad_ids == (tok.pad_token_id, mpnet_tok.pad_token_id)


def test_bad_alignment_inputs(encoders):
    teacher, student, tok, _ = encoders
    with pytest.raises(ValueError, match="no texts"):
        build_alignment_data([], student, tok, teacher, tok, None, max_length=16)
    with pytest.raises(ValueError, match="no student token could be paired"):
        build_alignment_data(["", "   "], student, tok, teacher, tok, None, max_length=16)
