"""Tests for alad_kit.models.archive: split-archive reassembly, CRC tests, atomic extraction."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from _tiny_models import SENTENCE, last_hidden, leftovers, split_archive, write_tiny_dir

from alad_kit.models import archive, zoo


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return write_tiny_dir(tmp_path_factory.mktemp("tiny") / "tiny-bert")


def test_reassembled_archive_loads_the_same_model(tiny_dir, tmp_path):
    parts = split_archive(tiny_dir, tmp_path / "parts")
    target = tmp_path / "cache" / "models" / "tiny"

    assert archive.ensure_extracted(parts, target) == target

    assert (target / "config.json").is_file() and (target / "1_Pooling" / "config.json").is_file()
    assert not (target / "desktop.ini").exists()
    assert leftovers(target.parent) == ["tiny"]  # no temp dir, no archive left behind
    marker = json.loads((target / archive.EXTRACTED_MARKER).read_text())
    weights = (target / "model.safetensors").read_bytes()
    assert marker["files"]["model.safetensors"] == {
        "size": len(weights),
        "sha256": hashlib.sha256(weights).hexdigest(),
    }
    assert marker["root_in_archive"] == "tiny-bert/"
    reloaded, tokenizer = zoo.load_encoder(target)
    original, _ = zoo.load_encoder(tiny_dir)
    batch = dict(tokenizer([SENTENCE, "short"], padding=True, return_tensors="pt"))
    batch.pop("token_type_ids", None)
    torch.testing.assert_close(last_hidden(reloaded, batch), last_hidden(original, batch), rtol=0, atol=0)


def test_second_call_uses_the_cache(tiny_dir, tmp_path, monkeypatch):
    parts = split_archive(tiny_dir, tmp_path / "parts")
    target = tmp_path / "models" / "tiny"
    archive.ensure_extracted(parts, target)
    stamp = (target / archive.EXTRACTED_MARKER).stat().st_mtime_ns

    def no_zip(*args, **kwargs):
        raise AssertionError("the archive was opened again")

    monkeypatch.setattr(archive.zipfile, "ZipFile", no_zip)
    assert archive.ensure_extracted(parts, target) == target
    assert (target / archive.EXTRACTED_MARKER).stat().st_mtime_ns == stamp


def test_damaged_cache_is_rebuilt(tiny_dir, tmp_path):
    parts = split_archive(tiny_dir, tmp_path / "parts")
    target = tmp_path / "models" / "tiny"
    archive.ensure_extracted(parts, target)
    (target / "model.safetensors").write_bytes(b"half")

    archive.ensure_extracted(parts, target)

    assert (target / "model.safetensors").read_bytes() == (tiny_dir / "model.safetensors").read_bytes()
    assert leftovers(target.parent) == ["tiny"]


def _flip_middle(part: Path) -> None:
    data = bytearray(part.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    part.write_bytes(bytes(data))


def _truncate(part: Path) -> None:
    part.write_bytes(part.read_bytes()[:-1000])


@pytest.mark.parametrize("damage", [_flip_middle, _truncate], ids=["flipped-bytes", "truncated"])
def test_corrupted_part_raises_and_leaves_nothing(tiny_dir, tmp_path, damage):
    parts = split_archive(tiny_dir, tmp_path / "parts")
    damage(parts[1])
    target = tmp_path / "models" / "tiny"

    with pytest.raises(archive.CorruptArchiveError, match="model.zip.001"):
        archive.ensure_extracted(parts, target)

    assert not target.exists()
    assert leftovers(target.parent) == []


def test_archive_without_weights_is_refused(tiny_dir, tmp_path):
    no_weights = tmp_path / "no-weights"
    shutil.copytree(tiny_dir, no_weights)
    (no_weights / "model.safetensors").unlink()
    parts = split_archive(no_weights, tmp_path / "parts")

    with pytest.raises(archive.CorruptArchiveError, match="model.safetensors"):
        archive.ensure_extracted(parts, tmp_path / "models" / "x")
    assert leftovers(tmp_path / "models") == []


def test_member_climbing_out_is_refused(tiny_dir, tmp_path):
    parts = split_archive(tiny_dir, tmp_path / "parts", extra={"tiny-bert/../../evil.txt": "x"})
    with pytest.raises(archive.CorruptArchiveError, match="outside"):
        archive.ensure_extracted(parts, tmp_path / "models" / "x")
    assert not (tmp_path / "evil.txt").exists()
    assert leftovers(tmp_path / "models") == []


def test_missing_part_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.zip.002"):
        archive.ensure_extracted([tmp_path / "nope.zip.002"], tmp_path / "models" / "x")
