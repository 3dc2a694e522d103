"""Data and objectives of the alignment phases (1 and 2), shared with phase 3 through the trainer.

Alignment examples are texts. For each text we keep the student's token ids, the teacher position paired
with every student position (``alad_kit.training.align``), and - through the embedding cache - the frozen
student's and teacher's last hidden states. A batch then needs no encoder pass at all:

    batch = {student_hidden (B, T, D_C), attention_mask (B, T), target (B, T, D_L), target_mask (B, T)}

and the loss is the MSE between ``adapter(student_hidden)`` and ``target`` over paired tokens only.
Without the cache (``use_cache=False``, kept to measure what the cache saves) both encoders run on every
batch instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from alad_kit.core.precision import autocast

from .align import UNPAIRED, TokenPairing, pair_tokens
from .cache import CachedEmbeddings, EmbeddingCache


class AlignmentData:
    """Alignment examples backed by cached embeddings (or by live encoders when no cache is used)."""

    def __init__(self, pairing: TokenPairing, student_rows, teacher_rows, pad_ids=(0, 0), device="cpu"):
        self.pairing = pairing
        self.student_rows = student_rows  # CachedEmbeddings, or a frozen encoder run per batch
        self.teacher_rows = teacher_rows
        self.pad_ids, self.device = pad_ids, device

    def __len__(self) -> int:
        return len(self.pairing)

    @property
    def cached(self) -> bool:
        """True when both sides are read from the embedding cache: a batch is then pure collation (no model
        pass, no random numbers), which the trainer may assemble ahead in a background thread."""
        return isinstance(self.student_rows, CachedEmbeddings) and isinstance(self.teacher_rows, CachedEmbeddings)

    def student_lengths(self) -> list[int]:
        """Student tokens of every example (for length-grouped batches)."""
        return [len(ids) for ids in self.pairing.student_input_ids]

    def with_student(self, encoder) -> AlignmentData:
        """The same examples and teacher targets, with the student states computed live by ``encoder`` (e.g. the
        student after phase 3 fine-tuned it, whose states no cache holds)."""
        return AlignmentData(self.pairing, encoder, self.teacher_rows, self.pad_ids, self.device)

    def _hidden(self, source, ids: list[list[int]], pad_id: int, indices, width: int) -> torch.Tensor:
        if isinstance(source, CachedEmbeddings):
            return source.padded(indices, width)
        tensor = torch.full((len(ids), width), pad_id, dtype=torch.long)
        mask = torch.zeros(len(ids), width, dtype=torch.long)
        for b, row in enumerate(ids):
            tensor[b, : len(row)], mask[b, : len(row)] = torch.tensor(row), 1
        with torch.no_grad():
            out = source(input_ids=tensor.to(self.device), attention_mask=mask.to(self.device)).last_hidden_state
        return out.float().cpu()

    def make_batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        s_ids = [self.pairing.student_input_ids[i] for i in indices]
        t_ids = [self.pairing.teacher_input_ids[i] for i in indices]
        width, t_width = max(map(len, s_ids)), max(map(len, t_ids))
        s2t, target_mask = self.pairing.masks(indices, pad_to=width)
        student = self._hidden(self.student_rows, s_ids, self.pad_ids[0], indices, width)
        teacher = self._hidden(self.teacher_rows, t_ids, self.pad_ids[1], indices, t_width)
        target = torch.gather(teacher, 1, s2t.clamp(min=0).unsqueeze(-1).expand(-1, -1, teacher.shape[-1]))
        lengths = torch.tensor([len(r) for r in s_ids])
        return {
            "student_hidden": student,  # (B, T_s, D_C)
            "attention_mask": (torch.arange(width)[None] < lengths[:, None]).long(),  # (B, T_s)
            "target": target * target_mask.unsqueeze(-1),  # (B, T_s, D_L), zero where unpaired
            "target_mask": target_mask,  # (B, T_s) paired real tokens
        }


def build_alignment_data(
    texts,
    student,
    student_tokenizer,
    teacher,
    teacher_tokenizer,
    cache: EmbeddingCache | None,
    max_length: int,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    desc: str = "",
    precision: str = "fp32",
) -> AlignmentData:
    if len(texts) == 0:
        raise ValueError(f"alignment data {desc!r}: no texts")
    pairing = pair_tokens(student_tokenizer, teacher_tokenizer, texts, max_length=max_length)
    if sum(r.count(UNPAIRED) < len(r) for r in pairing.student_to_teacher) == 0:
        raise ValueError(f"alignment data {desc!r}: no student token could be paired with a teacher token")
    pads = (student_tokenizer.pad_token_id or 0, teacher_tokenizer.pad_token_id or 0)
    if cache is None:
        return AlignmentData(pairing, student, teacher, pads, device)
    s_rows = cache.get(student, pairing.student_input_ids, pads[0], batch_size, device, f"student {desc}", precision)
    t_rows = cache.get(teacher, pairing.teacher_input_ids, pads[1], batch_size, device, f"teacher {desc}", precision)
    return AlignmentData(pairing, s_rows, t_rows, pads, device)


def alignment_loss(model, batch: dict) -> torch.Tensor:
    """MSE between adapted student and teacher embeddings, over paired tokens only."""
    adapted = model(batch, use_head=False)  # (B, T, D_L)
    mask = batch["target_mask"]
    return F.mse_loss(adapted[mask], batch["target"][mask])


def task_loss(task):
    def loss(model, batch: dict) -> torch.Tensor:
        return task.loss(model(batch), batch)

    return loss


# The trainer receives its loss from the phase's objective name - phases stay data.
OBJECTIVES = {"align": lambda task: alignment_loss, "task": task_loss}


def chunk_texts(texts: list[str], max_words: int) -> list[str]:
    """Lines longer than ``max_words`` words cut into consecutive pieces of at most that many, so that a token
    limit never drops the end of a long paragraph (phase 1 then reads all of its corpus)."""
    pieces = []
    for text in texts:
        words = text.split()
        pieces += [" ".join(words[lo : lo + max_words]) for lo in range(0, len(words), max_words)] or [text]
    return pieces


@torch.no_grad()
def alignment_quality(model, data: AlignmentData, batch_size: int = 64, device="cpu") -> dict[str, float]:
    """Mean per-token MSE and cosine similarity between adapted student and teacher on ``data``."""
    was_training = model.training
    model.eval()
    sq_err, cos, n = 0.0, 0.0, 0
    for lo in range(0, len(data), batch_size):
        batch = {k: v.to(device) for k, v in data.make_batch(range(lo, min(lo + batch_size, len(data)))).items()}
        mask = batch["target_mask"]
        adapted, target = model(batch, use_head=False)[mask], batch["target"][mask]
        sq_err += F.mse_loss(adapted, target, reduction="none").mean(-1).sum().item()
        cos += F.cosine_similarity(adapted, target, dim=-1).sum().item()
        n += int(mask.sum())
    model.train(was_training)
    return {"mse": sq_err / max(n, 1), "cosine": cos / max(n, 1), "tokens": n}


@torch.no_grad()
def token_probe_frame(model, data: AlignmentData, tokenizer, phase: str, batch_size: int = 64, device="cpu",
                      precision: str = "fp32"):
    """One row per paired student token: sentence, position, token text, MSE and cosine to the teacher."""
    import pandas as pd

    was_training = model.training
    model.eval()
    rows = []
    for lo in range(0, len(data), batch_size):
        idx = list(range(lo, min(lo + batch_size, len(data))))
        batch = {k: v.to(device) for k, v in data.make_batch(idx).items()}
        with autocast(precision, device):
            adapted = model(batch, use_head=False).float()
        target, mask = batch["target"], batch["target_mask"]
        mse = F.mse_loss(adapted, target, reduction="none").mean(-1).cpu()
        cos = F.cosine_similarity(adapted, target, dim=-1).cpu()
        for b, i in enumerate(idx):
            tokens = tokenizer.convert_ids_to_tokens(data.pairing.student_input_ids[i])
            for t in mask[b].nonzero().flatten().tolist():
                rows.append((i, t, tokens[t], phase, float(mse[b, t]), float(cos[b, t])))
    model.train(was_training)
    return pd.DataFrame(rows, columns=["sentence", "position", "token", "phase", "mse", "cosine"])
