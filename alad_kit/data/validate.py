"""Checks shared by the readers: text that is really text, tokens a tokenizer keeps, UD tags, BIO repair.

Every check raises ``ValueError("FILE:LINE: cause")`` (through :func:`fail`) so that the command line
prints one line that says which file and line to fix.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from seqeval.metrics.sequence_labeling import get_entities

# The 17 universal POS tags of UD v2 (https://universaldependencies.org/u/pos/).
UPOS_TAGS = frozenset(
    "ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X".split()
)
# Characters a BERT-style tokenizer deletes (control, format/zero-width, unassigned, private use, spaces)
# or, in uncased models, strips as accents (combining marks): a token made only of them vanishes.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Zs", "Zl", "Zp", "Mn", "Me"})


def fail(file: Path, lineno: int | None, message: str) -> ValueError:
    where = f"{file}:{lineno}" if lineno is not None else str(file)
    return ValueError(f"{where}: {message}")


def text_lines(file: str | Path):
    """Yield ``(line number, line)`` of a UTF-8 text file (a leading BOM dropped, line ends kept).

    Bytes that are not UTF-8, and NUL bytes (valid UTF-8 but never in text), are a binary file: one error
    naming the file and the line instead of a UnicodeDecodeError that names neither.
    """
    file = Path(file)
    with file.open("rb") as handle:
        for lineno, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                byte = raw[error.start]
                raise fail(file, lineno, f"not UTF-8 text (byte 0x{byte:02x} at column {error.start + 1}); "
                                         "is it a binary file?") from None
            if "\x00" in line:
                raise fail(file, lineno, "contains a NUL byte; is it a binary file?")
            yield lineno, line.lstrip("\ufeff") if lineno == 1 else line


def read_text(file: str | Path) -> str:
    """The whole file as text, with the same binary-file errors as :func:`text_lines`."""
    return "".join(line for _, line in text_lines(file))


def check_token(file: Path, lineno: int, token: str) -> None:
    """A token must keep at least one visible character, or the tokenizer drops the word."""
    if token and all(unicodedata.category(c) in _INVISIBLE_CATEGORIES for c in token):
        codes = " ".join(f"U+{ord(c):04X}" for c in token[:4])
        raise fail(file, lineno, f"token {token!r} has only invisible characters ({codes}); "
                                 "the tokenizer would drop it")


def check_upos(file: Path, lineno: int, tag: str) -> None:
    if tag not in UPOS_TAGS:
        raise fail(file, lineno, f"UPOS tag {tag!r} is not one of the 17 UD tags ({' '.join(sorted(UPOS_TAGS))})")


def repair_bio(tags: list[str]) -> list[str]:
    """The tags as seqeval reads them: every entity ``get_entities`` finds gets ``B-`` then ``I-``.

    So ``I-X`` after ``O`` (or at the start) becomes ``B-X``, and the ``I-Y`` of ``B-X I-Y`` starts a new
    entity ``B-Y``; valid IOB2 comes back unchanged.
    """
    fixed = ["O"] * len(tags)
    for entity_type, start, end in get_entities(list(tags)):
        fixed[start] = f"B-{entity_type}"
        fixed[start + 1 : end + 1] = [f"I-{entity_type}"] * (end - start)
    return fixed


class BioRepairs:
    """Counts the tags repaired in one file (or refuses the first, when ``strict``) for one warning."""

    def __init__(self, file: Path, strict: bool):
        self.file, self.strict = file, strict
        self.tags = self.sentences = 0
        self.first: str | None = None

    def apply(self, tags: list[str], lines: list[int]) -> list[str]:
        fixed = repair_bio(tags)
        changed = [k for k, (old, new) in enumerate(zip(tags, fixed)) if old != new]
        if not changed:
            return tags
        k = changed[0]
        where = f"after {tags[k - 1]!r}" if k else "at the sentence start"
        what = f"{tags[k]!r} {where} continues no entity"
        if self.strict:
            raise fail(self.file, lines[k], f"invalid BIO sequence: {what} (strict)")
        self.tags += len(changed)
        self.sentences += 1
        self.first = self.first or f"line {lines[k]}: {what}, read as {fixed[k]!r}"
        return fixed

    def message(self) -> str | None:
        if not self.tags:
            return None
        return (f"{self.file}: repaired {self.tags} BIO tag(s) in {self.sentences} sentence(s) the way seqeval "
                f"reads them (first at {self.first}); use strict to refuse such files")
