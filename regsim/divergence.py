"""Divergence and collapse detection from the per-step batch losses, and when a checkpoint is good.

Pure Python on host floats (no torch): the trainer hands over the losses of one `step(n)` call in a
single transfer, and this module walks them step by step, so every rule below counts *steps*, the
same whether the engine trains in chunks of 1 or of 10 000.

Three ways a run fails:

- **non-finite**: a NaN/inf batch loss (or weights; the trainer checks those).
- **explode**: the smoothed loss L̄ (an exponential moving average over ~EMA_STEPS steps) exceeds
  EXPLODE_FACTOR × L_ref, where L_ref = max(initial loss, constant-predictor loss, 0.1).
- **collapse**: the run *blew up* (one batch loss ≥ SPIKE_FACTOR × L_const, where L_const is the
  loss of the best input-ignoring predictor: the entropy of the class frequencies, ln C for balanced
  classes, or the variance of the targets for regression) and then L̄ stayed at chance level
  (L̄ ≥ CHANCE_BAND × L_const) for SETTLE_STEPS consecutive steps.

Why a blow-up is required: the things that must *not* fire all approach chance level from below
and smoothly — a fresh run that has not learned yet, a strong λ pulling the weights to zero, p = 0.9
— while a learning rate that is too large throws the weights far out first. Measured on the default
moons net (64-64, batch 32; ratios to ln 2, over 3000 steps): lr = 1 Adam/SGD+momentum, 7 seeds and
set-ups, spiked to 6–4000× and then sat at 0.93–1.09×; normal runs (default, p = 0.9, λ = 0.1
decoupled and L2, warm-up + cosine, digits, regression, lr = 1e-4 Adam, lr = 3e-3 SGD, lr = 0.1 Adam)
never had a batch above 3.3× after their first steps, and those near chance had no spike at all.
Raising p on a trained net does spike (to 26×: the co-adapted units are suddenly dropped), so a
change of a dropout rate or of the label smoothing opens a grace period in which spikes don't count
and restarts the "best so far" (the measured training loss itself changed).

A checkpoint is *good* if L̄ ≤ ACCEPT_RATIO × (best L̄ over the last BEST_WINDOW steps) + a small
slack, and it is only trusted after VALIDATE_STEPS more steps without a spike and with L̄ still
acceptable: the weights at the end of a call are measured only by the next steps' losses.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

EMA_STEPS = 25  # L̄ averages ~25 batches (α = 1/25): ~800 examples at batch 32
SPIKE_FACTOR = 5.0  # one batch loss ≥ 5 × L_const is a blow-up (normal runs stay below 3.3×)
SPIKE_MEMORY = 1000  # steps a blow-up stays on record for the collapse rule
CHANCE_BAND = 0.85  # L̄ ≥ 0.85 × L_const counts as chance level
SETTLE_STEPS = 300  # consecutive steps at chance level after a blow-up make a collapse
EXPLODE_FACTOR = 100.0  # L̄ above this many times L_ref is an explosion
ACCEPT_RATIO = 1.15  # a checkpoint is good while L̄ ≤ 1.15 × the recent best (+ slack)
ACCEPT_SLACK = 0.02  # … + 0.02 × L_const, so a loss near zero is not held to a 25 % band of noise
BEST_WINDOW = 2000  # "best so far" is the best over the last 2000 steps, so a stronger λ (which
#                     honestly raises the data loss) does not freeze the checkpoint for ever
BLOCK = 100  # the windowed minimum is kept per block of this many steps
VALIDATE_STEPS = 10  # a candidate checkpoint is trusted after this many clean steps
GRACE_STEPS = 100  # spikes right after a dropout / label-smoothing change don't count


@dataclass(frozen=True)
class Verdict:
    """Why training must stop: kind is "nonfinite", "explode" or "collapse"."""
    kind: str
    step: int  # the step at which it was detected
    value: float = math.nan  # explode: L̄; collapse: the blow-up's batch loss
    spike_step: int = -1  # collapse: the step of the blow-up


def constant_loss(task: str, y_train: np.ndarray, n_classes: int, label_smoothing: float = 0.0
                  ) -> float:
    """The training loss of the best predictor that ignores its input (the chance level).

    Classification: the cross-entropy of predicting the (smoothed) class frequencies q, which is
    H(q) = −Σ q_c ln q_c (ln C for balanced classes). Regression: MSE of predicting the mean, Var(y).
    """
    y = np.asarray(y_train)
    if task == "regression":
        return float(np.var(y.astype(np.float64)))
    freq = np.bincount(y.reshape(-1).astype(np.int64), minlength=n_classes) / max(1, y.size)
    q = (1 - label_smoothing) * freq + label_smoothing / n_classes
    q = q[q > 0]
    return float(-(q * np.log(q)).sum())


class LossMonitor:
    """Step-by-step state over the batch losses of one run (see the module docstring)."""

    def __init__(self, chance: float, initial: float) -> None:
        self.chance = max(chance, 1e-8)
        self.explode_at = EXPLODE_FACTOR * max(initial, chance, 0.1)
        self.step = 0  # steps seen
        self.ema = math.nan
        self.restart_best()
        self.spike_step = -(10**12)
        self.spike_value = math.nan
        self.grace_until = 0
        self.at_chance = 0  # consecutive steps with L̄ at chance level
        self.clean_since = 0  # the step after the last spike or unacceptable L̄
        self._changes: list[int] = []  # steps whose loss is the first under changed settings
        self.candidate: int | None = None  # the step of a checkpoint under validation
        self.candidate_ok: bool | None = None  # None: pending; True: validated; False: rejected

    # ------------------------------------------------------------------ state changes
    def restart_best(self) -> None:
        """Forget the best so far (the measured loss itself changed meaning)."""
        self._blocks: deque[float] = deque(maxlen=BEST_WINDOW // BLOCK)
        self._block_min = math.inf
        self._block_end = self.step + BLOCK

    def settings_changed(self, step: int) -> None:
        """A dropout rate or the label smoothing changed before step number `step` (1-based, as
        counted by `feed`): from there on, a new best and a grace period for spikes.

        The trainer learns of a change mid-call, before this call's losses are fed, so the restart
        is applied when the walk reaches that step: the losses before it still count as before."""
        self._changes.append(step)

    def _apply_change(self) -> None:
        self.restart_best()
        self.grace_until = self.step + GRACE_STEPS
        self.clean_since = self.step + GRACE_STEPS  # no checkpoint from the transition itself

    def restored(self, step: int, ema: float) -> None:
        """Weights from `step` were restored: continue from there with a clean record."""
        self.step = step
        self.ema = ema
        self.restart_best()
        self.spike_step = -(10**12)
        self.at_chance = 0
        self.clean_since = step
        self.grace_until = 0
        self._changes.clear()
        self.candidate, self.candidate_ok = None, None

    # ------------------------------------------------------------------ queries
    def best(self) -> float:
        return min(self._block_min, min(self._blocks, default=math.inf))

    def acceptable(self) -> bool:
        """Are the current weights a good checkpoint: L̄ near the best so far, and below chance
        level? (Weights at chance level are no better than the initial ones, which are always
        kept: a run at lr = 1 that blew up at step 2 and sat at chance had its "best" there.)"""
        return self._ok(self.ema)

    def _ok(self, ema: float) -> bool:
        return (ema <= ACCEPT_RATIO * self.best() + ACCEPT_SLACK * self.chance
                and ema < CHANCE_BAND * self.chance)

    def clean_now(self) -> bool:
        """The last step was neither a spike nor unacceptable (nor in a grace period)."""
        return self.clean_since <= self.step and self.acceptable()

    def watch(self, step: int) -> None:
        """Validate a checkpoint taken after `step` steps: it is trusted (`candidate_ok` True)
        once VALIDATE_STEPS steps after it were clean, and rejected if one of them was not (a
        later blow-up does not reject it: its weights were measured good before)."""
        self.candidate, self.candidate_ok = step, None

    # ------------------------------------------------------------------ the walk
    def feed(self, losses: list[float]) -> Verdict | None:
        """Walk one call's batch losses in order; the first failure stops the walk."""
        a = 1.0 / EMA_STEPS
        spike_at = SPIKE_FACTOR * self.chance
        band = CHANCE_BAND * self.chance
        for x in losses:
            self.step += 1
            if self._changes and self.step >= self._changes[0]:
                while self._changes and self.step >= self._changes[0]:
                    self._changes.pop(0)
                self._apply_change()
            if not math.isfinite(x):
                return Verdict("nonfinite", self.step)
            self.ema = x if math.isnan(self.ema) else self.ema + a * (x - self.ema)
            if self.step >= self._block_end:
                self._blocks.append(self._block_min)
                self._block_min = math.inf
                self._block_end = self.step + BLOCK
            if x >= spike_at and self.step > self.grace_until:
                self.spike_step, self.spike_value = self.step, x
            if self.ema > self.explode_at:
                return Verdict("explode", self.step, self.ema)
            self.at_chance = self.at_chance + 1 if self.ema >= band else 0
            # SETTLE_STEPS at chance level, all of them after the blow-up:
            if (self.at_chance >= SETTLE_STEPS
                    and SETTLE_STEPS <= self.step - self.spike_step <= SPIKE_MEMORY):
                return Verdict("collapse", self.step, self.spike_value, self.spike_step)
            bad = self.step == self.spike_step or not self._ok(self.ema)
            if bad:
                self.clean_since = self.step + 1
            if self.candidate is not None and self.candidate_ok is None:
                if bad or self.step <= self.grace_until:
                    self.candidate_ok = False
                elif self.step >= self.candidate + VALIDATE_STEPS:
                    self.candidate_ok = True
            self._block_min = min(self._block_min, self.ema)
        return None
