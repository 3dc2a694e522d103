"""Raw text in, tags / entities / answers out: ``AladPipeline(MODEL)("some text")``.

* POS / NER: the text is cut into words (``alad_kit.data.text.split_words``: runs of letters/digits, every other
  visible character alone, as UD and CoNLL tokenize; format characters and stray marks never words), the words are tokenized as in training and the first sub-word of each word is
  tagged. Returns ``{"text", "words", "tags"}``, plus ``"entities"`` for NER: BIO spans decoded by seqeval
  (the library the scores use) with character offsets into the text.
* QA: ``pipe(question=..., context=...)`` -> ``{"answer", "start", "end", "score", "no_answer"}``, the same
  windows, span search and no-answer rule as the evaluation (``alad_kit.tasks.qa_postprocess``); ``score`` is the
  probability that the best span beats "no answer" (1 - the evaluation's na_prob).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from alad_kit.core.precision import autocast
from alad_kit.data.text import split_words
from alad_kit.models.model import AladModel
from alad_kit.tasks import get_task
from alad_kit.tasks.specs import predict_logits

__all__ = ["AladPipeline", "best_span", "compare_tags", "entities", "split_words"]


class AladPipeline:
    """A deployed ALAd model (folder, hub id or loaded :class:`AladModel`) as a callable on raw text."""

    def __init__(self, model: str | Path | AladModel, device: str = "cpu", batch_size: int | None = None,
                 max_length: int | None = None, **hub_kwargs):
        if not isinstance(model, AladModel):
            model = AladModel.from_pretrained(str(model), device=device, **hub_kwargs)
        if model.deploy_config is None or model.tokenizer is None:
            raise ValueError("AladPipeline needs a deployed model (AladModel.from_pretrained or deploy.attach)")
        self.model, self.config, self.tokenizer, self.device = model.eval(), model.deploy_config, model.tokenizer, device
        self.task = get_task(self.config.task)  # the task's spec: its inputs, features and output
        self.batch_size = batch_size or self.config.eval_batch_size
        # Prediction reads whole sentences: the encoder's position limit, not the (short) training cut; windowed
        # inputs (QA) keep the run's window length.
        limit = getattr(model.encoder.config, "max_position_embeddings", 512)
        self.max_length = max_length or (self.config.max_length if self.config.doc_stride else min(512, limit))

    def __call__(self, texts: str | list[str] | None = None, *, question=None, context=None):
        if self.task.pairs:
            if question is None or context is None:
                raise ValueError(f"this is a {self.task.title} model: call it with question=... and context=...")
            single = isinstance(question, str)
            pairs = list(zip([question] if single else list(question), [context] if single else list(context),
                             strict=True))
            answers = self.task.predict(self, pairs)
            return answers[0] if single else answers
        if texts is None:
            raise ValueError(f"this is a {self.config.task} model: call it with a text or a list of texts")
        single = isinstance(texts, str)
        out = self.task.predict(self, [texts] if single else list(texts))
        return out[0] if single else out

    # ----------------------------------------------------------------------------------------------
    def logits(self, features) -> list[np.ndarray]:
        """Head logits per feature (unpadded), in the model's evaluation precision."""
        return self._logits(features)

    def _logits(self, features) -> list[np.ndarray]:
        pad = self.tokenizer.pad_token_id or 0
        with autocast(self.config.precision, self.device):
            return predict_logits(self.model, features, self.batch_size, pad, self.device)

    def tag(self, texts: list[str], bio: bool = False) -> list[dict]:
        """Tags of every text, and with ``bio`` (a BIO task: NER) its entities."""
        task, labels = self.task, list(self.config.labels)
        spans = [split_words(t) for t in texts]
        words = [[w for w, _, _ in s] or [""] for s in spans]  # an empty text still gets one (empty) word
        rows = {"tokens": words, task.label_field: [[labels[0]] * len(w) for w in words]}
        with warnings.catch_warnings():  # the training warning about truncation; counted below for texts
            warnings.simplefilter("ignore")
            features = task.features(rows, self.tokenizer, labels, max_length=self.max_length)
        dropped = [self._dropped_words(f, w) for f, w in zip(features, words)]
        if any(dropped):
            warnings.warn(f"{sum(map(bool, dropped))} text(s) longer than {self.max_length} tokens: their last "
                          f"{sum(dropped)} word(s) are tagged {task.fallback_label!r}", stacklevel=2)
        out = []
        for text, span, feature, logits in zip(texts, spans, features, self._logits(features)):
            tags = [task.fallback_label] * len(span)
            for t, w in enumerate(feature["word_index"]):
                if 0 <= w < len(span):
                    tags[w] = labels[int(logits[t].argmax())]
            row = {"text": text, "words": [w for w, _, _ in span], "tags": tags}
            if bio:
                row["entities"] = entities(text, span, tags)
            out.append(row)
        return out

    def _dropped_words(self, feature: dict, words: list[str]) -> int:
        """Words cut off by ``max_length``: after the last word that got a token, those the tokenizer does not
        reduce to nothing (a word of only control characters has no token and was not cut)."""
        last = max((w for w in feature["word_index"] if w >= 0), default=-1)
        return sum(1 for word in words[last + 1:] if word and self.tokenizer.tokenize(word))

    def answer(self, questions: list[str], contexts: list[str]) -> list[dict]:
        """The best answer span (or no answer) of every question about its context."""
        if len(questions) != len(contexts):
            raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
        task = self.task
        rows = {"id": [str(i) for i in range(len(questions))], "question": questions, "context": contexts}
        features = task.features(rows, self.tokenizer, max_length=self.max_length,
                                 doc_stride=self.config.doc_stride or self.max_length // 4)
        logits = self._logits(features)
        by_example: dict[str, list[int]] = {}
        for i, f in enumerate(features):
            by_example.setdefault(f["example_id"], []).append(i)
        return [best_span(context, [features[i] for i in by_example[str(q)]], [logits[i] for i in by_example[str(q)]],
                          task.n_best, task.max_answer_length) for q, context in enumerate(contexts)]


def entities(text: str, span: list[tuple[str, int, int]], tags: list[str]) -> list[dict]:
    """BIO tags -> ``[{"type", "start", "end", "text"}]`` with character offsets (seqeval's decoding)."""
    from seqeval.metrics.sequence_labeling import get_entities

    found = []
    for kind, first, last in get_entities(list(tags)):
        start, end = span[first][1], span[last][2]
        found.append({"type": kind, "start": start, "end": end, "text": text[start:end]})
    return found


def best_span(context: str, features: list[dict], logits: list[np.ndarray], n_best: int, max_len: int) -> dict:
    """The span rule of ``postprocess_qa_predictions``, keeping the character offsets of the answer."""
    null_score, best = math.inf, (-math.inf, 0, 0)
    for feature, lg in zip(features, logits):
        offsets = feature["offset_mapping"]
        starts, ends = lg[: len(offsets), 0].astype(np.float64), lg[: len(offsets), 1].astype(np.float64)
        null_score = min(null_score, float(starts[0] + ends[0]))
        ctx = np.array([o is not None for o in offsets])
        if not ctx.any():
            continue
        top_s = [int(i) for i in np.argsort(np.where(ctx, starts, -np.inf))[::-1][:n_best] if ctx[i]]
        top_e = [int(i) for i in np.argsort(np.where(ctx, ends, -np.inf))[::-1][:n_best] if ctx[i]]
        for s in top_s:
            for e in top_e:
                if s <= e < s + max_len and starts[s] + ends[e] > best[0]:
                    best = (float(starts[s] + ends[e]), offsets[s][0], offsets[e][1])
    score, start, end = best
    if score == -math.inf or null_score > score:
        p_answer = 0.0 if score == -math.inf else 1 / (1 + math.exp(min(700.0, null_score - score)))
        return {"answer": "", "start": None, "end": None, "score": p_answer, "no_answer": True}
    return {"answer": context[start:end], "start": start, "end": end,
            "score": 1 / (1 + math.exp(min(700.0, null_score - score))), "no_answer": False}


def compare_tags(models: dict[str, str | Path | AladModel], text):
    """One table of what every model says about ``text`` (e.g. student alone vs + ALAd): for a tagging task the
    words and each model's tags, one column per model; otherwise (a (question, context) pair for QA, or a
    task whose output is not per word) one row per model with its output's fields."""
    import pandas as pd

    columns, rows = {}, {}
    for name, model in models.items():
        pipe = AladPipeline(model)
        result = pipe(question=text[0], context=text[1]) if pipe.task.pairs else pipe(text)
        if "tags" in result:
            columns.setdefault("word", result["words"])
            columns[name] = result["tags"]
        else:
            rows[name] = result
    return pd.DataFrame(columns) if columns else pd.DataFrame.from_dict(rows, orient="index")


def predict_rows(model: str, texts=(), file: str | None = None, question: str | None = None,
                 context: str | None = None, device: str = "cpu") -> list[dict]:
    """What ``alad predict`` prints: one row per text (and per line of ``file``), or the answer of a pair task."""
    pipe = AladPipeline(model, device=device)
    if pipe.task.pairs:
        if question is None or context is None or texts or file:
            raise ValueError(f"{model} is a {pipe.task.title} model: give --question and --context (no texts)")
        return [pipe(question=question, context=context)]
    texts = list(texts)
    if file:
        from alad_kit.data.text import read_lines

        texts += read_lines(file)  # lines end at \n or \r\n only; a byte-order mark is not text
    if not texts:
        raise ValueError("nothing to tag: give one or more texts or --file FILE (one text per line)")
    return list(pipe(texts))
