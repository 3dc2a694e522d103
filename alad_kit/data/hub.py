"""Hugging Face hub datasets mapped onto our field names (ClassLabel ints -> strings).

Not exercised offline beyond :func:`looks_like_local_path`; kept small on purpose.
Examples: ``("universal-dependencies/universal_dependencies", "de_gsd", revision="refs/convert/parquet")``,
``("eriktks/conll2003", None)``, ``("rajpurkar/squad_v2", None)``, ``("Salesforce/wikitext", "wikitext-2-raw-v1")``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import datasets
from datasets import ClassLabel, Dataset

from .features import FEATURES

# "name" or "owner/name" as the hub spells dataset ids.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
# Suffixes of the files our readers take: such a string is always meant as a local path.
DATA_SUFFIXES = (".conllu", ".conll", ".json", ".txt")
# Hub split name -> our source role (see splits.assemble_splits).
_ROLE = {"train": "train", "validation": "dev", "valid": "dev", "dev": "dev", "test": "test"}
# Column holding the tag sequence, and where a sentence id may be found, per task.
_TAG_COLUMN = {"pos": "upos", "ner": "ner_tags"}
_ID_COLUMNS = {"pos": ("sent_id", "idx", "id"), "ner": ("id", "idx")}


def looks_like_local_path(path: str) -> bool:
    """True for strings that can only mean a file or folder (so a missing one is an error, not a hub call):
    starting with ``/``, ``.`` or ``~``; a Windows separator; more than one ``/``; or a data-file suffix.
    ``"squad_v2"`` and ``"owner/name"`` are hub ids."""
    text = str(path)
    return (
        text.startswith(("/", ".", "~"))
        or (os.altsep is not None and os.altsep in text)
        or "\\" in text
        or not _HUB_ID.fullmatch(text)
        or Path(text).suffix.lower() in DATA_SUFFIXES
    )


def _label_names(dataset: Dataset, column: str) -> list[str] | None:
    feature = getattr(dataset.features[column], "feature", None)
    return feature.names if isinstance(feature, ClassLabel) else None


def _tagging(dataset: Dataset, task: str, split: str) -> Dataset:
    tag_column = _TAG_COLUMN[task]
    names = _label_names(dataset, tag_column)
    id_column = next((c for c in _ID_COLUMNS[task] if c in dataset.column_names), None)
    out_id = "sent_id" if task == "pos" else "id"

    def convert(batch, indices):
        ids, tokens, tags = [], [], []
        for k, (words, labels) in enumerate(zip(batch["tokens"], batch[tag_column])):
            labels = [names[t] for t in labels] if names else list(labels)
            # UD on the hub keeps multiword-token rows with UPOS "_": drop them, as read_conllu does.
            keep = [i for i, label in enumerate(labels) if label != "_"]
            tokens.append([words[i] for i in keep])
            tags.append([labels[i] for i in keep])
            ids.append(str(batch[id_column][k]) if id_column else f"{split}-{indices[k]}")
        return {out_id: ids, "tokens": tokens, tag_column: tags}

    return dataset.map(
        convert, batched=True, with_indices=True, remove_columns=dataset.column_names, features=FEATURES[task]
    )


def _map_split(dataset: Dataset, task: str, split: str) -> Dataset:
    if task in _TAG_COLUMN:
        return _tagging(dataset, task, split)
    if task == "qa":
        return dataset.select_columns(list(FEATURES["qa"])).cast(FEATURES["qa"])
    return dataset.select_columns(["text"]).cast(FEATURES["corpus"])


def load_hub_splits(task: str, name: str, config: str | None = None, **kwargs) -> dict[str, Dataset]:
    """``datasets.load_dataset(name, config, **kwargs)`` with each split mapped to our fields, keyed by role
    ("train" / "dev" / "test"; other hub splits are ignored). No re-splitting happens here."""
    loaded = datasets.load_dataset(name, config, **kwargs)
    roles: dict[str, Dataset] = {}
    for split, dataset in loaded.items():
        role = _ROLE.get(split)
        if role is not None:
            roles[role] = _map_split(dataset, task, split)
    if not roles:
        raise ValueError(f"hub dataset {name!r} has no train/validation/test split (found {list(loaded)})")
    return roles
