"""Representation geometry: similarity across widths (linear CKA), token geometry and UMAP maps.

* ``linear_cka`` / ``cka_matrix`` -- representation similarity (Kornblith et al. 2019) across widths.
* ``token_geometry``   -- anisotropy, norm and spread of one encoder's token vectors.
* ``umap_projection``  -- 2-D map of teacher, adapted and student word vectors.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .frames import SHARED_SPACE, _as_numpy

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


def _umap_maps(arrays: Mapping[str, np.ndarray]) -> list[list[str]]:
    """The sources fitted together, map by map: the teacher-space ones (SHARED_SPACE) share one map, every
    other source gets its own (see umap_projection). Sources sharing a map must have one width."""
    shared = [s for s in arrays if s in SHARED_SPACE]
    widths = {arrays[s].shape[1] for s in shared}
    if len(widths) > 1:
        raise ValueError(f"umap_projection: sources {shared} share the teacher space but have widths {widths}")
    return ([shared] if shared else []) + [[s] for s in arrays if s not in SHARED_SPACE]


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

    frames = []
    for group in _umap_maps(arrays):
        coords = fit_umap(np.concatenate([arrays[s] for s in group]), n_neighbors, seed, min_dist, metric)
        for k, source in enumerate(group):
            xy = coords[k * n : (k + 1) * n]
            frames.append(pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "source": source, "space": "+".join(group),
                                        "token": token_list, "tag": tag_list, "sentence": sentences,
                                        "index": np.arange(n)}))
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


