"""L1 magnitude pruning: real sparsity, permanence, input untouched, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import AutoModel, BertConfig, BertModel

from alad_kit.compress import l1_prune, linear_sparsity, quantize_dynamic_int8


def _tiny():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    return BertModel(config).eval()


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.7])
def test_real_sparsity_matches_request(fraction):
    model = _tiny()
    pruned, report = l1_prune(model, fraction)
    counted = linear_sparsity(pruned)
    assert counted["linear_sparsity"] == pytest.approx(fraction, abs=1e-3)
    assert report["linear_sparsity"] == counted["linear_sparsity"]
    assert linear_sparsity(model)["linear_zeros"] == 0  # the input model is not pruned


def test_pruning_is_global_and_permanent():
    model = _tiny()
    pruned, _ = l1_prune(model, 0.5)
    assert set(pruned.state_dict()) == set(model.state_dict())  # no weight_orig / weight_mask left
    assert not any(m._forward_pre_hooks for m in pruned.modules())
    # One global magnitude cut: every surviving weight is at least as large as every removed one.
    before = torch.cat([m.weight.flatten() for m in model.modules() if type(m) is nn.Linear])
    after = torch.cat([m.weight.flatten() for m in pruned.modules() if type(m) is nn.Linear])
    removed, kept = before[after == 0].abs(), after[after != 0].abs()
    assert removed.max() <= kept.min()
    # Non-Linear parameters (embeddings, LayerNorm) are not touched.
    torch.testing.assert_close(pruned.embeddings.word_embeddings.weight, model.embeddings.word_embeddings.weight)


def test_saved_pruned_model_reloads_with_its_zeros(tmp_path):
    pruned, report = l1_prune(_tiny(), 0.4, tmp_path / "l1")
    reloaded = AutoModel.from_pretrained(tmp_path / "l1")
    assert linear_sparsity(reloaded)["linear_zeros"] == report["linear_zeros"]
    assert (tmp_path / "l1" / "compression_report.json").is_file()


@pytest.mark.parametrize("fraction", [1.0, -0.1, 1.5, True, "0.5"])
def test_bad_fraction_writes_nothing(tmp_path, fraction):
    with pytest.raises(ValueError, match="fraction"):
        l1_prune(_tiny(), fraction, tmp_path / "l1")
    assert list(tmp_path.iterdir()) == []


def test_refuses_models_without_float_linear_layers():
    with pytest.raises(ValueError, match="no nn.Linear"):
        l1_prune(nn.Sequential(nn.Embedding(10, 4), nn.LayerNorm(4)), 0.5)
    quantized, _ = quantize_dynamic_int8(_tiny())
    with pytest.raises(ValueError, match="already quantized"):
        l1_prune(quantized, 0.5)
