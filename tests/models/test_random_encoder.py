"""``random:<alias>`` in alad_kit.models.zoo: the offline models' architecture and tokenizer, random weights."""

import json
import logging

import pytest
import torch

from alad_kit.models.zoo import CONFIGS_DIR, load_encoder


def test_random_minilm_is_the_real_architecture_seeded_and_leaves_the_global_rng_alone(caplog):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    with caplog.at_level(logging.WARNING):
        model, tokenizer = load_encoder("random:minilm-l6")
    assert torch.equal(torch.rand(1), expected_next)  # loading drew from a forked generator
    assert "random-initialised" in caplog.text  # never silent
    config = json.loads((CONFIGS_DIR / "minilm-l6" / "config.json").read_text())
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (config["num_hidden_layers"], 384)
    assert model.config._name_or_path == "random:minilm-l6" and not model.training
    again, _ = load_encoder("random:minilm-l6")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    ids = tokenizer("Hello world")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and len(ids) == 4  # a real WordPiece vocabulary, not a stub


def test_the_config_folders_carry_no_weights():
    for folder in CONFIGS_DIR.iterdir():
        names = {p.name for p in folder.iterdir()}
        assert "config.json" in names and not names & {"model.safetensors", "pytorch_model.bin"}, folder
        assert sum(p.stat().st_size for p in folder.iterdir()) < 2**20, folder


def test_an_unknown_random_alias_names_the_known_ones():
    with pytest.raises(ValueError, match="random:bert-huge: no config .*known: minilm-l6, mpnet-base"):
        load_encoder("random:bert-huge")
