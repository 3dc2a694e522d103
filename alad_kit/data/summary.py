"""Read-outs of loaded data: label sets, the text phase 2 aligns on, and per-split counts for `alad info`."""

from __future__ import annotations

import warnings
from pathlib import Path

from datasets import Dataset, DatasetDict

from .loaders import TASK_DIRS, data_root, load_corpus, load_ner, load_pos, load_qa


def label_list(dataset_dict: DatasetDict | Dataset, field: str) -> list[str]:
    """Sorted set of labels in ``field`` over all splits (list-valued or scalar fields).

    For a BIO label set (only ``O``, ``B-*``, ``I-*``) ``"O"`` comes first, so it gets id 0.
    """
    splits = dataset_dict.values() if isinstance(dataset_dict, dict) else [dataset_dict]
    labels: set[str] = set()
    for split in splits:
        for value in split[field]:
            labels.update(value) if isinstance(value, list) else labels.add(value)
    ordered = sorted(labels)
    if "O" in labels and all(label == "O" or label[:2] in ("B-", "I-") for label in labels):
        ordered = ["O", *(label for label in ordered if label != "O")]
    return ordered


def token_texts(split) -> list[list[str]]:
    """The words of every sentence of a POS / NER split, as token lists."""
    return [list(tokens) for tokens in split["tokens"]]


def qa_texts(split) -> list[str]:
    """The text of a QA split: each distinct context once (first-appearance order), then EVERY question.

    Contexts repeat once per question asked about them, so they are deduplicated; questions are kept as they
    come, repeats included: this is what phase 2 has always aligned on, and its embedding-cache keys and
    results depend on it (tasks.specs.SpanTask.texts is this function)."""
    return list(dict.fromkeys(split["context"])) + list(split["question"])


def texts_for_alignment(task: str, dataset: Dataset) -> list[list[str]] | list[str]:
    """The text of ONE split (phase 2 passes the train split): POS/NER -> token lists (`token_texts`);
    QA -> the unique contexts then every question as strings (`qa_texts`); corpus -> its lines."""
    if isinstance(dataset, dict):
        raise ValueError("texts_for_alignment takes one split (e.g. splits['train']), not a DatasetDict")
    if task in ("pos", "ner"):
        return token_texts(dataset)
    if task == "qa":
        return qa_texts(dataset)
    if task == "corpus":
        return list(dataset["text"])
    raise ValueError(f"unknown task {task!r}; expected pos, ner, qa or corpus")


def _tagging_counts(splits: DatasetDict, tag_field: str) -> dict:
    counts = {}
    for name, split in splits.items():
        tags = list(split[tag_field])
        entry = {"sentences": len(split), "tokens": sum(map(len, tags))}
        if tag_field == "ner_tags":
            entry["entities"] = sum(tag.startswith("B-") for seq in tags for tag in seq)
        counts[name] = entry
    return counts


def _qa_counts(splits: DatasetDict) -> dict:
    counts = {}
    for name, split in splits.items():
        entry = {"articles": len(set(split["title"])), "questions": len(split)}
        if name != "unlabeled":
            answerable = sum(bool(answers["text"]) for answers in split["answers"])
            entry.update(answerable=answerable, unanswerable=len(split) - answerable)
        counts[name] = entry
    return counts


def _corpus_counts(folder: Path) -> dict:
    corpus = load_corpus(folder)
    return {
        "all": {
            "files": len(list(folder.glob("*.txt"))),
            "lines": len(corpus),
            "tokens": sum(len(line.split()) for line in corpus["text"]),
        }
    }


_COUNTERS = {
    "pos": lambda folder: _tagging_counts(load_pos(folder), "upos"),
    "ner": lambda folder: _tagging_counts(load_ner(folder), "ner_tags"),
    "qa": lambda folder: _qa_counts(load_qa(folder)),
    "corpus": _corpus_counts,
}


def dataset_summary(root: str | Path | None = None) -> dict:
    """For each task folder under ``root`` (default ``$ALAD_DATA_DIR``): found or not, and the counts of
    every split the loaders produce (default seed and fractions). Never raises for missing or malformed
    data: the reason is in ``"error"``; warnings raised while loading are listed under ``"warnings"``.

    ``{"root": str|None, "pos": {"found", "path", "splits": {"train": {"sentences", "tokens"}, ...}}, "ner":
    {... "entities"}, "qa": {... {"articles", "questions", "answerable", "unanswerable"}}, "corpus": {...
    {"all": {"files", "lines", "tokens"}}}}``
    """
    try:
        base = Path(root).expanduser().resolve() if root is not None else data_root()
    except FileNotFoundError as error:
        return {"root": None, "error": str(error), **{task: {"found": False} for task in TASK_DIRS}}
    summary: dict = {"root": str(base)}
    for task, folder_name in TASK_DIRS.items():
        folder = base / folder_name
        entry: dict = {"found": folder.is_dir(), "path": str(folder)}
        if folder.is_dir():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    entry["splits"] = _COUNTERS[task](folder)
                except (ValueError, FileNotFoundError) as error:
                    entry["error"] = str(error)
            if caught:
                entry["warnings"] = [str(w.message) for w in caught]
        summary[task] = entry
    return summary
