"""Task loaders: a local file/folder (default: ``$ALAD_DATA_DIR/<task folder>``) or a hub id -> DatasetDict.

Split rules (see also data/README.md and :func:`alad_kit.data.splits.assemble_splits`): files get a source
role by name (``*train*``, ``*dev*``/``*valid*``, ``*test*``; a single file passed directly is "train"), then

* POS, UD German GSD here (dev + test): train/validation = seeded 90/10 split of ``dev.conllu`` grouped by
  sentence (``sent_id`` or identical token sequence); test = ``test.conllu`` untouched.
* NER, MultiCoNER II here (train + dev): train/validation = seeded 90/10 split of ``train.conll`` grouped by
  sentence id / identical token sequence; test = the official ``dev.conll`` (the official test has no gold here).
* QA, SQuAD 2.0 here: the labeled ``dev-v2.0-a.json`` is split 60/20/20 **by article** (title) into
  train/validation/test; files without gold answers (``dev-v2.0-b.json``) become the ``unlabeled`` split.
* Corpus: all ``*.txt`` of a folder in sorted name order (or one file), blank lines dropped.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pyarrow as pa
from datasets import Dataset, DatasetDict

from .features import FEATURES
from .hub import load_hub_splits, looks_like_local_path
from .readers import file_lines, non_blank_lines, read_conll, read_conllu, read_squad
from .splits import assemble_splits, check_fractions

ENV_VAR = "ALAD_DATA_DIR"
# Folder of each task under ALAD_DATA_DIR (same layout as shared/data).
TASK_DIRS = {
    "pos": "pos_ud_de_gsd",
    "ner": "ner_multiconer2_en",
    "qa": "qa_squad2",
    "corpus": "corpus_en_wiki",
}
_ROLE_WORDS = (("train", ("train",)), ("dev", ("dev", "valid")), ("test", ("test",)))
_HUB_SPLIT_ROLE = {"train": "train", "validation": "dev", "test": "test"}


def data_root() -> Path:
    """The absolute data folder named by ``$ALAD_DATA_DIR``; FileNotFoundError if unset or missing."""
    value = os.environ.get(ENV_VAR)
    if not value:
        folders = ", ".join(f"{name}/" for name in TASK_DIRS.values())
        raise FileNotFoundError(
            f"{ENV_VAR} is not set: point it at the folder holding {folders} "
            f"(e.g. export {ENV_VAR}=../shared/data) or pass a path to the loader"
        )
    root = Path(value).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{ENV_VAR}={value!r} is not a directory ({root})")
    return root


def _source(path: str | os.PathLike | None, task: str) -> Path | None:
    """Local file/folder to read, or None when ``path`` is a hub id."""
    if path is None:
        folder = data_root() / TASK_DIRS[task]
        if not folder.exists():
            raise FileNotFoundError(f"{folder} not found: {ENV_VAR} has no {TASK_DIRS[task]}/ folder")
        return folder
    local = Path(path).expanduser()
    if local.exists():
        return local
    if isinstance(path, os.PathLike) or looks_like_local_path(str(path)):
        raise FileNotFoundError(
            f"no such file or directory: {path} (hub ids look like 'squad_v2' or 'owner/name')"
        )
    return None


def role_of(name: str) -> str | None:
    """Source role of a file name: "train", "dev" (also *valid*), "test", or None."""
    lower = name.lower()
    return next((role for role, words in _ROLE_WORDS if any(word in lower for word in words)), None)


def _files_by_role(source: Path, suffixes: tuple[str, ...]) -> dict[str, list[Path]]:
    if source.is_file():
        return {"train": [source]}
    files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise FileNotFoundError(f"{source}: no {'/'.join(suffixes)} files")
    roles: dict[str, list[Path]] = {}
    for file in files:
        role = role_of(file.name)
        if role is None:
            raise ValueError(f"{file}: cannot tell its split; put train, dev/valid or test in the file name")
        roles.setdefault(role, []).append(file)
    return roles


def _dataset(parts: list[dict[str, list]], task: str) -> Dataset:
    columns: dict[str, list] = {name: [] for name in FEATURES[task]}
    for part in parts:
        for name in columns:
            columns[name].extend(part[name])
    # Straight to Arrow with our schema: Dataset.from_dict(features=...) encodes row by row (8x slower here).
    return Dataset(pa.Table.from_pydict(columns, schema=FEATURES[task].arrow_schema))


def _roles(task, path, config, hub_kwargs, reader: Callable, suffixes) -> dict[str, Dataset]:
    source = _source(path, task)
    if source is None:
        return load_hub_splits(task, str(path), config, **hub_kwargs)
    if config is not None or hub_kwargs:
        raise ValueError(f"config/hub options only apply to hub ids, not to the local path {source}")
    by_role = _files_by_role(source, suffixes)
    return {role: _dataset([reader(f) for f in files], task) for role, files in by_role.items()}


def load_pos(
    path=None, *, config=None, seed: int = 0, validation_fraction=0.1, test_fraction=0.1, **hub_kwargs
) -> DatasetDict:
    """UPOS tagging data: splits train/validation/test with ``sent_id``, ``tokens``, ``upos`` (strings).

    ``path``: a ``.conllu`` file, a folder of ``*.conllu`` (default ``$ALAD_DATA_DIR/pos_ud_de_gsd``) or a hub
    id (with ``config``, e.g. "de_gsd", and ``hub_kwargs`` for ``load_dataset``). Multiword-token ranges and
    empty nodes are skipped: tags are on syntactic words. Splits are grouped by ``sent_id`` and by identical
    token sequence; with dev + test only (this UD copy), train/validation come from dev (``validation_fraction``
    of its sentences, seeded) and test is ``test.conllu`` untouched. ``test_fraction`` applies only when no
    test file exists.
    """
    check_fractions(validation_fraction, test_fraction)
    roles = _roles("pos", path, config, hub_kwargs, read_conllu, (".conllu",))
    return assemble_splits(roles, ("sent_id", "tokens"), seed, validation_fraction, test_fraction)


def load_ner(
    path=None, *, config=None, seed: int = 0, validation_fraction=0.1, test_fraction=0.1, strict: bool = False,
    **hub_kwargs,
) -> DatasetDict:
    """BIO NER data: splits train/validation/test with ``id``, ``tokens``, ``ner_tags`` (strings).

    ``path``: a CoNLL file (MultiCoNER ``# id`` blocks with ``token _ _ TAG`` rows, or plain ``token TAG``),
    a folder of ``*.conll`` (default ``$ALAD_DATA_DIR/ner_multiconer2_en``) or a hub id (e.g. "eriktks/conll2003").
    With train + dev only (MultiCoNER here) the official dev becomes test and validation is a seeded
    ``validation_fraction`` of train, grouped by sentence id and identical token sequence. BIO sequences that
    seqeval reads differently from their tags are repaired with a counted warning, or refused with ``strict``.
    """
    check_fractions(validation_fraction, test_fraction)
    roles = _roles("ner", path, config, hub_kwargs, partial(read_conll, strict=strict), (".conll",))
    return assemble_splits(roles, ("id", "tokens"), seed, validation_fraction, test_fraction)


def load_qa(
    path=None, *, config=None, seed: int = 0, validation_fraction=0.2, test_fraction=0.2, **hub_kwargs
) -> DatasetDict:
    """SQuAD 2.0 data: splits train/validation/test/unlabeled with ``id, title, context, question, answers``.

    ``path``: a SQuAD JSON file, a folder of ``*.json`` (default ``$ALAD_DATA_DIR/qa_squad2``) or a hub id
    (e.g. "rajpurkar/squad_v2"). Unanswerable questions keep empty ``answers`` lists. Files without gold
    answers go to ``unlabeled`` (task text only, never scored). Labeled files are split **by article**
    (title, and context) so no article is in two splits: a lone labeled file (``dev-v2.0-a.json``) gives
    train/validation/test = 1 - v - t / v / t of its articles, seeded. Without any labeled file only
    ``unlabeled`` is returned.
    """
    check_fractions(validation_fraction, test_fraction)
    source = _source(path, "qa")
    unlabeled: list[dict[str, list]] = []
    if source is None:
        roles = load_hub_splits("qa", str(path), config, **hub_kwargs)
    else:
        if config is not None or hub_kwargs:
            raise ValueError(f"config/hub options only apply to hub ids, not to the local path {source}")
        files = [source] if source.is_file() else sorted(source.glob("*.json"))
        if not files:
            raise FileNotFoundError(f"{source}: no .json files")
        labeled: dict[str, list[dict[str, list]]] = {}
        for file in files:
            columns, has_gold = read_squad(file)
            role = "train" if source.is_file() else role_of(file.name)
            if not has_gold:
                unlabeled.append(columns)
            elif role is None:
                raise ValueError(
                    f"{file}: cannot tell its split; put train, dev/valid or test in the file name"
                )
            else:
                labeled.setdefault(role, []).append(columns)
        roles = {role: _dataset(parts, "qa") for role, parts in labeled.items()}
    if not roles:
        warnings.warn(
            f"load_qa: {source} has no gold answers; returning only the 'unlabeled' split", stacklevel=2
        )
        return DatasetDict(unlabeled=_dataset(unlabeled, "qa"))
    splits = assemble_splits(roles, ("title", "context"), seed, validation_fraction, test_fraction)
    splits["unlabeled"] = _dataset(unlabeled, "qa")
    return splits


def load_corpus(
    path=None, max_lines: int | None = None, *, config=None, split="train", **hub_kwargs
) -> Dataset:
    """Plain text, one sentence/paragraph per line -> Dataset with ``text``.

    ``path``: a text file, a folder (all ``*.txt`` concatenated in sorted name order; default
    ``$ALAD_DATA_DIR/corpus_en_wiki``) or a hub id (e.g. "Salesforce/wikitext" with config
    "wikitext-2-raw-v1"; ``split`` picks train/validation/test). Lines are stripped, blank ones dropped (their
    number is warned), and reading stops after ``max_lines`` kept lines.
    """
    if max_lines is not None and max_lines < 1:
        raise ValueError(f"max_lines must be >= 1 or None, got {max_lines!r}")
    source = _source(path, "corpus")
    if source is None:
        if split not in _HUB_SPLIT_ROLE:
            raise ValueError(f"split must be one of {list(_HUB_SPLIT_ROLE)}, got {split!r}")
        roles = load_hub_splits("corpus", str(path), config, **hub_kwargs)
        if _HUB_SPLIT_ROLE[split] not in roles:
            raise ValueError(f"hub dataset {path!r} has no {split!r} split")
        lines = iter(roles[_HUB_SPLIT_ROLE[split]]["text"])
    else:
        if config is not None or hub_kwargs:
            raise ValueError(f"config/hub options only apply to hub ids, not to the local path {source}")
        files = [source] if source.is_file() else sorted(source.glob("*.txt"))
        if not files:
            raise FileNotFoundError(f"{source}: no .txt files")
        lines = file_lines(files)
    kept, blank = non_blank_lines(lines, max_lines)
    if not kept:  # an empty corpus is a broken corpus, not "no corpus": it never becomes the fallback
        raise ValueError(f"{source or path}: the corpus has no non-blank lines")
    if blank:
        warnings.warn(f"load_corpus: dropped {blank} blank line(s) from {source or path}", stacklevel=2)
    return Dataset.from_dict({"text": kept}, features=FEATURES["corpus"])
