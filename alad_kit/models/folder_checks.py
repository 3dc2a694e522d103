"""What a model folder must hold before anything in it is loaded (for ``alad_kit.models.deploy.load_folder``).

A folder someone hands you (a colleague's run, a hub download, a tampered copy) is read in three steps:

1. :func:`refuse_code`, before anything else: no file that runs code when loaded -- Python sources and
   extensions, pickles (``.bin``, ``.pt``, ...: weights must be safetensors) -- and no ``auto_map`` in any JSON
   file (transformers' pointer to custom code, which it offers to run after a [y/N] question on stdin). The
   loaders pass ``trust_remote_code=False`` as well; this check turns the refusal into one line naming the file.
2. :func:`check_folder`, before any weight is allocated: every file the configs need is there, config.json's
   fields agree with the student, adapter, head and LoRA files, and every tensor's name and shape matches the
   architecture its config describes -- read from safetensors headers, against templates built on the meta
   device, so a config claiming huge sizes costs no memory.
3. after loading, :func:`check_loading_info` and :func:`check_lora_loaded`: what transformers and peft loaded
   is exactly the file (no key missing, unexpected or resized).

Every refusal is a ValueError (FileNotFoundError for a missing file) whose message starts with the path.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

from alad_kit.adapter import CONFIG_NAME as ADAPTER_CONFIG
from alad_kit.adapter import LEGACY_NAMES as ADAPTER_LEGACY_NAMES
from alad_kit.adapter import WEIGHTS_NAME as ADAPTER_WEIGHTS
from alad_kit.adapter import check_tensor_shapes, checked_adapter_config, safetensors_shapes

from .quant_safetensors import MARKER as QUANTIZED_MARKER

CONFIG_NAME = "config.json"
HEAD_NAME = "head.safetensors"
STUDENT_DIR, LORA_DIR = "student", "lora"
STUDENT_WEIGHTS, STUDENT_INDEX = "model.safetensors", "model.safetensors.index.json"
LORA_CONFIG, LORA_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
# Files a loader would import, execute or unpickle. Nothing alad_kit writes has these suffixes.
CODE_SUFFIXES = frozenset({".py", ".pyc", ".pyo", ".pyd", ".so", ".dll", ".dylib",
                           ".pkl", ".pickle", ".joblib", ".bin", ".pt", ".pth", ".ckpt"})
# What a tokenizer needs besides tokenizer_config.json: tokenizer.json, or one of the vocabularies a slow
# tokenizer reads. Without any, transformers builds a tokenizer of a few special tokens that maps every word to [UNK].
VOCAB_FILES = ("vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")
# Layer counts a config may claim: each layer has tensors, so none can exceed the file's tensor count. Checked
# before the meta template is built, whose cost grows with the number of layer modules.
LAYER_COUNT_FIELDS = ("num_hidden_layers", "num_layers", "n_layers", "n_layer")


def read_json(path: Path) -> object:
    """The JSON in ``path``; ValueError naming the file when it is empty or not JSON."""
    try:
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise ValueError("empty file")
        return json.loads(text)
    except (UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{path}: not valid JSON ({' '.join(str(err).split())})") from None


def refuse_code(folder: Path) -> None:
    """ValueError naming the first file in ``folder`` (at any depth) that could run code when loaded."""
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in CODE_SUFFIXES:
            raise ValueError(f"{path}: a model folder must not hold code or pickles (weights are safetensors); "
                             f"refusing to load {folder}")
        if path.suffix.lower() == ".json" and path.is_file():
            data = read_json(path)
            if isinstance(data, dict) and "auto_map" in data:
                raise ValueError(f"{path}: auto_map points to custom code, which alad_kit never runs; "
                                 f"refusing to load {folder}")


# --------------------------------------------------------------------------------------------------
def check_folder(folder: Path, config) -> None:
    """Everything ``config`` (the folder's DeployConfig) needs is in ``folder`` and fits together; no weights read."""
    student = folder / STUDENT_DIR
    student_config = _student_config(student)
    _check_tokenizer_files(student)
    _check_student_weights(student, student_config)
    layers = student_config.get("num_hidden_layers")
    if config.student_layers is not None and layers is not None and len(config.student_layers) != layers:
        raise ValueError(f"{folder / CONFIG_NAME}: student_layers {list(config.student_layers)} are "
                         f"{len(config.student_layers)} layers, {STUDENT_DIR}/{CONFIG_NAME} has num_hidden_layers {layers}")
    width = _check_adapter(folder, config, student_config["hidden_size"])
    _check_head(folder, config, width)
    if config.lora:
        _check_lora_files(folder / LORA_DIR, student_config["hidden_size"])
    elif (folder / LORA_DIR).exists():
        raise ValueError(f"{folder / LORA_DIR}: unexpected LoRA folder ({folder / CONFIG_NAME} says lora false)")


def task_head(task: str, width: int, labels) -> nn.Module:
    """The head a folder's config describes: the task's own (``Task.make_head``)."""
    from alad_kit.core.config import TASKS

    return TASKS.get(task).make_head(width, None if labels is None else list(labels))


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _student_config(student: Path) -> dict:
    path = student / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{student.parent}: missing {STUDENT_DIR}/{CONFIG_NAME} (the student's config)")
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a transformers config (wants a JSON object)")
    for name in ("hidden_size", "vocab_size", *LAYER_COUNT_FIELDS):
        if (name in data or name == "hidden_size") and not _positive_int(data.get(name)):
            raise ValueError(f"{path}: {name} must be a positive integer, got {data.get(name)!r}")
    return data


def _check_tokenizer_files(student: Path) -> None:
    if not (student / "tokenizer_config.json").is_file():
        raise FileNotFoundError(f"{student}: missing tokenizer_config.json (the student's tokenizer)")
    path = student / "tokenizer.json"
    if path.is_file():
        data = read_json(path)
        model = data.get("model") if isinstance(data, dict) else None
        if not isinstance(model, dict) or not model.get("vocab"):
            raise ValueError(f"{path}: no vocabulary (model.vocab is missing or empty)")
    elif not any((student / name).is_file() for name in VOCAB_FILES):
        raise FileNotFoundError(f"{student}: missing tokenizer.json (and no {', '.join(VOCAB_FILES)}): the tokenizer "
                                f"would be rebuilt nearly empty and every word read as [UNK]")


def _student_files(student: Path) -> list[Path]:
    """The safetensors files of a float student: one file, or the shards its index names (inside the folder)."""
    if (student / STUDENT_WEIGHTS).is_file():
        return [student / STUDENT_WEIGHTS]
    index = student / STUDENT_INDEX
    if not index.is_file():
        raise FileNotFoundError(f"{student}: missing {STUDENT_WEIGHTS} (the student's weights)")
    data = read_json(index)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    names = sorted(set(weight_map.values())) if isinstance(weight_map, dict) else []
    if not names or any(not isinstance(n, str) or Path(n).name != n or not n.endswith(".safetensors") for n in names):
        raise ValueError(f"{index}: weight_map must name .safetensors files in {student}")
    missing = [n for n in names if not (student / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{student}: missing {missing[0]} (named by {STUDENT_INDEX})")
    return [student / n for n in names]


def _check_student_weights(student: Path, student_config: dict) -> None:
    if (student / QUANTIZED_MARKER).is_file():
        _check_quantized_student(student, student_config)
        return
    files = _student_files(student)
    found = {name: shape for path in files for name, shape in safetensors_shapes(path).items()}
    _check_layer_counts(student, student_config, len(found))
    expected = {name: tuple(t.shape) for name, t in _meta_student(student).state_dict().items()}
    check_tensor_shapes(files[0] if len(files) == 1 else student / STUDENT_INDEX, expected,
                        f"{STUDENT_DIR}/{CONFIG_NAME}", found=found)


def _check_layer_counts(student: Path, student_config: dict, tensors: int) -> None:
    for name in LAYER_COUNT_FIELDS:
        if student_config.get(name, 0) > tensors:
            raise ValueError(f"{student / CONFIG_NAME}: {name} {student_config[name]} but the weights hold only "
                             f"{tensors} tensors")


def _meta_student(student: Path, marker: dict | None = None) -> nn.Module:
    """The student's architecture on the meta device (shapes, no memory); never custom code."""
    import transformers

    from .quant_io import marker_model_class

    build = marker_model_class(marker, student) if marker else transformers.AutoModel.from_config
    try:
        config = transformers.AutoConfig.from_pretrained(student, local_files_only=True, trust_remote_code=False)
        with torch.device("meta"):
            return build(config)
    except Exception as err:  # any config transformers cannot build is the file's fault: name it
        raise ValueError(f"{student / CONFIG_NAME}: transformers cannot build this config "
                         f"({' '.join(str(err).split())})") from None


def _check_quantized_student(student: Path, student_config: dict) -> None:
    """An int8 student's file holds int8 values, scales and zero points for the Linear weights: at least one
    value per parameter of the float architecture, so a config claiming more is refused before it is built."""
    marker_path = student / QUANTIZED_MARKER
    marker = read_json(marker_path)
    weights = marker.get("weights") if isinstance(marker, dict) else None
    if not isinstance(weights, str) or Path(weights).name != weights or not weights.endswith(".safetensors"):
        raise ValueError(f"{marker_path}: 'weights' must name a .safetensors file in {student}")
    if not (student / weights).is_file():
        raise FileNotFoundError(f"{student}: missing {weights} (named by {QUANTIZED_MARKER})")
    found = safetensors_shapes(student / weights)
    _check_layer_counts(student, student_config, len(found))
    needed = sum(t.numel() for t in _meta_student(student, marker).state_dict().values())
    stored = sum(math.prod(shape) for shape in found.values())
    if needed > stored:
        raise ValueError(f"{student / weights}: holds {stored} values, {STUDENT_DIR}/{CONFIG_NAME} describes "
                         f"{needed} parameters")


def _check_adapter(folder: Path, config, hidden: int) -> int:
    """The adapter's files against config.json and the student; returns the width the head reads."""
    config_json = folder / CONFIG_NAME
    present = [name for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS, *ADAPTER_LEGACY_NAMES) if (folder / name).exists()]
    if config.window is None:
        if present:
            raise ValueError(f"{folder / present[0]}: unexpected adapter file ({config_json} says window null: "
                             f"mode {config.mode} has no adapter)")
        return hidden
    if not present:
        raise FileNotFoundError(f"{folder}: missing {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS} ({CONFIG_NAME} says "
                                f"window {config.window})")
    adapter = checked_adapter_config(folder)  # its config against its weights
    if adapter.window != config.window:
        raise ValueError(f"{config_json}: window {config.window}, but {ADAPTER_CONFIG} and its weights have "
                         f"window {adapter.window}")
    if adapter.student_dim != hidden:
        raise ValueError(f"{folder / ADAPTER_CONFIG}: student_dim {adapter.student_dim}, but "
                         f"{STUDENT_DIR}/{CONFIG_NAME} has hidden_size {hidden}")
    return adapter.teacher_dim


def _check_head(folder: Path, config, width: int) -> None:
    path = folder / HEAD_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: missing {HEAD_NAME} (the task head)")
    with torch.device("meta"):
        head = task_head(config.task, width, config.labels)
    outputs = "start/end" if config.labels is None else f"{len(config.labels)} labels"
    expected = {name: tuple(t.shape) for name, t in head.state_dict().items()}
    check_tensor_shapes(path, expected, f"{CONFIG_NAME} ({outputs}, input width {width})")


def _check_lora_files(lora: Path, hidden: int) -> None:
    """peft's folder: a LoRA config whose ranks are bounded by the student's width, and LoRA tensors only."""
    for name in (LORA_CONFIG, LORA_WEIGHTS):
        if not (lora / name).is_file():
            raise FileNotFoundError(f"{lora}: missing {name} (the config says lora true)")
    data = read_json(lora / LORA_CONFIG)
    if not isinstance(data, dict) or data.get("peft_type") != "LORA":
        raise ValueError(f"{lora / LORA_CONFIG}: peft_type must be 'LORA', got "
                         f"{data.get('peft_type') if isinstance(data, dict) else data!r}")
    pattern = data.get("rank_pattern") or {}
    ranks = [data.get("r"), *(pattern.values() if isinstance(pattern, dict) else [None])]
    bad = [r for r in ranks if not _positive_int(r) or r > hidden]
    if bad:
        raise ValueError(f"{lora / LORA_CONFIG}: LoRA rank {bad[0]!r} must be a positive integer at most the "
                         f"student's hidden_size {hidden}")
    other = sorted(name for name in safetensors_shapes(lora / LORA_WEIGHTS) if "lora_" not in name)
    if other:
        raise ValueError(f"{lora / LORA_WEIGHTS}: {len(other)} tensor(s) that are not LoRA weights "
                         f"(first {other[0]!r})")


# --------------------------------------------------------------------------------------------------
def check_loading_info(path: Path, info: dict) -> None:
    """transformers' ``output_loading_info``: a key missing (randomly initialised), unexpected (ignored) or
    resized is an error naming ``path`` and the key, never a report on stderr."""
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        keys = sorted(map(str, info.get(kind) or ()))
        if keys:
            raise ValueError(f"{path}: {len(keys)} {kind.replace('_', ' ')} (first {keys[0]})")
    if info.get("error_msgs"):
        raise ValueError(f"{path}: {' '.join(str(info['error_msgs'][0]).split())}")


def check_lora_loaded(encoder: nn.Module, lora: Path) -> None:
    """The LoRA weights peft loaded are exactly the file's: peft skips missing and unexpected keys silently."""
    from peft import get_peft_model_state_dict

    expected = {name: tuple(t.shape) for name, t in get_peft_model_state_dict(encoder).items()}
    check_tensor_shapes(lora / LORA_WEIGHTS, expected, f"{LORA_DIR}/{LORA_CONFIG}")


def check_tokenizer_fits(tokenizer, student: Path, vocab_size: int) -> None:
    """Every token id must index the student's embeddings."""
    if len(tokenizer) > vocab_size:
        raise ValueError(f"{student}: the tokenizer has {len(tokenizer)} tokens, {CONFIG_NAME} vocab_size is "
                         f"{vocab_size} (ids beyond it have no embedding)")
