"""Which layer of an encoder knows the task best: a frozen linear probe on every hidden state.

Any other task (QA's answer spans, a plug-in task) is probed with its own head on each hidden state, scored by
the task itself: :mod:`.head_probe`.

For a token task (POS, NER) every word is read at its first sub-word in hidden state ``l`` = 0 (embeddings) ...
L (last layer) of each model. A linear softmax probe per layer

    logits = W · standardise(h_l(word)) + b          W: (classes, D), trained with AdamW, full batch

is trained on the train split and scored on the **validation** split only (the test split is never read).
Learning rate and step are chosen on validation: every learning rate in ``lrs`` is trained for ``steps``
full-batch steps (longer, up to ``max_steps``, while its score still rises at the last step) and scored every
``eval_every`` steps, and the best (lr, step) is kept. A probe whose best step is the last one even after
``max_steps`` was still improving: ``under_trained`` says so, and its score is a lower bound.

Features are computed once per (model, sentences, max_length) and cached as safetensors (bf16 where the
hardware computes in bf16, else fp16), so trying other probe settings costs no encoder pass.
Scores use the task's own metric (seqeval F1 for NER, the POS scorer, SQuAD 2.0 F1 for QA), the same as
``alad run`` reports.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from alad_kit.core.io import atomic_path, write_json_atomic
from alad_kit.core.precision import autocast, native_bf16
from alad_kit.tasks import metrics
from alad_kit.tasks.specs import TokenTask, get_task

from .embed import _first_subwords  # each word's first sub-word, as every probe reads it
from .head_probe import probe_model_heads
from .schedule import fit_over_lrs

SCHEMA = "alad-probe-layers/1"


@dataclass(frozen=True)
class ProbeSettings:
    train_sentences: int = 2000  # training sentences (QA: questions) of the probe, first n after the fixed shuffle
    eval_sentences: int = 1000  # validation sentences (QA: questions) it is scored on
    max_length: int = 128  # tokens per sentence; cut words: left out of training, scored as the fallback tag
    lrs: tuple[float, ...] = (1e-2, 3e-2, 1e-1)  # AdamW learning rates tried; the best on validation is kept
    steps: int = 150  # full-batch steps per learning rate
    max_steps: int = 600  # a learning rate still improving at its last step trains on, up to this many steps
    eval_every: int = 25  # validation scoring interval (the kept step is a multiple of it)
    batch_size: int = 32  # sentences per encoder pass (and windows per step of a head probe)
    seed: int = 0  # probe initialisation

    def __post_init__(self):
        if min(self.train_sentences, self.eval_sentences, self.max_length, self.steps, self.eval_every,
               self.batch_size) < 1:
            raise ValueError("ProbeSettings: sentences, max_length, steps, eval_every and batch_size must be >= 1")
        if self.max_steps < self.steps:
            raise ValueError(f"ProbeSettings: max_steps ({self.max_steps}) must be >= steps ({self.steps})")
        if not self.lrs or min(self.lrs) <= 0:
            raise ValueError(f"ProbeSettings: lrs must be positive, got {self.lrs}")


# ------------------------------------------------------------------------------------------- features
def layer_features(encoder, tokenizer, sentences: Sequence[Sequence[str]], max_length: int = 128,
                   batch_size: int = 32) -> tuple[torch.Tensor, list[int]]:
    """``(hidden (L+1, N_words, D), words kept per sentence)``: every hidden state at each word's first sub-word.

    Words cut off by ``max_length`` are dropped (a sentence keeps its first ``k`` words)."""
    device = next(encoder.parameters()).device
    precision = "bf16" if native_bf16(device) else "fp32"
    store = torch.bfloat16 if precision == "bf16" else torch.float16
    chunks, kept = [], []
    encoder.eval()
    with torch.inference_mode(), autocast(precision, device):
        for lo in range(0, len(sentences), batch_size):
            batch = [list(s) for s in sentences[lo:lo + batch_size]]
            enc = tokenizer(batch, is_split_into_words=True, truncation=True, max_length=max_length,
                            padding=True, return_tensors="pt")
            states = encoder(**{k: v.to(device) for k, v in enc.items()}, output_hidden_states=True).hidden_states
            stacked = torch.stack(states, dim=0)  # (L+1, B, T, D)
            for b in range(len(batch)):
                first = _first_subwords(enc.word_ids(b))
                kept.append(len(first))
                chunks.append(stacked[:, b, first].to(store).cpu())  # (L+1, k_b, D)
    return torch.cat(chunks, dim=1), kept


def features_key(encoder, sentences: Sequence[Sequence[str]], max_length: int) -> str:
    """Cache key: the model's computation (config and every tensor) and the exact words read."""
    from alad_kit.training.cache import model_fingerprint

    h = hashlib.sha256(model_fingerprint(encoder).encode())
    h.update(json.dumps([list(s) for s in sentences], ensure_ascii=False).encode())
    h.update(str(max_length).encode())
    return h.hexdigest()[:20]


def cached_features(cache_dir: Path | None, encoder, tokenizer, sentences, settings: ProbeSettings):
    """:func:`layer_features`, read from ``cache_dir/<key>.safetensors`` when an earlier call wrote it."""
    from safetensors.torch import load_file, save_file

    if cache_dir is None:
        return layer_features(encoder, tokenizer, sentences, settings.max_length, settings.batch_size)
    path = Path(cache_dir) / f"{features_key(encoder, sentences, settings.max_length)}.safetensors"
    if path.is_file():
        tensors = load_file(str(path))
        return tensors["hidden"], tensors["kept"].tolist()
    hidden, kept = layer_features(encoder, tokenizer, sentences, settings.max_length, settings.batch_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({"hidden": hidden.contiguous(), "kept": torch.tensor(kept, dtype=torch.int64)}, str(tmp))
    return hidden, kept


# ------------------------------------------------------------------------------------------- the probe
def train_probe(x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, n_classes: int,
                score_val, settings: ProbeSettings) -> dict:
    """Fit one linear probe per learning rate; ``score_val(pred ids) -> float`` picks the best (lr, step).

    Returns ``{"score", "lr", "step", "under_trained", "curve": {lr: [(step, score), ...]}}``."""
    mean, std = x_train.mean(0), x_train.std(0).clamp(min=1e-6)
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std  # standardised: one lr grid fits every layer
    precision = "bf16" if native_bf16("cpu") else "fp32"  # the matmuls in bf16 where the CPU has it (~2x faster)

    def start(lr):
        probe = torch.nn.Linear(x_train.shape[1], n_classes)
        opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=0.0)

        def train_step(step):  # full batch
            with autocast(precision, "cpu"):
                logits = probe(x_train)
            loss = torch.nn.functional.cross_entropy(logits.float(), y_train)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        def validation_score():
            with torch.no_grad(), autocast(precision, "cpu"):
                return score_val(probe(x_val).argmax(-1))

        return train_step, validation_score

    return fit_over_lrs(settings, start)


# ------------------------------------------------------------------------------------------- a model
def probe_model(encoder, tokenizer, task: TokenTask, train, validation, labels: list[str],
                settings: ProbeSettings, cache_dir: Path | None = None, log=None) -> list[dict]:
    """One entry per hidden state of ``encoder``: the validation score of its best linear probe."""
    label_id = {label: i for i, label in enumerate(labels)}
    sides = {}
    for name, split in (("train", train), ("validation", validation)):
        words = [list(w) for w in split["tokens"]]
        hidden, kept = cached_features(cache_dir, encoder, tokenizer, words, settings)
        gold = [list(tags)[:k] for tags, k in zip(split[task.label_field], kept)]
        sides[name] = (hidden, kept, gold, [list(tags) for tags in split[task.label_field]])
    _, _, train_gold, _ = sides["train"]
    y_train = torch.tensor([label_id[t] for tags in train_gold for t in tags], dtype=torch.long)
    v_hidden, v_kept, _, v_full = sides["validation"]

    def score_val(pred_ids: torch.Tensor) -> float:
        pred, at = [], 0
        for k, tags in zip(v_kept, v_full):  # cut words count as the fallback label, as in alad run
            words = [labels[int(i)] for i in pred_ids[at:at + k]]
            pred.append(words + [task.fallback_label] * (len(tags) - k))
            at += k
        return metrics.score(task.name, v_full, pred)[task.selection_metric]

    out = []
    for layer in range(sides["train"][0].shape[0]):
        fit = train_probe(sides["train"][0][layer].float(), y_train, v_hidden[layer].float(), len(labels),
                          score_val, settings)
        out.append({"layer": layer, **fit})
        if log is not None:
            log(f"  hidden state {layer}: {100 * fit['score']:.1f} (lr {fit['lr']}, step {fit['step']}"
                + (", still improving at the last step" if fit["under_trained"] else "") + ")")
    return out


def probe_layers(task: str, models: Sequence[str], data_dir: str | None, settings: ProbeSettings = ProbeSettings(),
                 out: str | Path | None = None, cache_dir: str | Path | None = None,
                 model_cache_dir: str | None = None, device: str | None = None, log=print) -> dict:
    """Probe every hidden state of every model in ``models`` (names as for ``alad bench``: ``NAME`` or
    ``NAME:0,1``) on ``task``; writes ``probe_layers.json`` and ``probe_layers.html`` under ``out``."""
    from alad_kit.analysis.bench import _load_student
    from alad_kit.core.config import scale_config
    from alad_kit.data.task_data import load_task_data, subsample

    spec = get_task(task)
    splits, labels = load_task_data(spec, data_dir, scale_config("full"))
    train = subsample(splits["train"], settings.train_sentences)
    validation = subsample(splits["validation"], settings.eval_sentences)
    result = {"schema": SCHEMA, "task": task, "metric": spec.selection_metric, "split": "validation",
              "settings": {k: getattr(settings, k) for k in settings.__dataclass_fields__},
              "sentences": {"train": len(train), "validation": len(validation)}, "models": {}}
    for name in models:
        log(f"alad probe-layers: {name}: features of {len(train)} + {len(validation)} sentences, then one probe "
            f"per hidden state")
        encoder, tokenizer = _load_student(name, cache_dir=model_cache_dir)
        if device is not None:
            encoder = encoder.to(device)
        if isinstance(spec, TokenTask):  # one label per word: the fast full-batch softmax on first sub-words
            layers = probe_model(encoder, tokenizer, spec, train, validation, labels, settings,
                                 Path(cache_dir) if cache_dir else None, log)
        else:  # spans or any plug-in task: its own head on each hidden state (QA: a start/end span probe)
            layers = probe_model_heads(encoder, tokenizer, spec, train, validation, labels, settings, log)
        best = max(layers, key=lambda e: e["score"])
        result["models"][name] = {"layers": layers, "best_layer": best["layer"], "best_score": best["score"],
                                  "last_layer_score": layers[-1]["score"]}
        log("  " + "  ".join(f"{e['layer']}: {100 * e['score']:.1f}" for e in layers))
    if out is not None:
        out = Path(out)
        write_json_atomic(out / "probe_layers.json", result, allow_nan=False)
        layer_figure(result).write_html(str(out / "probe_layers.html"), include_plotlyjs="cdn")
    return result


def best_layer(probe_json: str | Path | dict, model: str) -> int:
    """The hidden state with the best validation score for ``model`` in a ``probe_layers.json``."""
    data = probe_json if isinstance(probe_json, dict) else json.loads(Path(probe_json).read_text())
    if model not in data.get("models", {}):
        raise ValueError(f"{probe_json}: no probe of model {model!r} (found {sorted(data.get('models', {}))})")
    return int(data["models"][model]["best_layer"])


def layer_figure(result: dict):
    """Validation score against hidden state, one line per model (x100), best layer marked."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, entry in result["models"].items():
        xs = [e["layer"] for e in entry["layers"]]
        ys = [100 * e["score"] for e in entry["layers"]]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=name))
        fig.add_trace(go.Scatter(x=[entry["best_layer"]], y=[100 * entry["best_score"]], mode="markers",
                                 marker={"size": 14, "symbol": "star"}, name=f"{name}: best layer",
                                 showlegend=False))
    fig.update_layout(title=f"Linear probe per hidden state: {result['task'].upper()} "
                            f"({result['metric']}, validation, x100)",
                      xaxis_title="hidden state (0 = embeddings)", yaxis_title=f"{result['metric']} x100",
                      template="plotly_white", height=420)
    return fig


def read_probe(folder: str | Path) -> dict:
    """``probe_layers.json`` of ``folder`` (or the file itself)."""
    path = Path(folder)
    path = path / "probe_layers.json" if path.is_dir() else path
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read the layer probe ({err}); make it with alad probe-layers") from None


def committed_probe_figure(root: str | Path, task: str):
    """The figure of ``root/<task>/probe_layers.json``, or an empty figure saying there is no probe for ``task``."""
    import plotly.graph_objects as go

    path = Path(root) / task / "probe_layers.json"
    if path.is_file():
        return layer_figure(read_probe(path))
    fig = go.Figure()
    fig.add_annotation(text=f"no layer probe committed for task {task!r} ({path}); "
                            f"make one with alad probe-layers --task {task}", showarrow=False, x=0.5, y=0.5,
                       xref="paper", yref="paper")
    return fig.update_layout(template="plotly_white", height=200, xaxis_visible=False, yaxis_visible=False)
