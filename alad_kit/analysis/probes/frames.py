"""Probe frames: per-token alignment error, phase by phase, and the files a run keeps them in.

* ``token_errors``     -- per-token MSE and cosine similarity between adapted and teacher vectors.
* ``probe_frame``      -- one row per (sentence, word, phase): the long table every other view aggregates.
* ``aggregate`` / ``phase_summary`` -- means per sentence, position, tag or phase.
* ``save_run_frame`` / ``load_run_frame`` -- ``RUN_DIR/probes.csv|parquet`` and ``umap.csv|parquet``.
"""

from __future__ import annotations

from collections.abc import Sequence
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
