"""MC dropout: dropout kept on at inference, T stochastic passes averaged (Gal & Ghahramani 2016).

Each pass t draws fresh masks at every dropout site (the live rates) and gives an output f_t(x); the
T passes approximate the predictive distribution. A pass is one sub-network (Gal's sample of the
weights): its masks are shared by all the evaluated points, so each pass is a smooth function of x
and the mean curve's Monte-Carlo error is smooth too. Per point the statistics are those of
per-example masks (each point sees the same distribution of masks either way).

For regression, the mean and the spread of the T outputs (std over the passes, ddof = 0; Gal's τ⁻¹
observation-noise term is not added). For classification, with p_t = softmax(f_t(x)) and
p̄ = (1/T) Σ_t p_t (natural logs, nats):

    entropy          H[p̄] = −Σ_c p̄_c log p̄_c                     (predictive: total uncertainty)
    expected_entropy E_t H[p_t] = −(1/T) Σ_t Σ_c p_tc log p_tc      (aleatoric part)
    mutual_info      H[p̄] − E_t H[p_t]  ≥ 0                        (epistemic part: the passes disagree)

All T passes run as one batched forward pass over a (T·N, D) stack, in chunks of passes that yield
progress. The masks come from the analysis's own torch.Generator seeded from the Request, drawn by the
analysis itself (never through the network's dropout modules, which draw from torch's global stream):
the run's random streams are untouched, and the same seed gives the same result. Importing this
module does not import torch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import Progress, RunView, require
from .ensemble import MACS_PER_YIELD, _integer, _points, data_grid, macs_after, no_grad_steps

if TYPE_CHECKING:
    import torch

POINTS = ("auto", "grid", "val", "train", "train+val")


@dataclass(frozen=True)
class MCRequest:
    T: int = 50  # stochastic passes, in [1, 200]
    points: str = "auto"  # "auto" (a curve / grid for 1-D / 2-D inputs, else the validation set),
    #                       "grid", "val", "train" or "train+val"
    resolution: int = 0  # grid points (per axis in 2-D); 0 = auto: 400 on a curve, 61 per axis in 2-D
    certain: int = 8  # how many most / least certain points to name, in [0, 100]
    seed: int = 0  # seeds the masks (the analysis's own generator)

    def __post_init__(self) -> None:
        if not (_integer(self.T) and 1 <= self.T <= 200):
            raise ValueError(f"T = {self.T!r} is out of range; allowed: [1, 200]")
        if self.points not in POINTS:
            raise ValueError(f"points = {self.points!r} is not allowed; choose one of: {', '.join(POINTS)}")
        if not (_integer(self.resolution) and (self.resolution == 0 or 3 <= self.resolution <= 801)):
            raise ValueError(f"resolution = {self.resolution!r} is out of range; allowed: 0 (auto) or "
                             "[3, 801]")
        if not (_integer(self.certain) and 0 <= self.certain <= 100):
            raise ValueError(f"certain = {self.certain!r} is out of range; allowed: [0, 100]")
        if not (_integer(self.seed) and 0 <= self.seed < 2**63):
            raise ValueError(f"seed = {self.seed!r} is out of range; allowed: [0, 2⁶³)")


@dataclass(frozen=True)
class MCResult:
    """T stochastic passes on the current weights (see the module docstring)."""

    step: int  # the step whose weights were used
    task: str  # "classification" or "regression"
    T: int  # passes
    seed: int  # the masks' seed
    rates: tuple[float, ...]  # the drop rate at each site (input, fc1, …) during the passes
    points: str  # what was evaluated: "grid", "val", "train" or "train+val"
    x: np.ndarray  # (N, D) the evaluated points
    grid_shape: tuple[int, ...]  # (r,) curve, (r, r) 2-D grid with rows = y, () data points
    deterministic: np.ndarray  # eval mode (weight scaled): (N,) regression values or (N, C) probs
    mean: np.ndarray | None  # (N,) regression: mean of the T outputs
    std: np.ndarray | None  # (N,) regression: their std (ddof = 0)
    probs: np.ndarray | None  # (N, C) classification: the mean softmax p̄
    entropy: np.ndarray | None  # (N,) H[p̄], nats
    expected_entropy: np.ndarray | None  # (N,) E_t H[p_t], nats
    mutual_info: np.ndarray | None  # (N,) H[p̄] − E_t H[p_t], nats
    labels: np.ndarray | None  # (N,) classes of labelled points (None on a grid / for regression)
    most_certain: np.ndarray  # indices of the `certain` points of lowest entropy (regression: std)
    least_certain: np.ndarray  # … of highest, most uncertain first
    accuracy_mc: float  # accuracy of p̄ on labelled points (nan otherwise)
    accuracy_det: float  # accuracy of the eval-mode network on them (nan otherwise)
    note: str  # e.g. that the network has no dropout, so every pass is the same
    elapsed: float  # seconds spent computing


Request = MCRequest
Result = MCResult


def _act(model: Any, h: torch.Tensor) -> torch.Tensor:
    return h.relu_() if model.activation == "relu" else h.tanh_()


def _drop(h: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """Inverted dropout with our own generator: m ⊙ h / (1 − p'), m ~ Bernoulli(1 − p').

    The masks come from 16-bit uniform integers, four per 64-bit draw: u ≥ q − 2¹⁵ keeps a unit
    with probability 1 − p' where p' = q / 2¹⁶, q = round(p · 2¹⁶), i.e. the rate rounded to a
    multiple of 2⁻¹⁶ (within 7.6e-6 of p), and the scale is 1/(1 − p') so E[y] = h exactly.
    Measured on a busy CPU thread for 2 M activations: 14 ms against 29 ms for rand() ≥ p (one
    float draw per unit), which was ~40 % of a 100-pass MC run of a 1-128-128-1 net while every
    point drew its own mask. `h` is (t, N, U); the mask is (t, 1, U), one per pass."""
    import torch

    q = min(round(p * 65536), 65535)  # p < 1: at least one value in 2¹⁶ keeps
    if q <= 0:
        return h
    shape = (h.shape[0], 1, h.shape[2])  # (t, 1, U): one mask per pass, shared by every point
    n = shape[0] * shape[2]
    u = torch.empty((n + 3) // 4, dtype=torch.int64, device=h.device)
    u.random_(-(2**63), 2**63 - 1, generator=g)
    keep = u.view(torch.int16)[:n].view(shape).ge(q - 32768)
    return h.mul_(keep).mul_(65536 / (65536 - q))


def rates(model: Any) -> tuple[float, ...]:
    return tuple(float(d.p) for d in model.dropout_modules())


def mc_passes(model: Any, x: torch.Tensor, T: int, generator: torch.Generator
              ) -> Generator[Progress, None, torch.Tensor]:
    """(N, D) → (T, N, C) outputs of T passes with fresh dropout masks, batched in chunks of passes.
    Drive it under no_grad (ensemble.no_grad_steps), as `compute` does.

    Pass t's masks are drawn in order (input, fc1, fc2, …) for a chunk of passes at a time, so the
    result depends on the seed and the chunking (fixed by the network's width and N)."""
    import torch

    p = rates(model)
    N = x.shape[0]
    chunk = max(1, min(T, MACS_PER_YIELD // max(1, N * (macs_after(model, 0) + sum(model.sizes)))))
    out = torch.empty(T, N, model.out.out_features, dtype=x.dtype, device=x.device)
    for t0 in range(0, T, chunk):
        t = min(T, t0 + chunk) - t0
        h = _drop(x.expand(t, N, x.shape[1]).clone(), p[0], generator)  # (t, N, D)
        for i, (lin, norm) in enumerate(zip(model.linears, model.norms)):
            h = _drop(_act(model, norm(lin(h))), p[i + 1], generator)  # (t, N, H_i)
        out[t0:t0 + t] = model.out(h)
        yield Progress(t0 + t, T)
    return out


def predictive_stats(probs_t: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(T, N, C) per-pass probabilities → p̄ (N, C), H[p̄], E_t H[p_t], mutual information (N,)."""
    import torch

    mean = probs_t.mean(0)
    entropy = -torch.special.xlogy(mean, mean).sum(-1)
    expected = -torch.special.xlogy(probs_t, probs_t).sum(-1).mean(0)
    return mean, entropy, expected, entropy - expected


def compute(run: RunView, request: MCRequest) -> Generator[Progress, None, MCResult]:
    """T passes on the run's evaluated points (see the module docstring); yields per chunk of passes."""
    return (yield from no_grad_steps(_compute(run, request)))


def _compute(run: RunView, request: MCRequest) -> Generator[Progress, None, MCResult]:
    import torch

    require(run, "MC dropout")
    t0 = time.perf_counter()
    model = run.model
    d = run.x_train.shape[1]
    points = request.points
    if points == "auto":
        points = "grid" if d in (1, 2) else "val"
    res = request.resolution or (400 if d == 1 else 61)
    if points == "grid":
        x, shape = data_grid(run, res)
    else:
        x, shape = _points(run, points, res)
    labels = None if points == "grid" else (
        torch.cat([run.y_train, run.y_val]) if points == "train+val" else
        run.y_train if points == "train" else run.y_val)
    g = torch.Generator(device=x.device)
    g.manual_seed(request.seed)
    r = rates(model)
    note = "" if any(r) else "this network has no dropout (p = 0 at every site): every pass is the same"
    outs = yield from mc_passes(model, x, request.T, g)  # (T, N, C)
    det = model(x)
    k = min(request.certain, len(x))
    nan = float("nan")
    if run.task == "regression":
        mean, std = outs[..., 0].mean(0), outs[..., 0].std(0, correction=0)
        order = torch.argsort(std, stable=True).cpu().numpy()
        return MCResult(run.step, run.task, request.T, request.seed, r, points, x.cpu().numpy(), shape,
                        det[:, 0].cpu().numpy(), mean.cpu().numpy(), std.cpu().numpy(), None, None,
                        None, None, None, order[:k], order[::-1][:k], nan, nan, note,
                        time.perf_counter() - t0)
    probs_t = torch.softmax(outs, -1)
    mean, entropy, expected, mi = predictive_stats(probs_t)
    order = torch.argsort(entropy, stable=True).cpu().numpy()
    det_p = torch.softmax(det, -1)
    acc_mc = acc_det = nan
    if labels is not None:
        acc_mc = float((mean.argmax(-1) == labels).double().mean())
        acc_det = float((det_p.argmax(-1) == labels).double().mean())
    return MCResult(run.step, run.task, request.T, request.seed, r, points, x.cpu().numpy(), shape,
                    det_p.cpu().numpy(), None, None, mean.cpu().numpy(), entropy.cpu().numpy(),
                    expected.cpu().numpy(), mi.cpu().numpy(),
                    None if labels is None else labels.cpu().numpy(), order[:k], order[::-1][:k],
                    acc_mc, acc_det, note, time.perf_counter() - t0)


def entropy_bound(C: int) -> float:
    """The largest entropy over C classes, log C (nats): what the panels scale their maps to."""
    return math.log(C)
