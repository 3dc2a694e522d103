"""Score a deployed model on any data the loaders read: ``alad evaluate MODEL --data PATH [--split test]``.

A single file is scored whole; a folder is split by the loaders' rules (``alad_kit.data``) and ``split``
picks one. The evaluation is the run's own (``Task.evaluate``: same features, max length, batch size and
precision), so on the run's test split -- ``sample="run"`` takes the same seeded subsample the run's scale
took -- it reproduces ``metrics.json["scores"]`` exactly. Gold labels the model does not know are counted and
reported; those words count as errors (the model cannot predict them), so cross-domain data still scores.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

from alad_kit.core.precision import autocast
from alad_kit.models.model import AladModel
from alad_kit.tasks import get_task


def load_split(task: str, data: str | Path, split: str = "test"):
    """The examples to score: the task's own reading of ``data`` (``Task.load_eval``: a whole file, or
    ``split`` of a folder)."""
    return get_task(task).load_eval(data, split)


def unknown_labels(task: str, examples, labels) -> Counter:
    """Gold tags the model has no output for, with their counts (``Task.unknown_labels``)."""
    return get_task(task).unknown_labels(examples, labels)


def evaluate_model(model: str | Path | AladModel, data, split: str = "test", sample: int | str | None = None,
                   device: str = "cpu", batch_size: int | None = None, max_length: int | None = None,
                   adapter_precision: str | None = None) -> dict:
    """``{"scores", "examples", "unknown_labels", "source"}`` of ``model`` on ``data`` (a path, or a Dataset).

    ``sample``: None scores every example; an int takes that many after the run's fixed shuffle; "run" takes
    the run's own test subsample size (stored in the model folder). ``adapter_precision`` overrides the
    folder's (an int8 student's run was scored with the fp32 adapter: pass "fp32" to reproduce it).
    """
    from alad_kit.data.task_data import subsample

    if not isinstance(model, AladModel):
        model = AladModel.from_pretrained(str(model), device=device, adapter_precision=adapter_precision)
    config = model.deploy_config
    examples = data if hasattr(data, "column_names") else load_split(config.task, data, split)
    n = config.test_examples if sample == "run" else sample
    examples = subsample(examples, n, seed=config.data_seed)
    if len(examples) == 0:
        raise ValueError(f"{data}: nothing to score (the {split} split is empty)")
    task, labels = get_task(config.task), list(config.labels) if config.labels else None
    unknown = unknown_labels(config.task, examples, labels)
    if unknown:
        total = sum(len(tags) if isinstance(tags, list) else 1 for tags in examples[task.label_field])
        warnings.warn(f"{data}: {sum(unknown.values())} of {total} gold tags carry {len(unknown)} label(s) the "
                      f"model does not know ({dict(unknown.most_common())}); they count as errors", stacklevel=2)
    # Unknown gold tags need an id for the features only (never for the head): append them after the known.
    feature_labels = None if labels is None else labels + sorted(unknown)
    features = task.features(examples, model.tokenizer, feature_labels, max_length=max_length or config.max_length,
                             doc_stride=config.doc_stride)
    pad = model.tokenizer.pad_token_id or 0
    with autocast(config.precision, device):
        scores = task.evaluate(model, examples, features, batch_size or config.eval_batch_size, device, labels, pad)
    return {"scores": scores, "examples": len(examples), "unknown_labels": dict(unknown), "source": str(data)}
