"""Which torch device a run or a benchmark uses, checked up front so a missing GPU is one clear line."""

from __future__ import annotations

import torch


class DeviceUnavailableError(RuntimeError):
    """The requested device does not exist on this machine or in this build of torch."""


def _cuda_problem(device: torch.device) -> str | None:
    if torch.version.cuda is None:
        return (f"this torch {torch.__version__} is a CPU-only build -- install the CUDA build "
                "(README, section GPU) or use --device cpu")
    if not torch.cuda.is_available():
        return "torch has CUDA support but sees no GPU (check the driver and CUDA_VISIBLE_DEVICES) -- or use --device cpu"
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        return f"this machine has {count} CUDA device(s), numbered 0..{count - 1}"
    return None


def resolve_device(name: str | None) -> str:
    """``name`` checked against this machine ("cpu", "cuda", "cuda:1", "mps"); None: CUDA when present, else CPU.

    Raises ValueError for a string torch does not know and DeviceUnavailableError (a RuntimeError) for a
    device that is not there, instead of the AssertionError torch raises deep inside the first ``.to()``.
    """
    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"--device {name!r} is not a torch device (cpu, cuda, cuda:0, mps)") from err
    problem = None
    if device.type == "cuda":
        problem = _cuda_problem(device)
    elif device.type == "mps" and not torch.backends.mps.is_available():
        problem = "this machine or torch build has no Apple MPS backend -- use --device cpu"
    elif device.type not in ("cpu", "cuda", "mps"):
        problem = "alad_kit runs on cpu, cuda or mps"
    if problem:
        raise DeviceUnavailableError(f"--device {name}: {problem}")
    return name
