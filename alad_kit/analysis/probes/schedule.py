"""How every layer probe picks its learning rate and step on validation (the token probe and the head probe).

Each rate in ``settings.lrs`` trains ``settings.steps`` steps, scored every ``eval_every``; a rate whose best
score is at its last step trains on, ``steps`` at a time, up to ``max_steps``. The best (lr, step) is kept;
``under_trained`` says it was still improving when ``max_steps`` ended it (its score is a lower bound)."""

from __future__ import annotations

import torch


def fit_over_lrs(settings, start) -> dict:
    """``start(lr) -> (train_step(step), validation_score())`` builds one probe (after the seed is set).

    Returns ``{"score", "lr", "step", "under_trained", "curve": {lr: [(step, score), ...]}}``."""
    best, curves, caps = {"score": -1.0}, {}, {}
    for lr in settings.lrs:
        torch.manual_seed(settings.seed)
        train_step, validation_score = start(lr)
        curve, cap, step, lr_best = [], settings.steps, 0, (-1.0, 0)
        while step < cap:
            step += 1
            train_step(step)
            if step % settings.eval_every == 0 or step == cap:
                score = float(validation_score())
                curve.append((step, score))
                lr_best = max(lr_best, (score, -step))
                if score > best["score"]:
                    best = {"score": score, "lr": lr, "step": step}
                if step == cap and -lr_best[1] == cap:  # still improving at the last step: train on
                    cap = min(cap + settings.steps, settings.max_steps)
        curves[str(lr)], caps[lr] = curve, cap
    best["under_trained"] = best["step"] == caps[best["lr"]]
    return {**best, "curve": curves}
