"""Task features, batching and evaluation (alad_kit.tasks.specs)."""

import pytest
import torch
from datasets import Dataset

from alad_kit.data.summary import texts_for_alignment
from alad_kit.tasks.specs import IGNORE, SpanTask, collate, get_task

LABELS = ["ADJ", "NOUN", "PUNCT", "VERB"]
WORDS = [["Tokenization", "works", "."], ["unbelievably", "good", "photosynthesis", "."]]
TAGS = [["NOUN", "VERB", "PUNCT"], ["ADV", "ADJ", "NOUN", "PUNCT"]]


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from alad_kit.models.offline import offline_model_dir

    return AutoTokenizer.from_pretrained(offline_model_dir("minilm-l6"))


def pos_split(words=WORDS, tags=TAGS):
    return Dataset.from_dict({"tokens": words, "upos": tags})


def test_first_subword_gets_the_label_the_rest_minus_100(tok):
    labels = LABELS + ["ADV"]
    feats = get_task("pos").features(pos_split(), tok, labels, max_length=32)
    assert len(feats) == 2
    f = feats[0]  # [CLS] token ##ization works . [SEP]
    assert tok.convert_ids_to_tokens(f["input_ids"]) == ["[CLS]", "token", "##ization", "works", ".", "[SEP]"]
    assert f["labels"] == [IGNORE, labels.index("NOUN"), IGNORE, labels.index("VERB"), labels.index("PUNCT"), IGNORE]
    assert f["word_index"] == [-1, 0, -1, 1, 2, -1] and f["n_words"] == 3
    assert set(f) >= {"input_ids", "attention_mask", "token_type_ids", "labels", "word_index", "n_words"}
    g = feats[1]  # un ##bel ##ie ##va ##bly good photos ##yn ##thesis .
    first = [t for t, w in enumerate(g["word_index"]) if w >= 0]
    assert [g["labels"][t] for t in first] == [labels.index(t) for t in TAGS[1]]
    assert sum(label != IGNORE for label in g["labels"]) == len(WORDS[1])
    assert len(g["labels"]) == len(g["input_ids"]) == 12


def test_truncation_warns_with_the_number_of_sentences(tok):
    labels = LABELS + ["ADV"]
    long = [["word"] * 20, ["short", "."], ["photosynthesis"] * 5]
    tags = [["NOUN"] * 20, ["ADJ", "PUNCT"], ["NOUN"] * 5]
    with pytest.warns(UserWarning, match=r"2 of 3 sentences exceed max_length=8"):
        feats = get_task("pos").features(pos_split(long, tags), tok, labels, max_length=8)
    assert [len(f["input_ids"]) for f in feats] == [8, 4, 8]
    assert feats[0]["n_words"] == 20 and max(feats[0]["word_index"]) == 5  # 6 words fit, 20 are scored


def test_label_missing_from_the_label_set_is_named(tok):
    with pytest.raises(ValueError, match=r"sentence 1 has label 'ADV' missing from the label set"):
        get_task("pos").features(pos_split(), tok, LABELS, max_length=32)


def test_collate_pads_each_field_with_its_own_value():
    feats = [{"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [-100, 1, -100]},
             {"input_ids": [8], "attention_mask": [1], "labels": [2]}]
    b = collate(feats, pad_token_id=1)
    assert b["input_ids"].tolist() == [[5, 6, 7], [8, 1, 1]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert b["labels"].tolist() == [[-100, 1, -100], [2, -100, -100]]
    assert "token_type_ids" not in b
    qa = collate([{"input_ids": [1, 2], "start_positions": 0, "end_positions": 1},
                  {"input_ids": [3], "start_positions": 0, "end_positions": 0}], 0)
    assert qa["start_positions"].tolist() == [0, 0] and qa["end_positions"].tolist() == [1, 0]


class Oracle(torch.nn.Module):
    """Predicts the gold label of every labelled token (it reads the labels from the batch)."""

    def __init__(self, n_labels):
        super().__init__()
        self.n = n_labels

    def forward(self, batch):
        return torch.nn.functional.one_hot(batch["labels"].clamp(min=0), self.n).float()


def test_truncated_words_count_as_errors(tok):
    labels = LABELS + ["ADV"]
    words = [["good"] * 10, ["good", "."]]
    tags = [["ADJ"] * 10, ["ADJ", "PUNCT"]]
    split = pos_split(words, tags)
    with pytest.warns(UserWarning, match="1 of 2"):
        feats = get_task("pos").features(split, tok, labels, max_length=6)  # 4 of the 10 words fit
    model = Oracle(len(labels))
    scores = get_task("pos").evaluate(model, split, feats, 8, "cpu", labels, tok.pad_token_id)
    assert scores["accuracy"] == pytest.approx((4 + 2) / 12)  # the 6 cut-off words get "X": wrong


def test_task_registry_and_qa_texts():
    assert get_task("ner").label_field == "ner_tags" and get_task("pos").fallback_label == "X"
    with pytest.raises(ValueError, match="unknown task 'sentiment'"):
        get_task("sentiment")
    split = Dataset.from_dict({"context": ["C1", "C2", "C1"], "question": ["Q1", "Q2", "Q3"]})
    assert SpanTask().texts(split) == ["C1", "C2", "Q1", "Q2", "Q3"]  # each context once
    # phase 2's text is data.summary's one definition: a repeated question is kept
    repeated = Dataset.from_dict({"context": ["C1", "C1"], "question": ["Q1", "Q1"]})
    assert SpanTask().texts(repeated) == texts_for_alignment("qa", repeated) == ["C1", "Q1", "Q1"]
    words = Dataset.from_dict({"tokens": [["a", "b"], ["c"]]})
    assert get_task("ner").texts(words) == texts_for_alignment("ner", words) == [["a", "b"], ["c"]]
