"""Unstructured magnitude (L1) pruning of every Linear layer, one global threshold.

``torch.nn.utils.prune.global_unstructured`` ranks the weights of all Linear layers together by absolute
value and zeroes the smallest ``fraction`` of them (so layers with many small weights lose more), then
``prune.remove`` bakes the mask into the weight. The model keeps its dense shapes: the saving is in
sparsity, which needs a sparse kernel or compression on disk to become speed or bytes; we report the
real fraction of zeros counted afterwards, not the requested one.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune

from alad_kit.core.io import versions

from ._io import check_quantizable, save_hf, save_model_dir


def linear_sparsity(model: nn.Module) -> dict:
    """Zeros among the weights of the Linear layers and among all parameters, counted."""
    linear_w = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    lin_zero = sum(int((w == 0).sum()) for w in linear_w)
    lin_total = sum(w.numel() for w in linear_w)
    all_zero = sum(int((p == 0).sum()) for p in model.parameters())
    all_total = sum(p.numel() for p in model.parameters())
    return {
        "linear_weights": lin_total,
        "linear_zeros": lin_zero,
        "linear_sparsity": lin_zero / lin_total if lin_total else 0.0,
        "params": all_total,
        "params_zeros": all_zero,
        "params_sparsity": all_zero / all_total if all_total else 0.0,
    }


def l1_prune(
    model: nn.Module, fraction: float, out_dir: str | Path | None = None, tokenizer=None
) -> tuple[nn.Module, dict]:
    """Zero the ``fraction`` smallest-magnitude Linear weights (global ranking); the input is untouched."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise ValueError(f"l1_prune: fraction must lie in [0, 1), got {fraction!r}")
    check_quantizable(model, "l1_prune")
    start = time.perf_counter()
    pruned = copy.deepcopy(model)
    targets = [(m, "weight") for m in pruned.modules() if type(m) is nn.Linear]
    before = linear_sparsity(pruned)
    with torch.no_grad():
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=float(fraction))
        for module, name in targets:  # make it permanent: weight = weight_orig * mask, no reparametrisation
            prune.remove(module, name)
    after = linear_sparsity(pruned)
    report = {
        "method": "l1",
        "fraction_requested": float(fraction),
        "linear_layers": len(targets),
        "sparsity_before": before,
        **after,
        "seconds": time.perf_counter() - start,
        "versions": versions(),
    }
    if out_dir is not None:
        save_model_dir(out_dir, report, lambda d: save_hf(pruned, tokenizer, d))
    return pruned, report
