"""ASC: application-specific layer pruning (Rai, Borah & Awekar, 2024).

Run the encoder over text of the application, and compare its hidden states layer by layer: entry (i, j)
of the (L+1) x (L+1) similarity matrix is the mean, over all real (non-padding) tokens, of the cosine
between the token's vector after layer i and after layer j (row/column 0 = the embedding output). Walking
up the stack, a layer whose output is still at least ``threshold``-similar to the output of the last layer
we kept adds little for this application and is dropped; otherwise it is kept and becomes the new
reference. The pruned encoder is the original with only the kept layers (``alad_kit.models.zoo.keep_layers``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from alad_kit.core.io import versions
from alad_kit.models.cost import count_params

from ._io import batched_inputs, check_texts, model_device, save_hf, save_model_dir


def layer_similarity(
    model: nn.Module, tokenizer, texts: list[str], batch_size: int = 16, max_length: int = 128
) -> np.ndarray:
    """(L+1, L+1) mean token cosine similarity between the hidden states (embeddings + every layer)."""
    texts = check_texts(texts, "layer_similarity")
    device = model_device(model)
    was_training = model.training
    model.eval()
    total, count = None, 0
    with torch.inference_mode():
        for batch in batched_inputs(tokenizer, texts, batch_size, max_length, device):
            hidden = model(**batch, output_hidden_states=True).hidden_states  # L+1 x (B, T, D)
            real = batch["attention_mask"].bool()
            # (L+1, N_real_tokens, D), unit length: the Gram matrix below is then a sum of cosines.
            h = torch.stack([nn.functional.normalize(x[real].double(), dim=-1) for x in hidden])
            gram = torch.einsum("ind,jnd->ij", h, h)
            total = gram if total is None else total + gram
            count += h.shape[1]
    model.train(was_training)
    return (total / count).cpu().numpy()


def _check_similarity(sim) -> np.ndarray:
    sim = np.asarray(sim, dtype=float)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1] or sim.shape[0] < 2:
        raise ValueError(f"ASC: similarity matrix must be square (L+1, L+1) with L >= 1, got shape {sim.shape}")
    return sim


def _check_threshold(threshold) -> float:
    if not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ValueError(f"ASC: threshold must lie in (0, 1], got {threshold!r}")
    return float(threshold)


def select_layers_asc(sim, threshold: float) -> list[int]:
    """0-based indices of the encoder layers to keep (layer k is row/column k+1 of ``sim``)."""
    sim, threshold = _check_similarity(sim), _check_threshold(threshold)
    kept, reference = [], 0  # reference = last kept hidden state (0: the embedding output)
    for layer in range(1, sim.shape[0]):
        if sim[reference, layer] < threshold:  # the layer still changes the representation: keep it
            kept.append(layer - 1)
            reference = layer
    if not kept:
        raise ValueError(
            f"ASC: threshold {threshold} marks every one of the {sim.shape[0] - 1} layers redundant; "
            "use a higher threshold (at least one layer must stay)"
        )
    return kept


def _n_kept(sim: np.ndarray, threshold: float) -> int:
    try:
        return len(select_layers_asc(sim, threshold))
    except ValueError:
        return 0


def threshold_for_n_layers(sim, n_layers: int) -> float:
    """A threshold for which ASC keeps exactly ``n_layers`` layers: the middle of the widest such range.

    The selection only changes where the threshold crosses a matrix entry, so we try every interval
    between consecutive distinct entries and return the middle of the widest one giving ``n_layers``
    (the middle of the widest, not an edge, so the choice survives small changes of the text).
    """
    sim = _check_similarity(sim)
    n_total = sim.shape[0] - 1
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or not 1 <= n_layers <= n_total:
        raise ValueError(f"ASC: n_layers must be an integer in [1, {n_total}], got {n_layers!r}")
    values = np.unique(np.clip(sim[np.triu_indices_from(sim, k=1)], 1e-9, 1.0))
    edges = np.concatenate([[0.0], values, [1.0]])
    best, reachable = None, set()
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi <= lo:
            continue
        mid = float((lo + hi) / 2)
        kept = _n_kept(sim, mid)
        reachable.add(kept)
        if kept == n_layers and (best is None or hi - lo >= best[0]):
            best = (hi - lo, mid)
    if best is None:
        raise ValueError(
            f"ASC: no threshold keeps exactly {n_layers} layers on this matrix; reachable: "
            f"{sorted(reachable - {0})}"
        )
    return best[1]


def _keep_layers(model: nn.Module, layers: list[int]) -> nn.Module:
    from alad_kit.models.zoo import keep_layers  # imported late: the zoo imports heavier optional pieces

    return keep_layers(model, layers)


def asc_prune(
    model: nn.Module,
    tokenizer,
    texts: list[str],
    threshold: float | None = None,
    out_dir: str | Path | None = None,
    *,
    target_layers: int | None = None,
    batch_size: int = 16,
    max_length: int = 128,
) -> tuple[nn.Module, dict]:
    """Prune redundant layers by ASC; returns the new model (the input is untouched) and a report.

    Give either ``threshold`` (the paper's rule) or ``target_layers`` (we pick the threshold that keeps
    that many layers on this text). With ``out_dir`` the model, tokenizer and report are written there.
    """
    if (threshold is None) == (target_layers is None):
        raise ValueError("asc_prune: give exactly one of threshold or target_layers")
    if threshold is not None:
        _check_threshold(threshold)
    texts = check_texts(texts, "asc_prune")
    start = time.perf_counter()
    sim = layer_similarity(model, tokenizer, texts, batch_size=batch_size, max_length=max_length)
    if target_layers is not None:
        threshold = threshold_for_n_layers(sim, target_layers)
    kept = select_layers_asc(sim, threshold)
    pruned = _keep_layers(model, kept)
    n_layers = sim.shape[0] - 1
    params_before, params_after = count_params(model), count_params(pruned)
    report = {
        "method": "asc",
        "threshold": float(threshold),
        "target_layers": target_layers,
        "num_layers_original": n_layers,
        "kept_layers": kept,
        "dropped_layers": [i for i in range(n_layers) if i not in kept],
        "params_original": params_before,
        "params": params_after,
        "params_pct": 100.0 * params_after / params_before,
        "similarity": np.round(sim, 6).tolist(),
        "n_texts": len(texts),
        "max_length": max_length,
        "seconds": time.perf_counter() - start,
        "versions": versions(),
    }
    if out_dir is not None:
        save_model_dir(out_dir, report, lambda d: save_hf(pruned, tokenizer, d))
    return pruned, report
