"""Task scores for POS tagging, NER and extractive QA (SQuAD 2.0).

Every scorer returns a flat dict of floats (NER adds one nested ``per_type`` dict) so that a run can store it
as ``metrics.json["scores"]`` unchanged. ``score(task, gold, pred)`` dispatches on the task name.

* POS  -- token accuracy plus F1 over UPOS tags (scikit-learn).
* NER  -- entity-level precision/recall/F1 (seqeval, conlleval-compatible default mode).
* QA   -- the official SQuAD 2.0 evaluation (``evaluate-v2.0.py``), re-written here because the script is not a
  package; the algorithm (normalisation, max over gold answers, no-answer threshold, best-threshold search) is
  kept line for line so numbers are comparable with published SQuAD 2.0 results.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# ----------------------------------------------------------------------------------------------------------
# Sequence labelling (POS, NER)
# ----------------------------------------------------------------------------------------------------------


def _check_aligned(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
    """Raise ValueError unless gold and pred have the same sentences with the same token counts."""
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} sentences but pred has {len(pred)}")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if isinstance(g, str) or isinstance(p, str):
            raise ValueError(f"sentence {i}: expected a list of tags, got a string")
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: gold has {len(g)} tags but pred has {len(p)}")
    if not any(len(g) for g in gold):
        raise ValueError("no tokens to score (gold is empty)")


def pos_scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """Token-level POS scores over UPOS tags.

    Returns ``accuracy``, ``f1`` (the paper's F1_O), ``f1_macro`` and ``f1_weighted`` (all in 0..1).

    Which F1 is F1_O: for single-label multi-class tagging (every token has exactly one gold and one predicted
    tag), micro-averaged F1 is *identical* to accuracy -- every wrong token is one false positive for the
    predicted tag and one false negative for the gold tag, so micro precision = micro recall = accuracy. A
    paper that reports F1_O next to accuracy therefore cannot mean micro-F1 (the column would be a copy), and
    the "O(verall)" label contrasts with the "M(acro)" used for NER, so F1_O is not the macro average either.
    The remaining standard "overall" F1 is the support-weighted average over tags (scikit-learn's
    ``average="weighted"``, the "weighted avg" row of ``classification_report``), so ``f1 = f1_weighted``.
    This is an interpretation, not something the paper states; ``f1_macro`` is returned as well so either
    reading can be reported.

    Tag set: the union of gold and predicted tags (scikit-learn's default). A tag that is predicted but never
    gold gets F1 = 0 (``zero_division=0``), which lowers the macro average and, having zero support, leaves
    the weighted average unchanged.
    """
    from sklearn.metrics import accuracy_score, f1_score  # imported here: slow to import

    _check_aligned(gold, pred)
    y_true = [t for sent in gold for t in sent]
    y_pred = [t for sent in pred for t in sent]
    weighted = float(f1_score(y_true, y_pred, average="weighted", zero_division=0))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1": weighted,
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "f1_weighted": weighted,
    }


def ner_scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, Any]:
    """Entity-level NER scores with seqeval.

    Returns ``f1_overall`` (micro F1 over all entities = the paper's F1_O), ``f1_macro`` (unweighted mean of
    the per-type F1 = F1_M), ``precision`` and ``recall`` (micro), and ``per_type`` {entity type: F1}.

    seqeval runs in its default mode, which reproduces the CoNLL ``conlleval`` script that NER papers (and
    Hugging Face's ``run_ner``) report: an ``I-X`` that does not continue an ``X`` entity starts a new one.
    The strict IOB2 mode would instead drop such ill-formed predicted spans; MultiCoNER gold is clean IOB2,
    so the two modes differ only on malformed model output, and we keep the comparable convention.
    Per-type F1 covers the types that occur in gold or prediction; a type never predicted scores 0.
    """
    from seqeval.metrics import classification_report as seqeval_report  # imported here: slow to import
    from seqeval.metrics import f1_score as seqeval_f1
    from seqeval.metrics import precision_score as seqeval_precision
    from seqeval.metrics import recall_score as seqeval_recall

    _check_aligned(gold, pred)
    gold, pred = [list(s) for s in gold], [list(s) for s in pred]
    report = seqeval_report(gold, pred, output_dict=True, zero_division=0)
    averages = {"micro avg", "macro avg", "weighted avg"}
    per_type = {name: float(row["f1-score"]) for name, row in report.items() if name not in averages}
    return {
        "f1_overall": float(seqeval_f1(gold, pred, average="micro", zero_division=0)),
        "f1_macro": float(seqeval_f1(gold, pred, average="macro", zero_division=0)) if per_type else 0.0,
        "precision": float(seqeval_precision(gold, pred, average="micro", zero_division=0)),
        "recall": float(seqeval_recall(gold, pred, average="micro", zero_division=0)),
        "per_type": per_type,
    }


# ----------------------------------------------------------------------------------------------------------
# SQuAD 2.0 (official evaluation algorithm)
# ----------------------------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (official order)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _tokens(s: str) -> list[str]:
    return normalize_answer(s).split() if s else []


def compute_exact(a_gold: str, a_pred: str) -> int:
    """1 if the normalised strings are equal, else 0."""
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def compute_f1(a_gold: str, a_pred: str) -> float:
    """Bag-of-tokens F1 between normalised answers; an empty answer only matches an empty answer."""
    gold_toks, pred_toks = _tokens(a_gold), _tokens(a_pred)
    if not gold_toks or not pred_toks:
        return float(gold_toks == pred_toks)
    num_same = sum((collections.Counter(gold_toks) & collections.Counter(pred_toks)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_toks)
    recall = num_same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def _answer_texts(answers: Any, qid: str) -> list[str]:
    """Gold answer strings from HF form {text: [...], answer_start: [...]} or official form [{text: ...}]."""
    if isinstance(answers, Mapping):
        texts = answers.get("text", [])
    elif isinstance(answers, Sequence) and not isinstance(answers, str):
        texts = [a["text"] if isinstance(a, Mapping) else a for a in answers]
    else:
        raise ValueError(f"question {qid!r}: cannot read answers of type {type(answers).__name__}")
    if isinstance(texts, str):
        raise ValueError(f"question {qid!r}: answers['text'] must be a list of strings, got a string")
    return list(texts)


def _gold_by_id(dataset_or_examples: Any) -> dict[str, list[str]]:
    """{question id: gold answer texts} from official SQuAD JSON ({"data": [...]} or its article list) or
    from flat rows (dicts / ``datasets.Dataset``) with ``id`` and ``answers``."""
    data = dataset_or_examples
    if isinstance(data, Mapping) and "data" in data:
        data = data["data"]
    rows: Iterable[Mapping[str, Any]]
    if isinstance(data, Sequence) and len(data) and isinstance(data[0], Mapping) and "paragraphs" in data[0]:
        rows = (qa for article in data for p in article["paragraphs"] for qa in p["qas"])
    else:
        rows = data
    gold: dict[str, list[str]] = {}
    for row in rows:
        if not isinstance(row, Mapping) or "id" not in row or "answers" not in row:
            raise ValueError("QA examples must be mappings with 'id' and 'answers' (or official SQuAD JSON)")
        qid = row["id"]
        if qid in gold:
            raise ValueError(f"duplicate question id {qid!r} in the gold data")
        gold[qid] = _answer_texts(row["answers"], qid)
    if not gold:
        raise ValueError("no questions in the gold data")
    return gold


def _apply_no_ans_threshold(scores, na_probs, qid_to_has_ans, na_prob_thresh):
    """Questions whose na_prob exceeds the threshold count as answered with "" (official semantics)."""
    return {
        qid: float(not qid_to_has_ans[qid]) if na_probs[qid] > na_prob_thresh else s
        for qid, s in scores.items()
    }


def _eval_dict(exact, f1, qids) -> dict[str, float]:
    total = len(qids)
    return {
        "exact": 100.0 * sum(exact[q] for q in qids) / total,
        "f1": 100.0 * sum(f1[q] for q in qids) / total,
        "total": float(total),
    }


def _find_best_thresh(preds, scores, na_probs, qid_to_has_ans) -> tuple[float, float]:
    """Official search: start with every question answered "" (score = #unanswerable), then admit questions
    in increasing na_prob order, keeping the threshold with the highest total score. Returns (score %, thresh).
    """
    cur_score = best_score = sum(1 for q in scores if not qid_to_has_ans[q])
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if qid_to_has_ans[qid]:
            diff = scores[qid]
        else:
            diff = -1 if preds[qid] else 0
        cur_score += diff
        if cur_score > best_score:
            best_score, best_thresh = cur_score, na_probs[qid]
    return 100.0 * best_score / len(scores), float(best_thresh)


def _check_squad_predictions(gold: dict, predictions: Mapping, na_probs: Mapping | None) -> None:
    """Every gold question needs a string prediction (and an na_prob, when na_probs are given)."""
    missing = [qid for qid in gold if qid not in predictions]
    if missing:
        raise ValueError(f"{len(missing)} of {len(gold)} questions have no prediction, e.g. {missing[:3]}")
    for qid in gold:
        if not isinstance(predictions[qid], str):
            raise ValueError(
                f"prediction for {qid!r} must be a string, got {type(predictions[qid]).__name__}"
            )
    if na_probs is not None:
        missing = [qid for qid in gold if qid not in na_probs]
        if missing:
            raise ValueError(f"{len(missing)} questions have no na_prob, e.g. {missing[:3]}")


def _raw_scores(gold: dict, predictions: Mapping) -> tuple[dict, dict]:
    """Per-question exact match and F1 against the best gold answer, before any no-answer threshold.

    Gold answers that normalise to "" are dropped; a question left without any has gold [""]."""
    exact_raw, f1_raw = {}, {}
    for qid, texts in gold.items():
        gold_answers = [t for t in texts if normalize_answer(t)] or [""]
        pred = predictions[qid]
        exact_raw[qid] = max(compute_exact(a, pred) for a in gold_answers)
        f1_raw[qid] = max(compute_f1(a, pred) for a in gold_answers)
    return exact_raw, f1_raw


def squad_v2_scores(
    dataset_or_examples: Any,
    predictions: Mapping[str, str],
    na_probs: Mapping[str, float] | None = None,
    na_prob_thresh: float = 1.0,
) -> dict[str, float]:
    """Official SQuAD 2.0 scores, as percentages (0..100).

    Args:
        dataset_or_examples: official SQuAD JSON (dict with "data", or its list of articles), or rows with
            ``id`` and ``answers`` = {"text": [...], "answer_start": [...]} (a ``datasets.Dataset`` works).
        predictions: question id -> predicted answer text ("" = no answer). Every gold id needs one; extra
            ids are ignored (as in the official script).
        na_probs: optional question id -> probability of "no answer". A question with na_prob >
            ``na_prob_thresh`` is scored as if "" had been predicted. With na_probs the best achievable
            threshold is searched too (``best_exact``/``best_exact_thresh``/``best_f1``/``best_f1_thresh``).
        na_prob_thresh: threshold for the above (official default 1.0: never overrides a prediction).

    Returns keys exact, f1, total, then HasAns_exact/f1/total and NoAns_exact/f1/total. As in the official
    script a HasAns_*/NoAns_* group is left out when the data has no question of that kind (its average
    would be 0/0). Unanswerable questions (no gold answer, or only answers that normalise to "") have gold
    [""], so only "" scores 1 on them; "has answer" is decided on the raw answer list, as officially.
    """
    gold = _gold_by_id(dataset_or_examples)
    _check_squad_predictions(gold, predictions, na_probs)
    qid_to_has_ans = {qid: bool(texts) for qid, texts in gold.items()}
    exact_raw, f1_raw = _raw_scores(gold, predictions)

    # Without na_probs the official script uses 0.0 for every question, i.e. thresholding never fires.
    # Keep the caller's order: the official best-threshold scan visits ties in na_prob-file order.
    if na_probs is not None:
        probs = {qid: float(p) for qid, p in na_probs.items() if qid in gold}
    else:
        probs = dict.fromkeys(gold, 0.0)
    exact = _apply_no_ans_threshold(exact_raw, probs, qid_to_has_ans, na_prob_thresh)
    f1 = _apply_no_ans_threshold(f1_raw, probs, qid_to_has_ans, na_prob_thresh)

    out = _eval_dict(exact, f1, list(gold))
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [q for q, has in qid_to_has_ans.items() if has == wanted]
        if qids:
            out.update({f"{prefix}_{k}": v for k, v in _eval_dict(exact, f1, qids).items()})
    if na_probs is not None:
        preds = {qid: predictions[qid] for qid in gold}
        out["best_exact"], out["best_exact_thresh"] = _find_best_thresh(
            preds, exact_raw, probs, qid_to_has_ans
        )
        out["best_f1"], out["best_f1_thresh"] = _find_best_thresh(preds, f1_raw, probs, qid_to_has_ans)
    return out


# ----------------------------------------------------------------------------------------------------------
# Dispatch
# ----------------------------------------------------------------------------------------------------------


def score(task: str, gold: Any, pred: Any, **kw: Any) -> dict[str, Any]:
    """Scores for ``task`` in {"pos", "ner", "qa"}.

    POS/NER: gold and pred are lists of tag lists. QA: gold is the SQuAD data (see ``squad_v2_scores``),
    pred the {id: answer} dict; ``na_probs``/``na_prob_thresh`` may be passed as keywords.
    """
    if task == "pos":
        fn = pos_scores
    elif task == "ner":
        fn = ner_scores
    elif task == "qa":
        return squad_v2_scores(gold, pred, **kw)
    else:
        raise ValueError(f"unknown task {task!r}; expected one of pos, ner, qa")
    if kw:
        raise ValueError(f"task {task!r} takes no extra arguments, got {sorted(kw)}")
    return fn(gold, pred)
