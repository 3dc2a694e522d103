"""A layer probe for any task: the task's own head, trained on one frozen hidden state, scored by the task.

The token probe of :mod:`.layers` is a full-batch softmax over first sub-words, which fits POS and NER. A task
whose output is not one label per word (QA's answer spans, a plug-in's sentence label) is probed here with
nothing but what its spec already owns::

    features  = spec.features(split, tokenizer, labels, max_length)      # the windows alad run trains on
    h_l       = standardise(hidden state l of the frozen encoder)        # (N, T_i, D), cached once
    head      = spec.make_head(D, labels)                                # linear for every shipped task
    loss      = spec.loss(head(h_l[batch]), batch)                       # minibatch AdamW on train
    score     = spec.evaluate(head on h_l, validation)[spec.selection_metric]

For QA this is a linear start/end span probe scored with the official SQuAD 2.0 algorithm (n-best spans and
the null score), exactly as ``alad run`` scores its span head. Learning rate and step are chosen on the
validation split, as in the token probe: each rate trains ``steps`` minibatch steps (longer, up to
``max_steps``, while still improving) and is scored every ``eval_every`` steps.

Memory: every hidden state of every feature is held once, in bf16 (fp16 without bf16 hardware), i.e. about
``windows x tokens x D x (L + 1) x 2`` bytes; the command logs the figure before it starts.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn

from alad_kit.core.precision import autocast, native_bf16
from alad_kit.tasks.specs import Batcher, collate

from .schedule import fit_over_lrs


@dataclass
class LayerRows:
    """One hidden state of every feature, unpadded; ``padded(indices, width)`` is what a Batcher asks of a
    cache of M_C's hidden states, so the task's collation and evaluation run unchanged on a probe."""

    rows: list[torch.Tensor]  # per feature: (T_i, D), already standardised
    dim: int

    def padded(self, indices, width: int) -> torch.Tensor:
        out = torch.zeros(len(indices), width, self.dim)
        for b, i in enumerate(indices):
            out[b, : self.rows[i].shape[0]] = self.rows[i].float()
        return out  # (B, width, D)


class HeadOnly(nn.Module):
    """The task head on cached features: ``model(batch)`` reads ``batch["student_hidden"]``, as AladModel does
    when M_C is frozen and cached."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, batch: dict) -> torch.Tensor:
        return self.head(batch["student_hidden"], batch.get("attention_mask"))  # (B, T, D) -> (B, T, K)


def encoder_inputs(encoder, batch: dict) -> dict:
    """The tensors of ``batch`` the encoder's forward takes (MPNet has no token_type_ids)."""
    accepted = inspect.signature(encoder.forward).parameters
    return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch and k in accepted}


def all_layer_rows(encoder, features: list[dict], pad_token_id: int, batch_size: int = 32) -> list[list[torch.Tensor]]:
    """``rows[l][i]``: hidden state ``l`` (0 = embeddings) of feature ``i``, unpadded (T_i, D), stored in 16 bits."""
    device = next(encoder.parameters()).device
    precision = "bf16" if native_bf16(device) else "fp32"
    store = torch.bfloat16 if precision == "bf16" else torch.float16
    rows: list[list[torch.Tensor]] = []
    encoder.eval()
    with torch.inference_mode(), autocast(precision, device):
        for lo in range(0, len(features), batch_size):
            chunk = features[lo : lo + batch_size]
            batch = collate(chunk, pad_token_id)
            states = encoder(**{k: v.to(device) for k, v in encoder_inputs(encoder, batch).items()},
                             output_hidden_states=True).hidden_states  # L+1 tensors (B, T, D)
            rows = rows or [[] for _ in states]
            for layer, h in enumerate(states):
                rows[layer] += [h[b, : len(f["input_ids"])].to(store).cpu() for b, f in enumerate(chunk)]
    return rows


def standardised(train_rows: list[torch.Tensor], other_rows: list[torch.Tensor]):
    """Both sides scaled by the train side's per-dimension mean and std (one lr grid then fits every layer)."""
    flat = torch.cat([r.float() for r in train_rows])
    mean, std = flat.mean(0), flat.std(0).clamp(min=1e-6)
    return [((r.float() - mean) / std).to(r.dtype) for r in train_rows], \
        [((r.float() - mean) / std).to(r.dtype) for r in other_rows]


def train_head_probe(spec, labels, train: tuple, validation: tuple, settings, pad_token_id: int) -> dict:
    """Fit the task head on one layer's rows per learning rate; the best (lr, step) on validation is kept.

    ``train`` / ``validation``: ``(features, LayerRows)``; ``validation`` also needs its examples:
    ``(features, LayerRows, examples)``. Returns ``{"score", "lr", "step", "under_trained", "curve"}``."""
    (tr_feats, tr_rows), (va_feats, va_rows, va_examples) = train, validation
    tr_batcher = Batcher(tr_feats, pad_token_id, hidden=tr_rows)
    va_batcher = Batcher(va_feats, pad_token_id, hidden=va_rows)

    def start(lr):
        model = HeadOnly(spec.make_head(tr_rows.dim, labels))
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        order = torch.randperm(len(tr_feats)).tolist()

        def train_step(step):  # one minibatch
            at = ((step - 1) * settings.batch_size) % len(order)
            model.train()
            batch = tr_batcher((order * 2)[at : at + settings.batch_size])  # wraps around the epoch end
            loss = spec.loss(model(batch), batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        def validation_score():
            scores = spec.evaluate(model, va_examples, va_batcher, settings.batch_size, "cpu", labels, pad_token_id)
            return float(scores[spec.selection_metric]) / spec.score_scale  # 0..1, as the token probe

        return train_step, validation_score

    return fit_over_lrs(settings, start)


def probe_model_heads(encoder, tokenizer, spec, train, validation, labels, settings, log=None) -> list[dict]:
    """One entry per hidden state of ``encoder``: the validation score of the task head trained on it."""
    pad = tokenizer.pad_token_id or 0
    # doc_stride: windows of a long text (QA contexts) overlap by a third; token tasks ignore it
    feats = {name: spec.features(split, tokenizer, labels, max_length=settings.max_length,
                                 doc_stride=settings.max_length // 3)
             for name, split in (("train", train), ("validation", validation))}
    tokens = sum(len(f["input_ids"]) for side in feats.values() for f in side)
    dim, n_states = encoder.config.hidden_size, encoder.config.num_hidden_layers + 1
    if log is not None:
        log(f"  {len(feats['train'])} + {len(feats['validation'])} windows, {tokens:,} tokens: "
            f"{tokens * dim * n_states * 2 / 2**30:.1f} GiB of hidden states")
    rows = {name: all_layer_rows(encoder, side, pad, settings.batch_size) for name, side in feats.items()}
    out = []
    for layer in range(n_states):
        tr, va = standardised(rows["train"][layer], rows["validation"][layer])
        fit = train_head_probe(spec, labels, (feats["train"], LayerRows(tr, dim)),
                               (feats["validation"], LayerRows(va, dim), validation), settings, pad)
        out.append({"layer": layer, **fit})
        if log is not None:
            log(f"  hidden state {layer}: {100 * fit['score']:.1f} (lr {fit['lr']}, step {fit['step']}"
                + (", still improving at the last step" if fit["under_trained"] else "") + ")")
    return out
