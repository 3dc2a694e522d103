"""The deployed model: encoder [+ LoRA] [+ adapter] + head (alad_kit.models.model)."""

import warnings

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from alad_kit.adapter import AlignmentAdapter
from alad_kit.models.heads import SpanHead, TokenClassificationHead
from alad_kit.models.model import AladModel, add_lora


def tiny_bert(seed=0):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    return BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=16)).eval()


def tiny_mpnet():
    from transformers import MPNetConfig, MPNetModel

    torch.manual_seed(0)
    return MPNetModel(MPNetConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=20)).eval()


def batch(b=2, t=6):
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(b, t, dtype=torch.long)
    mask[1, t - 2 :] = 0
    return {"input_ids": torch.randint(5, 50, (b, t), generator=g), "attention_mask": mask,
            "token_type_ids": torch.zeros(b, t, dtype=torch.long)}


def n_params(*modules):
    return sum(p.numel() for m in modules for p in m.parameters())


def test_pipeline_shapes_and_cached_student_path():
    encoder, adapter = tiny_bert(), AlignmentAdapter(16, 24, window=3, hidden=8)
    model = AladModel(encoder, adapter, TokenClassificationHead(24, 5)).eval()
    x = batch()
    assert model(x).shape == (2, 6, 5)
    embedded = model(x, use_head=False)
    assert embedded.shape == (2, 6, 24)
    with torch.no_grad():
        hidden = encoder(input_ids=x["input_ids"], attention_mask=x["attention_mask"]).last_hidden_state
    cached = model({"student_hidden": hidden, "attention_mask": x["attention_mask"]}, use_head=False)
    torch.testing.assert_close(cached, embedded)  # phases 1-2 feed M_C's output instead of running it
    plain = AladModel(encoder, head=SpanHead(16)).eval()
    assert plain(x).shape == (2, 6, 2)
    assert torch.equal(plain.embed(x), hidden)


def test_forward_without_head_needs_use_head_false():
    model = AladModel(tiny_bert(), AlignmentAdapter(16, 16, window=1, hidden=8))
    with pytest.raises(ValueError, match="no task head"):
        model(batch())


def test_encoder_inputs_follow_the_architecture():
    assert AladModel(tiny_bert())._encoder_keys == ("input_ids", "attention_mask", "token_type_ids")
    mpnet = AladModel(tiny_mpnet(), head=TokenClassificationHead(16, 3)).eval()
    assert mpnet._encoder_keys == ("input_ids", "attention_mask")
    assert mpnet(batch()).shape == (2, 6, 3)  # token_type_ids in the batch are not passed to MPNet


def test_frozen_encoder_gets_no_graph_trainable_one_does():
    model = AladModel(tiny_bert(), head=TokenClassificationHead(16, 3))
    model.set_trainable(("head",))
    assert not model.embed(batch()).requires_grad
    model.set_trainable(("student", "head"))
    assert model.embed(batch()).requires_grad


def test_token_head_loss_ignores_minus_100():
    logits = torch.randn(2, 3, 4)
    labels = torch.tensor([[-100, 2, -100], [1, -100, -100]])
    expected = F.cross_entropy(torch.stack([logits[0, 1], logits[1, 0]]), torch.tensor([2, 1]))
    torch.testing.assert_close(TokenClassificationHead.loss(logits, {"labels": labels}), expected)
    head = TokenClassificationHead(8, 4).eval()
    assert head(torch.randn(2, 3, 8)).shape == (2, 3, 4)


def test_span_head_loss_averages_start_and_end():
    logits = torch.randn(2, 5, 2)
    b = {"start_positions": torch.tensor([0, 3]), "end_positions": torch.tensor([0, 4])}
    expected = (F.cross_entropy(logits[..., 0], b["start_positions"]) + F.cross_entropy(logits[..., 1], b["end_positions"])) / 2
    torch.testing.assert_close(SpanHead.loss(logits, b), expected)


def test_set_trainable_freezes_everything_else():
    adapter, head = AlignmentAdapter(16, 24, window=3, hidden=8), TokenClassificationHead(24, 3)
    model = AladModel(tiny_bert(), adapter, head)
    for parts, expected in [
        (("adapter",), adapter),
        (("adapter", "head"), nn.ModuleList([adapter, head])),
        (("student",), model.encoder),
    ]:
        params = model.set_trainable(parts)
        assert {id(p) for p in params} == {id(p) for p in expected.parameters()}
        assert {id(p) for p in model.parameters() if p.requires_grad} == {id(p) for p in params}
    with pytest.raises(ValueError, match="no lora"):
        model.set_trainable(("lora",))
    with pytest.raises(ValueError, match="no adapter"):
        AladModel(tiny_bert(), head=head).set_trainable(("adapter", "head"))


def test_quantized_student_cannot_be_fine_tuned():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(tiny_bert(), {nn.Linear}, dtype=torch.qint8)
    model = AladModel(quantized, head=TokenClassificationHead(16, 3))
    with pytest.raises(ValueError, match="quantized"):
        model.set_trainable(("student", "head"))
    assert model.set_trainable(("head",))  # the frozen-student modes still work
    # The packed int8 weights count as deployed parameters, exactly as many as the float model had.
    assert model.deployed_parameters() == AladModel(tiny_bert(), head=TokenClassificationHead(16, 3)).deployed_parameters()


def test_lora_wraps_attention_and_starts_as_the_base_model():
    base = tiny_bert()
    x = batch()
    with torch.no_grad():
        reference = base(**x).last_hidden_state
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # peft's read of a deprecated transformers attribute is muted
        encoder = add_lora(base, r=4, alpha=8)
    names = [n for n, _ in encoder.named_parameters() if "lora_" in n]
    assert names and all(".query." in n or ".value." in n for n in names)
    model = AladModel(encoder, head=TokenClassificationHead(16, 3)).eval()
    torch.testing.assert_close(model.embed(x), reference)  # lora_B starts at zero
    parts = model.parts()
    assert len(parts["lora"]) == len(names) and not {id(p) for p in parts["lora"]} & {id(p) for p in parts["student"]}
    params = model.set_trainable(("lora", "head"))
    assert {id(p) for p in model.parameters() if p.requires_grad} == {id(p) for p in params}
    assert all(not p.requires_grad for p in parts["student"])
    assert model.deployed_parameters() == n_params(model)  # base + LoRA + head, each once
    assert AladModel(add_lora(tiny_mpnet())).parts()["lora"]  # MPNet's q/v projections


def test_lora_on_unknown_architectures():
    class Toy(nn.Module):
        def __init__(self, names):
            super().__init__()
            for name in names:
                setattr(self, name, nn.Linear(4, 4))

    wrapped = add_lora(Toy(["q", "v", "o"]), r=2)
    assert {n.split(".")[-4] for n, _ in wrapped.named_parameters() if "lora_" in n} == {"q", "v"}
    with pytest.raises(ValueError, match="cannot place LoRA"):
        add_lora(Toy(["dense"]))


def test_deployed_parameters_count_every_part_once():
    encoder, adapter, head = tiny_bert(), AlignmentAdapter(16, 24, window=3, hidden=8), TokenClassificationHead(24, 3)
    model = AladModel(encoder, adapter, head)
    assert model.deployed_parameters() == n_params(encoder, adapter, head)
    assert AladModel(encoder, head=head).deployed_parameters() == n_params(encoder, head)
