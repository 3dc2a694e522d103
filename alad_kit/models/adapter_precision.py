"""The deployed adapter in the student's precision: dynamic int8 (next to an int8 student) or bf16.

The adapter trains in float32. At deployment an int8 student would lose much of its speed to a float32
adapter, so the adapter can follow it:

* ``int8``: torch.ao has no dynamic int8 Conv1d, so the first layer goes back to its concat form (the
  window of n student vectors side by side, ``adapter.window_concat``, and the kind's W_1 as one matrix,
  ``AlignmentAdapter.first_layer_as_linear``) and both layers become dynamic int8 Linear layers (int8
  weights per output channel, activations quantized per batch). Any kind deploys this way.
* ``bf16``: the adapter's weights and arithmetic in bfloat16 (its kind's own forward); input and output
  stay float32.

Both are made from the float32 weights on load (deterministic), so the folder keeps one set of weights.
A deployed form is a class taking the float32 adapter, registered in ``DEPLOYED`` under its precision.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from alad_kit.adapter import AlignmentAdapter, window_concat
from alad_kit.core.config import ADAPTER_PRECISIONS

BENCH_PRECISIONS = (*ADAPTER_PRECISIONS, "follow")  # follow: int8 next to an int8 student, else fp32


class Int8Adapter(nn.Module):
    """``AlignmentAdapter`` as two dynamic int8 Linear layers over the zero-padded window concat."""

    def __init__(self, adapter: AlignmentAdapter):
        from .quant_io import dynamic_quantize

        super().__init__()
        self.config = adapter.config
        w1, b1 = adapter.first_layer_as_linear()
        first = nn.Linear(w1.shape[1], w1.shape[0])
        first.weight.data, first.bias.data = w1.detach().clone().cpu(), b1.detach().clone().cpu()
        out = copy.deepcopy(adapter.out_proj).cpu()
        self.layers = dynamic_quantize(nn.ModuleDict({"first": first, "out": out}))

    def forward(self, student_hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = window_concat(student_hidden, self.config.window, attention_mask)  # (B, T, D_C) -> (B, T, n·D_C)
        return self.layers["out"](F.gelu(self.layers["first"](x)))  # (B, T, n·D_C) -> (B, T, D_L)


class Bf16Adapter(nn.Module):
    """``AlignmentAdapter`` computing in bfloat16, float32 in and out."""

    def __init__(self, adapter: AlignmentAdapter):
        super().__init__()
        self.config = adapter.config
        self.adapter = copy.deepcopy(adapter).to(torch.bfloat16)

    def forward(self, student_hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.adapter(student_hidden.to(torch.bfloat16), attention_mask).float()


DEPLOYED = {"int8": Int8Adapter, "bf16": Bf16Adapter}  # precision -> deployed form (fp32: the adapter itself)


def adapter_in(adapter: AlignmentAdapter, precision: str) -> nn.Module:
    """The deployed form of ``adapter`` in ``precision`` (fp32: itself)."""
    if precision not in ADAPTER_PRECISIONS:
        raise ValueError(f"adapter precision must be one of {ADAPTER_PRECISIONS}, got {precision!r}")
    return adapter if precision == "fp32" else DEPLOYED[precision](adapter).eval()


def adapter_for_student(adapter: AlignmentAdapter, student: nn.Module, precision: str = "follow") -> nn.Module:
    """``adapter`` in ``precision``; "follow" picks int8 for a torch.ao int8 student and fp32 otherwise."""
    if precision == "follow":
        from .cost import packed_params

        precision = "int8" if packed_params(student) > 0 else "fp32"
    return adapter_in(adapter, precision)
