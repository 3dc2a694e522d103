"""data.text: the words and lines of text as people write it (format characters, marks, emoji, line breaks)."""

import pytest

from alad_kit.data.text import read_lines, split_lines, split_words


def _words(text):
    return [w for w, _, _ in split_words(text)]


@pytest.mark.parametrize("text, words", [
    ("\ufeffDer Hund schläft.", ["Der", "Hund", "schläft", "."]),  # a byte-order mark is no word
    ("Ber\u00adlin ist\u200b \u200b gro\u00df", ["Berlin", "ist", "groß"]),  # soft hyphen, zero-width space
    ("\u200fשלום\u200e world \u2066x\u2069", ["שלום", "world", "x"]),  # right-to-left / left-to-right marks
    ("Cafe\u0301 a \u0301 b", ["Cafe\u0301", "a", "b"]),  # a combining accent stays with its letter
    ("हिन्दी भाषा", ["हिन्दी", "भाषा"]),  # vowel signs (Mn/Mc) are inside the word
    ("I \U0001F469\u200d\U0001F4BB code \U0001F44D\U0001F3FD", ["I", "\U0001F469\u200d\U0001F4BB", "code",
                                                               "\U0001F44D\U0001F3FD"]),  # one emoji each
    ("\U0001F1E9\U0001F1EA\U0001F1EB\U0001F1F7", ["\U0001F1E9\U0001F1EA", "\U0001F1EB\U0001F1F7"]),  # two flags
    ("state-of-the-art don't x- 'y", ["state-of-the-art", "don't", "x", "-", "'", "y"]),
    ("\u200b\u200d\u0301", []),  # only invisible characters: no word at all
])
def test_words(text, words):
    assert _words(text) == words


def test_offsets_point_into_the_text_as_given():
    text = "\ufeff\u200fAngela Mer\u00adkel met Macron"
    spans = split_words(text)
    assert [(w, text[s:e]) for w, s, e in spans] == [
        ("Angela", "Angela"), ("Merkel", "Mer\u00adkel"), ("met", "met"), ("Macron", "Macron")]
    assert spans[0][1] == 2  # after the byte-order mark and the right-to-left mark


def test_lines_end_at_newline_only():
    text = "\ufeffeins\u2028zwei\r\ndrei\x0cvier\x1c\x85\n\nfünf"
    assert split_lines(text) == ["eins\u2028zwei", "drei\x0cvier\x1c\x85", "", "fünf"]
    assert "eins\u2028zwei".splitlines() == ["eins", "zwei"]  # what str.splitlines() would have done


def test_read_lines_skips_blank_and_invisible_lines_and_names_a_non_utf8_file(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_bytes("\ufeffDer Hund.\r\n\r\n\u200b\nIch lese\u2028ein Buch.\n".encode())
    assert read_lines(path) == ["Der Hund.", "Ich lese\u2028ein Buch."]
    path.write_bytes(b"Der Hund \xe4\n")
    with pytest.raises(ValueError, match=rf"^{path}: not UTF-8 text \(byte 9"):
        read_lines(path)
