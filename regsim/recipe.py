"""The two transformer recipes side by side, numpy only (the Recipe panel draws from it, no torch).

    LLaMA (Touvron et al. 2023):     AdamW λ = 0.1, β = (0.9, 0.95), warm-up + cosine to 10 %, clip 1.0,
                                     no dropout, no label smoothing
    original (Vaswani et al. 2017):  dropout 0.1 (embedding, attention weights, every sub-layer
                                     output), label smoothing 0.1, no weight decay

`lr_curve` is the schedule of regsim.optim.lr_at evaluated on many steps at once, for drawing the
whole schedule with the current step on it (tests check it equals lr_at at every step).
"""

from __future__ import annotations

import numpy as np

from .hparams import HParams

PRESETS = ("transformer_llama", "transformer_original")  # the comparison's two runs


def lr_curve(h: HParams, steps: np.ndarray) -> np.ndarray:
    """η_t for each 0-based optimizer step in `steps`: constant η, or warm-up η·(t+1)/T_w for
    t < T_w, then η·(r + (1 − r)·½(1 + cos πs)), s = min(1, (t − T_w)/(T − T_w)), r = min_lr_ratio."""
    t = np.asarray(steps, dtype=np.float64)
    if h.schedule == "constant":
        return np.full(t.shape, h.lr)
    warm = h.lr * (t + 1) / max(1, h.warmup_steps)
    s = np.clip((t - h.warmup_steps) / max(1, h.total_steps - h.warmup_steps), 0.0, 1.0)
    r = h.min_lr_ratio
    cos = h.lr * (r + (1 - r) * 0.5 * (1 + np.cos(np.pi * s)))
    return np.where(t < h.warmup_steps, warm, cos)


def recipe_rows(h: HParams) -> list[tuple[str, str]]:
    """What a recipe sets, in the reference table's words: (hyperparameter, value)."""
    sites = (h.embd_dropout, h.attn_dropout, h.resid_dropout, h.ffn_dropout)
    drop = "0" if not any(sites) else "embd {:g} · attn {:g} · resid {:g} · ffn {:g}".format(*sites)
    if h.architecture != "transformer":  # an MLP's hidden and input rates
        drop = f"hidden {h.dropout:g}, input {h.input_dropout:g}"
    adam = "Adam" if h.weight_decay == 0 else "AdamW" if h.decay_mode != "l2" else "Adam + L2"
    opt = {"adam": adam, "momentum": "SGD + momentum", "sgd": "SGD"}[h.optimizer]  # λ = 0: plain Adam
    sched = ("constant" if h.schedule == "constant" else
             f"warm-up {h.warmup_steps} + cosine to {h.min_lr_ratio:.0%} at {h.total_steps}")
    return [("optimizer", f"{opt}, lr {h.lr:g}, β = ({h.betas[0]:g}, {h.betas[1]:g})"),
            ("weight decay λ", f"{h.weight_decay:g}"
             + ("" if h.decay_embeddings else " (embeddings not decayed)")),
            ("schedule", sched), ("gradient clipping", f"{h.grad_clip:g}" if h.grad_clip else "off"),
            ("dropout", drop), ("label smoothing", f"{h.label_smoothing:g}")]
