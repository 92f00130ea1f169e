"""Immutable snapshots: everything a view needs, as numpy arrays and plain numbers.

The trainer produces them (at most ~30 Hz in the app); the UI only reads them. They pickle cheaply, so
they cross a thread or a process boundary unchanged. No torch import here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .compression import FrameRing
from .hparams import HParams
from .optstate import OptState
from .scratch import ScratchSite
from .update_code import GroupView, UpdateCodeView


@dataclass(frozen=True)
class DataView:
    """The data a 2-D / 1-D / image panel draws beside the model's predictions."""

    kind: str  # "2d" (classification in the plane), "1d" (regression), "images" (digits),
    # "tokens" (modular arithmetic: x are int pairs (a, b); grid_prob is the (p, p) table of
    # right (1) / wrong (0) answers, rows a, columns b, NaN where no pair exists)
    x_train: np.ndarray  # (N, 2) for "2d", (N, 1) for "1d"; (0, 0) for "images"
    y_train: np.ndarray  # (N,) labels (int) or targets (float)
    x_val: np.ndarray  # (M, 2) / (M, 1)
    y_val: np.ndarray  # (M,)
    # "2d": the model's P(class 1) on a regular grid covering the data.
    grid_x: np.ndarray | None = None  # (G,) x coordinates of grid columns
    grid_y: np.ndarray | None = None  # (G,) y coordinates of grid rows
    grid_prob: np.ndarray | None = None  # (G, G) probability of class 1, rows = y, cols = x
    # "1d": the model's prediction along x.
    curve_x: np.ndarray | None = None  # (C,)
    curve_y: np.ndarray | None = None  # (C,)
    # "images": a few validation images with the model's guesses.
    images: np.ndarray | None = None  # (K, 8, 8) float in [0, 1]
    labels: np.ndarray | None = None  # (K,) true digit
    preds: np.ndarray | None = None  # (K,) predicted digit


# The heavy parts of a snapshot, measured only when a reader asks for them (Trainer.snapshot(parts=)):
# the window asks for what its visible panel draws (ui.panels.registry: PanelSpec.needs). Measured
# on one loaded CPU thread: on 64-512-512-10 digits "eval" ~70 ms and "histograms" ~45 ms (38 of
# them the fixed-axis counts), on 64-64 moons "data" (the refined decision map) ~12 ms of a ~15 ms
# snapshot; "masks" < 1 ms, but it runs one extra forward.
PARTS = frozenset({
    "eval",  # train/val loss and accuracy over the whole splits (eval mode)
    "histograms",  # weight_hist(_edges), weight_hist_fixed(_edges)
    "data",  # the model's view of the data (DataView: decision map, curve or digit guesses)
    "masks",  # dropout_masks, activation_pre, activation_post, activation_inference, dropout_shapes
    "scratch",  # dropout_scratch: the from-scratch replay of each site (regsim.scratch); while asked
    # for, each dropout site keeps the gradients of every backward (two tensor hooks per site)
    "transformer",  # transformer: this batch's attention maps, dropped connections, site masks
    "update_code",  # update_code: every line of the update rule for one picked parameter
    # (regsim.update_code); while asked for, the last step of each Trainer.step call records it
    "param_groups",  # the optimizer's decay / no_decay groups and their tensors
    "optstate",  # opt_state: each weight's effective decay per step (regsim.optstate), ~2 ms
})


# "scratch:fc1": the scratch part for that site only (the panel shows one site). Measured on a loaded
# shared CPU, 64-512-512-10 digits with input p 0.2, hidden p 0.5, median snapshot: every site 54 ms,
# fc1 alone 23 ms, no scratch part 0.7 ms. Implies "scratch".
SCRATCH_SITE = "scratch:"


def check_parts(parts) -> frozenset[str]:
    """`parts` as a frozenset, or a ValueError naming the allowed ones (None = all)."""
    if parts is None:
        return PARTS
    if isinstance(parts, str):
        parts = (parts,)
    out = frozenset(parts)
    sites = {p for p in out if isinstance(p, str) and p.startswith(SCRATCH_SITE)
             and len(p) > len(SCRATCH_SITE)}
    out |= {"scratch"} if sites else set()
    unknown = sorted(map(str, out - PARTS - sites))
    if unknown:
        raise ValueError(f"parts: unknown part {unknown[0]!r}; allowed: {', '.join(sorted(PARTS))}")
    return out


@dataclass(frozen=True)
class Counters:
    """The run's running totals since it started (or was reset). A snapshot never resets them, so
    any number of readers can share a trainer: each one's interval means are differences of
    totals, e.g. batch loss = Δloss_sum / Δloss_count between two of its snapshots."""

    run: int  # which run of the trainer these count (bumped by reset)
    loss_sum: float  # Σ minibatch losses (dropout on) of the kept steps, in float64
    loss_count: int  # how many losses are in loss_sum (steps undone by a divergence are not)
    steps: int  # optimizer steps taken in all (including ones a divergence undid)
    train_seconds: float  # wall time spent in step()
    events: int  # events logged so far (the index after the newest)


@dataclass(frozen=True)
class Snapshot:
    """The state of a training run at one step. Every array is a numpy copy, safe to keep."""

    step: int  # optimizer steps taken so far
    epoch: float  # step * batch_size / train_size
    status: str  # "idle", "running", "paused", "diverged", "error"
    message: str  # human-readable explanation of the status ("" when nothing to say)
    device: str  # "cpu", or the CUDA device name
    hparams: HParams  # the settings in force at this step
    lr: float  # effective learning rate at this step (after the schedule)
    # Losses and accuracies measured in eval mode (dropout off) over the whole split, so the
    # generalization gap val − train is not inflated by dropout noise.
    train_loss: float
    val_loss: float
    train_acc: float  # NaN for regression
    val_acc: float  # NaN for regression
    batch_loss: float  # mean minibatch loss (dropout on) since this reader's previous snapshot
    grad_norm: float  # global L2 norm of the last gradient (before clipping)
    steps_per_sec: float  # measured over the steps since this reader's previous snapshot
    layer_names: tuple[str, ...]  # weight matrices, input to output, e.g. ("fc1", "fc2", "out")
    layer_sizes: tuple[int, ...]  # neurons per layer including input and output, e.g. (2, 64, 64, 2)
    weight_hist: tuple[np.ndarray, ...]  # per layer: (bins,) counts of weight values
    weight_hist_edges: tuple[np.ndarray, ...]  # per layer: (bins + 1,) symmetric edges around 0
    weight_norms: np.ndarray  # (L,) Frobenius norm of each weight matrix
    weight_abs_max: np.ndarray  # (L,) max |w| of each weight matrix
    dropout_sites: tuple[str, ...]  # where dropout acts, e.g. ("input", "fc1", "fc2")
    dropout_rates: tuple[float, ...]  # p at each site
    dropout_masks: tuple[np.ndarray, ...]  # per site: (B', U') bool, True = kept; capped in size
    # One example's activations at each site: before dropout, and after inverted dropout (scaled
    # by 1/(1-p), zero where dropped). Capped to the first units.
    activation_pre: tuple[np.ndarray, ...]
    activation_post: tuple[np.ndarray, ...]
    data: DataView | None
    # (step, text) of settings changed since this reader's previous snapshot
    events: tuple[tuple[int, str], ...] = ()
    # The step at which losses, accuracies, histograms, norms and `data` were measured: these are
    # refreshed within a compute budget while training, so they may lag `step` a little.
    eval_step: int = -1
    # Per dropout site: the first example's input to the site in an eval-mode forward (what
    # inference computes), capped like activation_pre. Part "masks".
    activation_inference: tuple[np.ndarray, ...] = ()
    # Per layer: counts over a range locked when the run started (or was reset), widened only if a
    # weight grows past it (see trainer.locked_histograms): the Weights panel's fixed axis.
    weight_hist_fixed: tuple[np.ndarray, ...] = ()
    weight_hist_fixed_edges: tuple[np.ndarray, ...] = ()
    # Which of PARTS this snapshot carries. A part not measured is empty: NaN losses and
    # accuracies ("eval"), () for the histograms and masks, None for `data`; a panel shows its
    # empty state for it, never an older measurement. weight_norms / weight_abs_max are always in.
    measured: frozenset[str] = PARTS
    counters: Counters | None = None  # the run's running totals (see Counters)
    # Per dropout site: one example's activation shape there, (U,) or (C, H, W) for a conv site,
    # whose mask is sent flattened channel-major (C·H·W columns). Part "masks".
    dropout_shapes: tuple[tuple[int, ...], ...] = ()
    # Per dropout site: the NumPy code's values on the last batch beside the module's and
    # nn.Dropout's (regsim.scratch.ScratchSite; None before a training step). Part "scratch".
    dropout_scratch: tuple[ScratchSite | None, ...] = ()
    # The transformer's sites on the last batch (regsim.transformer.site_view); None for other
    # networks and when not asked for. Part "transformer".
    transformer: TransformerView | None = None
    clip_events: int = 0  # optimizer steps whose gradient norm exceeded grad_clip (was clipped)
    # The update rule's lines with their values for the picked parameter (None before a gradient).
    # Part "update_code".
    update_code: UpdateCodeView | None = None
    # The optimizer's param_groups now: role, kind, λ and tensors of each. Part "param_groups".
    param_groups: tuple[GroupView, ...] = ()
    # The effective decay each weight matrix element receives per step, read from the optimizer's
    # state (regsim.optstate.OptState). Part "optstate".
    opt_state: OptState | None = None


@dataclass(frozen=True)
class TransformerView:
    """One example of the transformer's last training batch at its four dropout sites (numpy)."""

    sites: tuple[str, ...]  # ("embd", "attn", "resid", "ffn")
    rates: tuple[float, ...]  # p at each site (every layer alike)
    tokens: tuple[str, ...]  # the example's sequence as words: ("12", "+", "5", "=")
    answer: int  # the label a ∘ b mod p of that example (-1 unknown)
    predicted: int  # the eval-mode prediction for it
    answer_only: bool  # True: the last block ran at the answer position only (one query row)
    # (L, H, T) per layer and head, the answer query's post-softmax attention over the T positions:
    # in the training forward (before the attn mask), its kept connections (True = kept), and
    # the same example's weights in eval mode.
    attention: np.ndarray
    attention_kept: np.ndarray
    attention_eval: np.ndarray
    # site → per layer (embd: one) the (rows, C) bool kept-mask of that site's tensor for the
    # example (rows = positions computed there: T, or 1 at the answer-only layer); True where p = 0.
    masks: dict[str, tuple[np.ndarray, ...]]
    # The residual stream entering the head at the answer position, (C,): training forward
    # (dropout on) and eval forward.
    stream_train: np.ndarray
    stream_eval: np.ndarray


class History:
    """Bounded history of scalar series, fed one snapshot at a time (UI and CLI share it).

    When a series reaches `capacity` points, every other point is dropped, so memory stays flat on a
    run of any length while the curve keeps its shape end to end.
    """

    SERIES = ("step", "train_loss", "val_loss", "train_acc", "val_acc", "batch_loss", "lr",
              "grad_norm", "weight_norm")

    MERGE_S = 1.5  # changes of one setting this close together (wall clock) are one gesture

    def __init__(self, capacity: int = 4000, percentile_capacity: int = 400,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.percentile_capacity = percentile_capacity
        self.clock = clock
        self.events_revision = 0  # bumped whenever `events` changes (a merge keeps its length)
        self.clear()

    def clear(self) -> None:
        self._n = 0
        self._data = {k: np.zeros(self.capacity, dtype=np.float64) for k in self.SERIES}
        self.layer_norms: list[list[float]] = []  # per layer norms, parallel to the series
        self.events: list[tuple[int, str]] = []  # every settings change seen, (step, text)
        self._pct_steps: list[int] = []
        self._pct: list[np.ndarray] = []  # each (L, len(PERCENTILES))
        self._last_step = -1
        self._gesture: tuple[str, str, float] | None = None  # (setting, first old value, time)
        self.events_revision += 1
        self.frames = FrameRing()  # the fixed-axis histograms over time (regsim.compression)

    PERCENTILES = (0.0, 7.0, 16.0, 31.0, 50.0, 69.0, 84.0, 93.0, 100.0)  # TensorBoard's bands

    def __len__(self) -> int:
        return self._n

    def add(self, snap: Snapshot) -> None:
        new_net = bool(self.layer_norms) and len(self.layer_norms[-1]) != len(snap.weight_norms)
        if new_net or (snap.step < self._last_step and snap.status != "diverged"):
            self.clear()  # a reset or a new network: start a new run
        elif snap.step < self._last_step:
            self._wind_back(snap.step)  # a divergence restored earlier weights: same run
        for step, text in snap.events:
            self._add_event(int(step), str(text))
        point = snap.eval_step if snap.eval_step >= 0 else snap.step
        if point == self._last_step and self._n:
            return  # measured already (a paused engine re-sends, or metrics were reused)
        self._last_step = point
        if self._n == self.capacity:
            for k in self.SERIES:
                half = self._data[k][0::2].copy()
                self._data[k][: len(half)] = half
            self.layer_norms = self.layer_norms[0::2]
            self._n = self.capacity // 2
        values = dict(step=point, train_loss=snap.train_loss, val_loss=snap.val_loss,
                      train_acc=snap.train_acc, val_acc=snap.val_acc, batch_loss=snap.batch_loss,
                      lr=snap.lr, grad_norm=snap.grad_norm,
                      weight_norm=float(np.sqrt(np.sum(np.square(snap.weight_norms)))))
        for k, v in values.items():
            self._data[k][self._n] = v
        self.layer_norms.append([float(v) for v in snap.weight_norms])
        self._n += 1
        if "histograms" not in snap.measured or not snap.weight_hist:
            return  # the bands get points only where the histograms were measured
        if len(self._pct_steps) == self.percentile_capacity:
            self._pct_steps = self._pct_steps[0::2]
            self._pct = self._pct[0::2]
        self._pct_steps.append(point)
        self._pct.append(np.stack([histogram_percentiles(c, e, self.PERCENTILES)
                                   for c, e in zip(snap.weight_hist, snap.weight_hist_edges)]))
        self.frames.add(snap, point)

    def _wind_back(self, step: int) -> None:
        """Forget the points measured after `step` (the run was restored to it), keep the rest:
        the curves up to the restored weights stay on screen, with the divergence marker."""
        keep = int(np.searchsorted(self._data["step"][: self._n], step, side="right"))
        self._n = keep
        self.layer_norms = self.layer_norms[:keep]
        k = int(np.searchsorted(np.asarray(self._pct_steps), step, side="right"))
        self._pct_steps, self._pct = self._pct_steps[:k], self._pct[:k]
        self.frames.wind_back(step)
        self._last_step = int(self._data["step"][keep - 1]) if keep else -1

    def _add_event(self, step: int, text: str) -> None:
        """Record one settings change; one slider gesture becomes one event.

        A drag sends a change every ~50 ms ("λ 0.001 → 0.0012", "λ 0.0012 → 0.0015", …). A change of
        the same setting that arrives within MERGE_S seconds of the previous one, with no other
        change in between, extends that event instead: "λ 0.001 → 0.05", from the first old value
        to the last new one, at the step where the gesture began. A gesture that ends where it
        started changed nothing and leaves no event.
        """
        now = self.clock()
        self.events_revision += 1
        parsed = parse_change(text)
        g = self._gesture
        if parsed is not None and g is not None and self.events and g[0] == parsed[0] \
                and now - g[2] <= self.MERGE_S:
            name, first_old = g[0], g[1]
            start = self.events[-1][0]
            self.events.pop()
            self._gesture = (name, first_old, now)
            if first_old != parsed[2]:
                self.events.append((start, f"{name} {first_old} → {parsed[2]}"))
            else:  # back where it started: keep the gesture open, with no marker for now
                self.events.append((start, f"{name} {first_old} → {first_old}"))
            return
        if g is not None and self.events and _is_noop(self.events[-1][1]):
            self.events.pop()  # the previous gesture came back to its start: nothing changed
        self.events.append((step, text))
        self._gesture = (parsed[0], parsed[1], now) if parsed is not None else None

    def visible_events(self) -> list[tuple[int, str]]:
        """`events` without a gesture in progress that is back at its starting value."""
        return [e for e in self.events if not _is_noop(e[1])]

    def series(self, name: str) -> np.ndarray:
        """A read-only view of one series' filled part."""
        view = self._data[name][: self._n]
        view = view.view()
        view.flags.writeable = False
        return view

    def layer_norm_series(self) -> np.ndarray:
        """(N, L) per-layer weight norms."""
        if not self._n:
            return np.zeros((0, 0))
        return np.asarray(self.layer_norms, dtype=np.float64).reshape(self._n, -1)

    def percentiles(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps (T,), bands (T, L, 9)): weight percentiles per layer over time."""
        if not self._pct:
            return np.zeros(0), np.zeros((0, 0, len(self.PERCENTILES)))
        return np.asarray(self._pct_steps, dtype=np.float64), np.stack(self._pct)


_CHANGE = re.compile(r"^(?P<name>.+) (?P<old>\S+) → (?P<new>\S.*)$")


def parse_change(text: str) -> tuple[str, str, str] | None:
    """("λ", "0.001", "0.05") from "λ 0.001 → 0.05"; None for other events ("diverged: …")."""
    m = _CHANGE.match(text)
    return (m["name"], m["old"], m["new"]) if m else None


def _is_noop(text: str) -> bool:
    parsed = parse_change(text)
    return parsed is not None and parsed[1] == parsed[2]


def histogram_percentiles(counts: np.ndarray, edges: np.ndarray,
                          percentiles: tuple[float, ...]) -> np.ndarray:
    """Percentiles read off a histogram by linear interpolation of its CDF.

    Cheap enough to run per snapshot, and exact to within one bin width.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return np.zeros(len(percentiles))
    cdf = np.concatenate([[0.0], np.cumsum(counts)]) / total  # (bins + 1,), aligned with edges
    cdf[-1] = 1.0
    edges = np.asarray(edges, dtype=np.float64)
    qs = np.asarray(percentiles, dtype=np.float64) / 100.0
    # The bin holding each quantile: the first edge whose CDF reaches it (for q = 0: the first
    # non-empty bin), then linear interpolation inside that bin.
    idx = np.searchsorted(cdf, qs, side="left")
    idx = np.where(qs <= 0.0, np.searchsorted(cdf, 0.0, side="right"), idx)
    idx = idx.clip(1, len(cdf) - 1)
    lo, hi = cdf[idx - 1], cdf[idx]
    frac = np.divide(qs - lo, hi - lo, out=np.zeros_like(qs), where=hi > lo).clip(0.0, 1.0)
    return edges[idx - 1] + frac * (edges[idx] - edges[idx - 1])
