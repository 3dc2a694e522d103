"""Raw text -> words, tags, NER entities with character offsets, QA answers."""

import warnings

import numpy as np
import pytest
import torch

from alad_kit.models.deploy import DeployConfig, attach
from alad_kit.models.heads import TokenClassificationHead
from alad_kit.models.model import AladModel
from alad_kit.models.zoo import keep_layers, load_encoder
from alad_kit.pipeline.predict import AladPipeline, best_span, compare_tags, entities, split_words


def test_split_words_keeps_character_offsets():
    text = "Der Hund, z.B. Bello's – schläft."
    spans = split_words(text)
    assert [w for w, _, _ in spans] == ["Der", "Hund", ",", "z", ".", "B", ".", "Bello's", "–", "schläft", "."]
    assert all(text[s:e] == w for w, s, e in spans)


def test_entities_from_bio_tags_with_offsets():
    text = "Angela Merkel met Macron in Paris"
    tags = ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC"]
    found = entities(text, split_words(text), tags)
    assert found == [{"type": "PER", "start": 0, "end": 13, "text": "Angela Merkel"},
                     {"type": "PER", "start": 18, "end": 24, "text": "Macron"},
                     {"type": "LOC", "start": 28, "end": 33, "text": "Paris"}]


def test_pos_model_tags_raw_text(deployed):
    run_dir, _ = deployed("pos")
    pipe = AladPipeline(run_dir / "model")
    one = pipe("Der Hund schläft im Garten.")
    assert one["words"] == ["Der", "Hund", "schläft", "im", "Garten", "."]
    assert len(one["tags"]) == 6 and set(one["tags"]) <= set(pipe.config.labels)
    many = pipe(["Der Hund schläft im Garten.", "", "Wir fahren morgen nach Hamburg."])
    assert many[0] == one and many[1]["words"] == [] and len(many[2]["tags"]) == 6
    table = compare_tags({"alad": pipe.model, "again": run_dir / "model"}, "Ich lese ein Buch.")
    assert list(table.columns) == ["word", "alad", "again"] and table["alad"].equals(table["again"])


@pytest.fixture(scope="module")
def always_b_loc():
    """An NER model whose head says B-LOC for every word: the entity decoding is then known."""
    encoder, tokenizer = load_encoder("minilm-l6")
    torch.manual_seed(0)
    head = TokenClassificationHead(384, 3)
    with torch.no_grad():
        head.classifier.weight.zero_()
        head.classifier.bias.copy_(torch.tensor([0.0, 1.0, 0.0]))  # always B-LOC
    return attach(AladModel(keep_layers(encoder, [0]), None, head).eval(), tokenizer, DeployConfig(
        task="ner", labels=("O", "B-LOC", "I-LOC"), teacher="mpnet-base", student="minilm-l6", mode="head",
        window=None, max_length=48, doc_stride=None, eval_batch_size=8))


def test_ner_pipeline_returns_entities(always_b_loc):
    out = AladPipeline(always_b_loc)("Paris , Rome")
    assert out["tags"] == ["B-LOC"] * 3
    assert [(e["text"], e["start"], e["end"]) for e in out["entities"]] == [("Paris", 0, 5), (",", 6, 7), ("Rome", 8, 12)]



def test_invisible_characters_are_no_words_and_offsets_stay_in_the_given_text(always_b_loc, recwarn):
    text = "\ufeff\u200fPar\u00adis \u200b , \u0301 Ro\u200dme \U0001F469\u200d\U0001F4BB"
    out = AladPipeline(always_b_loc)(text)
    assert out["text"] == text and out["words"] == ["Paris", ",", "Rome", "\U0001F469\u200d\U0001F4BB"]
    assert [(e["text"], e["start"]) for e in out["entities"]][:3] == [
        ("Par\u00adis", 2), (",", text.index(",")), ("Ro\u200dme", text.index("Ro"))]
    assert not [w for w in recwarn if "longer than" in str(w.message)]  # no word lost, so no truncation warning


def test_the_truncation_warning_counts_the_words_really_cut(always_b_loc):
    pipe = AladPipeline(always_b_loc, max_length=8)  # [CLS] + 6 tokens + [SEP]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe(["a b c", "\u200b " * 40 + "a b c", "a b c d e f g h i j"])
    messages = [str(w.message) for w in caught if "longer than" in str(w.message)]
    assert messages == ["1 text(s) longer than 8 tokens: their last 4 word(s) are tagged 'O'"]

def test_best_span_follows_the_evaluation_rule():
    context = "Paris is big."
    feature = {"offset_mapping": [None, None, (0, 5), (6, 8), (9, 12), None]}
    logits = np.zeros((6, 2), dtype=np.float32)
    logits[2, 0], logits[4, 1] = 3.0, 2.0  # best span: tokens 2..4 = "Paris is big", score 5 > null 0
    out = best_span(context, [feature], [logits], n_best=20, max_len=30)
    assert out == {"answer": "Paris is big", "start": 0, "end": 12, "score": pytest.approx(1 / (1 + np.exp(-5))),
                   "no_answer": False}
    logits[0] = 4.0  # null score 8 beats the span
    assert best_span(context, [feature], [logits], 20, 30)["no_answer"] is True
    logits[0], logits[3, 1] = 0.0, 1.0
    assert best_span(context, [feature], [logits], 20, 2)["answer"] == "Paris is"  # 3 tokens are too long


def test_qa_pipeline_answers_with_offsets(deployed):
    run_dir, _ = deployed("qa")
    pipe = AladPipeline(run_dir / "model")
    context = "Paris is the capital of France. It lies on the Seine."
    out = pipe(question="What is the capital of France?", context=context)
    assert set(out) == {"answer", "start", "end", "score", "no_answer"} and 0 <= out["score"] <= 1
    if out["no_answer"]:
        assert out["answer"] == "" and out["start"] is None
    else:
        assert context[out["start"]:out["end"]] == out["answer"] != ""
    with pytest.raises(ValueError, match="question"):
        pipe("some text")
