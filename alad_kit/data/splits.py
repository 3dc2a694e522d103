"""Seeded, leak-free splits: rows that share a sentence id, a sentence text or an article never straddle splits.

The rule (also in data/README.md):

1. Rows are joined into *groups*: two rows are in the same group when they share a value in any of the
   group columns (POS/NER: the sentence id or the exact token sequence; QA: the article title or the
   context). Groups are ordered by first appearance in the file.
2. The groups are shuffled with ``random.Random(seed)``; every split after the first gets
   ``max(1, round(fraction * n_groups))`` groups, the first split (train) the rest.
3. Rows keep their file order inside each split.

Which source files become which split is decided by :func:`assemble_splits`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

from datasets import Dataset, DatasetDict


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def _group_of_rows(dataset: Dataset, group_columns: Sequence[str]) -> list[int]:
    """Union-find over rows; returns for each row the smallest row index of its group."""
    parent = list(range(len(dataset)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_row: dict = {}
    columns = dataset.select_columns(list(group_columns))[:]  # one batch read: much faster than per column
    for c_index, column in enumerate(group_columns):
        for row, value in enumerate(columns[column]):
            other = first_row.setdefault((c_index, _hashable(value)), row)
            a, b = find(row), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)  # keeps the root = smallest row index of the group
    return [find(i) for i in range(len(dataset))]


def _group_counts(n_groups: int, fractions: Mapping[str, float]) -> list[int]:
    names = list(fractions)
    rest = [max(1, math.floor(fractions[name] * n_groups + 0.5)) for name in names[1:]]
    first = n_groups - sum(rest)
    if first < 1:
        raise ValueError(f"cannot split {n_groups} group(s) into {names} with fractions {dict(fractions)}")
    return [first, *rest]


def grouped_split(
    dataset: Dataset, group_columns: Sequence[str], fractions: Mapping[str, float], seed: int = 0
) -> DatasetDict:
    """Split ``dataset`` into ``fractions`` (name -> fraction of groups, summing to 1; the first entry takes
    the remainder) so that no group is in two splits. Deterministic for a given ``seed``."""
    if not fractions or any(not 0 < f < 1 for f in list(fractions.values())[1:]):
        raise ValueError(f"fractions must be in (0, 1), got {dict(fractions)}")
    if not math.isclose(sum(fractions.values()), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must sum to 1, got {dict(fractions)} (sum {sum(fractions.values())})")
    roots = _group_of_rows(dataset, group_columns)
    groups = list(dict.fromkeys(roots))
    random.Random(seed).shuffle(groups)
    split_of_group: dict[int, str] = {}
    start = 0
    for name, count in zip(fractions, _group_counts(len(groups), fractions)):
        split_of_group.update((group, name) for group in groups[start : start + count])
        start += count
    rows: dict[str, list[int]] = {name: [] for name in fractions}
    for row, root in enumerate(roots):
        rows[split_of_group[root]].append(row)
    return DatasetDict({name: dataset.select(indices) for name, indices in rows.items()})


def check_fractions(validation_fraction: float, test_fraction: float) -> None:
    """Both fractions in (0, 1) and leaving something for train."""
    for name, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    if validation_fraction + test_fraction >= 1:
        raise ValueError(
            f"validation_fraction + test_fraction must be < 1, got {validation_fraction} + {test_fraction}"
        )


def assemble_splits(
    roles: Mapping[str, Dataset],
    group_columns: Sequence[str],
    seed: int,
    validation_fraction: float,
    test_fraction: float,
) -> DatasetDict:
    """Turn the available source splits into train/validation/test.

    ``roles`` maps "train" / "dev" / "test" to the data found for it (files are given a role by name).

    * train + dev + test: used as they are (dev -> validation).
    * train + dev, no test: dev becomes **test** (an official dev set is the best held-out gold we have;
      MultiCoNER here), validation is carved from train (``validation_fraction``).
    * dev + test, no train: dev is split into train/validation, test untouched (UD German GSD here).
    * train + test: validation is carved from train.
    * train only (or dev only): split three ways (``1 - v - t`` / ``v`` / ``t``; SQuAD ``dev-v2.0-a`` here).
    """
    check_fractions(validation_fraction, test_fraction)
    train, dev, test = roles.get("train"), roles.get("dev"), roles.get("test")
    if train is None and dev is None:
        raise ValueError(
            f"no train or dev data among {sorted(roles)} (name files *train*, *dev*/*valid* or *test*)"
        )
    if train is not None and dev is not None and test is None:
        dev, test = None, dev
    if train is None:
        train, dev = dev, None
    if dev is not None:
        return DatasetDict(train=train, validation=dev, test=test)
    if test is None:
        fractions = {
            "train": 1 - validation_fraction - test_fraction,
            "validation": validation_fraction,
            "test": test_fraction,
        }
        return grouped_split(train, group_columns, fractions, seed)
    parts = grouped_split(
        train, group_columns, {"train": 1 - validation_fraction, "validation": validation_fraction}, seed
    )
    parts["test"] = test
    return parts
