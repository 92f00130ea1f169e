"""Calibration: reliability diagrams, ECE and MCE for the weight-scaled network and for MC dropout.

For each labelled point take the top-1 confidence c_n = max_c p(c | x_n) and whether that class is
right, a_n ∈ {0, 1}. Group the points into B bins; in bin b (n_b points) the mean confidence conf_b
and the accuracy acc_b. Then (Guo et al. 2017; Naeini et al. 2015)

    ECE = Σ_b (n_b / N) · |acc_b − conf_b|        MCE = max_{b: n_b > 0} |acc_b − conf_b|

Two binnings:
- uniform: edges 0, 1/B, …, 1; bin b holds [b/B, (b+1)/B), and the last bin is closed, [1 − 1/B, 1],
  so a confidence of exactly 1.0 lands in it (torchmetrics #3510 gives it a bin of its own, past
  the last edge).
- equal mass: the points sorted by confidence (stable, so ties keep their order) and cut into B runs
  of ⌊N/B⌋ or ⌈N/B⌉ points; a bin's edges are the confidences at its ends.

The same for the deterministic network (eval mode: weight scaling) and for MC dropout's mean softmax
over T passes (regsim.analyses.mc_dropout), on the same points, side by side. Importing this module
does not import torch.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from .base import Progress, RunView, require
from .ensemble import _integer, no_grad_steps
from .mc_dropout import mc_passes, rates

POINTS = ("val", "train", "train+val")


@dataclass(frozen=True)
class CalibrationRequest:
    T: int = 50  # MC dropout passes, in [1, 200]
    bins: int = 10  # bins of the reliability diagram, in [2, 100]
    points: str = "val"  # labelled points: "val", "train" or "train+val"
    seed: int = 0  # seeds MC dropout's masks

    def __post_init__(self) -> None:
        if not (_integer(self.T) and 1 <= self.T <= 200):
            raise ValueError(f"T = {self.T!r} is out of range; allowed: [1, 200]")
        if not (_integer(self.bins) and 2 <= self.bins <= 100):
            raise ValueError(f"bins = {self.bins!r} is out of range; allowed: [2, 100]")
        if self.points not in POINTS:
            raise ValueError(f"points = {self.points!r} is not allowed; choose one of: {', '.join(POINTS)}")
        if not (_integer(self.seed) and 0 <= self.seed < 2**63):
            raise ValueError(f"seed = {self.seed!r} is out of range; allowed: [0, 2⁶³)")


@dataclass(frozen=True)
class Bins:
    """One reliability diagram."""

    edges: np.ndarray  # (B + 1,) bin edges in confidence
    count: np.ndarray  # (B,) points per bin: the confidence histogram
    confidence: np.ndarray  # (B,) mean confidence per bin (nan where empty)
    accuracy: np.ndarray  # (B,) accuracy per bin (nan where empty)
    ece: float  # Σ_b n_b/N · |acc_b − conf_b|
    mce: float  # max over non-empty bins of |acc_b − conf_b|


@dataclass(frozen=True)
class Reliability:
    """Calibration of one predictor (the deterministic network, or MC dropout's mean)."""

    name: str  # "deterministic" or "mc"
    confidence: np.ndarray  # (N,) top-1 probability
    correct: np.ndarray  # (N,) bool: the top-1 class is the label
    uniform: Bins  # equal-width bins
    equal_mass: Bins  # equal-count bins
    accuracy: float  # mean of `correct`
    nll: float  # mean −log p(label), nats
    brier: float  # mean Σ_c (p_c − [c = label])²


@dataclass(frozen=True)
class CalibrationResult:
    step: int  # the step whose weights were used
    T: int  # MC passes
    bins: int  # B
    points: str  # which labelled points
    rates: tuple[float, ...]  # drop rate per site (input, fc1, …) during the MC passes
    deterministic: Reliability  # eval mode (weight scaling)
    mc: Reliability  # mean softmax of T passes with dropout on
    note: str  # e.g. no dropout in the network: MC equals the deterministic network
    elapsed: float  # seconds spent computing


Request = CalibrationRequest
Result = CalibrationResult


def _summarize(edges: np.ndarray, index: np.ndarray, conf: np.ndarray, correct: np.ndarray) -> Bins:
    B = len(edges) - 1
    count = np.bincount(index, minlength=B)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.bincount(index, weights=conf, minlength=B) / count
        a = np.bincount(index, weights=correct.astype(np.float64), minlength=B) / count
    gap = np.abs(a - c)
    full = count > 0
    ece = float(np.sum(count[full] / len(conf) * gap[full])) if len(conf) else float("nan")
    mce = float(gap[full].max()) if full.any() else float("nan")
    return Bins(edges, count, c, a, ece, mce)


def uniform_bins(conf: np.ndarray, correct: np.ndarray, B: int) -> Bins:
    """Equal-width bins [b/B, (b+1)/B), the last closed at 1 (see the module docstring)."""
    conf = np.asarray(conf, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, B + 1)
    index = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, B - 1)
    return _summarize(edges, index, conf, np.asarray(correct, bool))


def equal_mass_bins(conf: np.ndarray, correct: np.ndarray, B: int) -> Bins:
    """B runs of the sorted confidences, ⌊N/B⌋ or ⌈N/B⌉ points each (empty bins when N < B)."""
    conf = np.asarray(conf, dtype=np.float64)
    N = len(conf)
    if N == 0:
        raise ValueError("calibration needs at least one labelled point")
    order = np.argsort(conf, kind="stable")
    rank_bin = np.arange(N) * B // N  # rank r → bin ⌊r·B/N⌋, ascending
    index = np.empty(N, dtype=np.int64)
    index[order] = rank_bin
    s = conf[order]
    starts = np.minimum(np.searchsorted(rank_bin, np.arange(B)), N - 1)  # each bin's first rank
    edges = np.append(s[starts], s[-1])
    return _summarize(edges, index, conf, np.asarray(correct, bool))


def reliability(name: str, probs: np.ndarray, labels: np.ndarray, B: int) -> Reliability:
    """Calibration of (N, C) probabilities against (N,) labels, both binnings."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    p_true = probs[np.arange(len(labels)), labels]
    onehot = np.eye(probs.shape[1])[labels]
    with np.errstate(divide="ignore"):
        nll = float(np.mean(-np.log(p_true)))
    return Reliability(name, conf, correct, uniform_bins(conf, correct, B), equal_mass_bins(conf, correct, B),
                       float(correct.mean()), nll, float(np.mean(np.sum((probs - onehot) ** 2, 1))))


def compute(run: RunView, request: CalibrationRequest) -> Generator[Progress, None, CalibrationResult]:
    """Both predictors' reliability on the labelled points; yields per chunk of MC passes."""
    return (yield from no_grad_steps(_compute(run, request)))


def _compute(run: RunView, request: CalibrationRequest) -> Generator[Progress, None, CalibrationResult]:
    import torch

    t0 = time.perf_counter()
    require(run, "Calibration", classification=True)
    if request.points == "val":
        x, y = run.x_val, run.y_val
    elif request.points == "train":
        x, y = run.x_train, run.y_train
    else:
        x, y = torch.cat([run.x_train, run.x_val]), torch.cat([run.y_train, run.y_val])
    model = run.model
    det = torch.softmax(model(x), -1).cpu().numpy()
    g = torch.Generator(device=x.device)
    g.manual_seed(request.seed)
    outs = yield from mc_passes(model, x, request.T, g)  # (T, N, C)
    mc = torch.softmax(outs, -1).mean(0).cpu().numpy()
    labels = y.cpu().numpy()
    r = rates(model)
    note = "" if any(r) else "this network has no dropout: MC dropout equals the deterministic network"
    return CalibrationResult(run.step, request.T, request.bins, request.points, r,
                             reliability("deterministic", det, labels, request.bins),
                             reliability("mc", mc, labels, request.bins), note,
                             time.perf_counter() - t0)
