"""Raw text as people write it, cut into the words a model tags: one place for ``alad predict``, ``AladPipeline``
and the ``--file`` reader.

* Words are runs of letters/digits (``\\w``, joined by ``-``, ``'`` or ``’`` as in "state-of-the-art", "don't"),
  every other visible character is a word of its own, as UD and CoNLL tokenize.
* Format characters (Unicode category Cf: a byte-order mark, zero-width spaces and joiners, left-to-right and
  right-to-left marks, soft hyphens, word joiners) are invisible: they are left out of the words and never
  make a word, so "Ber\\u00adlin" is the word "Berlin". Offsets still point into the text as given.
* Combining marks (category M: accents typed as a second code point, variation selectors) belong to the
  character before them; a mark with nothing before it (after a space) is dropped, never a word.
* An emoji sequence (👩‍💻: woman, zero-width joiner, laptop; a skin tone; a flag's two letters) is one symbol.
* Lines are split on ``\\n`` and ``\\r\\n`` only: ``str.splitlines()`` also breaks at \\x0b, \\x0c, \\x1c-\\x1e,
  \\x85, \\u2028 and \\u2029, which a text file holds inside a line.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

ZWJ = "\u200d"  # zero-width joiner: kept inside an emoji sequence, dropped everywhere else
JOINERS = "-'’"  # join two runs of letters/digits into one word
SKIN_TONES = range(0x1F3FB, 0x1F400)  # emoji modifiers (category Sk): part of the emoji before them
FLAG_LETTERS = range(0x1F1E6, 0x1F200)  # regional indicators: two of them are one flag


def _category(char: str) -> str:
    return unicodedata.category(char)


def _is_word_char(char: str) -> bool:
    return _category(char)[0] in "LN" or char == "_"


def _is_symbol(char: str) -> bool:
    return _category(char) in ("So", "Sk")


def _clusters(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, visible)`` of every visible character with the marks, skin tone or joined emoji that
    belong to it; ``visible`` is its text without format characters (ZWJ kept between emoji)."""
    out: list[tuple[int, int, str]] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace() or _category(char) in ("Cf", "Mn", "Mc", "Me"):  # nothing to attach to: dropped
            i += 1
            continue
        start, visible, i = i, [char], i + 1
        while i < n:
            nxt = text[i]
            if _category(nxt)[0] == "M" or (ord(nxt) in SKIN_TONES and _is_symbol(visible[-1])):
                visible.append(nxt)
            elif (ord(nxt) in FLAG_LETTERS and ord(visible[-1]) in FLAG_LETTERS
                  and sum(ord(c) in FLAG_LETTERS for c in visible) == 1):
                visible.append(nxt)
            elif nxt == ZWJ and _is_symbol(visible[0]) and i + 1 < n and _is_symbol(text[i + 1]):
                visible += [nxt, text[i + 1]]
                i += 1
            elif _category(nxt) == "Cf" and _is_word_char(char):  # inside a word: invisible, the word goes on
                j = i
                while j < n and _category(text[j]) == "Cf":
                    j += 1
                if j == n or not (_is_word_char(text[j]) or _category(text[j])[0] == "M"):
                    break
                i = j
                continue
            else:
                break
            i += 1
        out.append((start, i, "".join(visible)))
    return out


def split_words(text: str) -> list[tuple[str, int, int]]:
    """``(word, start, end)`` of the words of ``text``; ``text[start:end]`` is the word as written (format
    characters inside it included), ``word`` what the model reads (see the module docstring)."""
    clusters = _clusters(text)
    words: list[tuple[str, int, int]] = []
    k = 0
    while k < len(clusters):
        start, end, visible = clusters[k]
        k += 1
        if _is_word_char(visible[0]):
            # letters/digits go on while the next cluster touches this one; -, ' and ’ join two such runs
            while k < len(clusters) and clusters[k][0] == end:
                nxt = clusters[k][2]
                if _is_word_char(nxt[0]):
                    end, visible, k = clusters[k][1], visible + nxt, k + 1
                elif (nxt in JOINERS and k + 1 < len(clusters) and clusters[k + 1][0] == clusters[k][1]
                      and _is_word_char(clusters[k + 1][2][0])):
                    end, visible, k = clusters[k + 1][1], visible + nxt + clusters[k + 1][2], k + 2
                else:
                    break
        words.append((visible, start, end))
    return words


def split_lines(text: str) -> list[str]:
    """The lines of ``text``, split on ``\\n`` and ``\\r\\n`` only (a leading byte-order mark removed)."""
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return [line.removesuffix("\r") for line in lines]


def read_lines(path: str | os.PathLike) -> list[str]:
    """The non-blank lines of the UTF-8 text file ``path`` (one text per line); a ValueError naming the file
    and the position when it is not UTF-8."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}: {data[err.start:err.start + 1]!r})") from None
    return [line for line in split_lines(text) if split_words(line)]
