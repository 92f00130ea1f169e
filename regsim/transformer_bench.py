"""Bench section "transformer": the transformer preset's steps/s with the answer-position path and
with the full forward, side by side (interleaved windows, ratio of medians), and the two recipes
(LLaMA vs the original Transformer) stepped in lockstep as a Comparison.

Kept out of regsim/bench.py so the shared file gains one line (its SECTIONS entry).
"""

from __future__ import annotations

import statistics
import time

Row = dict  # {"name", "value", "unit", "target", "ok"}


def _rate(trainer, seconds: float) -> float:
    """Steps/s of `trainer.step(1)` over a window of `seconds` (at least 2 steps)."""
    steps, t0 = 0, time.perf_counter()
    while steps < 2 or time.perf_counter() - t0 < seconds:
        trainer.step(1)
        steps += 1
    return steps / (time.perf_counter() - t0)


def bench_transformer(quick: bool, device: str) -> list[Row]:
    from .comparison import Comparison
    from .presets import load_preset
    from .trainer import Trainer

    h = load_preset("transformer_grokking")
    fast = Trainer(h, device=device)
    full = Trainer(h.replace(answer_only=False), device=device)
    for t in (fast, full):
        t.step(2)  # warm-up
    secs, rounds = (1.0, 3) if quick else (2.0, 6)
    a, b = [], []
    for _ in range(rounds):
        a.append(_rate(fast, secs))
        b.append(_rate(full, secs))
    ra, rb = statistics.median(a), statistics.median(b)
    rows = [
        {"name": f"transformer p={h.modulus}, answer-only path (full batch {h.batch_size})",
         "value": ra, "unit": "steps/s", "target": "", "ok": None},
        {"name": "transformer, full forward (every position)", "value": rb, "unit": "steps/s",
         "target": "", "ok": None},
        {"name": "answer-only ÷ full forward steps/s", "value": ra / rb, "unit": "×",
         "target": "≥ 2", "ok": ra / rb >= 2.0},
    ]
    llama, original = load_preset("transformer_llama"), load_preset("transformer_original")
    c = Comparison({"llama": llama, "original": original}, device)
    c.step(2)
    steps, t0 = 0, time.perf_counter()
    while steps < 2 or time.perf_counter() - t0 < secs:
        c.step(1)
        steps += 1
    rows.append({"name": "recipes in lockstep (LLaMA vs original), each", "unit": "steps/s",
                 "value": steps / (time.perf_counter() - t0), "target": "", "ok": None})
    return rows
