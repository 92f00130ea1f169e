"""Co-adaptation, measured by ablation: how much the loss depends on single hidden units and on pairs.

The seed says dropout "prevents neurons from co-adapting too much to each other. Each neuron must learn
useful features independently, without relying on specific other neurons being present." Co-adaptation
is not a quantity the network has; this analysis measures one honest proxy for it, by removing units
exactly the way dropout does (a mask m_i = 0 on the unit's output), in eval mode, on fixed points:

    single damage   ΔL_i  = L(h with h_i = 0) − L(h)
    pair damage     ΔL_ij = L(h with h_i = h_j = 0) − L(h)
    interaction     I_ij  = ΔL_ij − ΔL_i − ΔL_j

L is the run's task loss (cross-entropy with its label smoothing, or MSE) averaged over the chosen points,
h the site's eval-mode output (with inverted dropout eval mode is the identity, so h is the unit's
expected value: every other unit at its expected value, no other site masked). I_ij = 0 when two units
contribute independently (their removals add up); I_ij > 0 when losing both hurts more than the sum
(each covers for the other: redundancy lost), I_ij < 0 when one unit is of little use without the other
(a removed partner already spoilt it). |I_ij| large = the two units only work together: co-adapted.
A network trained with dropout had to predict with a random ~p of every layer missing, so a single
missing unit is a situation it trained in: its ΔL_i and |I_ij| should be small.

What it does not show: zero-ablation measures dependence, not what a unit encodes; a loss change also
grows with the output scale (an overconfident net's logits move its loss further for the same
change), and on held-out points removing a unit can lower the loss of an overfit net (ΔL_i < 0). Dead
units (zero on every point) have ΔL_i = I_ij = 0 exactly and are counted separately; the summaries are
over live units and pairs of live units.

Cost: the N points' site activations h (N, n) are computed once; the single ablations are n forward
passes of the layers after the site, batched as (chunk, N, n). At the last hidden layer the logits are
linear in the mask, z_ij = z − c_i − c_j with c_i = W_out[:, i] · h_i (N, C), so a pair costs N·C
instead of a forward pass and every pair can be afforded; at an earlier site each pair is a forward pass
of the later layers, and when n(n−1)/2 exceeds `pairs`, `pairs` distinct pairs are sampled uniformly
(`all_pairs` = False). Importing this module does not import torch.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import Progress, RunView, require
from .ensemble import (
    MACS_PER_YIELD,
    WORK_PER_YIELD,
    _integer,
    after_site,
    before_site,
    macs_after,
    no_grad_steps,
)

if TYPE_CHECKING:
    import torch

POINTS = ("val", "train")
MAX_PAIRS = 100_000  # the largest `pairs` a request may ask for


@dataclass(frozen=True)
class CoadaptationRequest:
    site: str = ""  # hidden dropout site "fc1", "fc2", …; "" = the last hidden layer
    points: str = "val"  # where the loss is measured: "val" (held out) or "train"
    pairs: int = 2048  # pairs to ablate: all when n(n−1)/2 ≤ pairs, else this many sampled; 0 = none
    seed: int = 0  # seeds the sampled pairs

    def __post_init__(self) -> None:
        if not isinstance(self.site, str) or self.site == "input":
            raise ValueError(f"site = {self.site!r} is not allowed; choose a hidden layer's dropout site "
                             "such as 'fc1', or '' for the last hidden layer")
        if self.points not in POINTS:
            raise ValueError(f"points = {self.points!r} is not allowed; choose one of: {', '.join(POINTS)}")
        if not (_integer(self.pairs) and 0 <= self.pairs <= MAX_PAIRS):
            raise ValueError(f"pairs = {self.pairs!r} is out of range; allowed: [0, {MAX_PAIRS}]")
        if not (_integer(self.seed) and 0 <= self.seed < 2**63):
            raise ValueError(f"seed = {self.seed!r} is out of range; allowed: [0, 2⁶³)")


@dataclass(frozen=True)
class CoadaptationResult:
    """Single-unit and pairwise ablation damage at one site (see the module docstring)."""

    step: int  # the step whose weights were used
    site: str  # the site, e.g. "fc2"
    p: float  # the site's drop rate in training at that step
    n_units: int  # units at the site
    points: str  # "val" or "train"
    n_points: int  # points the loss is averaged over
    base_loss: float  # L(h): the intact network's loss on them
    single: np.ndarray  # (n,) ΔL_i
    dead: np.ndarray  # (n,) bool: the unit's output is 0 on every point
    pair_i: np.ndarray  # (P,) first unit of each ablated pair (i < j)
    pair_j: np.ndarray  # (P,) second unit
    pair_damage: np.ndarray  # (P,) ΔL_ij
    interaction: np.ndarray  # (P,) I_ij = ΔL_ij − ΔL_i − ΔL_j
    all_pairs: bool  # True: every pair of units; False: `pairs` sampled uniformly
    linear: bool  # True: the site is the last hidden layer (pairs by the linear shortcut)
    # Summaries over live units (not dead) and pairs of live units; nan when there are none.
    median_single: float  # median ΔL_i
    max_single: float  # max ΔL_i
    mean_abs_single: float  # mean |ΔL_i|
    mean_abs_interaction: float  # mean |I_ij|
    note: str  # e.g. pairs sampled, dead units
    elapsed: float  # seconds spent computing


Request = CoadaptationRequest
Result = CoadaptationResult


def _site(model: Any, site: str) -> int:
    """The index of a hidden site in model.dropout_sites (1 = fc1); "" = the last hidden layer."""
    sites = tuple(model.dropout_sites)
    if site == "":
        return len(sites) - 1
    if site not in sites[1:]:
        raise ValueError(f"site = {site!r} is not a hidden dropout site of this network; choose one of: "
                         f"{', '.join(sites[1:])}")
    return sites.index(site)


def _losses(run: RunView, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(K, N, C) logits → (K,) the task loss over the N points, per ablation."""
    K, N = logits.shape[:2]
    yy = y.repeat(K) if y.dim() == 1 else y.repeat(K, 1)
    return run.loss(logits.reshape(K * N, -1), yy, reduction="none").reshape(K, -1).mean(1)


def sample_pairs(n: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """(i, j, all): every pair i < j of n units when n(n−1)/2 ≤ count, else `count` distinct pairs
    drawn uniformly (numpy's generator seeded with `seed`), in index order."""
    total = n * (n - 1) // 2
    if total <= count:
        idx = np.arange(total, dtype=np.int64)
        every = True
    else:
        idx = np.sort(np.random.default_rng(seed).choice(total, size=count, replace=False))
        every = False
    # the k-th pair in the order (0,1), (0,2), …, (0,n−1), (1,2), …: row i starts at i·n − i(i+1)/2
    starts = np.arange(n) * n - np.arange(n) * (np.arange(n) + 1) // 2
    i = np.searchsorted(starts, idx, side="right") - 1
    j = idx - starts[i] + i + 1
    return i.astype(np.int64), j.astype(np.int64), every


def compute(run: RunView, request: CoadaptationRequest) -> Generator[Progress, None, CoadaptationResult]:
    """Single and pairwise ablations at the site; yields after every chunk of ablations."""
    return (yield from no_grad_steps(_compute(run, request)))


def _compute(run: RunView, request: CoadaptationRequest) -> Generator[Progress, None, CoadaptationResult]:
    import torch

    t0 = time.perf_counter()
    require(run, "The co-adaptation view")
    model = run.model
    idx = _site(model, request.site)
    x, y = (run.x_val, run.y_val) if request.points == "val" else (run.x_train, run.y_train)
    h = before_site(model, x, idx)  # (N, n): the site's eval-mode output
    N, n = h.shape
    linear = idx == len(model.dropout_sites) - 1
    C = model.out.out_features
    base = float(_losses(run, after_site(model, h[None], idx), y)[0])
    pi, pj, every = sample_pairs(n, request.pairs, request.seed)
    total = n + len(pi)
    per = N * (C if linear else max(1, macs_after(model, idx) + n))  # work of one ablation
    chunk = max(1, (WORK_PER_YIELD if linear else MACS_PER_YIELD) // per)

    if linear:  # z_S = z − Σ_{i∈S} c_i with c_i = W_out[:, i] · h_i
        z = model.out(h)  # (N, C)
        W = model.out.weight  # (C, n)

        def ablate(units: torch.Tensor) -> torch.Tensor:  # (K, s) unit indices → (K,) losses
            c = h[:, units].permute(1, 2, 0)[..., None] * W[:, units].permute(1, 2, 0)[:, :, None, :]
            return _losses(run, z - c.sum(1), y)  # c: (K, s, N, C)
    else:
        def ablate(units: torch.Tensor) -> torch.Tensor:
            hh = h.expand(len(units), N, n).clone()
            rows = torch.arange(len(units), device=h.device)[:, None].expand_as(units)
            hh[rows, :, units] = 0.0
            return _losses(run, after_site(model, hh, idx), y)

    single = torch.empty(n, dtype=h.dtype, device=h.device)
    units = torch.arange(n, device=h.device)[:, None]
    done = 0
    for a in range(0, n, chunk):
        single[a:a + chunk] = ablate(units[a:a + chunk]) - base
        done = min(n, a + chunk)
        yield Progress(done, total)
    pair_units = torch.stack([torch.as_tensor(pi), torch.as_tensor(pj)], 1).to(h.device)
    pair = torch.empty(len(pi), dtype=h.dtype, device=h.device)
    for a in range(0, len(pi), chunk):
        pair[a:a + chunk] = ablate(pair_units[a:a + chunk]) - base
        yield Progress(n + min(len(pi), a + chunk), total)

    single_np = single.double().cpu().numpy()
    pair_np = pair.double().cpu().numpy()
    inter = pair_np - single_np[pi] - single_np[pj]
    dead = (h == 0).all(0).cpu().numpy()
    live = ~dead
    live_pairs = live[pi] & live[pj]
    nan = float("nan")
    s_live = single_np[live]
    notes = []
    if not every and len(pi):
        notes.append(f"{len(pi)} of {n * (n - 1) // 2} pairs sampled (seed {request.seed})")
    if request.pairs == 0:
        notes.append("no pairs asked (pairs = 0)")
    if dead.any():
        notes.append(f"{int(dead.sum())} of {n} units dead (0 on every point): left out of the summaries")
    p = float(model.dropout_modules()[idx].p)
    return CoadaptationResult(
        run.step, model.dropout_sites[idx], p, n, request.points, N, base, single_np, dead,
        pi, pj, pair_np, inter, every, linear,
        float(np.median(s_live)) if s_live.size else nan, float(s_live.max()) if s_live.size else nan,
        float(np.abs(s_live).mean()) if s_live.size else nan,
        float(np.abs(inter[live_pairs]).mean()) if live_pairs.any() else nan,
        "; ".join(notes), time.perf_counter() - t0)
