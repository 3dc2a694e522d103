"""The README.md of a deployed model folder: hub metadata (YAML) plus the run's scores, sizes, data, command."""

from __future__ import annotations

import json

from alad_kit.core.config import TASKS


def model_card(config) -> str:
    """Model card text for a :class:`alad_kit.models.deploy.DeployConfig` (its ``run`` dict fills the tables)."""
    from huggingface_hub import ModelCardData

    run, task = config.run or {}, TASKS.get(config.task)  # the task's spec: pipeline tag, description, inputs
    data = ModelCardData(library_name="alad_kit", pipeline_tag=task.pipeline_tag,
                         tags=["alad", "alignment-adapter", config.task, config.mode])
    adapter = f"an ALAd adapter (window {config.window})" if config.window else "no adapter"
    lines = [
        "---", data.to_yaml(), "---", "",
        f"# {config.student} + ALAd: {task.description}", "",
        f"Compressed encoder `{config.student}`"
        + (f" (layers {', '.join(map(str, config.student_layers))})" if config.student_layers else "")
        + f" with {adapter} aligned to `{config.teacher}`"
        + (f" (hidden state {layer})" if (layer := (config.run or {}).get("teacher_layer")) and config.window else "")
        + f", phase-3 mode `{config.mode}`"
        + (" with LoRA" if config.lora else "") + f"; written by alad_kit {config.alad_kit_version}.",
        "", "## Use", "", "```python", "from alad_kit.pipeline.predict import AladPipeline", "",
        'tagger = AladPipeline("path/or/hub-id")',
        'print(tagger(question="...", context="..."))' if task.pairs else 'print(tagger("Some text."))',
        "```", "", "```bash", "alad predict MODEL " + ('--question "..." --context "..."' if task.pairs
                                                      else '"Some text."'),
        "alad evaluate MODEL --data PATH --split test", "alad export MODEL --format onnx --out model.onnx", "```",
    ]
    lines += _scores_section(run) + _size_section(run) + _data_section(config, run)
    if config.adapter_precision != "fp32":
        lines += ["", f"The adapter is deployed in {config.adapter_precision} (it follows the int8 student); the "
                  "test scores were measured with the float32 adapter, which "
                  "`alad evaluate MODEL --adapter-precision fp32 ...` reproduces."]
    if run.get("command"):
        lines += ["", "## Command", "", "```bash", run["command"], "```"]
    return "\n".join(lines) + "\n"


def _scores_section(run: dict) -> list[str]:
    scores = run.get("scores") or {}
    flat = {k: v for k, v in scores.items() if isinstance(v, (int, float))}
    if not flat:
        return []
    rows = [f"| {name} | {value:.4f} |" for name, value in flat.items()]
    return ["", "## Test scores", "", "| metric | value |", "|---|---|", *rows]


def _size_section(run: dict) -> list[str]:
    params = run.get("params") or {}
    if not params:
        return []
    deployed, reference = params.get("deployed"), params.get("teacher_reference")
    out = ["", "## Size", "", f"- deployed parameters (student + adapter + head): {deployed:,}"]
    if reference:
        out.append(f"- teacher + head: {reference:,} ({run.get('size_pct', 100 * deployed / reference):.1f} %)")
    out.append(f"- float32 weights: {4 * deployed / 1e6:.1f} MB")
    return out


def _data_section(config, run: dict) -> list[str]:
    out = ["", "## Data", ""]
    if run.get("data_dir"):
        out.append(f"- source: `{run['data_dir']}`")
    if run.get("data"):
        out.append(f"- examples per split: `{json.dumps(run['data'])}`")
    if run.get("scale"):
        out.append(f"- scale: `{run['scale']}` (test subsample: {config.test_examples or 'whole split'}), "
                   f"seed {run.get('seed', 0)}")
    out.append(f"- max length: {config.max_length} tokens" + (f", doc stride {config.doc_stride}"
                                                                if config.doc_stride else ""))
    return out
