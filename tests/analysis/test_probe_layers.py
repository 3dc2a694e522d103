"""The layer probe: features per hidden state, the probe's lr/step choice on validation, cache, figure."""

import json

import pytest
import torch
from datasets import Dataset

from alad_kit.analysis.probes.head_probe import LayerRows, train_head_probe
from alad_kit.analysis.probes.layers import (
    ProbeSettings,
    _first_subwords,
    best_layer,
    cached_features,
    layer_features,
    layer_figure,
    probe_model,
    train_probe,
)
from alad_kit.tasks.specs import get_task
from tests._tiny_models import minilm_dir, tiny_bert

FAST = ProbeSettings(train_sentences=10, eval_sentences=10, steps=60, max_steps=60, eval_every=20, lrs=(1e-2, 1e-1),
                     batch_size=4)


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoTokenizer

    return tiny_bert(layers=2), AutoTokenizer.from_pretrained(minilm_dir())


def test_first_subwords_keep_the_prefix_that_survived_truncation():
    assert _first_subwords([None, 0, 0, 1, 2, 2, None]) == [1, 3, 4]
    assert _first_subwords([None, 0, 1, 1]) == [1, 2]  # word 1 cut mid-word still has its first piece
    assert _first_subwords([None, None]) == []


def test_layer_features_have_one_vector_per_word_and_hidden_state(tiny):
    encoder, tokenizer = tiny
    hidden, kept = layer_features(encoder, tokenizer, [["a", "tokenization", "test"], ["two", "words"]],
                                  max_length=32, batch_size=1)
    assert hidden.shape == (3, 5, 16) and kept == [3, 2]  # embeddings + 2 layers, 5 words, width 16
    enc = tokenizer(["two", "words"], is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        states = encoder(**enc, output_hidden_states=True).hidden_states
    first = _first_subwords(enc.word_ids(0))
    assert torch.allclose(hidden[2, 3:].float(), states[2][0, first], atol=2e-2)  # fp16/bf16 storage


def test_probe_picks_lr_and_step_on_validation_and_flags_under_training():
    torch.manual_seed(0)
    x = torch.randn(200, 8)
    y = (x[:, 0] > 0).long()  # one informative direction
    xv = torch.randn(100, 8)
    yv = (xv[:, 0] > 0).long()
    fit = train_probe(x, y, xv, 2, lambda pred: float((pred == yv).float().mean()), FAST)
    assert fit["score"] > 0.9 and fit["lr"] in FAST.lrs and fit["step"] % 20 == 0
    assert set(fit["curve"]) == {"0.01", "0.1"} and len(fit["curve"]["0.01"]) == 3
    noise = train_probe(torch.randn(200, 8), y, xv, 2, lambda pred: float((pred == yv).float().mean()), FAST)
    assert noise["score"] < 0.75  # no signal: the probe cannot read the label
    slow = ProbeSettings(steps=20, max_steps=20, eval_every=20, lrs=(1e-4,))
    assert train_probe(x, y, xv, 2, lambda pred: float((pred == yv).float().mean()), slow)["under_trained"]


def test_a_learning_rate_still_improving_trains_on_up_to_max_steps():
    torch.manual_seed(0)
    x = torch.randn(200, 8)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    accuracy = lambda pred: float((pred == y).float().mean())  # noqa: E731  (train = validation: always rising)
    fit = train_probe(x, y, x, 2, accuracy, ProbeSettings(steps=20, max_steps=80, eval_every=10, lrs=(1e-3,)))
    assert [s for s, _ in fit["curve"]["0.001"]][-1] == 80  # extended 20 -> 40 -> 60 -> 80, then stopped
    with pytest.raises(ValueError, match="max_steps"):
        ProbeSettings(steps=100, max_steps=50)


def test_probe_model_scores_every_hidden_state_with_the_task_metric(tiny, tmp_path):
    encoder, tokenizer = tiny
    words = [["paris", "is", "big"], ["john", "lives", "in", "rome"], ["the", "cat"]] * 4
    tags = [["B-LOC", "O", "O"], ["B-PER", "O", "O", "B-LOC"], ["O", "O"]] * 4
    split = Dataset.from_dict({"tokens": words, "ner_tags": tags})
    labels = ["O", "B-LOC", "B-PER"]
    layers = probe_model(encoder, tokenizer, get_task("ner"), split, split, labels, FAST, tmp_path / "features")
    assert [e["layer"] for e in layers] == [0, 1, 2]
    assert all(0.0 <= e["score"] <= 1.0 for e in layers)
    assert max(e["score"] for e in layers) > 0.5  # train = validation here: the probe memorises the words
    assert len(list((tmp_path / "features").glob("*.safetensors"))) == 1  # same sentences: one cache entry
    again, kept = cached_features(tmp_path / "features", encoder, tokenizer, words, FAST)
    assert kept == [3, 4, 2] * 4 and again.shape[:2] == (3, 36)


def test_best_layer_and_figure(tmp_path):
    result = {"task": "ner", "metric": "f1_overall", "models": {
        "m": {"layers": [{"layer": 0, "score": 0.1}, {"layer": 1, "score": 0.3}, {"layer": 2, "score": 0.2}],
              "best_layer": 1, "best_score": 0.3, "last_layer_score": 0.2}}}
    path = tmp_path / "probe_layers.json"
    path.write_text(json.dumps(result))
    assert best_layer(path, "m") == 1
    with pytest.raises(ValueError, match="no probe of model 'x'"):
        best_layer(path, "x")
    fig = layer_figure(result)
    assert list(fig.data[0].y) == pytest.approx([10.0, 30.0, 20.0]) and fig.data[1].x == (1,)


def _planted_rows(features, signal: float, dim: int = 16, seed: int = 0) -> LayerRows:
    """Noise rows; with ``signal`` > 0 the gold start token carries +signal on dimension 0, the end on 1."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for f in features:
        row = torch.randn(len(f["input_ids"]), dim, generator=gen)
        row[f["start_positions"], 0] += signal
        row[f["end_positions"], 1] += signal
        rows.append(row)
    return LayerRows(rows, dim)


def test_span_probe_reads_a_planted_answer_and_not_noise(tiny, qa_task_data):
    _, tokenizer = tiny
    splits, _ = qa_task_data
    spec = get_task("qa")
    train = spec.features(splits["train"], tokenizer, max_length=64, doc_stride=16)
    val = spec.features(splits["validation"], tokenizer, max_length=64, doc_stride=16)
    settings = ProbeSettings(steps=60, max_steps=60, eval_every=20, lrs=(1e-1,), batch_size=4)
    planted = train_head_probe(spec, None, (train, _planted_rows(train, 6.0)),
                               (val, _planted_rows(val, 6.0, seed=1), splits["validation"]), settings, 0)
    noise = train_head_probe(spec, None, (train, _planted_rows(train, 0.0)),
                             (val, _planted_rows(val, 0.0, seed=1), splits["validation"]), settings, 0)
    assert planted["score"] > 0.9, planted  # SQuAD 2.0 F1 (0..1) through the task's own post-processing
    assert noise["score"] < planted["score"] - 0.3, noise
    assert [s for s, _ in planted["curve"]["0.1"]] == [20, 40, 60]


def test_probe_layers_on_qa_probes_every_hidden_state_with_the_span_head(tiny, qa_task_data, tmp_path, monkeypatch):
    import alad_kit.analysis.bench as bench
    import alad_kit.data.task_data as task_data
    from alad_kit.analysis.probes.layers import probe_layers

    monkeypatch.setattr(task_data, "load_task_data", lambda task, data_dir, scale: qa_task_data)
    monkeypatch.setattr(bench, "_load_student", lambda name, cache_dir=None: tiny)
    settings = ProbeSettings(train_sentences=12, eval_sentences=6, max_length=64, steps=20, max_steps=20,
                             eval_every=10, lrs=(1e-2,), batch_size=4)
    result = probe_layers("qa", ["tiny"], None, settings, out=tmp_path, log=lambda line: None)
    layers = result["models"]["tiny"]["layers"]
    assert [e["layer"] for e in layers] == [0, 1, 2] and result["metric"] == "f1"
    assert all(0.0 <= e["score"] <= 1.0 for e in layers)
    assert json.loads((tmp_path / "probe_layers.json").read_text())["task"] == "qa"


def test_settings_are_validated():
    with pytest.raises(ValueError, match="lrs must be positive"):
        ProbeSettings(lrs=())
    with pytest.raises(ValueError, match=">= 1"):
        ProbeSettings(steps=0)


def test_committed_probe_figure_reads_the_task_folder_or_says_there_is_none(tmp_path):
    from alad_kit.analysis.probes.layers import committed_probe_figure, read_probe

    result = {"task": "ner", "metric": "f1_overall", "models": {
        "m": {"layers": [{"layer": 0, "score": 0.1}, {"layer": 1, "score": 0.3}], "best_layer": 1,
              "best_score": 0.3, "last_layer_score": 0.3}}}
    (tmp_path / "ner").mkdir()
    (tmp_path / "ner" / "probe_layers.json").write_text(json.dumps(result))
    assert read_probe(tmp_path / "ner") == result
    assert len(committed_probe_figure(tmp_path, "ner").data) == 2
    empty = committed_probe_figure(tmp_path, "qa")
    assert not empty.data and "no layer probe committed for task 'qa'" in empty.layout.annotations[0].text
    with pytest.raises(ValueError, match="cannot read the layer probe"):
        read_probe(tmp_path / "qa")
