"""Alignment probes: how close are the adapted student embeddings to the teacher's, token by token?

Everything here returns plain data (numpy arrays, pandas DataFrames) so notebooks, the report and the
window explorer can plot or tabulate it.

* ``token_errors``     -- per-token MSE and cosine similarity between adapted and teacher vectors.
* ``probe_frame``      -- one row per (sentence, word, phase): the long table every other view aggregates.
* ``aggregate`` / ``phase_summary`` -- means per sentence, position, tag or phase.
* ``linear_cka`` / ``cka_matrix`` -- representation similarity (Kornblith et al. 2019) across widths.
* ``token_geometry``   -- anisotropy, norm and spread of one encoder's token vectors.
* ``umap_projection``  -- 2-D map of teacher, adapted and student word vectors.
* ``embed_tokens`` / ``embed_for_probes`` -- run encoders (+ adapter) and keep one vector per word.

Word level: student and teacher may tokenize differently, but the *first sub-word* of every word exists in
both, so probes compare the first sub-word's vector of each word (the usual convention of token-level
tagging heads). The adapter itself still reads the full sub-word sequence; we only pick positions after it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alad_kit.core import rundir
from alad_kit.core.io import atomic_path
from alad_kit.core.rundir import PROBES_STEM

# Phase names as they appear in metrics.json["alignment"] and in probe files, in training order.
PHASES = ("before_phase1", "after_phase1", "after_phase2", "after_phase3")
PROBE_COLUMNS = ("sentence", "position", "token", "tag", "phase", "mse", "cosine")
UMAP_COLUMNS = ("x", "y", "source", "space", "token", "tag", "sentence", "index")
SHARED_SPACE = ("teacher", "adapted")  # sources that live in the teacher's space and share one UMAP


def _as_numpy(array) -> np.ndarray:
    """numpy float64 view of a numpy array or (possibly grad-tracking, GPU) torch tensor."""
    if hasattr(array, "detach"):
        array = array.detach().float().cpu().numpy()
    return np.asarray(array, dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# Per-token errors
# --------------------------------------------------------------------------------------------------


def token_errors(adapted, teacher, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-token MSE (mean over the D feature dims) and cosine similarity.

    ``adapted`` and ``teacher`` are (N, D) or (B, T, D) arrays/tensors of the same shape; the result is two
    arrays of shape (N,) or (B, T). Where ``mask`` (same leading shape) is 0 both results are NaN, so padding
    never enters a mean computed with ``np.nanmean``/pandas. A zero vector has cosine NaN (undefined).
    """
    a, t = _as_numpy(adapted), _as_numpy(teacher)
    if a.shape != t.shape:
        raise ValueError(f"token_errors: adapted shape {a.shape} != teacher shape {t.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"token_errors: expected (N, D) or (B, T, D) arrays, got shape {a.shape}")
    mse = ((a - t) ** 2).mean(axis=-1)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(t, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.where(norms > 0, (a * t).sum(axis=-1) / norms, np.nan)
    if mask is not None:
        m = _as_numpy(mask)
        if m.shape != a.shape[:-1]:
            raise ValueError(f"token_errors: mask shape {m.shape} does not match {a.shape[:-1]}")
        mse, cosine = np.where(m > 0, mse, np.nan), np.where(m > 0, cosine, np.nan)
    return mse, cosine


def probe_frame(
    tokens: Sequence[Sequence[str]],
    tags: Sequence[Sequence[str]] | None,
    adapted: Sequence,
    teacher: Sequence,
    phase: str,
) -> pd.DataFrame:
    """Long table of per-word errors: one row per (sentence, position) with columns ``PROBE_COLUMNS``.

    ``adapted[i]`` and ``teacher[i]`` are the (T_i, D) word vectors of sentence i and ``tokens[i]`` its T_i
    words; ``tags`` (same nesting) may be None, then the tag column is "". Concatenate frames of several
    phases with ``pd.concat`` -- ``phase`` is a plain label, conventionally one of ``PHASES``.
    """
    if not (len(tokens) == len(adapted) == len(teacher)):
        raise ValueError(
            f"probe_frame: {len(tokens)} token lists, {len(adapted)} adapted and {len(teacher)} teacher arrays"
        )
    if tags is not None and len(tags) != len(tokens):
        raise ValueError(f"probe_frame: {len(tags)} tag lists for {len(tokens)} sentences")
    frames = []
    for i, (words, a, t) in enumerate(zip(tokens, adapted, teacher)):
        a, t = _as_numpy(a), _as_numpy(t)
        if a.ndim != 2 or len(a) != len(words):
            raise ValueError(f"probe_frame: sentence {i} has {len(words)} tokens but adapted shape {a.shape}")
        sentence_tags = [""] * len(words) if tags is None else list(tags[i])
        if len(sentence_tags) != len(words):
            raise ValueError(
                f"probe_frame: sentence {i} has {len(words)} tokens but {len(sentence_tags)} tags"
            )
        mse, cosine = token_errors(a, t)
        frames.append(
            pd.DataFrame(
                {
                    "sentence": i,
                    "position": np.arange(len(words)),
                    "token": list(words),
                    "tag": sentence_tags,
                    "phase": phase,
                    "mse": mse,
                    "cosine": cosine,
                }
            )
        )
    if not frames:
        return pd.DataFrame({c: [] for c in PROBE_COLUMNS})
    return pd.concat(frames, ignore_index=True)


def _phase_key(phases: pd.Series) -> pd.Series:
    """Sort key putting known phases in training order and unknown labels after them."""
    order = {p: i for i, p in enumerate(PHASES)}
    return phases.map(lambda p: order.get(p, len(PHASES)))  # ties keep groupby's alphabetical order


def aggregate(df: pd.DataFrame, by: str | Sequence[str]) -> pd.DataFrame:
    """Mean MSE / cosine and token count per group, e.g. ``by="tag"``, ``by=["phase", "position"]``.

    Groups never mix phases silently: if ``df`` holds several phases and ``phase`` is not in ``by``, it is
    added as the first key. Rows with ``phase`` come out in training order (``PHASES``).
    """
    keys = [by] if isinstance(by, str) else list(by)
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise ValueError(f"aggregate: unknown column(s) {missing}; available: {list(df.columns)}")
    if "phase" in df.columns and "phase" not in keys and df["phase"].nunique() > 1:
        keys = ["phase", *keys]
    out = (
        df.groupby(keys, sort=True, dropna=False)
        .agg(mse=("mse", "mean"), cosine=("cosine", "mean"), tokens=("mse", "size"))
        .reset_index()
    )
    if "phase" in keys:
        out = out.sort_values(keys, key=lambda s: _phase_key(s) if s.name == "phase" else s, kind="stable")
    return out.reset_index(drop=True)


def phase_summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per phase (training order) with mean MSE, mean cosine and token count."""
    return aggregate(df, "phase")


# --------------------------------------------------------------------------------------------------
# CKA
# --------------------------------------------------------------------------------------------------


def linear_cka(x, y) -> float:
    """Linear CKA between (N, D1) and (N, D2) representations of the same N items (Kornblith et al. 2019).

    CKA = ||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F) with column-centred X_c, Y_c; invariant to
    orthogonal transforms and isotropic scaling, and defined across different widths. Computed in whichever
    of the feature (D x D) or Gram (N x N) forms is smaller; both are the same number.
    """
    x, y = _as_numpy(x), _as_numpy(y)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(
            f"linear_cka: need (N, D1) and (N, D2) arrays with equal N, got {x.shape} and {y.shape}"
        )
    if len(x) < 2:
        raise ValueError("linear_cka: need at least 2 items")
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    if len(x) < max(x.shape[1], y.shape[1]):
        kx, ky = x @ x.T, y @ y.T  # Gram form: <K_x, K_y> / (||K_x|| ||K_y||)
        cross, nx, ny = (kx * ky).sum(), np.linalg.norm(kx), np.linalg.norm(ky)
    else:
        cross = np.linalg.norm(y.T @ x) ** 2
        nx, ny = np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)
    if nx == 0 or ny == 0:
        raise ValueError("linear_cka: a representation is constant across items (zero variance)")
    return float(cross / (nx * ny))


def cka_matrix(representations: Mapping[str, object]) -> pd.DataFrame:
    """Symmetric DataFrame of pairwise linear CKA, e.g. among ``student``, ``adapted``, ``teacher``.

    Values may be (N, D) arrays or lists of per-sentence (T_i, D) arrays (concatenated here).
    """
    names = list(representations)
    arrays = {n: _stack(representations[n]) for n in names}
    out = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            out.loc[a, b] = out.loc[b, a] = linear_cka(arrays[a], arrays[b])
    return out


def token_geometry(sentences: Sequence) -> dict:
    """How spread out an encoder's token vectors are: per-sentence (T_i, D) arrays -> summary numbers.

    * ``mean_pairwise_cosine``: mean cosine between two different tokens of one sentence (anisotropy; a
      value near 1 means the tokens of a sentence point the same way, as in sentence-embedding models);
    * ``mean_norm``: mean vector length;
    * ``mean_dim_std``: per-dimension standard deviation over the tokens of a sentence, averaged.
    Low spread makes a fresh linear head see nearly the same input at every position, so it learns slowly.
    Sentences with fewer than 2 tokens are skipped.
    """
    cosines, norms, stds = [], [], []
    for tokens in sentences:
        x = _as_numpy(tokens)
        if x.ndim != 2:
            raise ValueError(f"token_geometry: need (T, D) arrays per sentence, got shape {x.shape}")
        if len(x) < 2:
            continue
        length = np.linalg.norm(x, axis=1)
        unit = x / np.maximum(length, 1e-12)[:, None]
        gram = unit @ unit.T
        cosines.append((gram.sum() - np.trace(gram)) / (len(x) * (len(x) - 1)))
        norms.append(length.mean())
        stds.append(x.std(axis=0).mean())
    if not cosines:
        raise ValueError("token_geometry: no sentence with at least 2 tokens")
    return {"mean_pairwise_cosine": float(np.mean(cosines)), "mean_norm": float(np.mean(norms)),
            "mean_dim_std": float(np.mean(stds)), "sentences": len(cosines)}


def _stack(value) -> np.ndarray:
    """(N, D) array from an array or a list of (T_i, D) arrays."""
    if isinstance(value, (list, tuple)):
        return np.concatenate([_as_numpy(v) for v in value], axis=0)
    return _as_numpy(value)


def _flatten(nested_or_flat: Sequence | None, n: int, what: str) -> list:
    """Flat per-item list from a flat list or a list of per-sentence lists; checks the length is n."""
    if nested_or_flat is None:
        return [""] * n
    items = list(nested_or_flat)
    if items and not isinstance(items[0], str) and isinstance(items[0], Sequence):
        items = [x for sub in items for x in sub]
    if len(items) != n:
        raise ValueError(f"umap_projection: {len(items)} {what} for {n} embedding rows")
    return items


def _sentence_ids(value, n: int) -> np.ndarray:
    if isinstance(value, (list, tuple)):
        return np.repeat(np.arange(len(value)), [len(v) for v in value])
    return np.zeros(n, dtype=int)


# --------------------------------------------------------------------------------------------------
# UMAP
# --------------------------------------------------------------------------------------------------


def umap_projection(
    embeddings: Mapping[str, object],
    tokens: Sequence | None = None,
    tags: Sequence | None = None,
    n_neighbors: int = 15,
    seed: int = 0,
    min_dist: float = 0.1,
    metric: str = "euclidean",
) -> pd.DataFrame:
    """2-D UMAP coordinates of word vectors from several sources, one row per (source, word).

    ``embeddings`` maps a source name ("teacher", "adapted", "student", ...) to an (N, D) array or a list of
    per-sentence (T_i, D) arrays; all sources describe the same N words, in the same order. ``tokens`` and
    ``tags`` are flat (N) or per-sentence lists. Columns: ``UMAP_COLUMNS``; ``index`` is the word's row
    number, so a word's teacher and adapted points can be linked.

    Which points share a map: "teacher" and "adapted" live in the teacher's space (D_L) -- the adapter is
    trained to land there -- so ONE UMAP is fitted on their concatenation and distances between a word's
    teacher and adapted points mean something. Every other source (the raw student, width D_C, which may
    differ from D_L and in any case is a different space even when the widths match) gets its own UMAP;
    its coordinates are comparable only among themselves (column ``space`` says which map a row is in).
    No per-source standardisation: it would erase exactly the offset between adapted and teacher vectors
    that the probe is meant to show.
    """
    if not embeddings:
        raise ValueError("umap_projection: no embeddings given")
    arrays = {name: _stack(v) for name, v in embeddings.items()}
    first = next(iter(embeddings.values()))
    n = len(next(iter(arrays.values())))
    for name, a in arrays.items():
        if a.ndim != 2 or len(a) != n:
            raise ValueError(f"umap_projection: source {name!r} has shape {a.shape}, expected ({n}, D)")
    token_list, tag_list = _flatten(tokens, n, "tokens"), _flatten(tags, n, "tags")
    sentences = _sentence_ids(first, n)

    shared = [s for s in arrays if s in SHARED_SPACE]
    groups = ([shared] if shared else []) + [[s] for s in arrays if s not in SHARED_SPACE]
    frames = []
    for group in groups:
        widths = {arrays[s].shape[1] for s in group}
        if len(widths) > 1:
            raise ValueError(
                f"umap_projection: sources {group} share the teacher space but have widths {widths}"
            )
        coords = fit_umap(np.concatenate([arrays[s] for s in group]), n_neighbors, seed, min_dist, metric)
        for k, source in enumerate(group):
            xy = coords[k * n : (k + 1) * n]
            frames.append(
                pd.DataFrame(
                    {
                        "x": xy[:, 0],
                        "y": xy[:, 1],
                        "source": source,
                        "space": "+".join(group),
                        "token": token_list,
                        "tag": tag_list,
                        "sentence": sentences,
                        "index": np.arange(n),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def fit_umap(points: np.ndarray, n_neighbors: int, seed: int, min_dist: float, metric: str) -> np.ndarray:
    """2-D UMAP coordinates (N, 2) of ``points`` (N, D); one fit, so maps made from one call share axes."""
    if len(points) < 4:
        raise ValueError(f"umap_projection: need at least 4 points per map, got {len(points)}")
    with warnings.catch_warnings():  # umap warns that TensorFlow (ParametricUMAP only) is missing
        warnings.simplefilter("ignore", ImportWarning)
        import umap  # lazy: importing umap compiles numba code (seconds)

    reducer = umap.UMAP(
        n_neighbors=min(n_neighbors, len(points) - 1),
        n_components=2,
        min_dist=min_dist,
        metric=metric,
        random_state=seed,  # seeded => single-threaded and reproducible
        n_jobs=1,
        init="spectral" if len(points) > 10 else "random",
    )
    return reducer.fit_transform(points.astype(np.float32))


# --------------------------------------------------------------------------------------------------
# Word-level embeddings from encoders
# --------------------------------------------------------------------------------------------------


@dataclass
class WordVectors:
    """One vector per word (its first sub-word) for every sentence, from one encoder (+ adapter)."""

    words: list[list[str]]  # the words that survived truncation, per sentence
    hidden: list[np.ndarray]  # per sentence (T_i, D) encoder last hidden state at first sub-words
    adapted: list[np.ndarray] | None  # per sentence (T_i, D_L) adapter output at first sub-words, or None


def _split(words_or_texts: Sequence) -> list[list[str]]:
    if len(words_or_texts) == 0:
        raise ValueError("embed_tokens: no sentences given")
    out = [t.split() if isinstance(t, str) else list(t) for t in words_or_texts]
    empty = [i for i, w in enumerate(out) if not w]
    if empty:
        raise ValueError(f"embed_tokens: sentence(s) {empty[:5]} have no words")
    return out


def embed_tokens(
    encoder,
    tokenizer,
    adapter,
    words_or_texts: Sequence[str] | Sequence[Sequence[str]],
    batch_size: int = 16,
    max_length: int = 128,
) -> WordVectors:
    """Run ``encoder`` (and ``adapter`` on its output, if given) and keep each word's first sub-word vector.

    ``words_or_texts``: sentences as strings (split on whitespace) or as word lists. The encoder sees the
    words with ``is_split_into_words=True``; words cut off by ``max_length`` are dropped from the result.
    Runs in eval mode without gradients on the encoder's device.
    """
    import torch

    sentences = _split(words_or_texts)
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    if adapter is not None:
        adapter.eval()
    words_out, hidden_out, adapted_out = [], [], []
    try:
        with torch.no_grad():
            for lo in range(0, len(sentences), batch_size):
                chunk = sentences[lo : lo + batch_size]
                enc = tokenizer(
                    chunk,
                    is_split_into_words=True,
                    truncation=True,
                    max_length=max_length,
                    padding=True,
                    return_tensors="pt",
                )
                inputs = {k: v.to(device) for k, v in enc.items()}
                hidden = encoder(**inputs).last_hidden_state
                adapted = None if adapter is None else adapter(hidden, inputs["attention_mask"])
                for b, words in enumerate(chunk):
                    first = _first_subwords(enc.word_ids(b))
                    idx = torch.tensor(first, dtype=torch.long, device=device)
                    words_out.append(words[: len(first)])
                    hidden_out.append(_as_numpy(hidden[b, idx]).astype(np.float32))
                    if adapted is not None:
                        adapted_out.append(_as_numpy(adapted[b, idx]).astype(np.float32))
    finally:
        encoder.train(was_training)
    return WordVectors(words_out, hidden_out, adapted_out if adapter is not None else None)


def _first_subwords(word_ids: Sequence[int | None]) -> list[int]:
    """Token position of each word's first sub-word, for words 0..k-1 that survived truncation."""
    first: dict[int, int] = {}
    for pos, w in enumerate(word_ids):
        if w is not None and w not in first:
            first[w] = pos
    k = 0
    while k in first:  # truncation cuts a suffix of the words; keep the contiguous prefix
        k += 1
    return [first[w] for w in range(k)]


@dataclass
class ProbeInputs:
    """Word vectors of the same words from student, adapted student and teacher, ready for the probes."""

    words: list[list[str]]
    student: list[np.ndarray]  # (T_i, D_C)
    adapted: list[np.ndarray] | None  # (T_i, D_L), None without adapter
    teacher: list[np.ndarray]  # (T_i, D_L)

    def as_dict(self) -> dict[str, list[np.ndarray]]:
        """{"teacher", "adapted", "student"} -> per-sentence arrays (for ``umap_projection``/``cka_matrix``)."""
        out = {"teacher": self.teacher}
        if self.adapted is not None:
            out["adapted"] = self.adapted
        out["student"] = self.student
        return out


def embed_for_probes(
    student,
    student_tokenizer,
    adapter,
    teacher,
    teacher_tokenizer,
    words_or_texts: Sequence[str] | Sequence[Sequence[str]],
    batch_size: int = 16,
    max_length: int = 128,
) -> ProbeInputs:
    """Word-level vectors of student, adapter(student) and teacher over the same sentences.

    Works across tokenizers because both sides are read at each word's first sub-word; when truncation
    keeps a different number of words on the two sides, both are cut to the shorter prefix.
    """
    s = embed_tokens(student, student_tokenizer, adapter, words_or_texts, batch_size, max_length)
    t = embed_tokens(teacher, teacher_tokenizer, None, words_or_texts, batch_size, max_length)
    if adapter is not None and s.adapted[0].shape[-1] != t.hidden[0].shape[-1]:
        raise ValueError(
            f"embed_for_probes: adapter outputs width {s.adapted[0].shape[-1]} "
            f"but the teacher's hidden size is {t.hidden[0].shape[-1]}"
        )
    keep = [min(len(a), len(b)) for a, b in zip(s.words, t.words)]
    return ProbeInputs(
        words=[w[:k] for w, k in zip(s.words, keep)],
        student=[h[:k] for h, k in zip(s.hidden, keep)],
        adapted=None if s.adapted is None else [h[:k] for h, k in zip(s.adapted, keep)],
        teacher=[h[:k] for h, k in zip(t.hidden, keep)],
    )


# --------------------------------------------------------------------------------------------------
# Probe files in a run directory
# --------------------------------------------------------------------------------------------------

_NUMERIC = ("mse", "cosine", "x", "y")


def save_run_frame(df: pd.DataFrame, run_dir, stem: str = PROBES_STEM, fmt: str = "csv") -> Path:
    """Write a probe/UMAP frame to ``run_dir/<stem>.<fmt>`` atomically (temp file + rename).

    Parquet needs a pandas parquet engine (pyarrow); without one the frame is written as CSV instead. A file
    of the other format left by an earlier run is removed, so readers never see stale rows.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"save_run_frame: fmt must be 'parquet' or 'csv', got {fmt!r}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        try:
            return _write_frame(df, run_dir, stem, "parquet")
        except ImportError:  # no pyarrow/fastparquet: CSV carries the same columns
            pass
    return _write_frame(df, run_dir, stem, "csv")


def _write_frame(df: pd.DataFrame, run_dir: Path, stem: str, fmt: str) -> Path:
    path = run_dir / f"{stem}.{fmt}"
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
    (run_dir / f"{stem}.{'csv' if fmt == 'parquet' else 'parquet'}").unlink(missing_ok=True)
    return path


def load_run_frame(run_dir, stem: str = PROBES_STEM) -> pd.DataFrame | None:
    """Read ``run_dir/<stem>.csv`` or ``.parquet`` (the newer one if both exist); None when neither exists.

    CSV is read with tokens kept verbatim (a word "NA" or "null" stays a string); empty or missing tags
    become "".
    """
    run_dir = Path(run_dir)
    found = rundir.frame_paths(run_dir, stem)
    if not found:
        return None
    path = max(found, key=lambda p: p.stat().st_mtime_ns)
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path, keep_default_na=False, na_values={c: ["", "nan", "NaN"] for c in _NUMERIC})
    if "token" in df.columns and "tag" not in df.columns:  # runs without word tags (sub-word probes)
        df["tag"] = ""
    for column in ("token", "tag", "phase", "source", "space"):
        if column in df.columns:
            df[column] = df[column].fillna("").astype(str)
    return df
