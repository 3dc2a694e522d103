"""Post-training int8 quantization of the Linear layers: dynamic, and static with sensitivity selection.

*Dynamic* (``torch.ao.quantization.quantize_dynamic``): weights stored in int8, activations quantized on
the fly per batch -- no calibration, every Linear. Weights are quantized per output channel: BERT-style FFN
output matrices have single weights 200x the mean magnitude, and one scale per tensor then rounds most
weights to a handful of levels (MiniLM token cosine to float: 0.92 per tensor, 0.96 per channel).

*Static* (eager mode, as in the source paper): each chosen ``nn.Linear`` becomes
``QuantWrapper(QuantStub -> Linear -> DeQuantStub)``; observers learn fixed activation ranges from plain
corpus text (calibration), then ``convert`` swaps in int8 kernels. Not every layer tolerates that, so we
first measure each layer's *sensitivity* -- the change of the model's output (hidden-state MSE for an
encoder, KL of the logits when the model has them) when ONLY that layer is quantized -- and quantize the
least sensitive layers until ``target_fraction`` (95%) of the Linear weights (by parameter count) are int8
(see :func:`select_by_sensitivity`).
The input of the Linear after a GELU (the FFN output projection) gets an observer whose range starts at
GELU's lower bound, -0.17: GELU never goes below it, so no int8 code is spent under it and none of the
negative values the calibration text did not happen to reach is clipped.

torch.ao modules do not survive ``save_pretrained``; :mod:`alad_kit.models.quant_io` saves and loads them.
"""

from __future__ import annotations

import copy
import re
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn
from torch.ao.quantization import QConfig, QuantWrapper, convert, get_default_qconfig, prepare
from torch.ao.quantization.observer import HistogramObserver

from alad_kit.core.io import versions
from alad_kit.models.cost import disk_size_mb, time_forward
from alad_kit.models.quant_io import dynamic_quantize, quantized_engine, save_quantized

from ._io import batched_inputs, check_quantizable, check_texts, save_model_dir

GELU_MIN = -0.17  # min over x of x * Phi(x) is -0.16997 (at x = -0.7518); rounded outwards
_GELU_LAYER = re.compile(r"(^|\.)output\.dense$")  # BERT/MPNet FFN output projection (reads GELU(intermediate))


class GeluFloorObserver(HistogramObserver):
    """Histogram observer for an input known to come out of a GELU: its range always starts at GELU_MIN."""

    def forward(self, x_orig):
        super().forward(x_orig.detach().clamp_min(GELU_MIN))  # float noise below the bound is not signal
        return x_orig

    @torch.jit.export
    def calculate_qparams(self):
        if self.min_val == float("inf") and self.max_val == float("-inf"):
            return super().calculate_qparams()  # never run: the parent warns and returns defaults
        _new_min, new_max = self._non_linear_param_search()  # the histogram search may clip the max outliers
        return self._calculate_qparams(torch.full_like(new_max, GELU_MIN), new_max)


@contextmanager
def _quiet():
    """torch.ao prints a migration notice (to torchao) and observer chatter on every call; not ours to fix."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def gelu_input_layers(model: nn.Module, names) -> list[str]:
    """The Linear layers among ``names`` whose input is a GELU output (FFN output projections)."""
    act = str(getattr(getattr(model, "config", None), "hidden_act", ""))
    if "gelu" not in act:
        return []
    return [n for n in names if _GELU_LAYER.search(n) and ".attention." not in n]


def _set_module(model: nn.Module, name: str, module: nn.Module) -> nn.Module:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, attr)
    setattr(parent, attr, module)
    return old


def _qconfigs(engine: str, gelu_floor: bool) -> tuple[QConfig, QConfig | None]:
    """(wrapper qconfig, QuantStub qconfig override for GELU inputs) for the engine's default scheme."""
    base = get_default_qconfig(engine)
    if not gelu_floor:
        return base, None
    reduce_range = engine in ("x86", "fbgemm")  # what the engine's default activation observer uses
    return base, QConfig(activation=GeluFloorObserver.with_args(reduce_range=reduce_range), weight=base.weight)


def _prepared_wrapper(linear: nn.Linear, engine: str, gelu_floor: bool) -> QuantWrapper:
    wrapper = QuantWrapper(copy.deepcopy(linear))
    wrapper.qconfig, stub_qconfig = _qconfigs(engine, gelu_floor)
    if stub_qconfig is not None:
        wrapper.quant.qconfig = stub_qconfig
    with _quiet():
        return prepare(wrapper.eval(), inplace=True)


def _outputs(model: nn.Module, batches: list[dict]) -> list[torch.Tensor]:
    with torch.no_grad():
        outs = [model(**b) for b in batches]
    return [o.logits if getattr(o, "logits", None) is not None else o.last_hidden_state for o in outs]


def _divergence(reference: list[torch.Tensor], other: list[torch.Tensor], batches, logits: bool) -> float:
    """Masked mean over real tokens: KL(ref || other) of softmaxed logits, or MSE of hidden states."""
    total, count = 0.0, 0
    for ref, out, batch in zip(reference, other, batches):
        mask = batch["attention_mask"].bool() if ref.dim() == 3 else torch.ones(ref.shape[:-1], dtype=torch.bool)
        if logits:
            per = torch.nn.functional.kl_div(
                out.log_softmax(-1), ref.log_softmax(-1), log_target=True, reduction="none"
            ).sum(-1)
        else:
            per = (ref - out).pow(2).mean(-1)
        total += float(per[mask].sum())
        count += int(mask.sum())
    return total / max(count, 1)


def output_change(reference: nn.Module, model: nn.Module, tokenizer, texts, max_length: int = 128) -> dict:
    """MSE and mean token cosine between two encoders' last hidden states on ``texts`` (CPU)."""
    batches = list(batched_inputs(tokenizer, check_texts(texts, "output_change"), 16, max_length, "cpu"))
    ref, out = _outputs(reference, batches), _outputs(model, batches)
    mse = _divergence(ref, out, batches, logits=False)
    cos = [torch.nn.functional.cosine_similarity(r, o, dim=-1)[b["attention_mask"].bool()] for r, o, b in
           zip(ref, out, batches)]
    return {"mse": mse, "cosine": float(torch.cat(cos).mean())}


def _speed(reference: nn.Module, model: nn.Module, tokenizer, texts, max_length: int) -> dict:
    batch = next(batched_inputs(tokenizer, texts[:8], 8, max_length, "cpu"))
    with torch.inference_mode():
        ref = time_forward(lambda: reference(**batch), repeats=3, warmup=1)["median_ms"]
        new = time_forward(lambda: model(**batch), repeats=3, warmup=1)["median_ms"]
    return {"float_ms": ref, "int8_ms": new, "speedup": ref / new, "batch": int(batch["input_ids"].shape[0])}


# ------------------------------------------------------------------------------------------------ dynamic
def quantize_dynamic_int8(
    model: nn.Module, out_dir: str | Path | None = None, tokenizer=None, texts: list[str] | None = None,
    max_length: int = 128,
) -> tuple[nn.Module, dict]:
    """int8 weights + per-batch int8 activations for every Linear (CPU). ``texts``: measure output/speed."""
    linears = check_quantizable(model, "quantize_dynamic_int8")
    start = time.perf_counter()
    engine = quantized_engine()
    float_model = copy.deepcopy(model).cpu().eval()  # int8 kernels are CPU-only; the caller's model stays put
    qmodel = dynamic_quantize(copy.deepcopy(float_model))
    size_float, size_int8 = disk_size_mb(float_model), disk_size_mb(qmodel)
    report = {
        "method": "dynamic_int8",
        "engine": engine,
        "linear_layers": len(linears),
        "size_mb_float": size_float,
        "size_mb_int8": size_int8,
        "size_ratio": size_int8 / size_float,
        "seconds": time.perf_counter() - start,
        "versions": versions(),
    }
    if texts is not None:
        texts = check_texts(texts, "quantize_dynamic_int8")
        report["output_change"] = output_change(float_model, qmodel, tokenizer, texts, max_length)
        report["speed"] = _speed(float_model, qmodel, tokenizer, texts, max_length)
    if out_dir is not None:
        marker = {"kind": "dynamic_int8", "engine": engine, "dtype": "qint8", "weights_per_channel": True}
        save_model_dir(out_dir, report, lambda d: save_quantized(qmodel, tokenizer, d, marker))
    return qmodel, report


# ------------------------------------------------------------------------------------------------ static
def select_by_sensitivity(sensitivity: dict[str, float], weights: dict[str, int], target_fraction: float) -> list:
    """Layers to quantize so that >= ``target_fraction`` of the weights are int8, sparing sensitive ones.

    Walking from the most sensitive layer down, a layer stays float when it still fits in the float budget
    ((1 - target_fraction) of all Linear weights); all others are quantized. Plain "least sensitive first
    until the target is reached" would, with equal-sized layers just over the budget (MiniLM: one FFN
    matrix is 5.5% of the weights), quantize everything; this way the most sensitive layers that fit in
    the budget stay float and the quantized share is still >= target_fraction.
    """
    if set(sensitivity) != set(weights):
        raise ValueError("select_by_sensitivity: sensitivity and weights must name the same layers")
    total = sum(weights.values())
    budget, spent, keep_float = (1 - target_fraction) * total, 0, set()
    for name in sorted(weights, key=lambda n: (-sensitivity[n], n)):
        if spent + weights[name] <= budget:
            keep_float.add(name)
            spent += weights[name]
    return [n for n in weights if n not in keep_float]


def _check_static_args(model, texts, target_fraction, sensitivity_texts, gelu_layers):
    """quantize_static_int8's argument checks; returns the Linear layer names, the GELU-fed ones, the texts."""
    linears = check_quantizable(model, "quantize_static_int8")
    texts = check_texts(texts, "quantize_static_int8 (calibration)")
    if isinstance(target_fraction, bool) or not 0 < target_fraction <= 1:
        raise ValueError(f"quantize_static_int8: target_fraction must lie in (0, 1], got {target_fraction!r}")
    if sensitivity_texts <= 0:
        raise ValueError(f"quantize_static_int8: sensitivity_texts must be positive, got {sensitivity_texts}")
    names = list(linears)
    gelu = gelu_input_layers(model, names) if gelu_layers is None else list(gelu_layers)
    unknown = sorted(set(gelu) - set(names))
    if unknown:
        raise ValueError(f"quantize_static_int8: gelu_layers are not Linear layers of the model: {unknown}")
    return names, gelu, texts


def _calibrated_layers(float_model, linears, gelu, engine, tokenizer, texts, batch_size, max_length) -> dict:
    """1. Calibrate: every Linear wrapped with observers at once, then converted to int8 (by name).

    Observers pass values through unchanged, so each layer sees exactly the inputs it sees in the float
    model; the wrappers go into a copy, ``float_model`` itself stays float."""
    calibrated = copy.deepcopy(float_model)
    wrappers = {n: _prepared_wrapper(layer, engine, n in gelu) for n, layer in linears.items()}
    for name, wrapper in wrappers.items():
        _set_module(calibrated, name, wrapper)
    with torch.no_grad():
        for batch in batched_inputs(tokenizer, texts, batch_size, max_length, "cpu"):
            calibrated(**batch)
    with _quiet():
        return {n: convert(w, inplace=False) for n, w in wrappers.items()}


def _layer_sensitivity(float_model, converted: dict, probe: list) -> tuple[dict, bool]:
    """2. Sensitivity: the float model with ONLY one layer quantized, against the float model.

    Returns {layer: divergence} and whether the model has logits (KL on logits, else MSE on hidden states)."""
    reference = _outputs(float_model, probe)
    with torch.no_grad():
        has_logits = getattr(float_model(**probe[0]), "logits", None) is not None
    sensitivity = {}
    for name, layer in converted.items():
        original = _set_module(float_model, name, layer)
        try:
            sensitivity[name] = _divergence(reference, _outputs(float_model, probe), probe, has_logits)
        finally:
            _set_module(float_model, name, original)
    return sensitivity, has_logits


def quantize_static_int8(
    model: nn.Module,
    tokenizer,
    texts: list[str],
    out_dir: str | Path | None = None,
    *,
    target_fraction: float = 0.95,
    sensitivity_texts: int = 32,
    batch_size: int = 16,
    max_length: int = 128,
    gelu_layers: list[str] | None = None,
) -> tuple[nn.Module, dict]:
    """Static int8 for the least sensitive Linear layers covering ``target_fraction`` of Linear weights.

    ``texts``: plain corpus text for calibration (not task data); the first ``sensitivity_texts`` of
    them also rank the layers. ``gelu_layers``: Linear layers reading a GELU output (default: detected).
    """
    names, gelu, texts = _check_static_args(model, texts, target_fraction, sensitivity_texts, gelu_layers)
    start = time.perf_counter()
    engine = quantized_engine()
    float_model = copy.deepcopy(model).cpu().eval()  # int8 kernels are CPU-only; the caller's model stays put
    linears = {n: float_model.get_submodule(n) for n in names}
    converted = _calibrated_layers(float_model, linears, gelu, engine, tokenizer, texts, batch_size, max_length)
    probe = list(batched_inputs(tokenizer, texts[:sensitivity_texts], batch_size, max_length, "cpu"))
    sensitivity, has_logits = _layer_sensitivity(float_model, converted, probe)

    # 3. Quantize all but the most sensitive layers that fit in the (1 - target_fraction) float budget.
    weights = {n: linears[n].weight.numel() for n in names}
    chosen = select_by_sensitivity(sensitivity, weights, target_fraction)
    covered, total = sum(weights[n] for n in chosen), sum(weights.values())
    qmodel = copy.deepcopy(float_model)
    for name in chosen:
        _set_module(qmodel, name, converted[name])

    report = {
        "method": "static_int8",
        "engine": engine,
        "target_fraction": target_fraction,
        "fraction_quantized": covered / total,
        "layers_quantized": len(chosen),
        "layers_total": len(names),
        "quantized_layers": chosen,
        "float_layers": [n for n in names if n not in chosen],
        "gelu_floor_layers": [n for n in gelu if n in chosen],
        "gelu_min": GELU_MIN,
        "sensitivity": {n: sensitivity[n] for n in names},
        "sensitivity_measure": "kl_logits" if has_logits else "mse_last_hidden_state",
        "calibration_texts": len(texts),
        "size_mb_float": disk_size_mb(float_model),
        "size_mb_int8": disk_size_mb(qmodel),
        "output_change": output_change(float_model, qmodel, tokenizer, texts[:sensitivity_texts], max_length),
        "speed": _speed(float_model, qmodel, tokenizer, texts, max_length),
        "seconds": time.perf_counter() - start,
        "versions": versions(),
    }
    if out_dir is not None:
        marker = {"kind": "static_int8", "engine": engine, "quantized_layers": report["quantized_layers"]}
        save_model_dir(out_dir, report, lambda d: save_quantized(qmodel, tokenizer, d, marker))
    return qmodel, report
