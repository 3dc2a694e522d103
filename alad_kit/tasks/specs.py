"""The tasks: each one object (a :class:`Task`) that owns everything task-specific -- its data loader, label
field, max length, head, features, scorer, selection metric, score columns, prediction output and model-card
text. Outside ``tasks/`` (and the readers in ``data/``) no module names a task: they ask the spec
(``alad_kit.tasks.get_task``). A new task subclasses :class:`Task` and calls ``alad_kit.tasks.register``.

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
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from alad_kit.core.config import TASKS
from alad_kit.core.precision import autocast
from alad_kit.core.progress import progress as tqdm
from alad_kit.models.heads import SpanHead, TokenClassificationHead
from alad_kit.tasks import metrics

IGNORE = -100


def collate(features: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of feature dicts into tensors (labels padded with -100, ids with the pad id); the per-feature
    targets start_positions / end_positions (spans) and label (one class per sentence) are stacked."""
    width = max(len(f["input_ids"]) for f in features)
    batch: dict[str, torch.Tensor] = {}
    pads = {"input_ids": pad_token_id, "attention_mask": 0, "token_type_ids": 0, "labels": IGNORE}
    for key, pad in pads.items():
        if key in features[0]:
            batch[key] = torch.tensor([list(f[key]) + [pad] * (width - len(f[key])) for f in features])
    for key in ("start_positions", "end_positions", "label"):  # one target per feature (label: a sentence's class)
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
    """Head logits per feature, unpadded: list of (T_i, K) arrays, or (K,) from a sentence-level head.
    ``features`` may be a :class:`Batcher`."""
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
        if logits.ndim == 2:  # one row per feature (a sentence-level head): nothing to unpad
            by_index |= {i: logits[b] for b, i in enumerate(chunk)}
        else:
            by_index |= {i: logits[b, : len(batcher.features[i]["input_ids"])] for b, i in enumerate(chunk)}
    out = [by_index[i] for i in range(len(batcher))]
    model.train(was_training)
    return out


def truncation_stats(features: list[dict]) -> dict:
    """Words lost to truncation in token-task features (they are scored as errors)."""
    words = sum(f["n_words"] for f in features)
    kept = sum(sum(1 for w in f["word_index"] if w >= 0) for f in features)
    return {"words": words, "words_cut": words - kept, "words_cut_pct": 100.0 * (words - kept) / max(words, 1)}


@dataclass(frozen=True, kw_only=True)
class Task:
    """What every task is; a new task subclasses this and fills the methods that raise NotImplementedError
    (``load``, ``features``, ``make_head``, ``loss``, ``evaluate``, ``predict``). See docs/architecture.md."""

    name: str  # the --task value and the key in TASKS (an identifier)
    title: str  # short name in table columns and messages (e.g. "NER")
    description: str  # what the model does, in the model card's title
    label_field: str | None  # dataset column of the gold labels (None: no label set, e.g. answer spans)
    selection_metric: str  # validation score that picks the best epoch
    score_columns: tuple  # ((key in scores, column label, display factor), ...) for tables, in order
    phase3_epochs: dict  # {scale name: phase-3 epochs}; a scale it does not name gets its smallest budget
    score_scale: float = 1.0  # what a perfect score reads (1.0: fractions, as seqeval; 100.0: percentages)
    pipeline_tag: str = "text-classification"  # hub pipeline tag of a deployed model
    pairs: bool = False  # inputs are (question, context) pairs (segment ids, --question/--context)
    sample_inputs: tuple = ("The quick brown fox jumps over the lazy dog .",)  # ONNX trace / latency inputs
    # The ALAd paper's Table 1 for this task, x100: {"metric": score key, paper student: {study row: score}}
    # (analysis.paper_table puts our studies next to it; empty: the paper has no such task)
    paper_table1: dict = field(default_factory=dict)

    def epochs(self, scale: str) -> int:
        return self.phase3_epochs.get(scale, min(self.phase3_epochs.values()))

    def max_length(self, scale) -> int:
        """Tokens per sequence at ``scale`` (a ScaleConfig)."""
        return scale.max_length

    def doc_stride(self, scale) -> int | None:
        """Tokens shared by consecutive windows of a long input (None: no windows)."""
        return None

    def load(self, data_dir: str | None, strict: bool = False) -> dict:
        """The splits train / validation / test (``datasets.Dataset``) from a file, folder or name."""
        raise NotImplementedError

    def load_eval(self, data, split: str = "test"):
        """The examples ``alad evaluate --data`` scores: by default ``split`` of :meth:`load`."""
        splits = self.load(str(data))
        if split not in splits:
            raise ValueError(f"{data}: no {split!r} split (found {', '.join(sorted(splits))})")
        return splits[split]

    def labels(self, splits) -> list[str] | None:
        """The label set (head outputs, in order), from every split; None without a label field."""
        from alad_kit.data.summary import label_list

        return label_list(splits, self.label_field) if self.label_field else None

    def unknown_labels(self, examples, labels) -> Counter:
        """Gold labels ``examples`` carry that ``labels`` lacks, with their counts."""
        if self.label_field is None:
            return Counter()
        known, column = set(labels), examples[self.label_field]
        return Counter(t for value in column for t in (value if isinstance(value, list) else [value])
                       if t not in known)

    def check_labels(self, labels: tuple) -> None:
        """Raise ValueError when a deployed label set cannot be this task's (the generic checks come first)."""

    def texts(self, split) -> list:
        """Task text for phase 2 (what the features tokenize)."""
        raise NotImplementedError

    def features(self, split, tokenizer, labels, max_length: int, doc_stride: int | None = None) -> list[dict]:
        """One dict per model input: input_ids, attention_mask (token_type_ids) and the loss's targets;
        ``collate`` pads the keys it knows and stacks labels / start_positions / end_positions."""
        raise NotImplementedError

    def make_head(self, dim: int, labels) -> nn.Module:
        """The head on R (B, T, dim); its forward gets ``(hidden, attention_mask)`` (a sentence head pools)."""
        raise NotImplementedError

    def loss(self, logits, batch):
        raise NotImplementedError

    def evaluate(self, model, examples, features, batch_size, device, labels, pad_token_id, precision="fp32") -> dict:
        """Flat dict of scores (metrics.json["scores"]); must contain ``selection_metric``."""
        raise NotImplementedError

    def truncation(self, features: list[dict]) -> dict | None:
        """What truncation cost (stored in metrics.json), or None."""
        return None

    def predict(self, pipe, inputs: list) -> list[dict]:
        """One JSON-able dict per input of ``pipe`` (an AladPipeline): texts, or (question, context) pairs."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class TokenTask(Task):
    """One label per word (POS, NER), predicted on the word's first sub-word."""

    fallback_label: str  # prediction for words lost to truncation (always counted wrong unless it is gold)
    bio: bool = False  # labels are a BIO scheme: deployed label sets are checked, predictions list entities
    pipeline_tag: str = "token-classification"

    def load(self, data_dir, strict: bool = False) -> dict:
        from alad_kit.data.task_data import load_splits

        return load_splits(self.name, data_dir, strict)

    def load_eval(self, data, split: str = "test"):
        from alad_kit.data.task_data import load_eval_split

        return load_eval_split(self.name, data, split)

    def check_labels(self, labels: tuple) -> None:
        """BIO label sets (NER) in the scheme its decoding (seqeval) reads: O, B-type, I-type."""
        outside = [label for label in labels if label != "O" and not (label[:2] in ("B-", "I-") and label[2:])]
        if self.bio and ("O" not in labels or outside):
            raise ValueError(f"DeployConfig: {self.title} labels must be a BIO scheme (O, B-type, I-type), got "
                             f"{outside[0] if outside else 'no O'!r}")

    def make_head(self, dim: int, labels: list[str]) -> nn.Module:
        return TokenClassificationHead(dim, len(labels))

    def texts(self, split) -> list[list[str]]:
        """Task text for phase 2 (and the words the features tokenize): data.summary.token_texts."""
        from alad_kit.data.summary import token_texts

        return token_texts(split)

    def truncation(self, features: list[dict]) -> dict:
        return truncation_stats(features)

    def predict(self, pipe, inputs: list) -> list[dict]:
        """``{"text", "words", "tags"}`` per text, plus ``"entities"`` for a BIO task (AladPipeline.tag)."""
        return pipe.tag(inputs, bio=self.bio)

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


@dataclass(frozen=True, kw_only=True)
class SpanTask(Task):
    """Extractive QA: answer spans in (question, context) windows, or no answer."""

    name: str = "qa"
    title: str = "QA"
    description: str = "extractive QA (SQuAD 2.0)"
    label_field: str | None = None
    selection_metric: str = "f1"
    score_columns: tuple = (("exact", "EM", 1.0), ("f1", "F1", 1.0))
    phase3_epochs: dict = field(default_factory=lambda: {"smoke": 1, "tiny": 2, "cpu": 4, "full": 3})  # paper: 3
    pipeline_tag: str = "question-answering"
    pairs: bool = True
    sample_inputs: tuple = (("What is the capital of France?", "Paris is the capital of France. It lies on the Seine."),
                            ("Who wrote Hamlet?", "Hamlet is a tragedy written by William Shakespeare around 1600."),
                            ("Where is the Nile?", "The Nile is a river in Africa."))
    n_best: int = 20  # candidate starts/ends per window
    max_answer_length: int = 30  # longest answer span in tokens
    score_scale: float = 100.0  # what a perfect score reads (the official SQuAD 2.0 script gives percentages)
    paper_table1: dict = field(default_factory=lambda: {  # rows 1, 13-23 and 24-34, EQA F1
        "metric": "f1",
        "BERT-Mini": {"teacher": 80, "finetune": 52, "frozen-w1": 1, "frozen-w3": 2, "frozen-w5": 3, "joint-w1": 55, "joint-w3": 57, "joint-w5": 56, "lora": 12, "lora-alad-w5": 30},
        "BERT-Tiny": {"teacher": 80, "finetune": 17, "frozen-w1": 0.27, "frozen-w3": 0.39, "frozen-w5": 0.59, "joint-w1": 13, "joint-w3": 29, "joint-w5": 31, "lora": 7, "lora-alad-w5": 0.69}})

    def max_length(self, scale) -> int:
        return scale.qa_max_length

    def doc_stride(self, scale) -> int:
        return scale.qa_doc_stride

    def load(self, data_dir, strict: bool = False) -> dict:
        from alad_kit.data.task_data import load_splits

        return load_splits(self.name, data_dir, strict)

    def load_eval(self, data, split: str = "test"):
        from alad_kit.data.task_data import load_eval_split

        return load_eval_split(self.name, data, split)

    def make_head(self, dim: int, labels=None) -> nn.Module:
        return SpanHead(dim)

    def texts(self, split) -> list[str]:
        """Task text for phase 2: each distinct context once, and every question (data.summary.qa_texts)."""
        from alad_kit.data.summary import qa_texts

        return qa_texts(split)

    def predict(self, pipe, inputs: list) -> list[dict]:
        """``{"answer", "start", "end", "score", "no_answer"}`` per (question, context) (AladPipeline.answer)."""
        return pipe.answer([q for q, _ in inputs], [c for _, c in inputs])

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
        return metrics.score(self.name, examples, predictions, na_probs=na_probs)


POS = TokenTask(
    name="pos", title="POS", description="part-of-speech tagging", label_field="upos", selection_metric="f1",
    score_columns=(("accuracy", "Acc", 100.0), ("f1", "F1", 100.0)),
    phase3_epochs={"smoke": 2, "tiny": 8, "cpu": 60, "full": 4},  # cpu: 1,380 steps to flatten (results/cpu); paper: 4
    fallback_label="X",
    paper_table1={"metric": "accuracy",  # rows 1, 13-23 (BERT-Mini) and 24-34 (BERT-Tiny), POS Acc
                  "BERT-Mini": {"teacher": 93, "finetune": 86, "frozen-w1": 81, "frozen-w3": 85, "frozen-w5": 86, "joint-w1": 90, "joint-w3": 91, "joint-w5": 91, "lora": 67, "lora-alad-w5": 86},
                  "BERT-Tiny": {"teacher": 93, "finetune": 73, "frozen-w1": 73, "frozen-w3": 79, "frozen-w5": 80, "joint-w1": 82, "joint-w3": 84, "joint-w5": 85, "lora": 55, "lora-alad-w5": 76}},
    # German: the POS data is UD German GSD
    sample_inputs=("Der Hund schläft im Garten .", "Die Bundesregierung hat am Mittwoch in Berlin ein neues Gesetz "
                   "zur Förderung erneuerbarer Energien beschlossen .", "Ich lese ein spannendes Buch ."),
)
NER = TokenTask(
    name="ner", title="NER", description="named-entity recognition", label_field="ner_tags",
    selection_metric="f1_overall", score_columns=(("f1_overall", "F1_O", 100.0), ("f1_macro", "F1_M", 100.0)),
    phase3_epochs={"smoke": 2, "tiny": 5, "cpu": 8, "full": 4},  # cpu: best epoch 4-7 of 8 (results/cpu); paper: 4
    fallback_label="O", bio=True,
    paper_table1={"metric": "f1_overall",  # rows 1, 13-23 (BERT-Mini) and 24-34 (BERT-Tiny), NER F1_O
                  "BERT-Mini": {"teacher": 63, "finetune": 38, "frozen-w1": 38, "frozen-w3": 46, "frozen-w5": 48, "joint-w1": 50, "joint-w3": 52, "joint-w5": 53, "lora": 22, "lora-alad-w5": 49},
                  "BERT-Tiny": {"teacher": 63, "finetune": 19, "frozen-w1": 32, "frozen-w3": 39, "frozen-w5": 42, "joint-w1": 37, "joint-w3": 41, "joint-w5": 43, "lora": 10, "lora-alad-w5": 40}},
    sample_inputs=("Angela Merkel met Emmanuel Macron in Paris on Monday .",
                   "The Beatles recorded Abbey Road in London .", "Apple opened a new store in Tokyo ."),
)
QA = SpanTask()
BUILT_IN = (POS, NER, QA)
# The task the demo, the GPU check, the notebooks and the compression table start from (offline data: WNUT-16).
DEFAULT_TASK = NER.name


def get_task(name: str) -> Task:
    """The registered task ``name`` (ValueError naming the choices otherwise)."""
    return TASKS.get(name)
