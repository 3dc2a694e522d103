"""The Alignment Adapter (ALAd).

A compressed encoder M_C (width D_C) and a large encoder M_L (width D_L) read the same text. The adapter
sits after M_C's last layer and maps, for every token i, a window of n = ``window`` student embeddings to
one teacher-sized vector:

    x_i = [h_{i-n//2} ; ... ; h_i ; ... ; h_{i+n//2}]            (n * D_C,  h_j = 0 outside the sequence)
    y_i = W_2 · GELU(W_1 · x_i + b_1) + b_2                      (D_L)

"Outside the sequence" means before token 0 *and* after the last real token: padding positions of a batch
are zeroed before the window is read, so they never leak into real tokens.

The first layer applied to the zero-padded window concat is exactly a 1-D convolution with kernel size n
and padding n//2 over the (masked) sequence: W_1 reshaped to (hidden, D_C, n) is the conv kernel. We use
the convolution (one fused kernel instead of n shifted copies of the activations) and keep the concat
form as the reference in ``tests/test_adapter.py``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

# Not peft's names (adapter_config.json / adapter.safetensors): with those, AutoModel and peft mistake an
# ALAd folder for a peft adapter and fail. Folders written before the rename are still read.
CONFIG_NAME = "alad_adapter_config.json"
WEIGHTS_NAME = "alad_adapter.safetensors"
LEGACY_NAMES = ("adapter_config.json", "adapter.safetensors")


@dataclass(frozen=True)
class AdapterConfig:
    student_dim: int  # D_C: width of the compressed encoder's last hidden state
    teacher_dim: int  # D_L: width of the large encoder whose embeddings we imitate
    window: int = 5  # n: tokens read per output token (odd; i-n//2 .. i+n//2)
    hidden: int = 1280  # units of the single GELU hidden layer (paper: 1280)

    def __post_init__(self):
        for name in ("student_dim", "teacher_dim", "hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"AlignmentAdapter: {name} must be a positive integer, got {value!r}")
        if not isinstance(self.window, int) or self.window < 1 or self.window % 2 == 0:
            raise ValueError(
                f"AlignmentAdapter: window must be an odd integer >= 1 (centred on the token), got {self.window!r}"
            )


class AlignmentAdapter(nn.Module):
    """Windowed feed-forward map from student token embeddings to teacher token embeddings."""

    def __init__(self, student_dim: int, teacher_dim: int, window: int = 5, hidden: int = 1280):
        super().__init__()
        self.config = AdapterConfig(student_dim, teacher_dim, window, hidden)
        # Linear(n·D_C -> hidden) written as a convolution over the token axis.
        self.window_proj = nn.Conv1d(student_dim, hidden, kernel_size=window, padding=window // 2)
        self.out_proj = nn.Linear(hidden, teacher_dim)

    def forward(self, student_hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        self._check(student_hidden, attention_mask)
        h = student_hidden
        if attention_mask is not None:
            h = h * attention_mask.unsqueeze(-1).to(h.dtype)  # zero padding: it must not enter any window
        x = self.window_proj(h.transpose(1, 2))  # (B, T, D_C) -> (B, hidden, T)
        x = F.gelu(x.transpose(1, 2))  # (B, hidden, T) -> (B, T, hidden)
        return self.out_proj(x)  # (B, T, hidden) -> (B, T, D_L)

    # ----------------------------------------------------------------------------------------------
    @property
    def window(self) -> int:
        return self.config.window

    def first_layer_as_linear(self) -> tuple[torch.Tensor, torch.Tensor]:
        """W_1 (hidden, n·D_C) and b_1 of the concat form; column block k reads token i - n//2 + k."""
        w = self.window_proj.weight  # (hidden, D_C, n)
        return w.permute(0, 2, 1).reshape(w.shape[0], -1), self.window_proj.bias

    def flops_per_token(self) -> int:
        """Multiply-adds x2 of one output token (the arithmetic floor of the adapter's overhead)."""
        c = self.config
        return 2 * (c.window * c.student_dim * c.hidden + c.hidden * c.teacher_dim)

    def _check(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> None:
        if hidden.dim() != 3:
            raise ValueError(f"AlignmentAdapter: student_hidden must be (B, T, D_C), got shape {tuple(hidden.shape)}")
        if hidden.shape[-1] != self.config.student_dim:
            raise ValueError(
                f"AlignmentAdapter: student hidden size {hidden.shape[-1]} does not match "
                f"student_dim={self.config.student_dim}"
            )
        if mask is not None and tuple(mask.shape) != tuple(hidden.shape[:2]):
            raise ValueError(
                f"AlignmentAdapter: attention_mask shape {tuple(mask.shape)} does not match "
                f"student_hidden (B, T) = {tuple(hidden.shape[:2])}"
            )

    # ----------------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``alad_adapter_config.json`` + ``alad_adapter.safetensors`` (atomically: temp files, then rename)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        tmp_w, tmp_c = directory / (WEIGHTS_NAME + ".tmp"), directory / (CONFIG_NAME + ".tmp")
        save_file(state, str(tmp_w), metadata={"format": "pt"})
        tmp_c.write_text(json.dumps(asdict(self.config), indent=2))
        tmp_w.replace(directory / WEIGHTS_NAME)
        tmp_c.replace(directory / CONFIG_NAME)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> AlignmentAdapter:
        from safetensors.torch import load_file

        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        if not config_path.is_file() and all((directory / name).is_file() for name in LEGACY_NAMES):
            config_path, weights_path = (directory / name for name in LEGACY_NAMES)
        for p in (config_path, weights_path):
            if not p.is_file():
                raise FileNotFoundError(f"AlignmentAdapter.from_pretrained: missing {p}")
        adapter = cls(**json.loads(config_path.read_text()))
        adapter.load_state_dict(load_file(str(weights_path), device=str(map_location)))
        return adapter.to(map_location)
