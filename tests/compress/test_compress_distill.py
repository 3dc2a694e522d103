"""Knowledge distillation: config checks, student construction, losses, both training loops."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F
from transformers import AutoModel, BertConfig, BertForTokenClassification, BertModel

from alad_kit.compress import DistillConfig, distill_encoder, distill_task, make_student
from alad_kit.compress.distill import kd_loss, uniform_layer_map

TEXTS = [
    "The European lobster is a species of clawed lobster from the eastern Atlantic Ocean .",
    "Mating occurs in the summer , producing eggs which are carried by the females .",
    "The song was released as the third single from their 2005 album .",
    "It may grow to a length of 60 cm and a mass of 6 kilograms .",
    "Paris is the capital of France and lies on the Seine .",
    "The committee reviewed the annual budget on Tuesday .",
]


def _word_tokenizer():
    """A word-level tokenizer over TEXTS: a ~70-word vocabulary keeps the embedding (and AdamW) tiny."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for t in TEXTS for w in t.split()})
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]")


VOCAB = 128  # >= the word tokenizer's vocabulary and the ids of _token_batches


def _config(**overrides):
    values = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=128)
    return BertConfig(**{**values, **overrides})


def _teacher():
    torch.manual_seed(0)
    return BertModel(_config()).eval()


@pytest.fixture(scope="module")
def tokenizer():
    tok = _word_tokenizer()
    assert len(tok) <= VOCAB
    return tok


@pytest.mark.parametrize("bad", [
    {"temperature": 0}, {"alpha_kl": 1.5}, {"alpha_hidden": -1}, {"lr": 0}, {"epochs": 0},
    {"max_steps": 0}, {"grad_clip": 0}, {"layer_map": (0, 2)}, {"batch_size": 2.5},
])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="DistillConfig"):
        DistillConfig(**bad)


def test_make_student_fewer_layers_copies_teacher_weights():
    teacher = _teacher()
    student = make_student(teacher, layers=[0, 2])
    assert student.config.num_hidden_layers == 2 and teacher.config.num_hidden_layers == 4
    torch.testing.assert_close(student.encoder.layer[1].output.dense.weight, teacher.encoder.layer[2].output.dense.weight)
    assert student.encoder.layer[1].output.dense.weight is not teacher.encoder.layer[2].output.dense.weight


def test_make_student_narrower_is_a_fresh_smaller_model():
    teacher = _teacher()
    student = make_student(teacher, layers=[0, 1], hidden_size=16)
    assert (student.config.hidden_size, student.config.num_hidden_layers) == (16, 2)
    assert student.config.intermediate_size == 64 and student.config.vocab_size == teacher.config.vocab_size
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in teacher.parameters()) / 2
    with pytest.raises(ValueError, match="divisible"):
        make_student(teacher, hidden_size=30, num_attention_heads=4)
    with pytest.raises(ValueError, match="at least one layer"):
        make_student(teacher, layers=[])


def test_uniform_layer_map():
    assert uniform_layer_map(2, 4) == (2, 4)
    assert uniform_layer_map(3, 12) == (4, 8, 12)
    assert uniform_layer_map(4, 4) == (1, 2, 3, 4)


def test_kd_loss_matches_definition():
    torch.manual_seed(0)
    s, t = torch.randn(3, 5), torch.randn(3, 5)
    temperature = 2.0
    p = F.softmax(t / temperature, -1)
    expected = temperature**2 * (p * (p.log() - F.log_softmax(s / temperature, -1))).sum(-1).mean()
    torch.testing.assert_close(kd_loss(s, t, temperature), expected)
    assert float(kd_loss(t, t, temperature)) == pytest.approx(0.0, abs=1e-6)


def test_distill_encoder_reduces_loss_and_saves(tmp_path, tokenizer):
    teacher = _teacher()
    student = make_student(teacher, layers=[0, 1], hidden_size=16)  # narrower: learned projection
    config = DistillConfig(lr=3e-3, epochs=15, batch_size=3, max_length=32, seed=0)
    out = tmp_path / "student"
    trained, report = distill_encoder(teacher, student, tokenizer, TEXTS, config, out_dir=out)
    assert trained is student and report["steps"] == 30
    assert report["loss_last"] < 0.7 * report["loss_first"]
    assert report["layer_map"] == [2, 4] and report["params_pct"] < 50
    reloaded = AutoModel.from_pretrained(out).eval()
    batch = tokenizer(TEXTS[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).last_hidden_state, trained(**batch).last_hidden_state)


def test_distill_encoder_with_attention_maps_restores_sdpa(tokenizer):
    teacher = _teacher()
    student = make_student(teacher, layers=[1, 3])
    config = DistillConfig(lr=1e-3, max_steps=3, batch_size=2, max_length=32, alpha_attention=1.0)
    _, report = distill_encoder(teacher, student, tokenizer, TEXTS, config)
    assert report["steps"] == 3 and all(math.isfinite(x) for x in report["loss_history"])
    assert student.config._attn_implementation == teacher.config._attn_implementation == "sdpa"


def test_distill_encoder_bad_input(tmp_path, tokenizer):
    teacher = _teacher()
    with pytest.raises(ValueError, match="no text"):
        distill_encoder(teacher, make_student(teacher, [0]), tokenizer, [], out_dir=tmp_path / "s")
    with pytest.raises(ValueError, match="vocabulary"):
        distill_encoder(teacher, BertModel(_config(vocab_size=VOCAB + 1)), tokenizer, TEXTS, out_dir=tmp_path / "s")
    with pytest.raises(ValueError, match="layer_map"):
        distill_encoder(teacher, make_student(teacher, [0]), tokenizer, TEXTS, DistillConfig(layer_map=(9,)))
    assert list(tmp_path.iterdir()) == []


def _token_batches(n=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        ids = torch.randint(2, VOCAB, (4, 12), generator=gen)
        labels = ids % 3  # a learnable token-level task
        labels[:, -2:] = -100
        batches.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})
    return batches


def test_distill_task_reduces_loss_with_hidden_term():
    torch.manual_seed(0)
    teacher = BertForTokenClassification(_config(num_labels=3)).eval()
    student = make_student(teacher, layers=[0, 3])
    config = DistillConfig(lr=2e-3, epochs=6, alpha_kl=0.5, alpha_hidden=0.5, temperature=2.0)
    report = distill_task(teacher, student, _token_batches(), config)
    assert report["steps"] == 24 and report["objective"] == "task"
    assert report["loss_last"] < report["loss_first"]


def test_distill_task_bad_input():
    torch.manual_seed(0)
    teacher = BertForTokenClassification(_config(num_labels=3)).eval()
    student = make_student(teacher, layers=[0])
    with pytest.raises(ValueError, match="one-shot iterator"):
        distill_task(teacher, student, iter(_token_batches()), DistillConfig(epochs=2))
    unlabelled = [{k: v for k, v in b.items() if k != "labels"} for b in _token_batches(1)]
    with pytest.raises(ValueError, match="labels"):
        distill_task(teacher, student, unlabelled, DistillConfig(alpha_kl=0.5))
    report = distill_task(teacher, student, unlabelled, DistillConfig(alpha_kl=1.0))  # pure KD needs none
    assert report["steps"] == 1
