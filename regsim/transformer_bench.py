"""Bench section "transformer": the transformer preset's steps/s with the answer-position path and
with the full forward, side by side (interleaved windows, ratio of medians), and the two recipes
(LLaMA vs the original Transformer) stepped in lockstep as a Comparison; the grokking preset's time
to grok (λ = 1: steps and training seconds until val ≥ 95 %, beside its λ = 0 control's val at the
same step) and its two runs (λ = 1, λ = 0) in lockstep against one run alone.

Kept out of regsim/bench.py so the shared file gains one line (its SECTIONS entry).
"""

from __future__ import annotations

import statistics
import time

Row = dict  # {"name", "value", "unit", "target", "ok"}


def _rate(trainer, seconds: float) -> float:
    """Steps/s of `trainer.step(1)` (a Trainer or a Comparison: each run's steps/s) over a window
    of `seconds` (at least 2 steps)."""
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
    return rows + bench_grokking(quick, device)


GROK_EVERY = 25  # the time-to-grok checks val accuracy every this many steps (evaluation untimed)
GROK_MAX_STEPS = 1500  # give up here: issue 13's λ = 0 control is judged at this step


def _time_to_grok(h, device: str, threshold: float) -> tuple[int | None, float, float]:
    """(first checked step with val ≥ threshold or None, wall and CPU seconds spent in step() to
    get there) of one Trainer. CPU time is the target's measure: on the shared 2-core machine wall
    time doubled under others' load (6.3 s wall for 550 steps where the issue measured 2.7–3.2)."""
    from .trainer import Trainer

    t = Trainer(h, device=device)
    wall = cpu = 0.0
    while t.step_count < GROK_MAX_STEPS:
        t0, c0 = time.perf_counter(), time.process_time()
        t.step(GROK_EVERY)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        if t.evaluate()[3] >= threshold:
            return t.step_count, wall, cpu
    return None, wall, cpu


def _val_at(h, device: str, steps: int) -> float:
    from .trainer import Trainer

    t = Trainer(h, device=device)
    t.step(steps)
    return t.evaluate()[3]


def bench_grokking(quick: bool, device: str) -> list[Row]:
    """Issue 13's targets for the grokking preset: val ≥ 95 % in ≤ 700 steps and ≤ 6 s of training
    (λ = 1), the λ = 0 control below 5 % at that step (and, full run, at 1500); and the two runs in
    lockstep cost at most twice one (steps/s of each × 2 ÷ one run's, interleaved windows)."""
    from .comparison import Comparison
    from .presets import load_preset

    h = load_preset("grokking")
    grok, wall, cpu = _time_to_grok(h, device, 0.95)
    control = h.replace(weight_decay=0.0)
    at = grok if grok is not None else GROK_MAX_STEPS
    va0 = _val_at(control, device, at)
    rows = [
        {"name": f"grokking preset λ = {h.weight_decay:g}: steps to val ≥ 95 % (checked every "
                 f"{GROK_EVERY})", "value": float(grok if grok is not None else "nan"),
         "unit": "steps", "target": "≤ 700", "ok": grok is not None and grok <= 700},
        {"name": "grokking preset: CPU seconds in step() to val ≥ 95 %", "value": cpu,
         "unit": "s CPU", "target": "≤ 6", "ok": grok is not None and cpu <= 6.0},
        {"name": "grokking preset: wall seconds in step() to val ≥ 95 %", "value": wall,
         "unit": "s", "target": "", "ok": None},
        {"name": f"its λ = 0 control: val accuracy at step {at}", "value": va0, "unit": "",
         "target": "< 0.05", "ok": va0 < 0.05},
    ]
    if not quick:
        va1500 = _val_at(control, device, GROK_MAX_STEPS)
        rows.append({"name": f"its λ = 0 control: val accuracy at step {GROK_MAX_STEPS}",
                     "value": va1500, "unit": "", "target": "< 0.05", "ok": va1500 < 0.05})
    wsecs, rounds = (0.75, 4) if quick else (1.5, 8)
    # Comparisons built once, windows alternated, medians (the shared machine's speed drifts).
    one, two = Comparison({"A": h}, device), Comparison({"A": h, "B": control}, device)
    for c in (one, two):
        c.step(2)  # warm-up
    a, b = [], []
    for _ in range(rounds):
        a.append(_rate(one, wsecs))
        b.append(_rate(two, wsecs))
    r1, r2 = statistics.median(a), statistics.median(b)
    rows += [
        {"name": "grokking preset, one run (a Comparison of one)", "value": r1, "unit": "steps/s",
         "target": "", "ok": None},
        {"name": "grokking λ = 1 and λ = 0 in lockstep, each", "value": r2, "unit": "steps/s",
         "target": "", "ok": None},
        {"name": "grokking in lockstep: steps/s × 2 ÷ one run's", "value": 2 * r2 / r1, "unit": "×",
         "target": "≥ 0.95", "ok": 2 * r2 / r1 >= 0.95},
    ]
    return rows
