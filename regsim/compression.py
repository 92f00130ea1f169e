"""Compression over time: the weight histograms of a run as frames, and decay's per-step shrink.

The seed's picture of weight decay is "the histogram compressing toward zero". To show it as an
animation, the History (regsim/snapshot.py) hands every snapshot whose histograms were measured to a
`FrameRing`, which keeps a bounded set of frames: per layer, the counts on the run's FIXED bin axis
(Snapshot.weight_hist_fixed: locked when the run starts, widened only if a weight outgrows it), the
norms ‖W_l‖, the learning rate in force and the settings. A scrub slider then replays them.

The shrink factor per step, from the update rules (regsim/optim.py, η_t the schedule multiplier,
lr_t = lr·η_t the learning rate of the step, λ the effective decay after normalization):

- "decoupled" (torch.optim.AdamW, SGDW):   θ ← (1 − lr_t·λ)·θ − (gradient step)
- "decoupled_paper" (Loshchilov & Hutter): θ ← (1 − η_t·λ)·θ − (gradient step): lr plays no part
- "l2" with plain SGD:                     θ ← θ − lr_t(g + λθ) = (1 − lr_t·λ)·θ − lr_t·g
- "l2" with SGD + momentum μ: λθ enters the velocity, v ← μv + g + λθ, θ ← θ − lr_t·v. Without a
  data gradient θ_{t+1} = (1 + μ − lr_t·λ)·θ_t − μ·θ_{t−1}, whose slowest mode shrinks by the larger
  root r of r² − (1 + μ − lr_t·λ)·r + μ = 0 per step, r ≈ 1 − lr_t·λ/(1 − μ) (≈ 10× the decay of
  SGDW at μ = 0.9): an asymptotic factor, not an exact one.
- "l2" with Adam: λθ is divided by √v̂ like every gradient, so each weight gets its own rate: no
  single factor exists (`shrink_factor` returns None and says why).

With no gradient pushing back the weights shrink as Π_s f_s, (1 − lr·λ)^t at a constant lr, and
the half-life is ln 2 / −ln f steps (≈ ln 2 /(lr·λ) for small lr·λ).

No torch here (the panels import it): the learning-rate schedule and the normalization of λ are
written out again below, and tests/test_compression.py checks both against regsim.optim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .hparams import HParams

MAX_FRAMES = 256  # frames kept per run; when full every other one goes (see FrameRing)
MAX_BYTES = 4 * 2**20  # and never more than this in counts (64 bins × 9 layers × 4 B = 2.3 KB/frame)


# ------------------------------------------------------------------------------------- the factor
def effective_lambda(h: HParams) -> float:
    """λ as the update rules use it: `weight_decay`, or λ_norm·√(1/total_steps) with
    `normalized_decay` (L&H 2019 §B.1: b/(B·T) = 1/total_steps with T = total_steps·b/B epochs).
    The same formula as regsim.optim.effective_lambda (a test holds them together)."""
    if not h.normalized_decay:
        return float(h.weight_decay)
    b, big_b = min(h.batch_size, h.train_size), h.train_size
    epochs = h.total_steps * b / big_b
    return float(h.weight_decay) * math.sqrt(b / (big_b * epochs))


def lr_at(h: HParams, step: int | np.ndarray) -> np.ndarray:
    """The learning rate of optimizer step `step` (0-based; scalar or array) under `h.schedule`,
    as regsim.optim.lr_at computes it (linear warmup, cosine down to min_lr_ratio·lr, then flat)."""
    s = np.asarray(step, dtype=np.float64)
    if h.schedule == "constant":
        return np.full(s.shape, float(h.lr))
    warm = h.lr * (s + 1) / max(h.warmup_steps, 1)
    span = max(1, h.total_steps - h.warmup_steps)
    t = np.minimum(1.0, (s - h.warmup_steps) / span)
    floor = h.min_lr_ratio
    cos = h.lr * (floor + (1 - floor) * 0.5 * (1 + np.cos(np.pi * t)))
    return np.where(s < h.warmup_steps, warm, cos)


@dataclass(frozen=True)
class Shrink:
    """What one optimizer step of decay does to a decayed weight, with no gradient."""

    factor: float | None  # θ ← factor·θ; None when no single factor exists (Adam + L2, λ = 0 is 1)
    rate: float  # the decay rate in the factor: lr_t·λ, η_t·λ, or lr_t·λ/(1 − μ) (asymptotic)
    formula: str  # "1 − lr·λ", "1 − η_t·λ", …, as the panel writes it
    exact: bool  # False: an asymptotic factor (momentum + L2) or none at all
    note: str = ""  # why there is no single factor, or what "asymptotic" means here

    @property
    def half_life(self) -> float:
        """Steps until a weight is halved by decay alone: ln 2 / −ln(factor); inf without decay,
        NaN when there is no factor or it is ≤ 0 (lr·λ ≥ 1 flips or zeroes the weights)."""
        return half_life(self.factor)


def half_life(factor: float | None) -> float:
    """ln 2 / −ln(factor) steps; inf for factor ≥ 1, NaN for None or factor ≤ 0."""
    if factor is None or not math.isfinite(factor) or factor <= 0:
        return math.nan
    if factor >= 1:
        return math.inf
    return math.log(2) / -math.log(factor)


def momentum_l2_factor(rate: float, mu: float) -> float:
    """The slowest mode of θ_{t+1} = (1 + μ − rate)·θ_t − μ·θ_{t−1} (momentum + L2, no data
    gradient, rate = lr·λ): the modulus of the larger root of r² − (1 + μ − rate)·r + μ = 0 —
    √μ when the roots are complex (the weights oscillate while they shrink)."""
    b = 1.0 + mu - rate
    disc = b * b - 4.0 * mu
    if disc < 0:
        return math.sqrt(mu)
    return max(abs((b + math.sqrt(disc)) / 2), abs((b - math.sqrt(disc)) / 2))


def shrink_factor(h: HParams, lr_t: float | None = None) -> Shrink:
    """The per-step shrink of `h`'s decayed weights at learning rate `lr_t` (default: peak lr)."""
    lam = effective_lambda(h)
    lr_t = float(h.lr if lr_t is None else lr_t)
    if lam == 0:
        return Shrink(1.0, 0.0, "1 (λ = 0)", True, "no weight decay")
    if h.decay_mode == "decoupled":
        rate = lr_t * lam
        return Shrink(1.0 - rate, rate, "1 − lr·λ", True)
    if h.decay_mode == "decoupled_paper":
        rate = lr_t / h.lr * lam  # η_t·λ: the schedule multiplier only
        return Shrink(1.0 - rate, rate, "1 − η_t·λ", True)
    # L2: λθ joins the gradient.
    if h.optimizer == "sgd":
        rate = lr_t * lam
        return Shrink(1.0 - rate, rate, "1 − lr·λ", True)
    if h.optimizer == "momentum":
        rate = lr_t * lam
        f = momentum_l2_factor(rate, h.momentum)
        return Shrink(f, 1.0 - f, "≈ 1 − lr·λ/(1 − μ)", False,
                      f"momentum carries λθ: θ ← (1 + μ − lr·λ)θ − μθ₋₁, asymptotically ×{f:.6f}")
    return Shrink(None, math.nan, "none", False,
                  "Adam + L2: λθ is divided by √v̂ like any gradient, so every weight decays at its "
                  "own rate lr·λ/(√v̂ + ε): no single factor (AdamW's decoupled decay has one)")


def log_decay(h: HParams, start: int, stop: int) -> float:
    """Σ ln f_s over optimizer steps start … stop − 1 at `h`'s schedule: ln of the shrink decay
    alone gives over those steps. NaN where there is no single factor (Adam + L2); −inf if a step's
    factor is ≤ 0."""
    if stop <= start:
        return 0.0
    if shrink_factor(h).factor is None:
        return math.nan
    if h.schedule == "constant":
        f = shrink_factor(h, h.lr).factor
        assert f is not None
        return (stop - start) * math.log(f) if f > 0 else -math.inf
    lrs = lr_at(h, np.arange(start, stop))
    fs = np.array([shrink_factor(h, float(x)).factor for x in lrs]) \
        if h.optimizer == "momentum" and h.decay_mode == "l2" \
        else 1.0 - lrs * (effective_lambda(h) / (h.lr if h.decay_mode == "decoupled_paper" else 1.0))
    if np.any(fs <= 0):
        return -math.inf
    return float(np.sum(np.log(fs)))


# ------------------------------------------------------------------------------------- the frames
@dataclass(frozen=True)
class Frame:
    """One moment of a run, as the compression panel draws it."""

    step: int  # the step the histograms and norms were measured at (Snapshot.eval_step)
    counts: np.ndarray  # (L, bins) int32 counts on the fixed axis, per weight matrix
    edges: tuple[np.ndarray, ...]  # per layer: (bins + 1,) edges (shared between frames)
    norms: np.ndarray  # (L,) ‖W_l‖
    lr: float  # the learning rate of the last step before the snapshot
    hparams: HParams  # the settings in force
    log_decay: float  # Σ ln f_s from step 0 to `step`: ln of what decay alone would have done

    @property
    def total_norm(self) -> float:
        """‖W‖ = √(Σ ‖W_l‖²), as History's weight_norm."""
        return float(np.sqrt(np.sum(np.square(self.norms))))

    @property
    def shrink(self) -> Shrink:
        return shrink_factor(self.hparams, self.lr)


class FrameRing:
    """At most MAX_FRAMES frames (and MAX_BYTES of counts) of one run, oldest thinned.

    When full, every other frame goes (the first and the newest stay) and from then on only every
    `stride`-th offered snapshot becomes a frame (stride doubles each time), so the frames stay
    evenly spread over the whole run, like History's curves. The newest snapshot always takes the
    last place (it replaces a last frame that the stride would not have kept), so the end of the
    animation is always "now".
    """

    def __init__(self, max_frames: int = MAX_FRAMES, max_bytes: int = MAX_BYTES) -> None:
        self.max_frames = max(2, int(max_frames))
        self.max_bytes = int(max_bytes)
        self.clear()

    def clear(self) -> None:
        self.frames: list[Frame] = []
        self.stride = 1
        self.offered = 0  # snapshots offered since the last thinning
        self._tail_kept = True  # False: the last frame is provisional (the stride skipped it)
        self.revision = 0  # bumped on every change, for the panel's redraw key
        self.thinned = 0  # how many times the ring halved

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def capacity(self) -> int:
        """Frames the ring keeps: MAX_FRAMES, fewer if the frames are large."""
        if not self.frames:
            return self.max_frames
        per = max(1, self.frames[0].counts.nbytes)
        return max(2, min(self.max_frames, self.max_bytes // per))

    @property
    def nbytes(self) -> int:
        return sum(f.counts.nbytes + f.norms.nbytes for f in self.frames)

    def add(self, snap: Any, step: int | None = None) -> bool:
        """Record `snap` (a Snapshot with its histograms measured) at `step` (default: its
        eval_step). Returns whether a frame was recorded. A snapshot without the fixed-axis
        histograms, or whose layers differ from the frames', is refused (a new network starts a
        new ring: the History clears it)."""
        fixed = getattr(snap, "weight_hist_fixed", ())
        if not fixed:
            return False
        if step is None:
            step = snap.eval_step if snap.eval_step >= 0 else snap.step
        step = int(step)
        counts = np.array(fixed, dtype=np.int32)  # (L, bins): every layer has HIST_BINS bins
        last = self.frames[-1] if self.frames else None
        if last is not None:
            if counts.shape != last.counts.shape:
                self.clear()
                last = None
            elif step <= last.step:
                return False
        if last is not None and _same_axes(last.edges, snap.weight_hist_fixed_edges):
            edges = last.edges  # the same axis: share it
        else:
            edges = tuple(np.asarray(e, dtype=np.float64).copy() for e in snap.weight_hist_fixed_edges)
        if last is None:
            cum = log_decay(snap.hparams, 0, step)
        else:
            # Between two frames the earlier frame's settings apply (a change made in between is
            # taken from the next frame on: at 30 Hz that is a few steps).
            cum = last.log_decay + log_decay(last.hparams, last.step, step)
        frame = Frame(step, counts, edges, np.asarray(snap.weight_norms, dtype=np.float64).copy(),
                      float(snap.lr), snap.hparams, cum)
        self.offered += 1
        keep = self.offered % self.stride == 0
        if not self._tail_kept and len(self.frames) > 1:
            self.frames[-1] = frame  # the provisional last frame makes way for the newer one
        else:
            self.frames.append(frame)
        self._tail_kept = keep
        if len(self.frames) > self.capacity:
            self._thin()
        self.revision += 1
        return True

    def _thin(self) -> None:
        """Drop every other frame, keeping the first and the newest; double the stride."""
        newest = self.frames[-1]
        kept = self.frames[:-1][0::2]
        self.frames = kept + [newest]
        self.stride *= 2
        self.offered = 0
        self._tail_kept = True
        self.thinned += 1

    def wind_back(self, step: int) -> None:
        """Forget frames after `step` (a divergence restored earlier weights)."""
        keep = [f for f in self.frames if f.step <= step]
        if len(keep) != len(self.frames):
            self.frames = keep
            self._tail_kept = True
            self.revision += 1

    def steps(self) -> np.ndarray:
        return np.array([f.step for f in self.frames], dtype=np.int64)

    def index_at(self, step: int) -> int:
        """The last frame at or before `step` (0 if none is that early)."""
        i = int(np.searchsorted(self.steps(), step, side="right")) - 1
        return max(0, i)

    def axis(self, layer: int) -> tuple[float, float]:
        """The x range that holds every frame of `layer`: the widest fixed axis the run had."""
        lo = min((float(f.edges[layer][0]) for f in self.frames if layer < len(f.edges)), default=-1.0)
        hi = max((float(f.edges[layer][-1]) for f in self.frames if layer < len(f.edges)), default=1.0)
        return lo, hi

    def predicted_ratio(self, i: int, j: int = 0) -> float:
        """What decay alone predicts for ‖W‖ at frame i over ‖W‖ at frame j: exp(Σ ln f_s) over
        the steps between them (NaN where no single factor exists)."""
        d = self.frames[i].log_decay - self.frames[j].log_decay
        return math.exp(d) if math.isfinite(d) or d == -math.inf else math.nan

    def measured_ratio(self, i: int, j: int = 0) -> float:
        """‖W‖ at frame i over ‖W‖ at frame j, measured."""
        a, b = self.frames[i].total_norm, self.frames[j].total_norm
        return a / b if b > 0 else math.nan


def _same_axes(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> bool:
    """Whether two sets of fixed-axis edges are the same. They are np.linspace(−r, r, bins + 1)
    (trainer.locked_histograms), so the ends and the length decide: O(1) per layer, where
    np.array_equal of every edge took ~40 µs of a ~200 µs frame (measured, 3 layers)."""
    return len(a) == len(b) and all(
        len(x) == len(y) and x[0] == y[0] and x[-1] == y[-1] for x, y in zip(a, b, strict=True))
