"""compress(): one entry point per method, loading through the zoo and writing a report."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

from alad_kit.compress import METHODS, compress, load_quantized

TEXTS = [
    "The European lobster is a species of clawed lobster from the eastern Atlantic Ocean .",
    "Mating occurs in the summer , producing eggs which are carried by the females .",
    "The song was released as the third single from their 2005 album .",
    "It may grow to a length of 60 cm and a mass of 6 kilograms .",
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A 3-layer random BERT saved with MiniLM's tokenizer: a local model directory the zoo can load."""
    from alad_kit.models.offline import offline_model_dir

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    path = tmp_path_factory.mktemp("tiny") / "bert"
    BertModel(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(offline_model_dir("minilm-l6")).save_pretrained(path)
    return path


def _report(out):
    return json.loads((out / "compression_report.json").read_text())


@pytest.mark.parametrize("method, options", [
    ("asc", {"target_layers": 2, "texts": TEXTS}),
    ("l1", {"fraction": 0.25}),
    ("keep-layers", {"layers": [0, 2]}),
    ("distill", {"layers": [0, 2], "max_steps": 2, "batch_size": 2, "texts": TEXTS}),
])
def test_float_methods_write_loadable_models(tmp_path, tiny_dir, method, options):
    out = tmp_path / method
    report = compress(method, str(tiny_dir), out, **options)
    assert report["method"] == method.replace("-", "_") and report["model_name"] == str(tiny_dir)
    assert _report(out) == json.loads(json.dumps(report))
    assert "texts" not in report["options"]
    assert report["disk_mb"] > 0
    AutoModel.from_pretrained(out)


@pytest.mark.parametrize("method", ["dynamic_int8", "static_int8"])
def test_int8_methods_write_marked_directories(tmp_path, tiny_dir, method):
    out = tmp_path / method
    options = {"texts": TEXTS, "sensitivity_texts": 2} if method == "static_int8" else {}
    report = compress(method, str(tiny_dir), out, **options)
    assert json.loads((out / "alad_student.json").read_text())["kind"] == method
    model, tokenizer = load_quantized(out)
    assert tokenizer is not None and report["method"] == method


def test_bad_method_or_option_writes_nothing(tmp_path, tiny_dir):
    assert set(METHODS) == {"asc", "keep_layers", "l1", "dynamic_int8", "static_int8", "distill"}
    with pytest.raises(ValueError, match="unknown method"):
        compress("prune-heads", str(tiny_dir), tmp_path / "x")
    with pytest.raises(ValueError, match="do not apply"):
        compress("l1", str(tiny_dir), tmp_path / "x", fraction=0.2, threshold=0.5)
    with pytest.raises(ValueError, match="fraction"):
        compress("l1", str(tiny_dir), tmp_path / "x")
    with pytest.raises(ValueError, match="fraction"):
        compress("l1", str(tiny_dir), tmp_path / "x", fraction=1.0)
    with pytest.raises(ValueError, match="keep_layers needs layers"):
        compress("keep-layers", str(tiny_dir), tmp_path / "x")
    with pytest.raises(ValueError, match="no text"):
        compress("static_int8", str(tiny_dir), tmp_path / "x", texts=[])
    assert list(tmp_path.iterdir()) == []


def test_a_killed_compression_leaves_nothing_the_next_one_does_not_remove(tmp_path, tiny_dir, monkeypatch):
    import subprocess
    import sys

    from alad_kit.compress import prune

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".student.{dead.pid}.0badc0de.tmp"  # the staging folder of a killed `alad compress`
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")

    def fails(model, tokenizer, directory):  # full disk half-way through writing the model
        (directory / "model.safetensors").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(prune, "save_hf", fails)
        with pytest.raises(OSError, match="No space"):
            compress("l1", str(tiny_dir), tmp_path / "student", fraction=0.25)
    assert list(tmp_path.iterdir()) == []  # neither the stale folder nor this failure's staging is left
    compress("l1", str(tiny_dir), tmp_path / "student", fraction=0.25)
    assert [p.name for p in tmp_path.iterdir()] == ["student"]
