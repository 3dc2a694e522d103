"""Extractive QA on SQuAD 2.0: contexts -> overlapping token windows -> logits -> answer strings.

``prepare_qa_features`` follows Hugging Face's ``run_qa.py``: the question and the context are tokenized as
a pair with ``truncation="only_second"``, long contexts overflow into several *features* (windows) that
overlap by ``doc_stride`` tokens, and every token keeps its character offsets into the context. Token roles
come from the fast tokenizer's ``sequence_ids``, so it works for BERT (with ``token_type_ids``) and MPNet
(without). ``postprocess_qa_predictions`` maps start/end logits of all features of an example back to one
answer string, or "" when the no-answer ("null") score wins, plus a no-answer probability for the SQuAD 2.0
best-threshold search (``alad_kit.tasks.metrics.squad_v2_scores(..., na_probs=...)``).

Convention (as in HF / the BERT SQuAD 2.0 recipe): "no answer" is the span (0, 0), i.e. the CLS token at
index 0. Right padding is therefore required.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# Feature columns that are bookkeeping for post-processing, not model inputs: drop them before forward().
NON_MODEL_COLUMNS = ("example_id", "offset_mapping")


def _as_columns(rows: Any, required: Sequence[str]) -> dict[str, list]:
    """Dict of lists from a ``datasets.Dataset``, a batch (dict of lists) or a list of dicts."""
    if hasattr(rows, "column_names") and hasattr(rows, "__getitem__") and not isinstance(rows, Mapping):
        rows = rows[:]  # datasets.Dataset -> dict of lists
    if isinstance(rows, Mapping):
        cols = {k: list(rows[k]) for k in rows.keys()}
    elif isinstance(rows, Sequence) and all(isinstance(r, Mapping) for r in rows):
        keys = list(rows[0].keys()) if rows else list(required)
        cols = {k: [r.get(k) for r in rows] for k in keys}
    else:
        raise ValueError(f"expected a Dataset, a dict of lists or a list of dicts, got {type(rows).__name__}")
    missing = [k for k in required if k not in cols]
    if missing:
        raise ValueError(f"missing column(s) {missing}; have {sorted(cols)}")
    return cols


def _first_answer(answers: Any) -> tuple[str, int] | None:
    """(text, answer_start) of the first gold answer, None when unanswerable. HF and official layouts."""
    if answers is None:
        return None
    if isinstance(answers, Mapping):
        texts, starts = list(answers.get("text", [])), list(answers.get("answer_start", []))
        if not texts:
            return None
        if len(starts) < 1:
            raise ValueError(f"answer {texts[0]!r} has no answer_start")
        return texts[0], int(starts[0])
    if isinstance(answers, Sequence) and answers:
        return answers[0]["text"], int(answers[0]["answer_start"])
    return None


def _fit_questions(questions: list[str], tokenizer, budget: int) -> list[str]:
    """Strip leading blanks (some SQuAD questions have many) and cut questions longer than ``budget`` tokens
    at a token boundary, with one warning per kind of problem."""
    questions = [q.lstrip() for q in questions]
    n_empty = sum(1 for q in questions if not q.strip())
    if n_empty:
        warnings.warn(f"{n_empty} empty question(s): the model sees the context only", stacklevel=3)
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    n_cut = 0
    for i, offsets in enumerate(enc["offset_mapping"]):
        if len(offsets) > budget:
            questions[i] = questions[i][: offsets[budget - 1][1]]
            n_cut += 1
    if n_cut:
        warnings.warn(f"{n_cut} question(s) longer than {budget} tokens were truncated", stacklevel=3)
    return questions


def _answer_tokens(offsets, seq_ids, start_char: int, end_char: int) -> tuple[int, int] | None:
    """Token span covering characters [start_char, end_char) if it lies fully in this window's context."""
    ctx = [i for i, s in enumerate(seq_ids) if s == 1]
    if not ctx or offsets[ctx[0]][0] > start_char or offsets[ctx[-1]][1] < end_char:
        return None
    start = max(i for i in ctx if offsets[i][0] <= start_char)  # last token starting at/before the answer
    end = min(i for i in ctx if offsets[i][1] >= end_char)  # first token ending at/after it
    return start, end


def _question_budget(tokenizer, max_length: int, doc_stride: int, max_question_length: int) -> int:
    """The tokens a question may take in a window, after checking the tokenizer and the window sizes.

    A window holds the special tokens, the question and a piece of context that must be longer than
    ``doc_stride``, or consecutive windows would not advance through the context."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("prepare_qa_features needs a fast tokenizer (offset mapping and sequence_ids)")
    if tokenizer.padding_side != "right":
        raise ValueError("only right padding is supported: the no-answer token must sit at index 0")
    if doc_stride < 0 or max_question_length < 1:
        raise ValueError(
            f"need doc_stride >= 0 and max_question_length >= 1, got {doc_stride}, {max_question_length}"
        )
    n_special = tokenizer.num_special_tokens_to_add(pair=True)
    budget = min(max_question_length, max_length - n_special - doc_stride - 1)
    if budget < 1:
        raise ValueError(
            f"max_length={max_length} leaves no room for a question: it must exceed doc_stride ({doc_stride}) "
            f"+ {n_special} special tokens + 1"
        )
    return budget


def _label_windows(features: dict, enc, raw_offsets, sample_map, cols: dict, contexts: list[str]) -> set:
    """Append each window's example id, context offsets and (with answers) answer token span to ``features``.

    Returns the ids whose ``answer_start`` does not point at the answer text (labels still follow it)."""
    has_answers = "answers" in cols
    bad_starts = set()
    for i, offsets in enumerate(raw_offsets):
        seq_ids = enc.sequence_ids(i)
        if seq_ids[0] is not None:
            raise ValueError("the tokenizer does not put a special (CLS) token at index 0")
        row = sample_map[i]
        features["example_id"].append(cols["id"][row])
        features["offset_mapping"].append([tuple(o) if s == 1 else None for o, s in zip(offsets, seq_ids)])
        if not has_answers:
            continue
        answer = _first_answer(cols["answers"][row])
        span = None
        if answer is not None:
            text, start_char = answer
            if contexts[row][start_char : start_char + len(text)] != text:
                bad_starts.add(cols["id"][row])
            span = _answer_tokens(offsets, seq_ids, start_char, start_char + len(text))
        features["start_positions"].append(span[0] if span else 0)
        features["end_positions"].append(span[1] if span else 0)
    return bad_starts


def prepare_qa_features(
    examples: Any,
    tokenizer,
    max_length: int = 384,
    doc_stride: int = 128,
    max_question_length: int = 64,
    padding: bool | str = False,
) -> dict[str, list]:
    """Tokenize (question, context) pairs into overlapping windows with labels and offsets.

    Args:
        examples: rows with ``id``, ``question``, ``context`` and optionally ``answers`` ({"text": [...],
            "answer_start": [...]}); a Dataset, a ``Dataset.map(batched=True)`` batch or a list of dicts.
        tokenizer: a *fast* Hugging Face tokenizer (offsets and sequence_ids are needed), right padding.
        max_length: tokens per window, special tokens included.
        doc_stride: tokens shared by consecutive windows of one context (HF's ``stride``).
        max_question_length: questions are cut to this many tokens, like BERT's ``max_query_length`` (64);
            also lowered so that every window keeps more than ``doc_stride`` context tokens.
        padding: passed to the tokenizer. Default False leaves padding to the collator (most SQuAD windows
            are far shorter than 384 tokens, so padding each batch to its longest window saves compute);
            "max_length" gives rectangular features as in HF's ``run_qa.py --pad_to_max_length``.

    Returns a dict of lists, one entry per feature: the tokenizer's model inputs (``input_ids``,
    ``attention_mask``, ``token_type_ids`` when the model uses them), ``example_id`` (the row's ``id``),
    ``offset_mapping`` ((start, end) character offsets into the context for context tokens, None for
    question/special/padding tokens) and, when ``answers`` is given, ``start_positions``/``end_positions``:
    the answer's first/last token, or 0 (the CLS token) if the question is unanswerable or the answer is not
    entirely inside this window. Only the first gold answer is used for labels, as in HF.
    Drop ``NON_MODEL_COLUMNS`` before calling the model.
    """
    budget = _question_budget(tokenizer, max_length, doc_stride, max_question_length)
    cols = _as_columns(examples, ["id", "question", "context"])
    has_answers = "answers" in cols
    questions = _fit_questions([q or "" for q in cols["question"]], tokenizer, budget)
    contexts = [c or "" for c in cols["context"]]

    enc = tokenizer(
        questions,
        contexts,
        truncation="only_second",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=padding,
    )
    sample_map = enc.pop("overflow_to_sample_mapping")
    raw_offsets = enc.pop("offset_mapping")
    features: dict[str, list] = {k: list(v) for k, v in enc.items()}
    features["example_id"], features["offset_mapping"] = [], []
    if has_answers:
        features["start_positions"], features["end_positions"] = [], []

    bad_starts = _label_windows(features, enc, raw_offsets, sample_map, cols, contexts)
    if bad_starts:
        warnings.warn(
            f"{len(bad_starts)} answer(s) do not match context[answer_start:], e.g. {sorted(bad_starts)[:3]}; "
            "labels follow answer_start",
            stacklevel=2,
        )
    return features


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _best_span(offsets, start_logits, end_logits, context: str, n_best: int, max_answer_length: int,
               feature: int) -> tuple[float, float, str]:
    """One feature's null score (CLS start + end), its best valid span's score and text (-inf, "" if none).

    Candidates are the ``n_best`` highest start and end logits among context tokens; of equal scores the
    first found wins (the caller keeps the first feature's, so ties resolve as in one search over all)."""
    starts = np.asarray(start_logits, dtype=np.float64)
    ends = np.asarray(end_logits, dtype=np.float64)
    if starts.shape[0] < len(offsets) or ends.shape[0] < len(offsets):
        raise ValueError(f"feature {feature}: {len(offsets)} tokens but {starts.shape[0]}/{ends.shape[0]} logits")
    null_score = float(starts[0] + ends[0])
    best_score, best_text = -math.inf, ""
    ctx = np.array([o is not None for o in offsets])
    if not ctx.any():
        return null_score, best_score, best_text
    masked_s = np.where(ctx, starts[: len(offsets)], -np.inf)
    masked_e = np.where(ctx, ends[: len(offsets)], -np.inf)
    top_s = [int(i) for i in np.argsort(masked_s)[::-1][:n_best] if ctx[i]]
    top_e = [int(i) for i in np.argsort(masked_e)[::-1][:n_best] if ctx[i]]
    for s in top_s:
        for e in top_e:
            if e < s or e - s + 1 > max_answer_length:
                continue
            span_score = float(starts[s] + ends[e])
            if span_score > best_score:
                best_score = span_score
                best_text = context[offsets[s][0] : offsets[e][1]]
    return null_score, best_score, best_text


def postprocess_qa_predictions(
    examples: Any,
    features: Any,
    start_logits: Any,
    end_logits: Any,
    n_best: int = 20,
    max_answer_length: int = 30,
) -> tuple[dict[str, str], dict[str, float]]:
    """Answer text and no-answer probability per example from per-feature logits.

    For each example, over all of its features: the best span is the highest start_logit[s] + end_logit[e]
    with s <= e, e - s + 1 <= ``max_answer_length`` and both tokens inside the context, searching the
    ``n_best`` highest start and end logits among context tokens of each feature. (HF takes the top n_best of
    all tokens and then drops non-context ones; masking first differs only when question/special tokens
    fill HF's top slots, where we still find the best valid span.)
    The null score is the *minimum* over features of start_logit[0] + end_logit[0] (HF's choice: the window
    most confident that the answer is somewhere). The prediction is "" if null score > best span score.

    ``na_probs[id] = sigmoid(null_score - best_span_score)``: the probability of "no answer" under a softmax
    over the two competing candidates (null vs. best span). It is > 0.5 exactly when "" is predicted and is a
    monotone function of HF's ``null_odds`` score difference, so the official best-threshold search gives the
    same ranking. Without any valid span it is 1.0 (and the prediction "").

    Args:
        examples: rows with ``id`` and ``context`` (the ones given to ``prepare_qa_features``).
        features: output of ``prepare_qa_features`` (dict of lists, Dataset or list of dicts) with
            ``example_id`` and ``offset_mapping``.
        start_logits, end_logits: (n_features, seq_len) arrays/tensors, or lists of per-feature 1-D arrays
            (any padding beyond a feature's offset_mapping is ignored).
    """
    if n_best < 1 or max_answer_length < 1:
        raise ValueError(f"need n_best >= 1 and max_answer_length >= 1, got {n_best}, {max_answer_length}")
    ex = _as_columns(examples, ["id", "context"])
    feats = _as_columns(features, ["example_id", "offset_mapping"])
    n_feat = len(feats["example_id"])
    if len(start_logits) != n_feat or len(end_logits) != n_feat:
        raise ValueError(
            f"{n_feat} features but {len(start_logits)} start / {len(end_logits)} end logit rows"
        )

    by_example: dict[Any, list[int]] = defaultdict(list)
    for i, eid in enumerate(feats["example_id"]):
        by_example[eid].append(i)

    predictions: dict[str, str] = {}
    na_probs: dict[str, float] = {}
    for qid, context in zip(ex["id"], ex["context"]):
        if qid not in by_example:
            raise ValueError(f"example {qid!r} has no features")
        null_score = math.inf
        best_score, best_text = -math.inf, ""
        for f in by_example[qid]:
            null, score, text = _best_span(feats["offset_mapping"][f], start_logits[f], end_logits[f], context,
                                           n_best, max_answer_length, f)
            null_score = min(null_score, null)
            if score > best_score:
                best_score, best_text = score, text
        if best_score == -math.inf:
            predictions[qid], na_probs[qid] = "", 1.0
            continue
        predictions[qid] = "" if null_score > best_score else best_text
        na_probs[qid] = _sigmoid(null_score - best_score)
    return predictions, na_probs
