"""Hand-computed cases for alad_kit.tasks.metrics (POS, NER, SQuAD 2.0)."""

from __future__ import annotations

import pytest
from sklearn.metrics import f1_score

from alad_kit.tasks.metrics import (
    compute_exact,
    compute_f1,
    ner_scores,
    normalize_answer,
    pos_scores,
    score,
    squad_v2_scores,
)

# ------------------------------------------------------------------------------------------------ POS


def test_pos_scores_by_hand():
    # gold DET NOUN NOUN NOUN VERB / pred DET NOUN NOUN VERB VERB: 4 of 5 right.
    gold = [["DET", "NOUN", "NOUN"], ["NOUN", "VERB"]]
    pred = [["DET", "NOUN", "NOUN"], ["VERB", "VERB"]]
    s = pos_scores(gold, pred)
    # DET: F1 1 (support 1). NOUN: P 2/2, R 2/3 -> F1 0.8 (support 3). VERB: P 1/2, R 1/1 -> F1 2/3 (support 1).
    assert s["accuracy"] == pytest.approx(4 / 5)
    assert s["f1_macro"] == pytest.approx((1 + 0.8 + 2 / 3) / 3)
    assert s["f1_weighted"] == pytest.approx((1 * 1 + 3 * 0.8 + 1 * 2 / 3) / 5)
    assert s["f1"] == s["f1_weighted"]  # F1_O is the support-weighted F1 (see pos_scores docstring)
    assert set(s) == {"accuracy", "f1", "f1_macro", "f1_weighted"}
    assert all(isinstance(v, float) for v in s.values())


def test_pos_micro_f1_is_accuracy_which_is_why_f1_is_not_micro():
    gold = [["DET", "NOUN", "NOUN"], ["NOUN", "VERB", "ADJ"]]
    pred = [["DET", "NOUN", "ADJ"], ["VERB", "VERB", "ADJ"]]
    flat_g, flat_p = sum(gold, []), sum(pred, [])
    s = pos_scores(gold, pred)
    assert f1_score(flat_g, flat_p, average="micro") == pytest.approx(s["accuracy"])
    assert s["f1"] != pytest.approx(s["accuracy"])


def test_pos_tag_only_predicted_counts_in_macro_not_weighted():
    s = pos_scores([["NOUN", "NOUN"]], [["NOUN", "X"]])
    # NOUN: P 1, R 1/2 -> 2/3 (support 2); X: never gold -> F1 0 with support 0.
    assert s["accuracy"] == pytest.approx(0.5)
    assert s["f1_macro"] == pytest.approx(1 / 3)
    assert s["f1_weighted"] == pytest.approx(2 / 3)


def test_pos_perfect():
    s = pos_scores([["A", "B"], ["C"]], [["A", "B"], ["C"]])
    assert s == {"accuracy": 1.0, "f1": 1.0, "f1_macro": 1.0, "f1_weighted": 1.0}


@pytest.mark.parametrize("fn", [pos_scores, ner_scores])
def test_length_mismatch_names_sentence(fn):
    with pytest.raises(ValueError, match="sentence 1: gold has 2 tags but pred has 1"):
        fn([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="2 sentences but pred has 1"):
        fn([["O"], ["O"]], [["O"]])


# ------------------------------------------------------------------------------------------------ NER


def test_ner_split_entity_is_not_a_match():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "B-PER", "O", "B-LOC"]]
    s = ner_scores(gold, pred)
    # gold: PER[0:2], LOC[3]; pred: PER[0], PER[1], LOC[3] -> 1 TP; P 1/3, R 1/2.
    assert s["precision"] == pytest.approx(1 / 3)
    assert s["recall"] == pytest.approx(1 / 2)
    assert s["f1_overall"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))  # 0.4
    assert s["per_type"] == {"LOC": 1.0, "PER": 0.0}
    assert s["f1_macro"] == pytest.approx(0.5)


def test_ner_macro_differs_from_overall():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-ORG"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "O", "B-LOC"]]
    s = ner_scores(gold, pred)
    # 4 gold, 3 predicted, 2 correct (PER, first ORG): P 2/3, R 1/2 -> F1 4/7.
    assert s["f1_overall"] == pytest.approx(4 / 7)
    # PER 1; LOC 0 (gold and predicted LOC are different spans); ORG P 1 R 1/2 -> 2/3.
    assert s["per_type"] == pytest.approx({"PER": 1.0, "LOC": 0.0, "ORG": 2 / 3})
    assert s["f1_macro"] == pytest.approx(5 / 9)
    assert s["f1_macro"] != pytest.approx(s["f1_overall"])


def test_ner_default_mode_is_conlleval_lenient():
    # conlleval reads an I-PER without a preceding B-PER as the start of a PER entity.
    s = ner_scores([["B-PER", "I-PER", "O"]], [["I-PER", "I-PER", "O"]])
    assert s["f1_overall"] == pytest.approx(1.0)


def test_ner_no_entities_predicted_is_zero_not_error():
    s = ner_scores([["B-PER", "O"]], [["O", "O"]])
    assert s["f1_overall"] == 0.0 and s["precision"] == 0.0 and s["recall"] == 0.0
    assert s["per_type"] == {"PER": 0.0}


# ------------------------------------------------------------------------------------------------ SQuAD


@pytest.mark.parametrize(
    "raw, norm",
    [
        ("The  Quick, Brown fox!", "quick brown fox"),
        ("An apple a day", "apple day"),
        ("theater", "theater"),  # articles only as whole words
        ("The-end", "theend"),  # punctuation goes first, so "the" is no longer a word
        ("  ", ""),
    ],
)
def test_normalize_answer(raw, norm):
    assert normalize_answer(raw) == norm


def test_exact_and_f1_by_hand():
    assert compute_exact("The Denver Broncos", "denver broncos.") == 1
    assert compute_exact("Denver Broncos", "Broncos") == 0
    # gold [cat, sat, on, mat], pred [cat, on, hat]: 2 shared; P 2/3, R 2/4.
    p, r = 2 / 3, 2 / 4
    assert compute_f1("the cat sat on the mat", "cat on a hat") == pytest.approx(2 * p * r / (p + r))
    assert compute_f1("", "") == 1.0
    assert compute_f1("", "something") == 0.0
    assert compute_f1("something", "") == 0.0
    assert compute_f1("a b", "c d") == 0.0
    # repeated tokens count by multiplicity: gold [x, x, y], pred [x, x, x]: shared 2.
    assert compute_f1("x x y", "x x x") == pytest.approx(2 / 3)


def _rows():
    return [
        {"id": "q1", "answers": {"text": ["Denver Broncos", "Broncos"], "answer_start": [0, 7]}},
        {"id": "q2", "answers": {"text": ["Carolina Panthers"], "answer_start": [3]}},
        {"id": "q3", "answers": {"text": [], "answer_start": []}},
        {"id": "q4", "answers": {"text": [], "answer_start": []}},
    ]


PREDS = {"q1": "the Broncos", "q2": "Panthers team", "q3": "", "q4": "something", "extra": "ignored"}


def test_squad_v2_breakdown_by_hand():
    s = squad_v2_scores(_rows(), PREDS)
    # q1: exact via "Broncos" (1, 1); q2: exact 0, F1 (P 1/2, R 1/2) = 0.5; q3 "" on unanswerable (1, 1);
    # q4 non-empty on unanswerable (0, 0).
    assert s == pytest.approx(
        {
            "exact": 50.0,
            "f1": 62.5,
            "total": 4,
            "HasAns_exact": 50.0,
            "HasAns_f1": 75.0,
            "HasAns_total": 2,
            "NoAns_exact": 50.0,
            "NoAns_f1": 50.0,
            "NoAns_total": 2,
        }
    )
    assert "best_f1" not in s


def test_squad_v2_official_json_layout_gives_same_scores():
    official = {
        "version": "v2.0",
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": "...",
                        "qas": [
                            {"id": "q1", "answers": [{"text": "Denver Broncos"}, {"text": "Broncos"}]},
                            {"id": "q2", "answers": [{"text": "Carolina Panthers"}]},
                        ],
                    },
                    {"context": "...", "qas": [{"id": "q3", "answers": []}, {"id": "q4", "answers": []}]},
                ],
            }
        ],
    }
    assert squad_v2_scores(official, PREDS) == squad_v2_scores(_rows(), PREDS)
    assert squad_v2_scores(official["data"], PREDS) == squad_v2_scores(_rows(), PREDS)


def test_squad_v2_datasets_rows():
    from datasets import Dataset

    ds = Dataset.from_list(_rows())
    assert squad_v2_scores(ds, PREDS) == squad_v2_scores(_rows(), PREDS)


def test_squad_v2_groups_left_out_when_empty():
    s = squad_v2_scores(_rows()[:2], PREDS)
    assert "NoAns_exact" not in s and s["HasAns_total"] == 2


def test_squad_v2_gold_that_normalises_to_empty_counts_as_has_answer():
    # Official quirk: has-answer is decided on the raw list, matching on the normalised one.
    s = squad_v2_scores([{"id": "q", "answers": {"text": ["The"], "answer_start": [0]}}], {"q": ""})
    assert s["HasAns_exact"] == 100.0 and s["exact"] == 100.0


NA_PROBS = {"q1": 0.1, "q2": 0.6, "q4": 0.7, "q3": 0.9}


def test_squad_v2_na_prob_threshold_overrides_predictions():
    s = squad_v2_scores(_rows(), PREDS, na_probs=NA_PROBS, na_prob_thresh=0.5)
    # q2, q4, q3 have na_prob > 0.5 and count as "": q2 -> 0, q4 -> 1, q3 -> 1; q1 keeps 1.
    assert s["exact"] == pytest.approx(75.0) and s["f1"] == pytest.approx(75.0)
    assert s["HasAns_exact"] == pytest.approx(50.0) and s["HasAns_f1"] == pytest.approx(50.0)
    assert s["NoAns_exact"] == pytest.approx(100.0) and s["NoAns_f1"] == pytest.approx(100.0)
    # the official default threshold 1.0 never fires, so scores equal those without na_probs.
    plain = squad_v2_scores(_rows(), PREDS)
    s1 = squad_v2_scores(_rows(), PREDS, na_probs=NA_PROBS)
    assert {k: s1[k] for k in plain} == plain


def test_squad_v2_best_threshold_search_by_hand():
    s = squad_v2_scores(_rows(), PREDS, na_probs=NA_PROBS)
    # Start: all "" -> 2 (the two unanswerable). Admit by na_prob: q1 (+1 -> 3, thresh .1), q2 (exact +0,
    # F1 +0.5 -> 3.5, thresh .6), q4 (-1, it predicted text), q3 (+0, it predicted "").
    assert s["best_exact"] == pytest.approx(75.0) and s["best_exact_thresh"] == pytest.approx(0.1)
    assert s["best_f1"] == pytest.approx(87.5) and s["best_f1_thresh"] == pytest.approx(0.6)
    # Re-scoring at the found threshold reproduces the best score.
    at_best = squad_v2_scores(_rows(), PREDS, na_probs=NA_PROBS, na_prob_thresh=s["best_f1_thresh"])
    assert at_best["f1"] == pytest.approx(s["best_f1"])


def test_squad_v2_bad_input():
    with pytest.raises(ValueError, match="no prediction"):
        squad_v2_scores(_rows(), {"q1": "x"})
    with pytest.raises(ValueError, match="no na_prob"):
        squad_v2_scores(_rows(), PREDS, na_probs={"q1": 0.5})
    with pytest.raises(ValueError, match="'id' and 'answers'"):
        squad_v2_scores([{"question": "?"}], PREDS)
    with pytest.raises(ValueError, match="duplicate"):
        squad_v2_scores(_rows() + _rows()[:1], PREDS)


# ------------------------------------------------------------------------------------------------ dispatch


def test_score_dispatch():
    assert score("pos", [["A"]], [["A"]])["accuracy"] == 1.0
    assert score("ner", [["B-X"]], [["B-X"]])["f1_overall"] == 1.0
    assert score("qa", _rows(), PREDS, na_probs=NA_PROBS)["best_f1"] == pytest.approx(87.5)
    with pytest.raises(ValueError, match="unknown task 'parse'"):
        score("parse", [], [])
    with pytest.raises(ValueError, match="no extra arguments"):
        score("pos", [["A"]], [["A"]], na_probs={})
