"""Disk cache of a frozen encoder's token embeddings.

In phases 1-2 neither M_L nor M_C changes, so their last hidden states for a given text never change
either. We compute them once per (model, tokenized text), write them with plain file writes and memory-map them
read-only afterwards: phase 2's ten
epochs then cost one teacher pass instead of ten, and the cache is shared across window sizes, seeds and
(for the teacher) students.

Layout of one entry ``ROOT/<key>/``: ``embeddings.f16`` (all tokens of all texts, row-major fp16,
(N_tokens, D)), ``offsets.npy`` (N_texts + 1 row offsets) and ``meta.json`` (shape, sha256 of the
embeddings and of the offsets file, what was encoded) written last. Both digests are checked on every
open (nothing in meta.json can turn that off); a mismatch rebuilds the entry. An entry is built in a temporary folder and renamed, so
a crash or a full disk never leaves a half-written entry behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from alad_kit.core.integrity import digest_problem, read_json_record, sha256_file
from alad_kit.core.io import clean_stale, replace, temp_name
from alad_kit.core.locks import owned
from alad_kit.core.precision import autocast
from alad_kit.core.progress import progress as tqdm

# storage dtype -> (file name, numpy dtype)
STORAGE = {"float16": ("embeddings.f16", np.float16), "float32": ("embeddings.f32", np.float32)}


@dataclass(frozen=True)
class _Encoding:
    precision: str = "fp32"  # fp32 | bf16 compute of the encoder pass
    token_type_ids: Sequence[Sequence[int]] | None = None  # segment ids per text (BERT question/context)
    dtype: str = "float16"  # storage dtype, a key of STORAGE


def model_fingerprint(model: torch.nn.Module) -> str:
    """Identity of a model's computation: its config and every tensor of its state dict, byte for byte.

    All tensors are hashed (about 0.1 s per 100 MB): a model that differs only inside (an L1-pruned or
    partly fine-tuned copy keeps its embeddings and config) must not reuse the original's cache entries.
    """
    h = hashlib.sha256()
    config = getattr(model, "config", None)
    h.update((config.to_json_string(use_diff=False) if config is not None else type(model).__name__).encode())
    for name, value in model.state_dict().items():
        h.update(name.encode())
        _hash_value(h, value)
    return h.hexdigest()[:16]


def _hash_value(h, value) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        if t.is_quantized:  # int8 weights: their dequantized values carry both the integers and the scales
            t = t.dequantize()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        t = t.contiguous()
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16; its bits are what matters
            t = t.view(torch.int16)
        h.update(t.numpy().reshape(-1).view(np.uint8))
    elif isinstance(value, (tuple, list)):  # e.g. the packed (weight, bias) of torch.ao quantized Linear
        for item in value:
            _hash_value(h, item)
    else:
        h.update(repr(value).encode())


def _ids_digest(input_ids: Sequence[Sequence[int]]) -> str:
    h = hashlib.sha256()
    for ids in input_ids:
        h.update(np.asarray(ids, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


@dataclass
class CachedEmbeddings:
    """Read-only view of one cache entry: ``rows(indices)`` gives each text's (T_i, D) tensor."""

    path: Path
    offsets: np.ndarray
    data: np.memmap

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def dim(self) -> int:
        return self.data.shape[1]

    def rows(self, indices: Sequence[int]) -> list[torch.Tensor]:
        return [torch.from_numpy(np.array(self.data[self.offsets[i] : self.offsets[i + 1]])) for i in indices]

    def padded(self, indices: Sequence[int], width: int) -> torch.Tensor:
        """(B, width, D) float32, zero-padded (rows longer than width are cut).

        One gather reads every token row of the batch from the memory map (a single numpy call instead of a
        copy, a tensor and a conversion per text), and one masked assignment scatters them into the padding.
        """
        idx = np.asarray(indices, dtype=np.int64)
        starts = self.offsets[idx]
        kept = np.minimum(self.offsets[idx + 1] - starts, width)  # tokens of each text that fit in width
        # token row r of the batch is text b's row (r - first row of b) in the file: starts[b] + that
        token_rows = np.arange(int(kept.sum())) + np.repeat(starts - (np.cumsum(kept) - kept), kept)
        out = torch.zeros(len(idx), width, self.dim)
        mask = torch.arange(width)[None] < torch.from_numpy(kept)[:, None]  # row-major: text by text, in order
        out[mask] = torch.from_numpy(np.asarray(self.data[token_rows])).float()
        return out


@dataclass
class CacheStats:
    hits: int = 0  # entries found on disk and reused
    misses: int = 0  # entries computed
    bytes_written: int = 0
    seconds_computing: float = 0.0
    entries: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "mb_written": round(self.bytes_written / 2**20, 2),
            "seconds_computing": round(self.seconds_computing, 2),
        }


class EmbeddingCache:
    """Computes-or-loads last hidden states of a frozen encoder for a list of tokenized texts."""

    def __init__(self, root: str | Path, enabled: bool = True):
        self.root = Path(root)
        self.enabled = enabled  # False: compute into a throw-away folder every time (for the ablation/timing)
        self.stats = CacheStats()

    def key(self, model: torch.nn.Module, input_ids: Sequence[Sequence[int]], variant: str = "") -> str:
        return f"{model_fingerprint(model)}-{_ids_digest(input_ids)}{variant}"

    def get(
        self,
        model: torch.nn.Module,
        input_ids: Sequence[Sequence[int]],
        pad_token_id: int,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
        desc: str = "encoding",
        precision: str = "fp32",
        token_type_ids: Sequence[Sequence[int]] | None = None,
        dtype: str = "float16",
    ) -> CachedEmbeddings:
        """The entry for ``model`` on ``input_ids`` (and segment ids, for BERT question/context pairs), encoded
        in ``precision`` and stored as ``dtype`` (float16, or float32 where cached and live batches must agree)."""
        if len(input_ids) == 0:
            raise ValueError("EmbeddingCache.get: no texts to encode")
        if dtype not in STORAGE:
            raise ValueError(f"EmbeddingCache.get: dtype must be one of {', '.join(STORAGE)}, got {dtype!r}")
        # the default variant (fp32 compute, fp16 storage, no segment ids) keeps the keys of existing caches
        variant = "".join([f"-{precision}" if precision != "fp32" else "", f"-{dtype}" if dtype != "float16" else "",
                           f"-tt{_ids_digest(token_type_ids)}" if token_type_ids is not None else ""])
        entry = self.root / self.key(model, input_ids, variant)
        with owned(entry):  # one builder per entry: an identical run waits here, then reuses the entry
            cached = self._open_verified(entry) if self.enabled else None
            if cached is not None:
                self.stats.hits += 1
                self.stats.entries.append(entry.name)
                return cached
            if entry.exists():
                shutil.rmtree(entry)
            self.stats.misses += 1
            start = time.perf_counter()
            self._build(entry, model, input_ids, pad_token_id, batch_size, device, desc,
                        _Encoding(precision, token_type_ids, dtype))
            self.stats.seconds_computing += time.perf_counter() - start
            self.stats.entries.append(entry.name)
            return self._open(entry, read_json_record(entry / "meta.json"))

    # ----------------------------------------------------------------------------------------------
    def _open_verified(self, entry: Path) -> CachedEmbeddings | None:
        """The entry when every file matches the digests in its meta.json; else warn, delete it, None."""
        if not entry.exists():
            return None
        meta = read_json_record(entry / "meta.json")
        problem = _entry_problem(entry, meta)
        if problem is None:
            try:
                return self._open(entry, meta)
            except (OSError, ValueError) as error:
                problem = f"unreadable ({error})"
        warnings.warn(f"embedding cache entry {entry}: {problem}; rebuilding it", stacklevel=3)
        shutil.rmtree(entry, ignore_errors=True)
        return None

    @staticmethod
    def _open(entry: Path, meta: dict) -> CachedEmbeddings:
        offsets = np.load(entry / "offsets.npy", allow_pickle=False)
        file_name, np_dtype = STORAGE[meta.get("dtype", "float16")]
        data = np.memmap(entry / file_name, dtype=np_dtype, mode="r", shape=tuple(meta["shape"]))
        return CachedEmbeddings(entry, offsets, data)

    def _publish(self, tmp: Path, entry: Path) -> None:
        """Rename the finished ``tmp`` folder to ``entry``. Another process (a data-parallel rank) may have
        published the same entry meanwhile: its content is identical, so keep it and drop ours."""
        finished = self.enabled and (entry / "meta.json").is_file()
        if entry.exists() and not finished:
            shutil.rmtree(entry, ignore_errors=True)
        try:
            if not finished:
                replace(tmp, entry)
                return
        except OSError:
            if not (self.enabled and (entry / "meta.json").is_file()):
                raise
        shutil.rmtree(tmp, ignore_errors=True)

    @torch.no_grad()
    def _build(self, entry, model, input_ids, pad_token_id, batch_size, device, desc, how=_Encoding()) -> None:
        lengths = np.array([len(ids) for ids in input_ids], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        dim = model.config.hidden_size
        file_name, np_dtype = STORAGE[how.dtype]
        n_bytes = int(offsets[-1]) * dim * np.dtype(np_dtype).itemsize
        self.root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.root).free
        if n_bytes > free:
            raise OSError(errno.ENOSPC, f"embedding cache: not enough disk space in {self.root} "
                          f"(needs {n_bytes / 2**20:.0f} MB, {free / 2**20:.0f} MB free)")
        clean_stale(entry)  # what a killed build of this entry left (we hold its lock)
        tmp = temp_name(entry)
        tmp.mkdir()
        try:
            rows = _encode(model, input_ids, lengths, pad_token_id, batch_size, device, desc, how)
            _write_rows(tmp / file_name, rows, offsets, dim, np_dtype)
            np.save(tmp / "offsets.npy", offsets)
            meta = {
                "shape": [int(offsets[-1]), dim],
                "bytes": n_bytes,
                "texts": len(input_ids),
                "sha256": sha256_file(tmp / file_name),
                "offsets_sha256": sha256_file(tmp / "offsets.npy"),
                "dtype": how.dtype,
                "precision": how.precision,
                "model": getattr(model.config, "_name_or_path", type(model).__name__),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
            self._publish(tmp, entry)
            self.stats.bytes_written += n_bytes
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if e.errno == errno.ENOSPC:
                raise OSError(errno.ENOSPC, f"embedding cache: disk full while writing {entry} "
                              f"({n_bytes / 2**20:.0f} MB); nothing was kept") from e
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _entry_problem(entry: Path, meta: dict | None) -> str | None:
    """Why a cache entry cannot be used, or None. Every file is hashed, whatever meta.json says."""
    if meta is None:
        return "meta.json is missing or not valid JSON"
    shape = meta.get("shape")
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(n, int) and n >= 0 for n in shape)):
        return "meta.json has no valid shape"
    if meta.get("dtype", "float16") not in STORAGE:
        return "meta.json names an unknown storage dtype"
    file_name, np_dtype = STORAGE[meta.get("dtype", "float16")]
    data = entry / file_name
    if not data.is_file() or data.stat().st_size != shape[0] * shape[1] * np.dtype(np_dtype).itemsize:
        return f"{file_name} is missing or its size differs from meta.json (corrupt)"
    problem = digest_problem(entry, {file_name: meta.get("sha256"), "offsets.npy": meta.get("offsets_sha256")},
                             (file_name, "offsets.npy"))
    if problem:
        return f"failed its checksum: {problem}"
    return None


def _encode(model, input_ids, lengths, pad_token_id, batch_size, device, desc, how: _Encoding):
    """Yield ``(text index, (T_i, D) array)`` for every text, longest batches first, encoded in ``how.precision``."""
    was_training = model.training
    model.eval()
    try:
        order = np.argsort(-lengths, kind="stable")  # longest first: little padding, early OOM
        for lo in tqdm(range(0, len(order), batch_size), desc=desc, leave=False):
            idx = order[lo : lo + batch_size]
            width = int(lengths[idx].max())
            ids = torch.full((len(idx), width), pad_token_id, dtype=torch.long)
            mask = torch.zeros(len(idx), width, dtype=torch.long)
            segments = torch.zeros(len(idx), width, dtype=torch.long)
            for b, i in enumerate(idx):
                ids[b, : lengths[i]] = torch.tensor(input_ids[i])
                mask[b, : lengths[i]] = 1
                if how.token_type_ids is not None:
                    segments[b, : lengths[i]] = torch.tensor(how.token_type_ids[i])
            inputs = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
            if how.token_type_ids is not None:
                inputs["token_type_ids"] = segments.to(device)
            with autocast(how.precision, device):
                hidden = model(**inputs).last_hidden_state
            hidden = hidden.float().cpu().numpy()
            for b, i in enumerate(idx):
                yield int(i), hidden[b, : lengths[i]]
    finally:  # an error (OOM, Ctrl-C) must not leave the caller's model in eval mode
        model.train(was_training)


def _write_rows(path: Path, rows, offsets: np.ndarray, dim: int, np_dtype=np.float16) -> None:
    """Write every row at its offset with ordinary file writes (fsync'd), never a writable memmap: a full
    disk is then an OSError(ENOSPC) at a write, not a SIGBUS that kills the process without a message."""
    size = np.dtype(np_dtype).itemsize
    n_bytes = int(offsets[-1]) * dim * size
    with open(path, "wb") as handle:
        _reserve(handle.fileno(), n_bytes)
        for i, row in rows:
            handle.seek(int(offsets[i]) * dim * size)
            handle.write(np.ascontiguousarray(row, dtype=np_dtype).tobytes())
        handle.truncate(n_bytes)
        handle.flush()
        os.fsync(handle.fileno())


def _reserve(fd: int, n_bytes: int) -> None:
    """Reserve the file's blocks up front where the file system can (disk full shows here, at once)."""
    if n_bytes <= 0 or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, 0, n_bytes)
    except OSError as error:
        if error.errno in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return  # e.g. tmpfs on old kernels or network file systems: the writes still report ENOSPC
        raise
