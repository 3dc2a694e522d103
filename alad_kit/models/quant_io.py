"""Saving and loading torch.ao int8 models.

``save_pretrained`` cannot write torch.ao quantized modules (their int8 weights are packed, not
parameters), so a quantized student directory holds

* ``config.json`` -- the float model's config, to rebuild the architecture,
* the tokenizer files,
* ``quantized_state_dict.pt`` -- ``torch.save(model.state_dict())`` of the quantized model,
* ``alad_student.json`` -- the marker ``{"kind": "dynamic_int8" | "static_int8", ...}`` that tells
  :func:`alad_kit.models.zoo.load_encoder` to call :func:`load_quantized` (see ``zoo.register_zoo_loaders``; this module never imports the zoo).

Loading rebuilds the float model from the config, re-applies the same module surgery (``quantize_dynamic``,
or the QuantStub -> int8 Linear -> DeQuantStub wrappers on the recorded layers) and loads the state dict
with ``strict=True``, so a mismatch fails loudly instead of leaving random weights behind.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from torch import nn

from alad_kit.core.io import write_json_atomic

MARKER_NAME = "alad_student.json"  # present only where AutoModel.from_pretrained cannot load the directory

WEIGHTS_NAME = "quantized_state_dict.pt"
KINDS = ("dynamic_int8", "static_int8")
_ENGINES = ("x86", "fbgemm", "qnnpack")  # preference order of the int8 CPU back ends


def quantized_engine() -> str:
    """Select (and return) the int8 CPU back end: the current one when usable, else the first supported."""
    supported = torch.backends.quantized.supported_engines
    current = torch.backends.quantized.engine
    if current not in _ENGINES:
        usable = [e for e in _ENGINES if e in supported]
        if not usable:
            raise ValueError(f"no int8 quantization back end in this torch build (supported: {supported})")
        torch.backends.quantized.engine = current = usable[0]
    return current


def dynamic_quantize(model: nn.Module) -> nn.Module:
    """``quantize_dynamic`` of every nn.Linear (in place), int8 weights per output channel."""
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch.ao's notice that eager quantization moves to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, inplace=True)


def save_quantized(model: nn.Module, tokenizer, directory: str | Path, marker: dict) -> Path:
    """Write config + tokenizer + int8 state dict + marker into an existing ``directory``."""
    if marker.get("kind") not in KINDS:
        raise ValueError(f"save_quantized: marker kind must be one of {KINDS}, got {marker.get('kind')!r}")
    directory = Path(directory)
    model.config.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    torch.save(model.state_dict(), directory / WEIGHTS_NAME)
    full = {
        **marker,
        "format": 1,
        "weights": WEIGHTS_NAME,
        "model_class": type(model).__name__,
        "torch": torch.__version__,
        "loader": "alad_kit.models.quant_io.load_quantized",
    }
    write_json_atomic(directory / MARKER_NAME, full)
    return directory


def _static_wrapper(linear: nn.Linear) -> nn.Module:
    """The module ``convert`` makes of QuantWrapper(Linear), empty: load_state_dict fills it."""
    import torch.ao.nn.quantized as nnq
    from torch.ao.quantization import QuantWrapper

    wrapper = QuantWrapper(nn.Identity())
    wrapper.quant = nnq.Quantize(1.0, 0, torch.quint8)
    wrapper.module = nnq.Linear(linear.in_features, linear.out_features, bias_=linear.bias is not None)
    wrapper.dequant = nnq.DeQuantize()
    return wrapper


def marker_model_class(marker: dict, path: Path):
    """The transformers model class a marker names (``AutoModel.from_config`` when it names none); a name that
    is not a transformers model class is refused, since whatever it names is called with the config."""
    import transformers

    name = marker.get("model_class")
    if not name:
        return functools.partial(transformers.AutoModel.from_config, trust_remote_code=False)
    found = getattr(transformers, name, None) if isinstance(name, str) else None
    if not (isinstance(found, type) and issubclass(found, transformers.PreTrainedModel)):
        raise ValueError(f"{path}: model_class {name!r} of its int8 marker is not a transformers model class")
    return found


def empty_quantized_model(path: Path, marker: dict) -> nn.Module:
    """The int8 module tree a saved marker describes (weights still to load): dynamic int8 Linear layers, or
    the statically quantized wrappers at ``marker["quantized_layers"]``."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    model = marker_model_class(marker, path)(config).eval()
    if marker.get("kind") == "dynamic_int8":
        return dynamic_quantize(model)
    for name in marker["quantized_layers"]:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, _static_wrapper(getattr(parent, attr)))
    return model


def load_quantized(path: str | Path, device: torch.device | str | None = None) -> tuple[nn.Module, object]:
    """``(model, tokenizer)`` from a directory written by :func:`save_quantized` (CPU, eval mode)."""
    import transformers

    path = Path(path)
    marker_path = path / MARKER_NAME
    if not marker_path.is_file():
        raise FileNotFoundError(f"load_quantized: no {MARKER_NAME} in {path} (not a quantized student)")
    marker = json.loads(marker_path.read_text())
    kind = marker.get("kind")
    if kind not in KINDS:
        raise ValueError(f"load_quantized: {marker_path} has kind {kind!r}; this loader reads {KINDS}")
    if device is not None and torch.device(device).type != "cpu":
        raise ValueError(f"load_quantized: torch.ao int8 kernels run on CPU only, not on {device}")
    weights = path / marker.get("weights", WEIGHTS_NAME)
    if not weights.is_file():
        raise FileNotFoundError(f"load_quantized: missing {weights}")
    if marker.get("engine") in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = marker["engine"]
    else:
        quantized_engine()

    model = empty_quantized_model(path, marker)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    tokenizer = None
    if any((path / f).is_file() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    return model.eval(), tokenizer


