"""Dynamic and static int8: output close to float, sizes, layer choice, GELU bound, save/load, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

from alad_kit.compress import (
    GELU_MIN,
    load_quantized,
    quantize_dynamic_int8,
    quantize_static_int8,
    register_zoo_loaders,
    select_by_sensitivity,
)
from alad_kit.compress.quantize import GeluFloorObserver, gelu_input_layers

CORPUS = [  # plain encyclopaedic text (calibration must not use task data)
    "Homarus gammarus , known as the European lobster , is a species of clawed lobster .",
    "It is closely related to the American lobster , H. americanus .",
    "It may grow to a length of 60 cm and a mass of 6 kilograms , and bears a conspicuous pair of claws .",
    "In life , the lobsters are blue , only becoming lobster red on cooking .",
    "Mating occurs in the summer , producing eggs which are carried by the females for up to a year .",
    "The song is a mid-tempo ballad in which the narrator describes her life .",
    "The eleventh episode of the ninth season originally aired on the Fox network on January 4 , 1998 .",
    "Bafana Bafana is a nickname given to the national side by its fans .",
]


@pytest.fixture(scope="module")
def minilm():
    from alad_kit.models.offline import offline_model_dir

    return AutoModel.from_pretrained(offline_model_dir("minilm-l6")).eval(), AutoTokenizer.from_pretrained(offline_model_dir("minilm-l6"))


def _tiny(layers=2):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=128)
    return BertModel(config).eval()


def _hidden(model, tokenizer, texts=CORPUS[:4]):
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).last_hidden_state


# ------------------------------------------------------------------------------------------------ dynamic
def test_dynamic_int8_minilm_close_smaller_and_round_trips(tmp_path, minilm):
    model, tokenizer = minilm
    out = tmp_path / "dyn"
    qmodel, report = quantize_dynamic_int8(model, out, tokenizer, texts=CORPUS)
    assert report["output_change"]["cosine"] > 0.95
    assert report["size_mb_int8"] < 0.8 * report["size_mb_float"]
    assert type(model.encoder.layer[0].attention.self.query) is nn.Linear  # input untouched
    marker = json.loads((out / "alad_student.json").read_text())
    assert marker["kind"] == "dynamic_int8"
    reloaded, tok = load_quantized(out)
    torch.testing.assert_close(_hidden(reloaded, tok), _hidden(qmodel, tokenizer), rtol=0, atol=0)


def test_zoo_opens_int8_students_once_loaders_are_registered(tmp_path):
    from alad_kit.models import zoo
    from alad_kit.models.offline import offline_model_dir

    tokenizer = AutoTokenizer.from_pretrained(offline_model_dir("minilm-l6"))
    qmodel, _ = quantize_dynamic_int8(_tiny(), tmp_path / "dyn", tokenizer)
    register_zoo_loaders()
    loaded, _ = zoo.load_encoder(str(tmp_path / "dyn"))
    torch.testing.assert_close(_hidden(loaded, tokenizer), _hidden(qmodel, tokenizer), rtol=0, atol=0)


def test_quantizing_twice_or_nothing_is_refused(tmp_path):
    qmodel, _ = quantize_dynamic_int8(_tiny())
    with pytest.raises(ValueError, match="already quantized"):
        quantize_dynamic_int8(qmodel, tmp_path / "q")
    with pytest.raises(ValueError, match="no nn.Linear"):
        quantize_dynamic_int8(nn.Sequential(nn.Conv1d(2, 2, 1)), tmp_path / "q")
    assert list(tmp_path.iterdir()) == []


def test_load_quantized_refuses_other_directories(tmp_path):
    with pytest.raises(FileNotFoundError, match="alad_student.json"):
        load_quantized(tmp_path)
    (tmp_path / "alad_student.json").write_text(json.dumps({"kind": "lora"}))
    with pytest.raises(ValueError, match="kind 'lora'"):
        load_quantized(tmp_path)


# ------------------------------------------------------------------------------------------------ static
def test_select_by_sensitivity_spares_sensitive_layers_within_budget():
    weights = {"a": 50, "b": 30, "c": 10, "d": 10}
    sensitivity = {"a": 0.1, "b": 0.9, "c": 0.8, "d": 0.05}
    # Budget 15 float weights: b (30) does not fit -> int8; c (10) fits -> float; a, d -> int8.
    assert select_by_sensitivity(sensitivity, weights, 0.85) == ["a", "b", "d"]
    assert select_by_sensitivity(sensitivity, weights, 1.0) == ["a", "b", "c", "d"]
    assert select_by_sensitivity(sensitivity, weights, 0.5) == ["a"]  # b, c, d fit in the budget (50)


def test_gelu_floor_observer_range_starts_at_gelu_minimum():
    observer = GeluFloorObserver(reduce_range=True)
    observer(torch.linspace(-0.05, 3.0, 1000))  # calibration never reached GELU's minimum
    scale, zero_point = observer.calculate_qparams()
    lowest = (observer.quant_min - zero_point.item()) * scale.item()
    assert lowest == pytest.approx(GELU_MIN, abs=scale.item())
    plain = torch.ao.quantization.HistogramObserver(reduce_range=True)
    plain(torch.linspace(-0.05, 3.0, 1000))
    plain_scale, plain_zp = plain.calculate_qparams()
    assert (plain.quant_min - plain_zp.item()) * plain_scale.item() > -0.1  # without the bound: no room


def test_static_int8_quantizes_95_percent_with_gelu_bound(tmp_path, minilm):
    _, tokenizer = minilm
    model = _tiny()
    out = tmp_path / "static"
    qmodel, report = quantize_static_int8(model, tokenizer, CORPUS, out, sensitivity_texts=4)
    assert report["fraction_quantized"] >= 0.95
    assert report["calibration_texts"] == len(CORPUS)
    linears = {n: m for n, m in model.named_modules() if type(m) is nn.Linear}
    int8 = sum(linears[n].weight.numel() for n in report["quantized_layers"])
    assert int8 / sum(m.weight.numel() for m in linears.values()) == pytest.approx(report["fraction_quantized"])
    assert set(report["float_layers"]) | set(report["quantized_layers"]) == set(linears)
    # The FFN output projections read GELU output: their input range starts at -0.17.
    assert gelu_input_layers(model, linears) == ["encoder.layer.0.output.dense", "encoder.layer.1.output.dense"]
    for name in report["gelu_floor_layers"]:
        stub = qmodel.get_submodule(name).quant
        lowest = (0 - stub.zero_point.item()) * stub.scale.item()
        assert lowest == pytest.approx(GELU_MIN, abs=stub.scale.item())
    assert report["gelu_floor_layers"]
    # Save / load round trip.
    assert json.loads((out / "alad_student.json").read_text())["quantized_layers"] == report["quantized_layers"]
    reloaded, tok = load_quantized(out)
    torch.testing.assert_close(_hidden(reloaded, tok), _hidden(qmodel, tokenizer), rtol=0, atol=0)


def test_static_calibration_depends_on_the_text(minilm):
    _, tokenizer = minilm
    q1, _ = quantize_static_int8(_tiny(1), tokenizer, CORPUS[:4], sensitivity_texts=2, target_fraction=1.0)
    q2, _ = quantize_static_int8(_tiny(1), tokenizer, CORPUS[4:], sensitivity_texts=2, target_fraction=1.0)
    name = "encoder.layer.0.attention.output.dense"
    assert q1.get_submodule(name).quant.scale.item() != q2.get_submodule(name).quant.scale.item()


def test_static_bad_input_writes_nothing(tmp_path, minilm):
    _, tokenizer = minilm
    out = tmp_path / "static"
    with pytest.raises(ValueError, match="calibration"):
        quantize_static_int8(_tiny(1), tokenizer, [], out)
    with pytest.raises(ValueError, match="calibration"):
        quantize_static_int8(_tiny(1), tokenizer, ["", " "], out)
    with pytest.raises(ValueError, match="target_fraction"):
        quantize_static_int8(_tiny(1), tokenizer, CORPUS, out, target_fraction=0)
    with pytest.raises(ValueError, match="gelu_layers"):
        quantize_static_int8(_tiny(1), tokenizer, CORPUS, out, gelu_layers=["nope"])
    qmodel, _ = quantize_dynamic_int8(_tiny(1))
    with pytest.raises(ValueError, match="already quantized"):
        quantize_static_int8(qmodel, tokenizer, CORPUS, out)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_static_int8_minilm(minilm):
    model, tokenizer = minilm
    qmodel, report = quantize_static_int8(model, tokenizer, CORPUS, sensitivity_texts=4)
    assert report["fraction_quantized"] >= 0.95 and report["layers_quantized"] < report["layers_total"]
    assert report["output_change"]["cosine"] > 0.5
