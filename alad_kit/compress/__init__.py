"""Compression methods that turn M_L into a smaller M_C, and one entry point for the CLI.

=================  ======================================================  ==========================
method             what it does                                            module
=================  ======================================================  ==========================
``asc``            drop layers whose output barely differs (ASC)           :mod:`.asc`
``keep_layers``    keep the encoder layers you name                        ``alad_kit.models.zoo.keep_layers``
``l1``             zero the smallest Linear weights (global magnitude)     :mod:`.prune`
``dynamic_int8``   int8 weights, per-batch int8 activations                :mod:`.quantize`
``static_int8``    calibrated int8 for the least sensitive Linear layers   :mod:`.quantize`
``distill``        train a smaller student on plain text (TinyBERT style)  :mod:`.distill`
=================  ======================================================  ==========================

Every method returns ``(model, report)`` and, given ``out_dir``, writes the model, its tokenizer and
``compression_report.json`` all at once (temporary directory + rename). Int8 models are not
``save_pretrained``-able: :mod:`.quant_io` saves them with an ``alad_student.json`` marker and loads them.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from alad_kit.core.io import write_json_atomic
from alad_kit.models.quant_io import load_quantized, save_quantized
from alad_kit.models.zoo import register_zoo_loaders

from ._io import REPORT_NAME
from .asc import asc_prune, layer_similarity, select_layers_asc, threshold_for_n_layers
from .distill import DistillConfig, distill_encoder, distill_task, make_student, save_student
from .prune import l1_prune, linear_sparsity
from .quantize import GELU_MIN, quantize_dynamic_int8, quantize_static_int8, select_by_sensitivity

_COMMON = {"texts", "corpus", "max_texts", "cache_dir", "device"}
_STUDENT = {"layers", "hidden_size", "intermediate_size", "num_attention_heads"}
OPTIONS = {
    "asc": {"threshold", "target_layers", "batch_size", "max_length"},
    "keep_layers": {"layers"},
    "l1": {"fraction"},
    "dynamic_int8": {"max_length"},
    "static_int8": {"target_fraction", "sensitivity_texts", "batch_size", "max_length", "gelu_layers"},
    "distill": _STUDENT | {f.name for f in fields(DistillConfig)},
}
METHODS = tuple(OPTIONS)
_NEEDS_TEXT = {"asc", "static_int8", "distill"}  # dynamic_int8 uses text only to measure the output change


def _texts(method: str, options: dict) -> list[str] | None:
    texts, corpus, max_texts = options.pop("texts", None), options.pop("corpus", None), options.pop("max_texts", None)
    if texts is not None:
        return list(texts)[:max_texts]
    if corpus is None and method not in _NEEDS_TEXT:
        return None
    # Default: $ALAD_DATA_DIR/corpus_en_wiki -- plain text, never task data.
    from alad_kit.data import load_corpus

    return list(load_corpus(corpus, max_lines=max_texts)["text"])


def _keep_layers(model, tokenizer, layers, out_dir) -> tuple:
    from alad_kit.core.io import versions
    from alad_kit.models.cost import count_params
    from alad_kit.models.zoo import keep_layers

    from ._io import save_hf, save_model_dir

    if not layers:
        raise ValueError("compress: keep_layers needs layers=[...] (0-based encoder layers)")
    kept = keep_layers(model, list(layers))
    report = {"method": "keep_layers", "kept_layers": list(layers), "num_layers_original":
              int(model.config.num_hidden_layers), "params_original": count_params(model),
              "params": count_params(kept), "params_pct": 100.0 * count_params(kept) / count_params(model),
              "versions": versions()}
    save_model_dir(out_dir, report, lambda d: save_hf(kept, tokenizer, d))
    return kept, report


def compress(method: str, model_name: str, out_dir: str | Path, **options) -> dict:
    """Load ``model_name`` (alias, directory or hub id), compress it with ``method``, save to ``out_dir``.

    Text for asc / static_int8 / distill: ``texts=[...]`` or ``corpus=PATH`` (default: the corpus under
    ``$ALAD_DATA_DIR``), first ``max_texts`` lines. Other options are the method's own (see ``OPTIONS``).
    Writes ``out_dir/compression_report.json`` and returns the report.
    """
    method = str(method).replace("-", "_")  # the CLI spells them dynamic-int8, keep-layers, ...
    if method not in OPTIONS:
        raise ValueError(f"compress: unknown method {method!r}; choose one of {', '.join(METHODS)}")
    unknown = sorted(set(options) - OPTIONS[method] - _COMMON)
    if unknown:
        allowed = ", ".join(sorted(OPTIONS[method] | _COMMON))
        raise ValueError(f"compress: option(s) {unknown} do not apply to {method!r}; allowed: {allowed}")
    options = dict(options)
    recorded = {k: v for k, v in options.items() if k != "texts"}
    texts = _texts(method, options)
    device = options.pop("device", None)
    from alad_kit.models.zoo import load_encoder

    model, tokenizer = load_encoder(model_name, cache_dir=options.pop("cache_dir", None), device=device)
    if method == "asc":
        _, report = asc_prune(model, tokenizer, texts, out_dir=out_dir, **options)
    elif method == "keep_layers":
        _, report = _keep_layers(model, tokenizer, options.get("layers"), out_dir)
    elif method == "l1":
        if "fraction" not in options:
            raise ValueError("compress: l1 needs fraction=...")
        _, report = l1_prune(model, options["fraction"], out_dir, tokenizer)
    elif method == "dynamic_int8":
        _, report = quantize_dynamic_int8(model.cpu(), out_dir, tokenizer, texts=texts, **options)
    elif method == "static_int8":
        _, report = quantize_static_int8(model.cpu(), tokenizer, texts, out_dir, **options)
    else:
        student_options = {k: options.pop(k) for k in list(options) if k in _STUDENT}
        if "layer_map" in options and options["layer_map"] is not None:
            options["layer_map"] = tuple(options["layer_map"])
        student = make_student(model, **student_options)
        _, report = distill_encoder(model, student, tokenizer, texts, DistillConfig(**options), out_dir)
    from alad_kit.models.cost import disk_size_mb

    report.update(model_name=str(model_name), options=recorded, out_dir=str(out_dir),
                  disk_mb=disk_size_mb(out_dir), n_texts=len(texts) if texts is not None else 0)
    write_json_atomic(Path(out_dir) / REPORT_NAME, report)
    return report


__all__ = [
    "DistillConfig", "GELU_MIN", "METHODS", "OPTIONS", "asc_prune", "compress", "distill_encoder", "distill_task",
    "l1_prune", "layer_similarity", "linear_sparsity", "load_quantized", "make_student", "quantize_dynamic_int8",
    "quantize_static_int8", "register_zoo_loaders", "save_quantized", "save_student", "select_by_sensitivity",
    "select_layers_asc", "threshold_for_n_layers",
]
