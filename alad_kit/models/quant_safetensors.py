"""torch.ao int8 students as safetensors + JSON (no pickle), for deployed model folders.

A quantized Linear keeps its int8 weight packed (``_packed_params``), which safetensors cannot hold; the
packed weight is a quantized tensor = int8 values + scale(s) + zero point(s). Those three are stored as
plain tensors and re-packed on load, so the reloaded student computes bit for bit what was saved:

    <layer>._packed_params._packed_params.int8         int8 weight values (``int_repr``)
    <layer>._packed_params._packed_params.scales       float64 scale per output channel (or one)
    <layer>._packed_params._packed_params.zero_points  int64
    <layer>._packed_params._packed_params.axis         channel axis (only for per-channel weights)
    <layer>._packed_params._packed_params.bias         float bias (absent without one)

``alad_quantized.json`` names the scheme (dynamic or static int8), the quantized layers and the engine.
(Not ``alad_student.json``: that marker makes ``zoo.load_encoder`` read the torch.save format of
``alad_kit.compress``.) Loading rebuilds the float architecture from ``config.json``, applies the same module
surgery as ``alad_kit.models.quant_io`` and loads the state with ``strict=True``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from alad_kit.core.io import atomic_path, write_json_atomic

from .quant_io import KINDS, MARKER_NAME

MARKER = "alad_quantized.json"
WEIGHTS = "model.int8.safetensors"
PACKED = "._packed_params._packed_params"


def quantized_layers(model: nn.Module) -> tuple[str, list[str]]:
    """``(kind, layer names)``: dynamic int8 Linear layers, or the QuantWrappers of static int8 ones."""
    import torch.ao.nn.quantized as nnq
    import torch.ao.nn.quantized.dynamic as nnqd

    dynamic = [n for n, m in model.named_modules() if isinstance(m, nnqd.Linear)]
    static = [n.rsplit(".", 1)[0] if "." in n else "" for n, m in model.named_modules()
              if isinstance(m, nnq.Linear) and not isinstance(m, nnqd.Linear)]
    if dynamic and static:
        raise ValueError("a student with both dynamic and static int8 layers cannot be saved")
    return ("dynamic_int8", dynamic) if dynamic else ("static_int8", static)


def save_quantized_student(model: nn.Module, directory: str | Path) -> None:
    """Write ``config.json``, the int8 weights as safetensors and the marker into ``directory``."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    kind, layers = quantized_layers(model)
    tensors = {}
    for key, value in model.state_dict().items():
        if key.endswith(PACKED):
            weight, bias = value
            tensors[key + ".int8"] = weight.int_repr().contiguous()
            per_channel = weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)
            scales = weight.q_per_channel_scales() if per_channel else torch.tensor([weight.q_scale()], dtype=torch.float64)
            points = weight.q_per_channel_zero_points() if per_channel else torch.tensor([weight.q_zero_point()])
            tensors[key + ".scales"], tensors[key + ".zero_points"] = scales.contiguous(), points.contiguous()
            if per_channel:
                tensors[key + ".axis"] = torch.tensor(weight.q_per_channel_axis())
            if bias is not None:
                tensors[key + ".bias"] = bias.detach().contiguous()
        elif isinstance(value, torch.Tensor):
            tensors[key] = value.detach().contiguous().cpu()
    model.config.save_pretrained(directory)
    with atomic_path(directory / WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    marker = {"kind": kind, "quantized_layers": layers, "model_class": type(model).__name__,
              "engine": torch.backends.quantized.engine, "weights": WEIGHTS}
    write_json_atomic(directory / MARKER, marker)


def is_quantized_student(directory: str | Path) -> bool:
    return (Path(directory) / MARKER).is_file()


def is_int8_directory(directory: str | Path) -> bool:
    """A torch.ao int8 model folder of either format: a deployed student (this module's marker) or a compressed
    one (:mod:`.quant_io`'s ``alad_student.json`` with an int8 kind)."""
    directory = Path(directory)
    if is_quantized_student(directory):
        return True
    marker = directory / MARKER_NAME
    try:
        return marker.is_file() and json.loads(marker.read_text()).get("kind") in KINDS
    except (ValueError, AttributeError):  # not JSON, or not an object: not one of ours
        return False


def load_quantized_student(directory: str | Path) -> nn.Module:
    """The int8 student of ``directory`` (CPU, eval mode), bit-equal to the one saved."""
    from safetensors.torch import load_file

    from .quant_io import empty_quantized_model

    directory = Path(directory)
    marker = json.loads((directory / MARKER).read_text())
    if marker.get("kind") not in KINDS:
        raise ValueError(f"{directory / MARKER}: unknown kind {marker.get('kind')!r}")
    if marker.get("engine") in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = marker["engine"]
    model = empty_quantized_model(directory, marker)
    weights = directory / marker["weights"]
    try:
        model.load_state_dict(_unpacked_state(load_file(str(weights)), model), strict=True)
    except KeyError as err:  # a packed layer's int8 values, scales or zero points are not in the file
        raise ValueError(f"{weights}: missing tensor {err.args[0]!r}") from None
    except RuntimeError as err:  # load_state_dict: keys missing, unexpected or resized
        raise ValueError(f"{weights}: {' '.join(str(err).split())}") from None
    return model.eval()


def _unpacked_state(tensors: dict, model: nn.Module) -> dict:
    """safetensors entries -> a state dict with re-made quantized weights for every packed layer."""
    from collections import OrderedDict

    template_state = model.state_dict()
    state = OrderedDict((k, v) for k, v in tensors.items() if not any(k.endswith(PACKED + s) for s in
                                                                     (".int8", ".scales", ".zero_points", ".axis", ".bias")))
    # torch.ao's layers read their format version from the state's metadata; without it they expect the
    # old layout (a plain "weight"). The rebuilt model has the same modules, so its metadata is the right one.
    state._metadata = template_state._metadata
    for key, value in template_state.items():
        if key.endswith(PACKED):
            values, scales, points = (tensors[key + s] for s in (".int8", ".scales", ".zero_points"))
            if key + ".axis" in tensors:  # per output channel (what x86/fbgemm use); else one scale
                weight = torch._make_per_channel_quantized_tensor(values, scales, points, int(tensors[key + ".axis"]))
            else:
                weight = torch._make_per_tensor_quantized_tensor(values, float(scales[0]), int(points[0]))
            state[key] = (weight, tensors.get(key + ".bias"))
        elif key.endswith("._packed_params.dtype"):
            state[key] = value
    return state
