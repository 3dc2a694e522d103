"""Task heads on top of R (or R_C): token classification (POS, NER) and answer spans (QA).

A head is called ``head(hidden, attention_mask)`` (B, T, D), (B, T): a sentence-level head pools with the mask."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class TokenClassificationHead(nn.Module):
    """Dropout + Linear over every token (POS, NER); loss ignores label -100 (non-first sub-words, specials)."""

    def __init__(self, dim: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dropout, self.classifier = nn.Dropout(dropout), nn.Linear(dim, num_labels)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.classifier(self.dropout(hidden))  # (B, T, D) -> (B, T, labels); every token, mask unused

    @staticmethod
    def loss(logits: torch.Tensor, batch: dict) -> torch.Tensor:
        return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)


class SpanHead(nn.Module):
    """Start/end logits per token (extractive QA); position 0 ([CLS]/<s>) stands for "no answer"."""

    def __init__(self, dim: int, dropout: float = 0.1):
        super().__init__()
        self.dropout, self.qa_outputs = nn.Dropout(dropout), nn.Linear(dim, 2)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.qa_outputs(self.dropout(hidden))  # (B, T, D) -> (B, T, 2); every token, mask unused

    @staticmethod
    def loss(logits: torch.Tensor, batch: dict) -> torch.Tensor:
        start, end = logits.unbind(-1)
        return (F.cross_entropy(start, batch["start_positions"]) + F.cross_entropy(end, batch["end_positions"])) / 2
