"""Word vectors for the probes: run encoders (+ adapter) and keep one vector per word.

Student and teacher may tokenize differently, but the *first sub-word* of every word exists in both, so
probes compare the first sub-word's vector of each word (the usual convention of token-level tagging heads).
The adapter itself still reads the full sub-word sequence; we only pick positions after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .frames import _as_numpy

# --------------------------------------------------------------------------------------------------
# Word-level embeddings from encoders
# --------------------------------------------------------------------------------------------------


@dataclass
class WordVectors:
    """One vector per word (its first sub-word) for every sentence, from one encoder (+ adapter)."""

    words: list[list[str]]  # the words that survived truncation, per sentence
    hidden: list[np.ndarray]  # per sentence (T_i, D) encoder last hidden state at first sub-words
    adapted: list[np.ndarray] | None  # per sentence (T_i, D_L) adapter output at first sub-words, or None


def _split(words_or_texts: Sequence) -> list[list[str]]:
    if len(words_or_texts) == 0:
        raise ValueError("embed_tokens: no sentences given")
    out = [t.split() if isinstance(t, str) else list(t) for t in words_or_texts]
    empty = [i for i, w in enumerate(out) if not w]
    if empty:
        raise ValueError(f"embed_tokens: sentence(s) {empty[:5]} have no words")
    return out


def embed_tokens(
    encoder,
    tokenizer,
    adapter,
    words_or_texts: Sequence[str] | Sequence[Sequence[str]],
    batch_size: int = 16,
    max_length: int = 128,
) -> WordVectors:
    """Run ``encoder`` (and ``adapter`` on its output, if given) and keep each word's first sub-word vector.

    ``words_or_texts``: sentences as strings (split on whitespace) or as word lists. The encoder sees the
    words with ``is_split_into_words=True``; words cut off by ``max_length`` are dropped from the result.
    Runs in eval mode without gradients on the encoder's device.
    """
    import torch

    sentences = _split(words_or_texts)
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    if adapter is not None:
        adapter.eval()
    words_out, hidden_out, adapted_out = [], [], []
    try:
        with torch.no_grad():
            for lo in range(0, len(sentences), batch_size):
                chunk = sentences[lo : lo + batch_size]
                enc = tokenizer(
                    chunk,
                    is_split_into_words=True,
                    truncation=True,
                    max_length=max_length,
                    padding=True,
                    return_tensors="pt",
                )
                inputs = {k: v.to(device) for k, v in enc.items()}
                hidden = encoder(**inputs).last_hidden_state
                adapted = None if adapter is None else adapter(hidden, inputs["attention_mask"])
                for b, words in enumerate(chunk):
                    first = _first_subwords(enc.word_ids(b))
                    idx = torch.tensor(first, dtype=torch.long, device=device)
                    words_out.append(words[: len(first)])
                    hidden_out.append(_as_numpy(hidden[b, idx]).astype(np.float32))
                    if adapted is not None:
                        adapted_out.append(_as_numpy(adapted[b, idx]).astype(np.float32))
    finally:
        encoder.train(was_training)
    return WordVectors(words_out, hidden_out, adapted_out if adapter is not None else None)


def _first_subwords(word_ids: Sequence[int | None]) -> list[int]:
    """Token position of each word's first sub-word, for words 0..k-1 that survived truncation."""
    first: dict[int, int] = {}
    for pos, w in enumerate(word_ids):
        if w is not None and w not in first:
            first[w] = pos
    k = 0
    while k in first:  # truncation cuts a suffix of the words; keep the contiguous prefix
        k += 1
    return [first[w] for w in range(k)]


@dataclass
class ProbeInputs:
    """Word vectors of the same words from student, adapted student and teacher, ready for the probes."""

    words: list[list[str]]
    student: list[np.ndarray]  # (T_i, D_C)
    adapted: list[np.ndarray] | None  # (T_i, D_L), None without adapter
    teacher: list[np.ndarray]  # (T_i, D_L)

    def as_dict(self) -> dict[str, list[np.ndarray]]:
        """{"teacher", "adapted", "student"} -> per-sentence arrays (for ``umap_projection``/``cka_matrix``)."""
        out = {"teacher": self.teacher}
        if self.adapted is not None:
            out["adapted"] = self.adapted
        out["student"] = self.student
        return out


def embed_for_probes(
    student,
    student_tokenizer,
    adapter,
    teacher,
    teacher_tokenizer,
    words_or_texts: Sequence[str] | Sequence[Sequence[str]],
    batch_size: int = 16,
    max_length: int = 128,
) -> ProbeInputs:
    """Word-level vectors of student, adapter(student) and teacher over the same sentences.

    Works across tokenizers because both sides are read at each word's first sub-word; when truncation
    keeps a different number of words on the two sides, both are cut to the shorter prefix.
    """
    s = embed_tokens(student, student_tokenizer, adapter, words_or_texts, batch_size, max_length)
    t = embed_tokens(teacher, teacher_tokenizer, None, words_or_texts, batch_size, max_length)
    if adapter is not None and s.adapted[0].shape[-1] != t.hidden[0].shape[-1]:
        raise ValueError(
            f"embed_for_probes: adapter outputs width {s.adapted[0].shape[-1]} "
            f"but the teacher's hidden size is {t.hidden[0].shape[-1]}"
        )
    keep = [min(len(a), len(b)) for a, b in zip(s.words, t.words)]
    return ProbeInputs(
        words=[w[:k] for w, k in zip(s.words, keep)],
        student=[h[:k] for h, k in zip(s.hidden, keep)],
        adapted=None if s.adapted is None else [h[:k] for h, k in zip(s.adapted, keep)],
        teacher=[h[:k] for h, k in zip(t.hidden, keep)],
    )


