"""The three tasks: features for training, the head each needs, and one evaluator signature for all.

``Task.evaluate(model, examples, features, batch_size, device) -> dict of scores`` is the same for POS,
NER and QA, so the trainer's model selection and the run's report never branch on the task.

* POS / NER: token classification on the *first* sub-word of every word; the other sub-words and the
  special tokens get label -100 (ignored by the loss). Words cut off by truncation cannot be predicted;
  they are scored as wrong (filled with a fallback label), never silently dropped.
* QA: question + context windows with a document stride (``alad_kit.tasks.qa_postprocess``), span head, and
  the null score for "no answer"; scored with the official SQuAD 2.0 algorithm.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from alad_kit.core.precision import autocast
from alad_kit.core.progress import progress as tqdm
from alad_kit.data.summary import qa_texts, token_texts
from alad_kit.models.heads import SpanHead, TokenClassificationHead
from alad_kit.tasks import metrics

IGNORE = -100


def collate(features: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of feature dicts into tensors (labels padded with -100, ids with the pad id)."""
    width = max(len(f["input_ids"]) for f in features)
    batch: dict[str, torch.Tensor] = {}
    pads = {"input_ids": pad_token_id, "attention_mask": 0, "token_type_ids": 0, "labels": IGNORE}
    for key, pad in pads.items():
        if key in features[0]:
            batch[key] = torch.tensor([list(f[key]) + [pad] * (width - len(f[key])) for f in features])
    for key in ("start_positions", "end_positions"):
        if key in features[0]:
            batch[key] = torch.tensor([f[key] for f in features])
    return batch


@dataclass
class Batcher:
    """``batcher(indices)`` -> a padded batch of ``features``; with ``hidden`` (cached last hidden states of a
    frozen M_C, one row per feature) the batch also carries ``student_hidden`` and M_C is not run at all."""

    features: list[dict]
    pad_token_id: int
    hidden: object | None = None  # anything with .padded(indices, width) -> (B, width, D_C), e.g. CachedEmbeddings

    def __len__(self) -> int:
        return len(self.features)

    def __call__(self, indices) -> dict[str, torch.Tensor]:
        batch = collate([self.features[i] for i in indices], self.pad_token_id)
        if self.hidden is not None:
            batch["student_hidden"] = self.hidden.padded(list(indices), batch["input_ids"].shape[1])  # (B, T, D_C)
        return batch

    def lengths(self) -> list[int]:
        return [len(f["input_ids"]) for f in self.features]


def as_batcher(features, pad_token_id: int) -> Batcher:
    return features if isinstance(features, Batcher) else Batcher(list(features), pad_token_id)


@torch.no_grad()
def predict_logits(model, features, batch_size, pad_token_id, device, precision: str = "fp32") -> list[np.ndarray]:
    """Head logits per feature, unpadded: list of (T_i, K) arrays. ``features`` may be a :class:`Batcher`."""
    batcher = as_batcher(features, pad_token_id)
    was_training = model.training
    model.eval()
    # longest first, as the cache does: batches of similar length carry little padding
    order = sorted(range(len(batcher)), key=lambda i: -len(batcher.features[i]["input_ids"]))
    chunks = [order[lo : lo + batch_size] for lo in range(0, len(order), batch_size)]
    by_index = {}
    for chunk in tqdm(chunks, desc="predict", leave=False, disable=len(chunks) < 4):
        batch = {k: v.to(device) for k, v in batcher(chunk).items()}
        with autocast(precision, device):
            logits = model(batch).float().cpu().numpy()
        by_index |= {i: logits[b, : len(batcher.features[i]["input_ids"])] for b, i in enumerate(chunk)}
    out = [by_index[i] for i in range(len(batcher))]
    model.train(was_training)
    return out


def truncation_stats(features: list[dict]) -> dict:
    """Words lost to truncation in token-task features (they are scored as errors)."""
    words = sum(f["n_words"] for f in features)
    kept = sum(sum(1 for w in f["word_index"] if w >= 0) for f in features)
    return {"words": words, "words_cut": words - kept, "words_cut_pct": 100.0 * (words - kept) / max(words, 1)}


@dataclass(frozen=True)
class TokenTask:
    name: str  # pos | ner
    label_field: str  # dataset column with the per-word labels
    selection_metric: str  # validation score that picks the best epoch
    fallback_label: str  # prediction for words lost to truncation (always counted wrong unless it is gold)
    score_scale: float = 1.0  # what a perfect score reads (seqeval and the POS scorer give fractions)

    def make_head(self, dim: int, labels: list[str]) -> nn.Module:
        return TokenClassificationHead(dim, len(labels))

    def texts(self, split) -> list[list[str]]:
        """Task text for phase 2 (and the words the features tokenize): data.summary.token_texts."""
        return token_texts(split)

    def features(self, split, tokenizer, labels: list[str], max_length: int, **_) -> list[dict]:
        label_id = {label: i for i, label in enumerate(labels)}
        enc = tokenizer(self.texts(split), is_split_into_words=True, truncation=True, max_length=max_length)
        features, truncated = [], 0
        for i, tags in enumerate(split[self.label_field]):
            unknown = [t for t in tags if t not in label_id]
            if unknown:
                raise ValueError(f"{self.name}: sentence {i} has label {unknown[0]!r} missing from the label set")
            word_ids, seen = enc.word_ids(i), set()
            token_labels, first_of_word = [], []
            for w in word_ids:
                first = w is not None and w not in seen
                seen.add(w)
                token_labels.append(label_id[tags[w]] if first else IGNORE)
                first_of_word.append(w if first else -1)
            truncated += len(seen - {None}) < len(tags)
            feature = {k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
            features.append({**feature, "labels": token_labels, "word_index": first_of_word, "n_words": len(tags)})
        if truncated:
            warnings.warn(
                f"{self.name}: {truncated} of {len(features)} sentences exceed max_length={max_length} tokens "
                "and were truncated; their cut-off words count as errors",
                stacklevel=2,
            )
        return features

    def loss(self, logits, batch):
        return TokenClassificationHead.loss(logits, batch)

    def evaluate(self, model, examples, features, batch_size, device, labels, pad_token_id, precision="fp32") -> dict:
        logits = predict_logits(model, features, batch_size, pad_token_id, device, precision)
        pred = []
        for f, lg in zip(as_batcher(features, pad_token_id).features, logits):
            words = [self.fallback_label] * f["n_words"]
            for t, w in enumerate(f["word_index"]):
                if w >= 0:
                    words[w] = labels[int(lg[t].argmax())]
            pred.append(words)
        return metrics.score(self.name, [list(t) for t in examples[self.label_field]], pred)


@dataclass(frozen=True)
class SpanTask:
    name: str = "qa"
    selection_metric: str = "f1"
    n_best: int = 20  # candidate starts/ends per window
    max_answer_length: int = 30  # longest answer span in tokens
    score_scale: float = 100.0  # what a perfect score reads (the official SQuAD 2.0 script gives percentages)

    def make_head(self, dim: int, labels=None) -> nn.Module:
        return SpanHead(dim)

    def texts(self, split) -> list[str]:
        """Task text for phase 2: each distinct context once, and every question (data.summary.qa_texts)."""
        return qa_texts(split)

    def features(self, split, tokenizer, labels=None, max_length=384, doc_stride=128, **_) -> list[dict]:
        from .qa_postprocess import prepare_qa_features

        enc = prepare_qa_features(split, tokenizer, max_length=max_length, doc_stride=doc_stride)
        keys = list(enc.keys())
        return [{k: enc[k][i] for k in keys} for i in range(len(enc["input_ids"]))]

    def loss(self, logits, batch):
        return SpanHead.loss(logits, batch)

    def evaluate(self, model, examples, features, batch_size, device, labels=None, pad_token_id=0,
                 precision="fp32") -> dict:
        from .qa_postprocess import postprocess_qa_predictions

        logits = predict_logits(model, features, batch_size, pad_token_id, device, precision)
        features = as_batcher(features, pad_token_id).features
        starts = [lg[:, 0] for lg in logits]
        ends = [lg[:, 1] for lg in logits]
        predictions, na_probs = postprocess_qa_predictions(
            examples, features, starts, ends, n_best=self.n_best, max_answer_length=self.max_answer_length
        )
        return metrics.score("qa", examples, predictions, na_probs=na_probs)


TASK_SPECS = {
    "pos": TokenTask("pos", label_field="upos", selection_metric="f1", fallback_label="X"),
    "ner": TokenTask("ner", label_field="ner_tags", selection_metric="f1_overall", fallback_label="O"),
    "qa": SpanTask(),
}


def get_task(name: str):
    if name not in TASK_SPECS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASK_SPECS)}")
    return TASK_SPECS[name]
