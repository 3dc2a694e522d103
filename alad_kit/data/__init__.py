"""Datasets of the four ALAd tasks as ``datasets.Dataset``/``DatasetDict``.

* :func:`load_pos` — UD German GSD, CoNLL-U -> ``sent_id``, ``tokens``, ``upos``
* :func:`load_ner` — MultiCoNER II EN (or plain CoNLL), BIO -> ``id``, ``tokens``, ``ner_tags``
* :func:`load_qa` — SQuAD 2.0 JSON -> ``id, title, context, question, answers``; plus split ``unlabeled``
* :func:`load_corpus` — plain text lines -> ``text``

Each takes a local file/folder (default ``$ALAD_DATA_DIR/<task folder>``, see :func:`data_root`) or a hub id.
How splits are made is in :mod:`alad_kit.data.loaders` and data/README.md.
"""

from .features import FEATURES
from .hub import load_hub_splits, looks_like_local_path
from .loaders import ENV_VAR, TASK_DIRS, data_root, load_corpus, load_ner, load_pos, load_qa, role_of
from .readers import read_conll, read_conllu, read_squad
from .splits import assemble_splits, grouped_split
from .summary import dataset_summary, label_list, texts_for_alignment

__all__ = [
    "ENV_VAR",
    "FEATURES",
    "TASK_DIRS",
    "assemble_splits",
    "data_root",
    "dataset_summary",
    "grouped_split",
    "label_list",
    "load_corpus",
    "load_hub_splits",
    "load_ner",
    "load_pos",
    "load_qa",
    "looks_like_local_path",
    "read_conll",
    "read_conllu",
    "read_squad",
    "role_of",
    "texts_for_alignment",
]
