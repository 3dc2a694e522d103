"""Pairing student token positions with teacher token positions.

Teacher (M_L) and student (M_C) may use different tokenizers. The alignment loss is computed only on
tokens that exist in both and are real text: special tokens ([CLS], <s>, [SEP], </s>) and padding are
never paired.

Pairing is by character span: a student token is paired with the teacher token that covers exactly the
same characters of the same word. When both tokenizers produce the same wordpieces (MiniLM and MPNet share
the bert-base-uncased vocabulary and differ only in special tokens) every real token pairs exactly. When
they differ, a student token without an exact partner is paired with the teacher token that overlaps it
most (ties: the first), so every student token that has any teacher counterpart gets a target; the
``exact_fraction`` of the result says how much of the pairing was exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

UNPAIRED = -1  # student position with no teacher partner (special token, padding, or truncated away)


@dataclass
class TokenPairing:
    """Student encodings and, per student position, the index of its teacher token (or UNPAIRED)."""

    student_input_ids: list[list[int]]  # per text, student wordpiece ids incl. special tokens
    teacher_input_ids: list[list[int]]  # per text, teacher wordpiece ids incl. special tokens
    student_to_teacher: list[list[int]]  # per text and student position: teacher position or UNPAIRED
    exact_fraction: float  # share of paired student tokens whose teacher span matched exactly

    def __len__(self) -> int:
        return len(self.student_input_ids)

    def masks(self, index: Sequence[int], pad_to: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) long tensor of teacher positions (UNPAIRED where none) and the (B, T) bool loss mask."""
        rows = [self.student_to_teacher[i] for i in index]
        width = pad_to or max(len(r) for r in rows)
        s2t = torch.full((len(rows), width), UNPAIRED, dtype=torch.long)
        for b, r in enumerate(rows):
            s2t[b, : len(r)] = torch.tensor(r[:width], dtype=torch.long)
        return s2t, s2t != UNPAIRED


def _spans(encoding, index: int, split_words: bool) -> list[tuple | None]:
    """Per token: (word, start, end) of the characters it covers, or None for special tokens."""
    offsets = encoding["offset_mapping"][index]
    special = encoding["special_tokens_mask"][index]
    words = encoding.word_ids(index) if split_words else [0] * len(offsets)
    spans: list[tuple | None] = []
    for (start, end), is_special, word in zip(offsets, special, words):
        spans.append(None if is_special or word is None or end <= start else (word, start, end))
    return spans


def _pair_one(student_spans: list, teacher_spans: list) -> tuple[list[int], int, int]:
    exact_index = {span: t for t, span in enumerate(teacher_spans) if span is not None}
    pairs, n_exact, n_paired = [], 0, 0
    for span in student_spans:
        if span is None:
            pairs.append(UNPAIRED)
            continue
        t = exact_index.get(span)
        if t is None:  # different segmentation: take the teacher token overlapping most within the word
            word, start, end = span
            best, best_overlap = UNPAIRED, 0
            for j, other in enumerate(teacher_spans):
                if other is None or other[0] != word:
                    continue
                overlap = min(end, other[2]) - max(start, other[1])
                if overlap > best_overlap:
                    best, best_overlap = j, overlap
            t = best
        else:
            n_exact += 1
        n_paired += t != UNPAIRED
        pairs.append(t)
    return pairs, n_exact, n_paired


def pair_tokens(
    student_tokenizer,
    teacher_tokenizer,
    texts: Sequence[str] | Sequence[Sequence[str]],
    max_length: int = 128,
    batch_size: int = 256,
) -> TokenPairing:
    """Tokenize ``texts`` (strings, or pre-split word lists) with both tokenizers and pair their tokens.

    Both sides are truncated to ``max_length``; student tokens whose teacher partner was truncated away
    stay UNPAIRED, so the loss never reads a target that does not exist.
    """
    if len(texts) == 0:
        raise ValueError("pair_tokens: no texts given")
    split_words = not isinstance(texts[0], str)
    for tok in (student_tokenizer, teacher_tokenizer):
        if not getattr(tok, "is_fast", False):
            raise ValueError(f"pair_tokens: {type(tok).__name__} is not a fast tokenizer (offsets are needed)")
    kwargs = dict(
        truncation=True,
        max_length=max_length,
        is_split_into_words=split_words,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    s_ids, t_ids, s2t, n_exact, n_paired = [], [], [], 0, 0
    for lo in range(0, len(texts), batch_size):
        chunk = [list(t) if split_words else t for t in texts[lo : lo + batch_size]]
        s_enc, t_enc = student_tokenizer(chunk, **kwargs), teacher_tokenizer(chunk, **kwargs)
        for i in range(len(chunk)):
            pairs, exact, paired = _pair_one(_spans(s_enc, i, split_words), _spans(t_enc, i, split_words))
            s_ids.append(s_enc["input_ids"][i])
            t_ids.append(t_enc["input_ids"][i])
            s2t.append(pairs)
            n_exact, n_paired = n_exact + exact, n_paired + paired
    return TokenPairing(s_ids, t_ids, s2t, n_exact / max(n_paired, 1))


def gather_targets(teacher_rows: Sequence[torch.Tensor], s2t: torch.Tensor) -> torch.Tensor:
    """Teacher vectors at the paired positions: (B, T_s, D_L), zeros where UNPAIRED.

    ``teacher_rows[b]`` is the (T_t, D_L) teacher output of text b; ``s2t`` comes from ``TokenPairing.masks``.
    """
    batch, width = s2t.shape
    dim = teacher_rows[0].shape[-1]
    out = torch.zeros(batch, width, dim, dtype=torch.float32)
    for b, row in enumerate(teacher_rows):
        valid = s2t[b] != UNPAIRED
        out[b, valid] = row[s2t[b, valid]].float()
    return out
