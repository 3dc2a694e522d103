"""Tests for alad_kit.models.zoo: loading routes (hub ids, local directories, students) and layer cutting."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from _tiny_models import MINILM_TOKENIZER_FILES, SENTENCE, last_hidden, tiny_bert, write_tiny_dir
from transformers import AutoModel, BertModel, MPNetConfig, MPNetModel

from alad_kit.models import zoo
from alad_kit.models.cost import count_params


def _tiny_mpnet(layers: int = 4) -> MPNetModel:
    torch.manual_seed(0)
    config = MPNetConfig(
        vocab_size=100,
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    return MPNetModel(config).eval()


def _batch(vocab_size: int = 100) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab_size, (2, 9), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return write_tiny_dir(tmp_path_factory.mktemp("tiny") / "tiny-bert")


# ------------------------------------------------------------------------------------- loading routes


class _Recorder:
    """Stands in for AutoModel/AutoTokenizer and remembers how from_pretrained was called."""

    def __init__(self, result):
        self.calls = []
        self.result = result

    def from_pretrained(self, source, **kwargs):
        self.calls.append((source, kwargs))
        return self.result


def test_hub_ids_may_use_the_network_local_dirs_may_not(tiny_dir, monkeypatch):
    models, tokenizers = _Recorder(tiny_bert(1)), _Recorder("tok")
    monkeypatch.setattr(zoo, "AutoModel", models)
    monkeypatch.setattr(zoo, "AutoTokenizer", tokenizers)

    zoo.load_encoder("prajjwal1/bert-tiny")
    zoo.load_encoder(str(tiny_dir))

    never_code = {"trust_remote_code": False}  # whatever a config's auto_map or stdin says
    assert models.calls == [
        ("prajjwal1/bert-tiny", {"local_files_only": False, **never_code}),
        (tiny_dir, {"local_files_only": True, **never_code}),
    ]
    assert [kwargs for _, kwargs in tokenizers.calls] == [
        {"local_files_only": False, **never_code},
        {"local_files_only": True, **never_code},
    ]


def test_half_precision_checkpoint_loads_as_float32(tiny_dir, tmp_path):
    half = tmp_path / "half"
    tiny_bert().half().save_pretrained(half)
    for name in MINILM_TOKENIZER_FILES:
        shutil.copy(tiny_dir / name, half / name)
    model, _ = zoo.load_encoder(half, device="cpu")
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_local_load_draws_no_weight_bar_and_restores_the_setting(tiny_dir, capfd):
    from transformers.utils import logging as hf_logging

    zoo.load_encoder(tiny_dir)
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # the user's setting is back
    hf_logging.disable_progress_bar()
    try:
        zoo.load_encoder(tiny_dir)
        assert not hf_logging.is_progress_bar_enabled()  # and a disabled one stays disabled
    finally:
        hf_logging.enable_progress_bar()


def test_mistyped_path_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        zoo.load_encoder(str(tmp_path / "does-not-exist"))
    with pytest.raises(FileNotFoundError):
        zoo.load_encoder("./relative/missing")


def test_student_marker_uses_registered_loader(tiny_dir, tmp_path, monkeypatch):
    student = tmp_path / "student"
    shutil.copytree(tiny_dir, student)
    (student / zoo.STUDENT_MARKER).write_text(json.dumps({"kind": "custom_kind", "base": "minilm-l6"}))
    monkeypatch.setattr(zoo, "_LOADERS", {})

    # No loader for the kind (none registered, and not one of alad_kit.compress's int8 kinds): plain HF dir.
    plain, _ = zoo.load_encoder(student)
    assert isinstance(plain, BertModel)

    calls = []

    def fake_loader(path, device):
        calls.append((path, device))
        return tiny_bert(1).train(), "tok"

    zoo.register_loader("custom_kind", fake_loader)
    model, tokenizer = zoo.load_encoder(student, device="cpu")

    assert calls == [(student, "cpu")] and tokenizer == "tok"
    assert not model.training
    with pytest.raises(ValueError):
        zoo.register_loader("", fake_loader)
    (student / zoo.STUDENT_MARKER).write_text("{not json")
    with pytest.raises(ValueError, match="alad_student.json"):
        zoo.load_encoder(student)


# ------------------------------------------------------------------------------------- keep_layers


@pytest.mark.parametrize("make", [tiny_bert, _tiny_mpnet], ids=["bert", "mpnet"])
def test_keep_layers_cuts_copies_and_round_trips(make, tmp_path):
    model = make(4)
    batch = _batch()
    before = last_hidden(model, batch)

    pruned = zoo.keep_layers(model, [0, 3])

    assert zoo.encoder_dims(pruned) == (2, 16) and zoo.encoder_dims(model) == (4, 16)
    assert len(model.encoder.layer) == 4  # the original is untouched
    torch.testing.assert_close(last_hidden(model, batch), before, rtol=0, atol=0)
    kept = [pruned.encoder.layer[0], pruned.encoder.layer[1]]
    for new, old in zip(kept, [model.encoder.layer[0], model.encoder.layer[3]]):
        for (name, p_new), (_, p_old) in zip(new.named_parameters(), old.named_parameters()):
            assert torch.equal(p_new, p_old), name
            assert p_new.data_ptr() != p_old.data_ptr(), "keep_layers must copy, not share"
    assert count_params(pruned) == count_params(model) - 2 * count_params(
        model.encoder.layer[1]
    )
    out = last_hidden(pruned, batch)
    assert out.shape == before.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, before)

    pruned.save_pretrained(tmp_path / "pruned")
    reloaded = AutoModel.from_pretrained(tmp_path / "pruned", local_files_only=True).eval()
    assert zoo.encoder_dims(reloaded) == (2, 16)
    torch.testing.assert_close(last_hidden(reloaded, batch), out, rtol=0, atol=0)


def test_keep_layers_all_layers_is_identity_and_order_is_kept():
    model = tiny_bert(3)
    batch = _batch()
    torch.testing.assert_close(last_hidden(zoo.keep_layers(model, [0, 1, 2]), batch), last_hidden(model, batch))

    reordered = zoo.keep_layers(model, [2, 0])
    assert torch.equal(
        reordered.encoder.layer[0].output.dense.weight, model.encoder.layer[2].output.dense.weight
    )
    self_attention = reordered.encoder.layer[1].attention.self
    assert self_attention.layer_idx == 1  # renumbered for cache indexing


def test_keep_layers_on_the_real_minilm():
    model, tokenizer = zoo.load_encoder("minilm-l6")
    pruned = zoo.keep_layers(model, [0, 2, 4])
    hidden = last_hidden(pruned, tokenizer(SENTENCE, return_tensors="pt"))
    assert zoo.encoder_dims(pruned) == (3, 384) and torch.isfinite(hidden).all()


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([], "at least one"),
        ([1, 1], "duplicate"),
        ([0, 4], "outside"),
        ([-1], "outside"),
        ([0.5], "integers"),
        ([True], "integers"),
    ],
)
def test_keep_layers_rejects_bad_indices(layers, message):
    with pytest.raises(ValueError, match=message):
        zoo.keep_layers(tiny_bert(4), layers)


def test_keep_layers_needs_an_encoder():
    with pytest.raises(ValueError, match="encoder layers"):
        zoo.keep_layers(torch.nn.Linear(2, 2), [0])
