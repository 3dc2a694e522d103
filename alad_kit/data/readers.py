"""Plain-Python readers for the four on-disk formats, with FILE:LINE errors.

Each reader returns a dict of columns (``{"tokens": [...], ...}``) that the loaders turn into one Arrow table:
plain Python keeps the 16k-sentence MultiCoNER train file at well under a second.
Nothing is dropped silently: empty sentences are counted in a ``warnings.warn`` here, blank corpus lines are
counted by :func:`non_blank_lines` and warned about by ``load_corpus``.
Structural markers are skipped by design and not warned about: CoNLL-U multiword-token range rows
(``3-4``; UPOS lives on the syntactic words that follow them) and ``-DOCSTART-`` rows of CoNLL files.
CoNLL-U empty nodes (``3.1``; enhanced-dependency nodes with no surface text) are skipped and counted.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import conllu
import conllu.parser
from conllu.exceptions import ParseException

from .validate import BioRepairs, check_token, check_upos, fail, read_text, text_lines

# A BIO tag: "O", or "B-"/"I-" followed by a non-empty type (no spaces).
_BIO_TAG = re.compile(r"O|[BI]-\S+")
# CoNLL columns are separated by spaces or tabs only: str.split() would also split on NBSP and other
# Unicode spaces that can occur *inside* tokens.
_CONLL_SEP = re.compile(r"[ \t]+")


_fail = fail  # FILE:LINE: message


def read_conllu(file: str | Path) -> dict[str, list]:
    """Read a CoNLL-U file into columns ``sent_id``, ``tokens`` (FORM), ``upos`` (strings).

    Only rows with an integer ID (syntactic words) are kept. Every token row must have the 10 tab-separated
    CoNLL-U columns and a UPOS; each row is validated by ``conllu``'s own field parsers. Word ids run 1, 2, ...
    in each sentence, UPOS is one of the 17 UD tags and a FORM keeps a visible character; a file without any
    word row, or one that is not UTF-8 text, is refused. A sentence without a ``# sent_id`` comment gets
    ``<file stem>-<n>`` (n = 1-based sentence number in the file).
    """
    file = Path(file)
    cols: dict[str, list] = {"sent_id": [], "tokens": [], "upos": []}
    sent_id, tokens, tags = None, [], []
    empty = empty_nodes = 0
    n_blocks = 0
    in_block = False

    def flush():
        nonlocal sent_id, tokens, tags, empty, n_blocks, in_block
        if in_block:
            n_blocks += 1
            if tokens:
                cols["sent_id"].append(sent_id or f"{file.stem}-{n_blocks}")
                cols["tokens"].append(tokens)
                cols["upos"].append(tags)
            else:
                empty += 1
        sent_id, tokens, tags, in_block = None, [], [], False

    for lineno, raw in text_lines(file):
        line = raw.rstrip("\r\n")
        if not line.strip():
            flush()
            continue
        in_block = True
        if line.startswith("#"):
            for key, value in conllu.parser.parse_comment_line(line):
                if key == "sent_id":
                    sent_id = value
            continue
        token = _conllu_row(file, lineno, line, len(tokens))
        if token is None:  # "3-4" multiword range or "3.1" empty node
            empty_nodes += "." in line.split("\t", 1)[0]
            continue
        tokens.append(token["form"])
        tags.append(token["upos"])
    flush()
    if not cols["tokens"]:
        raise _fail(file, None, "no sentences with word rows (empty file?)")
    if empty:
        warnings.warn(f"{file}: skipped {empty} sentence(s) without word rows", stacklevel=2)
    if empty_nodes:
        warnings.warn(f"{file}: skipped {empty_nodes} empty node row(s) (IDs like 3.1)", stacklevel=2)
    return cols


def _conllu_row(file: Path, lineno: int, line: str, n_words: int) -> dict | None:
    """One validated CoNLL-U word row, or None for a multiword range / empty node. Word ids must run
    1, 2, 3, ... within a sentence (a range starts at the next id; empty nodes are not checked), UPOS must be a
    UD tag."""
    n_cols = line.count("\t") + 1
    if n_cols != 10:
        raise _fail(file, lineno, f"CoNLL-U row needs 10 tab-separated columns, found {n_cols}")
    try:
        token = conllu.parser.parse_line(line, conllu.parser.DEFAULT_FIELDS)
    except ParseException as error:
        raise _fail(file, lineno, f"CoNLL-U parse error: {error}") from error
    token_id = token["id"]
    if token_id is None:
        raise _fail(file, lineno, "CoNLL-U row has no ID ('_')")
    if isinstance(token_id, tuple) and token_id[1] == ".":
        return None  # an empty node: no surface word, skipped (and counted) by the caller
    first = token_id[0] if isinstance(token_id, tuple) else token_id
    if first != n_words + 1:
        raise _fail(file, lineno, f"CoNLL-U id {line.split(chr(9), 1)[0]} out of order (expected {n_words + 1})")
    if isinstance(token_id, tuple):
        return None  # a multiword range: UPOS lives on the words that follow
    if token["upos"] in (None, "", "_"):
        raise _fail(file, lineno, f"word {token['form']!r} has no UPOS tag")
    check_upos(file, lineno, token["upos"])
    check_token(file, lineno, token["form"])
    return token


def _header_id(file: Path, lineno: int, line: str) -> str:
    """The sentence id of a MultiCoNER header ``# id <uuid>\tdomain=en``."""
    fields = line[5:].split()
    if not fields:
        raise _fail(file, lineno, "sentence header '# id' without an id")
    return fields[0]


def _check_conll_row(file: Path, lineno: int, fields: list[str], width: tuple[int, int] | None) -> tuple[int, int]:
    """Check one CoNLL NER row (its column count against the file's first row, its BIO tag, its token).

    ``width`` is (columns, line) of the first row, None for the first row itself; returns it for the next."""
    if width is None:
        if len(fields) < 2:
            raise _fail(file, lineno, f"NER row needs a token and a tag, found {len(fields)} column(s)")
        width = (len(fields), lineno)
    elif len(fields) != width[0]:
        raise _fail(file, lineno, f"NER row has {len(fields)} columns, expected {width[0]} (as on line {width[1]})")
    tag = fields[-1]
    if not _BIO_TAG.fullmatch(tag):
        raise _fail(file, lineno, f"invalid BIO tag {tag!r} (expected O, B-<type> or I-<type>)")
    check_token(file, lineno, fields[0])
    return width


def read_conll(file: str | Path, strict: bool = False) -> dict[str, list]:
    """Read a CoNLL NER file into columns ``id``, ``tokens``, ``ner_tags`` (BIO strings).

    Two layouts are understood, both with blank lines between sentences:

    * MultiCoNER: a ``# id <uuid>\\tdomain=en`` header per sentence, then ``token _ _ TAG`` rows. Only lines
      starting with ``# id `` are headers (a row for the token ``#`` is data). A header also ends the previous
      sentence.
    * plain CoNLL: ``token TAG`` rows (or ``token POS CHUNK TAG``, as CoNLL-2003); ``-DOCSTART-`` rows are
      skipped. Sentences get the id ``<file stem>-<n>``.

    The token is the first column and the tag the last; every row must have the same number of columns as
    the file's first row (at least 2). Tags must be ``O``, ``B-type`` or ``I-type``. A sequence seqeval would
    read differently from its tags (``I-X`` without ``B-X``, ``B-X I-Y``) is repaired the way seqeval reads it
    and counted in one warning; with ``strict`` it is an error naming the line.
    """
    file = Path(file)
    cols: dict[str, list] = {"id": [], "tokens": [], "ner_tags": []}
    sent_id, tokens, tags, lines = None, [], [], []
    width = None  # (columns, line) of the file's first row: every row must match it
    empty = n_sent = 0
    repairs = BioRepairs(file, strict)

    def flush():
        nonlocal sent_id, tokens, tags, lines, empty, n_sent
        if tokens:
            n_sent += 1
            cols["id"].append(sent_id or f"{file.stem}-{n_sent}")
            cols["tokens"].append(tokens)
            cols["ner_tags"].append(repairs.apply(tags, lines))
        elif sent_id is not None:
            empty += 1
        sent_id, tokens, tags, lines = None, [], [], []

    for lineno, raw in text_lines(file):
        line = raw.rstrip("\r\n")
        if line.startswith("# id "):
            flush()
            sent_id = _header_id(file, lineno, line)
            continue
        fields = _CONLL_SEP.split(line.strip(" \t"))
        if fields == [""]:
            flush()
            continue
        if fields[0] == "-DOCSTART-":
            flush()
            continue
        width = _check_conll_row(file, lineno, fields, width)
        tag = fields[-1]
        tokens.append(fields[0])
        tags.append(tag)
        lines.append(lineno)
    flush()
    if not cols["tokens"]:
        raise _fail(file, None, "no token rows (empty file?)")
    if repairs.message():
        warnings.warn(repairs.message(), stacklevel=2)
    if empty:
        warnings.warn(f"{file}: skipped {empty} sentence header(s) without token rows", stacklevel=2)
    return cols


_TYPE_NAMES = {str: "a string", list: "a list", int: "an integer"}


def _need(record, key: str, where: str, file: Path, kind: type | None = None):
    """``record[key]``; a missing key or (with ``kind``) a value of another JSON type names file and place."""
    if not isinstance(record, dict) or key not in record:
        raise _fail(file, None, f"{where}: missing key {key!r}")
    value = record[key]
    # bool is an int in Python, never in SQuAD
    if kind is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise _fail(file, None, f"{where}: {key!r} must be {_TYPE_NAMES[kind]}, got {type(value).__name__} "
                                f"{str(value)[:40]!r}")
    return value


def read_squad(file: str | Path) -> tuple[dict[str, list], bool]:
    """Read a SQuAD 1.1/2.0 JSON file into columns ``id, title, context, question, answers``.

    ``answers`` is ``{"text": [...], "answer_start": [...]}``; unanswerable questions keep empty lists.
    Returns ``(columns, labeled)``. A file is *labeled* when at least one question carries ``is_impossible``
    or a non-empty ``answers`` list; a file where every question has ``"answers": []`` and no
    ``is_impossible`` (like ``dev-v2.0-b.json``, whose answers were removed) is unlabeled. In a labeled file
    every answer must sit at ``answer_start`` in its context, and ``is_impossible`` must agree with the
    answers; errors name the question id.
    """
    file = Path(file)
    text = read_text(file)
    if not text.strip():
        raise _fail(file, None, "empty file (expected SQuAD JSON)")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise _fail(file, error.lineno, f"invalid JSON: {error.msg} (column {error.colno})") from error
    articles = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(articles, list):
        raise _fail(file, None, "not SQuAD JSON: no top-level 'data' list")
    cols: dict[str, list] = {k: [] for k in ("id", "title", "context", "question", "answers")}
    impossible_flags: list[bool | None] = []
    for a_index, article in enumerate(articles):
        title = _need(article, "title", f"article #{a_index}", file, str)
        for p_index, paragraph in enumerate(_need(article, "paragraphs", f"article {title!r}", file, list)):
            where = f"article {title!r} paragraph #{p_index}"
            context = _need(paragraph, "context", where, file, str)
            for q_index, qa in enumerate(_need(paragraph, "qas", where, file, list)):
                qid = _need(qa, "id", f"{where} question #{q_index}", file, str)
                question = _need(qa, "question", f"question {qid}", file, str)
                answers = _need(qa, "answers", f"question {qid}", file, list)
                texts = [_need(a, "text", f"question {qid} answer", file, str) for a in answers]
                starts = [_need(a, "answer_start", f"question {qid} answer", file, int) for a in answers]
                _check_offsets(file, qid, context, texts, starts)
                if qa.get("is_impossible") not in (None, True, False):
                    raise _fail(file, None, f"question {qid}: 'is_impossible' must be true or false")
                cols["id"].append(qid)
                cols["title"].append(title)
                cols["context"].append(context)
                cols["question"].append(question)
                cols["answers"].append({"text": texts, "answer_start": starts})
                impossible_flags.append(qa.get("is_impossible"))
    if not cols["id"]:
        raise _fail(file, None, "no questions (empty 'data' list?)")
    labeled = any(flag is not None for flag in impossible_flags) or any(a["text"] for a in cols["answers"])
    if labeled:
        for qid, answers, impossible in zip(cols["id"], cols["answers"], impossible_flags):
            if impossible and answers["text"]:
                raise _fail(file, None, f"question {qid}: is_impossible is true but it has answers")
            if impossible is False and not answers["text"]:
                raise _fail(
                    file, None, f"question {qid}: answerable (is_impossible false) but has no answers"
                )
    return cols, labeled


def _check_offsets(file: Path, qid: str, context: str, texts: list[str], starts: list[int]) -> None:
    """Every answer is a non-empty string found exactly at its ``answer_start`` (0 <= start < len)."""
    for text, start in zip(texts, starts):
        if not text:
            raise _fail(file, None, f"question {qid}: empty answer text at offset {start}")
        if start < 0 or start + len(text) > len(context) or context[start : start + len(text)] != text:
            raise _fail(file, None, f"question {qid}: answer {text!r} is not at offset {start} of its context "
                                    f"({len(context)} characters)")


def file_lines(files: list[Path]):
    """The raw lines of ``files``, one file after the other; a file that is not UTF-8 text is an error."""
    for file in files:
        for _, line in text_lines(file):
            yield line


def non_blank_lines(lines, max_lines: int | None = None) -> tuple[list[str], int]:
    """``(kept, n_blank)``: the stripped non-blank lines (at most ``max_lines``) and how many blank lines
    were passed over on the way. The caller reports ``n_blank``."""
    kept: list[str] = []
    blank = 0
    for raw in lines:
        if max_lines is not None and len(kept) >= max_lines:
            break
        text = raw.strip()
        if text:
            kept.append(text)
        else:
            blank += 1
    return kept, blank
