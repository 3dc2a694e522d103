"""ONNX export of a deployed model: ``alad export MODEL --format onnx --out FILE``.

Inputs ``input_ids`` and ``attention_mask`` (int64, dynamic batch and sequence length); outputs ``logits``
(POS/NER, (B, T, labels)) or ``start_logits`` and ``end_logits`` (QA, (B, T)). A single text has all-zero
``token_type_ids``, so POS/NER graphs fix them inside; a QA graph of a student that reads them (BERT: 0 for
the question, 1 for the context) takes ``token_type_ids`` as a third input. LoRA is merged before
export (one matrix per layer instead of three). The graph is traced on a *padded* batch so the attention
mask path is the one recorded, then checked against PyTorch with onnxruntime on real sentences.

torch's new exporter (``dynamo=True``) needs the onnxscript package; the TorchScript exporter needs nothing
beyond torch, so it is used here.
"""

from __future__ import annotations

import copy
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from alad_kit.core.config import TASKS
from alad_kit.core.io import atomic_path

from .heads import SpanHead
from .model import AladModel

# The parity check and the latency figures read the task's real sentences (Task.sample_inputs).


class OnnxGraph(nn.Module):
    """The forward that is exported: two int64 tensors in, the head's logits out."""

    def __init__(self, model: AladModel):
        super().__init__()
        self.model, self.qa = model, isinstance(model.head, SpanHead)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids=None):
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self.model._encoder_keys:
            batch["token_type_ids"] = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        logits = self.model(batch)
        return tuple(logits.unbind(-1)) if self.qa else logits


def output_names(model: AladModel) -> list[str]:
    return ["start_logits", "end_logits"] if isinstance(model.head, SpanHead) else ["logits"]


def input_names(model: AladModel) -> list[str]:
    pairs = isinstance(model.head, SpanHead) and "token_type_ids" in model._encoder_keys
    return ["input_ids", "attention_mask", *(["token_type_ids"] if pairs else [])]


def export_onnx(model: AladModel, out: str | Path, opset: int = 17) -> Path:
    """Write ``model`` as ONNX to ``out`` (via a temporary file)."""
    from .cost import packed_params

    if packed_params(model.encoder) > 0:
        raise ValueError("ONNX export of a torch.ao int8 student is not supported: export the float student and "
                         "quantize the graph with onnxruntime.quantization.quantize_dynamic")
    if model.deploy_config is not None and model.deploy_config.precision != "fp32":
        warnings.warn("the ONNX graph is float32; the model was evaluated in bf16", stacklevel=2)
    graph = OnnxGraph(_merged(model)).eval()
    sample = _encode(model, sample_texts(model)[:2])  # two lengths: a padded batch is traced
    inputs, names = input_names(model), output_names(model)
    axes = {name: {0: "batch", 1: "sequence"} for name in (*inputs, *names)}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, warnings.catch_warnings():  # the exporter's notices are not for the user
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, tuple(sample[k] for k in inputs), str(tmp), dynamo=False,
                          input_names=inputs, output_names=names, dynamic_axes=axes,
                          opset_version=opset)
    return out


def _merged(model: AladModel) -> AladModel:
    """A copy with LoRA merged into the student (peft), or the model itself without LoRA."""
    if not hasattr(model.encoder, "merge_and_unload"):
        return model
    merged = AladModel(copy.deepcopy(model.encoder).merge_and_unload(), model.adapter, model.head)
    merged.deploy_config, merged.tokenizer = model.deploy_config, model.tokenizer
    return merged.eval()


def sample_texts(model: AladModel) -> list:
    """The task's sample inputs (Task.sample_inputs); without a deploy config, the first registered task's
    whose inputs fit the head (span heads take (question, context) pairs)."""
    if model.deploy_config is not None:
        return list(TASKS.get(model.deploy_config.task).sample_inputs)
    pairs = isinstance(model.head, SpanHead)
    return next(list(t.sample_inputs) for t in map(TASKS.get, TASKS) if t.pairs == pairs)


def _encode(model: AladModel, texts: list) -> dict[str, torch.Tensor]:
    """Tokenizer output for the graph's inputs; QA texts are (question, context) pairs."""
    pairs = isinstance(texts[0], tuple)
    args = ([q for q, _ in texts], [c for _, c in texts]) if pairs else (texts,)
    enc = model.tokenizer(*args, padding=True, truncation=True, max_length=512, return_tensors="pt")
    return {k: enc[k].long() for k in input_names(model)}


def check_onnx(model: AladModel, path: str | Path, texts: list[str] | None = None, repeats: int = 20) -> dict:
    """max |ONNX - PyTorch| over the real tokens of ``texts`` and both latencies (ms per batch of all texts)."""
    import onnxruntime as ort

    texts = texts or sample_texts(model)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    graph = OnnxGraph(model).eval()
    diffs = []
    for batch in ([t] for t in texts), [texts]:  # one text at a time (no padding), then padded together
        for chunk in batch:
            enc = _encode(model, chunk)
            feed = {k: v.numpy() for k, v in enc.items()}
            with torch.no_grad():
                ref = graph(*enc.values())
            ref = [r.numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]
            got = session.run(None, feed)
            mask = feed["attention_mask"].astype(bool)
            diffs += [float(np.abs(g - r)[mask].max()) for g, r in zip(got, ref)]
    enc = _encode(model, texts)
    feed = {k: v.numpy() for k, v in enc.items()}
    with torch.no_grad():
        pt_ms = _timed(lambda: graph(*enc.values()), repeats)
    # Timed apart: onnxruntime's threads spin for a while after each run and would slow PyTorch down.
    ort_ms = _timed(lambda: session.run(None, feed), repeats)
    return {"max_abs_diff": max(diffs), "texts": len(texts), "batch_shape": list(enc["input_ids"].shape),
            # median and best of ``repeats``: on a shared CPU the best is the steadier of the two
            "latency_ms": {"pytorch": statistics.median(pt_ms), "onnxruntime": statistics.median(ort_ms)},
            "best_ms": {"pytorch": min(pt_ms), "onnxruntime": min(ort_ms)},
            "threads": torch.get_num_threads()}


def _timed(fn, repeats: int) -> list[float]:
    """Milliseconds of ``repeats`` calls after one untimed warm-up call (allocations, thread pools)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - t0))
    return times
