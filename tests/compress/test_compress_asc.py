"""ASC layer pruning: selection rule on a hand-made matrix, similarity on real models, save/reload."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

from alad_kit.compress import asc_prune, layer_similarity, select_layers_asc, threshold_for_n_layers

SENTENCES = [
    "The European lobster is a species of clawed lobster from the eastern Atlantic Ocean .",
    "Mating occurs in the summer , producing eggs which are carried by the females .",
    "The song was released as the third single from their 2005 album .",
    "It may grow to a length of 60 cm and a mass of 6 kilograms .",
    "Paris is the capital of France .",
]

# 4 layers. Walk: layer 1 ~ embeddings (0.95) -> dropped; layer 2 (0.80) kept; layer 3 ~ layer 2 (0.92)
# -> dropped; layer 4 vs the last KEPT layer (2): 0.70 -> kept, although it is 0.95-similar to layer 3.
SIM = np.array([
    [1.00, 0.95, 0.80, 0.70, 0.60],
    [0.95, 1.00, 0.85, 0.75, 0.65],
    [0.80, 0.85, 1.00, 0.92, 0.70],
    [0.70, 0.75, 0.92, 1.00, 0.95],
    [0.60, 0.65, 0.70, 0.95, 1.00],
])


def _minilm():
    from alad_kit.models.offline import offline_model_dir

    return AutoModel.from_pretrained(offline_model_dir("minilm-l6")).eval(), AutoTokenizer.from_pretrained(offline_model_dir("minilm-l6"))


def _tiny(layers=4):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    return BertModel(config).eval()


@pytest.fixture(scope="module")
def tokenizer():
    return _minilm()[1]


def test_selection_compares_with_last_kept_layer():
    assert select_layers_asc(SIM, 0.9) == [1, 3]
    assert select_layers_asc(SIM, 0.96) == [0, 1, 2, 3]  # nothing that similar: keep all
    assert select_layers_asc(SIM, 1.0) == [0, 1, 2, 3]
    assert select_layers_asc(SIM, 0.75) == [2]  # layers 1-2 ~ embeddings, layer 4 ~ layer 3


def test_selection_refuses_to_drop_every_layer():
    with pytest.raises(ValueError, match="every one of the 4 layers"):
        select_layers_asc(SIM, 0.5)


@pytest.mark.parametrize("threshold", [0, -0.1, 1.5, "0.9", None])
def test_bad_threshold(threshold):
    with pytest.raises(ValueError, match="threshold"):
        select_layers_asc(SIM, threshold)


def test_bad_matrix():
    with pytest.raises(ValueError, match="square"):
        select_layers_asc(np.ones((3, 4)), 0.9)


def test_threshold_for_n_layers_hits_each_reachable_count():
    for n in (1, 2, 4):
        t = threshold_for_n_layers(SIM, n)
        assert 0 < t <= 1 and len(select_layers_asc(SIM, t)) == n
    with pytest.raises(ValueError, match="reachable"):
        threshold_for_n_layers(SIM, 3)  # this matrix never keeps exactly 3
    with pytest.raises(ValueError, match="n_layers"):
        threshold_for_n_layers(SIM, 5)


def test_similarity_matrix_properties_and_padding_is_masked(tokenizer):
    model = _tiny()
    batched = layer_similarity(model, tokenizer, SENTENCES, batch_size=5)
    one_by_one = layer_similarity(model, tokenizer, SENTENCES, batch_size=1)  # no padding at all
    assert batched.shape == (5, 5)
    np.testing.assert_allclose(batched, batched.T, atol=1e-9)
    np.testing.assert_allclose(np.diag(batched), 1.0, atol=1e-9)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_similarity_needs_text(tokenizer):
    with pytest.raises(ValueError, match="no text"):
        layer_similarity(_tiny(), tokenizer, ["", "   "])


def test_asc_prune_minilm_saves_a_model_that_reloads(tmp_path):
    model, tokenizer = _minilm()
    out = tmp_path / "asc"
    pruned, report = asc_prune(model, tokenizer, SENTENCES, out_dir=out, target_layers=3)
    assert len(report["kept_layers"]) == 3 == pruned.config.num_hidden_layers
    assert model.config.num_hidden_layers == 6  # input untouched
    assert report["kept_layers"] == select_layers_asc(report["similarity"], report["threshold"])
    params = sum(p.numel() for p in pruned.parameters())
    assert report["params"] == params
    assert report["params_pct"] == pytest.approx(100 * params / sum(p.numel() for p in model.parameters()))
    assert 50 < report["params_pct"] < 100

    reloaded = AutoModel.from_pretrained(out).eval()
    batch = tokenizer(SENTENCES[:3], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).last_hidden_state, pruned(**batch).last_hidden_state)
    assert json.loads((out / "compression_report.json").read_text())["kept_layers"] == report["kept_layers"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["asc"]  # no temporary directory left over


def test_asc_bad_input_writes_nothing(tmp_path, tokenizer):
    model = _tiny()
    out = tmp_path / "asc"
    with pytest.raises(ValueError, match="every one"):
        asc_prune(model, tokenizer, SENTENCES, threshold=1e-6, out_dir=out)  # every layer "redundant"
    with pytest.raises(ValueError, match="no text"):
        asc_prune(model, tokenizer, [], threshold=0.9, out_dir=out)
    with pytest.raises(ValueError, match="exactly one"):
        asc_prune(model, tokenizer, SENTENCES, threshold=0.9, target_layers=2, out_dir=out)
    with pytest.raises(ValueError, match="threshold"):
        asc_prune(model, tokenizer, SENTENCES, threshold=2.0, out_dir=out)
    assert list(tmp_path.iterdir()) == []
