"""The Alignment Adapter (ALAd).

A compressed encoder M_C (width D_C) and a large encoder M_L (width D_L) read the same text. The adapter
sits after M_C's last layer and maps, for every token i, a window of n = ``window`` student embeddings to
one teacher-sized vector:

    x_i = [h_{i-n//2} ; ... ; h_i ; ... ; h_{i+n//2}]            (n * D_C,  h_j = 0 outside the sequence)
    y_i = W_2 · GELU(W_1 · x_i + b_1) + b_2                      (D_L)

"Outside the sequence" means before token 0 *and* after the last real token: padding positions of a batch
are zeroed before the window is read, so they never leak into real tokens. :func:`windowed` is that rule, the
only place it is written: every kind below reads its windows through it, and so do the deployed int8 and
bf16 forms (``models/adapter_precision.py``).

The first layer applied to the zero-padded window concat is exactly a 1-D convolution with kernel size n
and padding n//2 over the (masked) sequence, so W_1 is stored as the kernel of ``nn.Conv1d`` (hidden, D_C,
n) - the layout of saved adapters. The dense forward computes the concat form itself, one matrix product
over the n shifted copies: on the 2-core AVX-512/AMX CPU here a training step (W5, 32 x 32 tokens) takes
47 ms instead of the convolution's 66 ms in bf16 and 133 instead of 176 ms in fp32. ``tests/test_adapter.py``
checks it against the convolution.

Kinds of first layer (``kind``), each a class registered in ``KINDS`` (like peft's LoRA variants: a class
of static methods acting on the adapter module; a new kind is one class with ``@register_kind``):

* ``"dense"`` (the paper's): W_1 is a free (hidden, n·D_C) matrix -- n·D_C·hidden multiply-adds per token.
* ``"factorised"``: one projection P (hidden, D_C), shared by all positions, then a learned per-unit mix
  a_k (hidden) of the n projected neighbours:

      W_1 · x_i = sum_k a_k ⊙ (P · h_{i-n//2+k})       i.e. W_1's block k is diag(a_k) · P

  written as a 1x1 convolution (no bias, so a zeroed token projects to exactly 0, as in the dense form)
  followed by a depthwise convolution (groups = hidden, kernel n, bias b_1) over the window of the projected
  sequence. It costs D_C·hidden + n·hidden multiply-adds instead of n·D_C·hidden: about 1/n of the dense
  first layer.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from alad_kit.core.io import atomic_path, write_text_atomic  # stdlib only: the one floor below this file

# Not peft's names (adapter_config.json / adapter.safetensors): with those, AutoModel and peft mistake an
# ALAd folder for a peft adapter and fail. Folders written before the rename are still read.
CONFIG_NAME = "alad_adapter_config.json"
WEIGHTS_NAME = "alad_adapter.safetensors"
LEGACY_NAMES = ("adapter_config.json", "adapter.safetensors")
KINDS: dict[str, type[AdapterKind]] = {}  # kind name -> class, filled by @register_kind below
ADAPTER_KINDS = KINDS.keys()  # the choices of AdapterConfig.kind, RunConfig.adapter_kind and the CLI (a live view)


@dataclass(frozen=True)
class AdapterConfig:
    student_dim: int  # D_C: width of the compressed encoder's last hidden state
    teacher_dim: int  # D_L: width of the large encoder whose embeddings we imitate
    window: int = 5  # n: tokens read per output token (odd; i-n//2 .. i+n//2)
    hidden: int = 1280  # units of the single GELU hidden layer (paper: 1280)
    kind: str = "dense"  # one of ADAPTER_KINDS (configs saved before kinds existed are dense)

    def __post_init__(self):
        for name in ("student_dim", "teacher_dim", "hidden"):
            value = getattr(self, name)
            if type(value) is not int or value <= 0:  # bool is an int to Python: True would be 1
                raise ValueError(f"AlignmentAdapter: {name} must be a positive integer, got {value!r}")
        if type(self.window) is not int or self.window < 1 or self.window % 2 == 0:  # window=True is no window 1
            raise ValueError(
                f"AlignmentAdapter: window must be an odd integer >= 1 (centred on the token), got {self.window!r}"
            )
        if self.kind not in KINDS:
            raise ValueError(f"AlignmentAdapter: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")


# --------------------------------------------------------------------------------------------------
# The window: the one place that says which tokens token i reads.
def windowed(h: torch.Tensor, n: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The sequence as the windows read it: (B, T, D) -> (B, T + n - 1, D), row i + k = h_{i-n//2+k}.

    n//2 zero rows before token 0 and after the last one; tokens where ``mask`` is 0 are zeroed too."""
    if mask is not None:
        h = h * mask.unsqueeze(-1).to(h.dtype)  # zero padding: it must not enter any window
    return F.pad(h, (0, 0, n // 2, n // 2))  # (B, T, D) -> (B, T + n - 1, D)


def window_concat(h: torch.Tensor, n: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """x_i = [h_{i-n//2}; ...; h_{i+n//2}] for every token: (B, T, D) -> (B, T, n·D)."""
    padded, T = windowed(h, n, mask), h.shape[1]
    # n shifted views side by side (slices, unlike unfold, export to ONNX with dynamic lengths)
    return torch.cat([padded[:, k : k + T] for k in range(n)], dim=-1)  # block k = token i - n//2 + k


# --------------------------------------------------------------------------------------------------
# Kinds of first layer. Each stores W_1 as ``adapter.window_proj``, whose state_dict is the file layout.
class AdapterKind:
    """A first layer W_1 · x_i + b_1: its parameters, its forward, its concat form and its cost."""

    name = ""  # the ``kind`` of AdapterConfig that selects this class

    @staticmethod
    def init(adapter: AlignmentAdapter) -> None:
        """Give ``adapter`` its ``window_proj`` module for ``adapter.config``."""
        raise NotImplementedError

    @staticmethod
    def forward(adapter: AlignmentAdapter, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """W_1 · x_i + b_1 for every token: (B, T, D_C) -> (B, T, hidden), windows read through ``windowed``."""
        raise NotImplementedError

    @staticmethod
    def as_linear(adapter: AlignmentAdapter) -> tuple[torch.Tensor, torch.Tensor]:
        """W_1 (hidden, n·D_C) and b_1 of the concat form; column block k reads token i - n//2 + k."""
        raise NotImplementedError

    @staticmethod
    def multiply_adds(config: AdapterConfig) -> int:
        """Multiply-adds of the first layer per token."""
        raise NotImplementedError


def register_kind(cls: type[AdapterKind]) -> type[AdapterKind]:
    """Class decorator: make ``cls`` the kind ``cls.name`` (a choice of configs and the CLI from then on)."""
    if not cls.name or cls.name in KINDS:
        raise ValueError(f"register_kind: {cls.__name__} needs a new name, got {cls.name!r}")
    KINDS[cls.name] = cls
    return cls


@register_kind
class Dense(AdapterKind):
    """The paper's: W_1 a free (hidden, n·D_C) matrix, stored as a Conv1d kernel (hidden, D_C, n)."""

    name = "dense"

    @staticmethod
    def init(adapter):
        c = adapter.config  # Linear(n·D_C -> hidden) written as a convolution over the token axis
        adapter.window_proj = nn.Conv1d(c.student_dim, c.hidden, kernel_size=c.window, padding=c.window // 2)

    @staticmethod
    def forward(adapter, h, mask):
        x = window_concat(h, adapter.config.window, mask)  # (B, T, n·D_C) = [h_{i-n//2}; ...]
        return F.linear(x, *Dense.as_linear(adapter))  # (B, T, n·D_C) -> (B, T, hidden)

    @staticmethod
    def as_linear(adapter):
        w = adapter.window_proj.weight  # (hidden, D_C, n)
        return w.permute(0, 2, 1).reshape(w.shape[0], -1), adapter.window_proj.bias

    @staticmethod
    def multiply_adds(config):
        return config.window * config.student_dim * config.hidden


@register_kind
class Factorised(AdapterKind):
    """Shared projection P (1x1 conv, no bias), then a depthwise mix a_k of the n projected neighbours."""

    name = "factorised"

    @staticmethod
    def init(adapter):
        c = adapter.config  # the mix has no padding of its own: windowed() supplies the zeros
        adapter.window_proj = nn.Sequential(OrderedDict(
            proj=nn.Conv1d(c.student_dim, c.hidden, kernel_size=1, bias=False),
            mix=nn.Conv1d(c.hidden, c.hidden, kernel_size=c.window, groups=c.hidden),
        ))

    @staticmethod
    def forward(adapter, h, mask):
        p = adapter.window_proj.proj(h.transpose(1, 2)).transpose(1, 2)  # P · h_j: (B, T, D_C) -> (B, T, hidden)
        # P has no bias, so zeroing a padding token after P is zeroing it before: P · 0 = 0.
        padded = windowed(p, adapter.config.window, mask).transpose(1, 2)  # (B, hidden, T + n - 1)
        return adapter.window_proj.mix(padded).transpose(1, 2)  # sum_k a_k ⊙ P·h_{i-n//2+k} + b_1: (B, T, hidden)

    @staticmethod
    def as_linear(adapter):
        p = adapter.window_proj.proj.weight[:, :, 0]  # P: (hidden, D_C)
        a = adapter.window_proj.mix.weight[:, 0, :]  # a: (hidden, n)
        blocks = [a[:, k : k + 1] * p for k in range(adapter.config.window)]  # block k = diag(a_k) · P
        return torch.cat(blocks, dim=1), adapter.window_proj.mix.bias

    @staticmethod
    def multiply_adds(config):
        return (config.student_dim + config.window) * config.hidden


class AlignmentAdapter(nn.Module):
    """Windowed feed-forward map from student token embeddings to teacher token embeddings."""

    def __init__(self, student_dim: int, teacher_dim: int, window: int = 5, hidden: int = 1280, kind: str = "dense"):
        super().__init__()
        self.config = AdapterConfig(student_dim, teacher_dim, window, hidden, kind)
        self.kind = KINDS[kind]  # a class of static methods, not a module: nothing of it is in the state_dict
        self.kind.init(self)  # self.window_proj: W_1 and b_1 in the kind's layout
        self.out_proj = nn.Linear(hidden, teacher_dim)

    def forward(self, student_hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        self._check(student_hidden, attention_mask)
        x = self.kind.forward(self, student_hidden, attention_mask)  # (B, T, D_C) -> (B, T, hidden)
        return self.out_proj(F.gelu(x))  # (B, T, hidden) -> (B, T, D_L)

    # ----------------------------------------------------------------------------------------------
    @property
    def window(self) -> int:
        return self.config.window

    def first_layer_as_linear(self) -> tuple[torch.Tensor, torch.Tensor]:
        """W_1 (hidden, n·D_C) and b_1 of the concat form; column block k reads token i - n//2 + k."""
        return self.kind.as_linear(self)

    def flops_per_token(self) -> int:
        """Multiply-adds x2 of one output token (the arithmetic floor of the adapter's overhead)."""
        c = self.config
        return 2 * (self.kind.multiply_adds(c) + c.hidden * c.teacher_dim)

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
        """Write ``alad_adapter_config.json`` + ``alad_adapter.safetensors`` (each atomically, through core.io)."""
        from safetensors.torch import save

        directory = Path(directory)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        with atomic_path(directory / WEIGHTS_NAME) as tmp:  # the weights, then the config describing them
            tmp.write_bytes(save(state, metadata={"format": "pt"}))
        write_text_atomic(directory / CONFIG_NAME, json.dumps(asdict(self.config), indent=2))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> AlignmentAdapter:
        """The adapter saved in ``directory``; its config is checked against the tensor shapes before any weight
        is allocated (ValueError naming the file and the tensor)."""
        from safetensors.torch import load_file

        _, weights_path = adapter_files(directory)
        adapter = cls(**asdict(checked_adapter_config(directory)))
        adapter.load_state_dict(load_file(str(weights_path), device=str(map_location)))
        return adapter.to(map_location)


def adapter_files(directory: str | Path) -> tuple[Path, Path]:
    """``(config, weights)`` of the adapter in ``directory`` (the legacy names for folders written before the
    rename); FileNotFoundError naming the missing one."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if not config_path.is_file() and all((directory / name).is_file() for name in LEGACY_NAMES):
        config_path, weights_path = (directory / name for name in LEGACY_NAMES)
    for p in (config_path, weights_path):
        if not p.is_file():
            raise FileNotFoundError(f"AlignmentAdapter.from_pretrained: missing {p}")
    return config_path, weights_path


def checked_adapter_config(directory: str | Path) -> AdapterConfig:
    """The adapter config of ``directory``, once the weights file holds exactly the tensors it describes.
    Only the safetensors header is read and the template is built on the meta device: no memory is allocated
    for a config that claims huge sizes."""
    config_path, weights_path = adapter_files(directory)
    config = AdapterConfig(**_read_config(config_path))
    with torch.device("meta"):
        template = AlignmentAdapter(**asdict(config))
    expected = {name: tuple(t.shape) for name, t in template.state_dict().items()}
    check_tensor_shapes(weights_path, expected, config_path.name)
    return config


# The lowest floor of the package: alad_kit.models' folder checks read student and head files with these too.
def safetensors_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a safetensors file, from its header alone (no tensor data is read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except (SafetensorError, OSError) as error:  # SafetensorError is neither: give it the file name
        raise ValueError(f"{path}: not a readable safetensors file ({' '.join(str(error).split())})") from None


def check_tensor_shapes(path: str | Path, expected: dict[str, tuple[int, ...]], described_by: str,
                        found: dict[str, tuple[int, ...]] | None = None) -> None:
    """ValueError naming ``path`` and the first missing, unexpected or mis-shaped tensor, when the file's tensors
    (``found``, else its header) are not exactly ``expected`` (the shapes ``described_by`` says)."""
    found = safetensors_shapes(path) if found is None else found
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    wrong = sorted(name for name in expected.keys() & found.keys() if tuple(found[name]) != tuple(expected[name]))
    problems = [f"{len(names)} {what} (first {names[0]!r})" for names, what in (
        (missing, f"tensor(s) missing that {described_by} describes"), (unexpected, "unexpected tensor(s)")) if names]
    problems += [f"tensor {name!r} has shape {list(found[name])}, {described_by} says {list(expected[name])}"
                 for name in wrong[:1]]
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))


def _read_config(path: Path) -> dict:
    """The adapter config as keyword arguments; ValueError naming the file for anything else."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a valid adapter config (invalid JSON: {error})") from None
    fields = {f.name for f in dataclasses.fields(AdapterConfig)}
    if not isinstance(config, dict) or not fields >= set(config) or "student_dim" not in config \
            or "teacher_dim" not in config:
        raise ValueError(f"{path}: not a valid adapter config (wants an object with keys {sorted(fields)})")
    try:
        AdapterConfig(**config)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return config
