"""The ensemble of 2ⁿ sub-networks behind one dropout layer, enumerated exactly (Srivastava et al. 2014).

Each dropout mask m ∈ {0, 1}ⁿ over the n units of a site defines a sub-network; with inverted dropout
its kept units are scaled by 1/(1 − p), and it has probability P(m) = Π (1 − p)^{m_i} · p^{1 − m_i}.
Three ways to combine their softmax outputs p_m(c | x):

    arithmetic      A(c) = Σ_m P(m) · p_m(c)
    geometric       G(c) ∝ Π_m p_m(c)^{P(m)}   (normalized over c)  =  softmax(Σ_m P(m) · z_m)(c)
    weight scaled   W(c) = softmax(z(E[m]))     what eval mode computes (inverted dropout: the identity)

The geometric line holds for any site: log p_m(c) = z_m(c) − logsumexp(z_m), and the second term does
not depend on c, so normalizing removes it. When the site is the last hidden layer the logits are
linear in the mask, z_m = b + Σ_i m_i · W[:, i] · h_i / (1 − p), so Σ_m P(m) z_m = z(E[m]) and G = W
exactly: the seed's claim. For an earlier site a ReLU (and LayerNorm) lies between the mask and the
logits and G ≠ W in general; A ≠ G in both cases (Jensen).

Speed (the last hidden layer): the 2ⁿ logit vectors are sums of two halves' partial sums,
z_(j,k) = A_j + B_k with A over the 2^⌊n/2⌋ masks of the first half of the units and B over the
rest (meet in the middle), so the enumeration costs two small matmuls plus one add, one sigmoid or
softmax and one compare per (mask, point) — no forward pass per mask. With two classes the softmax
is σ(d) of the logit difference d = A_j + B_k, and σ's exponential factorizes too:
σ(A_j + B_k) = 1 / (1 + e^(−A_j)·e^(−B_k)), so the 2ⁿ exponentials are products of 2^⌊n/2⌋ + 2^⌈n/2⌉
of them and each (mask, point) costs a multiply-add and a reciprocal. For an earlier site the logits
are not linear in the mask: each mask costs a forward pass of the layers after the site, batched
over chunks of masks (the result's `method` says which was used).

Units at other dropout sites, and units of this site left out of the enumeration (`units`), are at
their expected value (eval mode: inverted dropout is the identity there). More than MAX_EXACT units
are not enumerated: K masks are sampled from P(m) instead (`exact` = False; every mask weighs 1/K).
Importing this module does not import torch.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import Progress, RunView, require

if TYPE_CHECKING:
    import torch

MAX_EXACT = 16  # at most this many units are enumerated (2¹⁶ = 65 536 masks)
POINTS = ("train+val", "train", "val", "grid")
ORDERS = ("index", "accuracy")  # pages by mask index, or by sub-network accuracy (best first, stable)
WORK_PER_YIELD = 512_000  # (mask, point, class) elements between two yields: ~1-4 ms on a CPU
# (small enough that the working buffers stay in cache: 2¹⁶ masks × 1000 points took 0.22–0.28 s on a
# busy CPU thread at 512 k against 0.29–0.43 s at 2 M and 0.40–0.46 s at 8 M)
MACS_PER_YIELD = 8_000_000  # multiply-adds of forward passes between two yields: ~2-8 ms on a CPU


def macs_after(model: Any, idx: int) -> int:
    """Multiply-adds per point of the layers after dropout site `idx` (0 = input)."""
    sizes = model.sizes
    return sum(sizes[i] * sizes[i + 1] for i in range(idx, len(sizes) - 1))


def _integer(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _number(v: object) -> bool:
    return isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)


@dataclass(frozen=True)
class EnsembleRequest:
    site: str = ""  # dropout site: "input", "fc1", "fc2", …; "" = the last hidden layer
    units: tuple[int, ...] = ()  # the site's units to enumerate (≤ 16); () = all of them
    p: float | None = None  # drop rate the masks are weighed with; None = the site's own rate
    points: str = "train+val"  # evaluated points: "train+val", "train", "val" or "grid" (1-D / 2-D data)
    resolution: int = 41  # grid points per axis for points = "grid", in [3, 201]
    samples: int = 4096  # masks sampled when more than 16 units would be enumerated, in [16, 2¹⁶]
    page: int = 0  # which page of sub-networks to return whole (page_probs), >= 0
    page_size: int = 16  # sub-networks per page, in [0, 256]
    order: str = "index"  # how pages run through the masks: "index" (mask index) or "accuracy" (best first)
    seed: int = 0  # seeds the sampled masks (exact enumeration uses no randomness)

    def __post_init__(self) -> None:
        if not isinstance(self.site, str):
            raise ValueError(f"site = {self.site!r} must be a dropout site name such as 'fc1'")
        units = self.units
        if not isinstance(units, tuple):
            if not isinstance(units, (list, np.ndarray)):
                raise ValueError(f"units = {units!r} must be a list of unit indices (at most {MAX_EXACT})")
            units = tuple(int(u) if _integer(u) else u for u in units)
            object.__setattr__(self, "units", units)
        if len(units) > MAX_EXACT or not all(_integer(u) and u >= 0 for u in units) \
                or len(set(units)) != len(units):
            raise ValueError(f"units = {list(units)!r} is out of range; allowed: up to {MAX_EXACT} "
                             "distinct unit indices ≥ 0")
        if self.p is not None and not (_number(self.p) and 0.0 < float(self.p) < 1.0):
            raise ValueError(f"p = {self.p!r} is out of range; allowed: (0, 1), or None for the site's rate")
        if self.points not in POINTS:
            raise ValueError(f"points = {self.points!r} is not allowed; choose one of: {', '.join(POINTS)}")
        if not (_integer(self.resolution) and 3 <= self.resolution <= 201):
            raise ValueError(f"resolution = {self.resolution!r} is out of range; allowed: [3, 201]")
        if not (_integer(self.samples) and 16 <= self.samples <= 2**16):
            raise ValueError(f"samples = {self.samples!r} is out of range; allowed: [16, 65536]")
        if not (_integer(self.page) and self.page >= 0):
            raise ValueError(f"page = {self.page!r} is out of range; allowed: [0, ∞)")
        if not (_integer(self.page_size) and 0 <= self.page_size <= 256):
            raise ValueError(f"page_size = {self.page_size!r} is out of range; allowed: [0, 256]")
        if self.order not in ORDERS:
            raise ValueError(f"order = {self.order!r} is not allowed; choose one of: {', '.join(ORDERS)}")
        if not (_integer(self.seed) and 0 <= self.seed < 2**63):
            raise ValueError(f"seed = {self.seed!r} is out of range; allowed: [0, 2⁶³)")


@dataclass(frozen=True)
class EnsembleResult:
    """The sub-networks of one dropout site and three ways to combine them (see the module docstring)."""

    step: int  # the step whose weights were analysed
    site: str  # the dropout site, e.g. "fc2"
    p: float  # the drop rate the masks are weighed with
    n_units: int  # units at the site
    units: np.ndarray  # (n,) the units whose masks vary (the others at their expected value)
    n_masks: int  # sub-networks combined: 2ⁿ when exact, else the number sampled
    exact: bool  # True: every mask of `units` enumerated; False: `n_masks` masks sampled from P(m)
    linear: bool  # True: the site is the last hidden layer, so the logits are linear in its mask
    method: str  # how the masks were evaluated, in words
    note: str  # anything the reader should know (subset enumerated, sampling, p fallback)
    points: str  # which points were evaluated (a Request value)
    x: np.ndarray  # (N, D) the evaluated points
    grid_shape: tuple[int, ...]  # (r,) for a 1-D curve, (r, r) for a 2-D grid (rows = y), () otherwise
    arithmetic: np.ndarray  # (N, C) Σ_m P(m) p_m
    geometric: np.ndarray  # (N, C) normalized Π_m p_m^P(m)
    weight_scaled: np.ndarray  # (N, C) eval mode's output
    # Accuracy on the labelled points (the evaluated ones, or train+val for a grid).
    labels: np.ndarray  # (M,) their classes
    sub_accuracy: np.ndarray  # (n_masks,) each sub-network's accuracy; mask index bit i = units[i] kept
    mask_weight: np.ndarray  # (n_masks,) P(m) (sums to 1; 1/K each when sampled)
    kept: np.ndarray  # (n_masks,) units kept by each mask
    accuracy_arithmetic: float
    accuracy_geometric: float
    accuracy_weight_scaled: float
    mean_sub_accuracy: float  # Σ_m P(m) · accuracy_m: the expected single sub-network
    # The differences between the three, in probability, over the evaluated points.
    max_diff_geometric: float  # max |G − W|
    mean_diff_geometric: float  # mean |G − W|
    max_diff_arithmetic: float  # max |A − W|
    mean_diff_arithmetic: float  # mean |A − W|
    max_diff_arithmetic_geometric: float  # max |A − G|
    page_masks: np.ndarray  # (K, n) bool: the masks of the requested page (True = kept)
    page_index: np.ndarray  # (K,) their mask indices (rows of sub_accuracy, mask_weight, kept)
    page_probs: np.ndarray  # (K, N, C) their softmax outputs on the evaluated points
    elapsed: float  # seconds spent computing
    masks: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))  # (K, n) sampled masks


Request = EnsembleRequest
Result = EnsembleResult


# ---------------------------------------------------------------------------- the network, piecewise
def site_index(model: Any, site: str) -> int:
    """0 for "input", k for "fck" (after the k-th hidden layer); "" = the last hidden layer."""
    sites = tuple(model.dropout_sites)
    if site == "":
        return len(sites) - 1
    if site not in sites:
        raise ValueError(f"site = {site!r} is not a dropout site of this network; choose one of: "
                         f"{', '.join(sites)}")
    return sites.index(site)


def _act(model: Any, h: torch.Tensor) -> torch.Tensor:
    return h.relu() if model.activation == "relu" else h.tanh()


def before_site(model: Any, x: torch.Tensor, idx: int) -> torch.Tensor:
    """What site `idx`'s dropout receives, in eval mode: (N, D) → (N, n)."""
    h = x
    for i in range(idx):
        h = _act(model, model.norms[i](model.linears[i](h)))
    return h


def after_site(model: Any, h: torch.Tensor, idx: int) -> torch.Tensor:
    """The logits from site `idx`'s (masked) output on, in eval mode: (..., N, n) → (..., N, C)."""
    for i in range(idx, len(model.linears)):
        h = _act(model, model.norms[i](model.linears[i](h)))
    return model.out(h)


def _site_rate(model: Any, idx: int) -> float:
    return float(model.dropout_modules()[idx].p)


def mask_bits(index: np.ndarray, n: int) -> np.ndarray:
    """(K,) mask indices → (K, n) bool, bit i of the index = unit i kept."""
    return ((np.asarray(index, dtype=np.int64)[:, None] >> np.arange(n)) & 1).astype(bool)


def _points(run: RunView, points: str, resolution: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """The evaluated points and the grid's shape (() for data points)."""
    import torch

    if points == "train":
        return run.x_train, ()
    if points == "val":
        return run.x_val, ()
    if points == "train+val":
        return torch.cat([run.x_train, run.x_val]), ()
    return data_grid(run, resolution)


def data_grid(run: RunView, resolution: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """A curve (1-D inputs) or a grid (2-D inputs, rows = y) over the data plus a margin: 1 for a
    curve (the regression's [-3, 3] inputs → [-4, 4], its plotted range), 0.5 for a 2-D map (the
    dataset's own bounds)."""
    import torch

    x = torch.cat([run.x_train, run.x_val])
    d = x.shape[1]
    if d not in (1, 2):
        raise ValueError(f"points = 'grid' needs 1-D or 2-D inputs; this run's have {d} features")
    lo, hi = x.min(0).values, x.max(0).values
    pad = 1.0 if d == 1 else 0.5
    axes = [torch.linspace(float(lo[i]) - pad, float(hi[i]) + pad, resolution, dtype=x.dtype,
                           device=x.device) for i in range(d)]
    if d == 1:
        return axes[0][:, None], (resolution,)
    gy, gx = torch.meshgrid(axes[1], axes[0], indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], 1), (resolution, resolution)


# ------------------------------------------------------------------------------------------ compute
def no_grad_steps(gen: Generator[Progress, None, Any]) -> Generator[Progress, None, Any]:
    """Drive `gen` with each of its steps under torch.no_grad(), and return its value.

    Never a `with torch.no_grad()` around a yield: a suspended generator's `with` would leave grad
    mode off in whoever resumes in between (the engine's training chunks)."""
    import torch

    while True:
        with torch.no_grad():
            try:
                prog = next(gen)
            except StopIteration as stop:
                return stop.value
        yield prog


def compute(run: RunView, request: EnsembleRequest) -> Generator[Progress, None, EnsembleResult]:
    """The ensemble (see the module docstring); yields after every chunk of masks."""
    return (yield from no_grad_steps(_compute(run, request)))


def _compute(run: RunView, request: EnsembleRequest) -> Generator[Progress, None, EnsembleResult]:
    import torch

    t0 = time.perf_counter()
    # The masks are of a Linear layer's units (the conv net's sites are channels × pixels).
    require(run, "The sub-network ensemble", classification=True)
    model = run.model
    idx = site_index(model, request.site)
    site = model.dropout_sites[idx]
    notes = []
    p = request.p
    if p is None:
        p = _site_rate(model, idx)
        if p == 0.0:
            p = 0.5
            notes.append(f"site {site} has p = 0 (trained without dropout there): masks weighed at "
                         "p = 0.5")
    p = float(p)
    x_eval, shape = _points(run, request.points, request.resolution)
    if request.points == "grid":  # accuracies need labels: on train+val, evaluated alongside
        x_lab = torch.cat([run.x_train, run.x_val])
        x_all = torch.cat([x_eval, x_lab])
    else:
        x_all = x_eval
    y_lab = torch.cat([run.y_train, run.y_val]) if request.points in ("grid", "train+val") else (
        run.y_train if request.points == "train" else run.y_val)
    n_eval = len(x_eval)
    h = before_site(model, x_all, idx)  # (N, n_all)
    n_all = h.shape[1]
    units = list(request.units) if request.units else list(range(n_all))
    if max(units) >= n_all:
        raise ValueError(f"units = {list(request.units)!r} is out of range; allowed: unit indices "
                         f"in [0, {n_all - 1}] at site {site}")
    linear = idx == len(model.dropout_sites) - 1
    exact = len(units) <= MAX_EXACT
    if request.units and len(units) < n_all:
        notes.append(f"{len(units)} of the {n_all} units enumerated; the other {n_all - len(units)} "
                     "at their expected value (eval mode)")
    logits_ws = after_site(model, h, idx)  # (N, C) eval mode
    y_lab = y_lab.to(h.device)
    if exact and linear:
        method = ("meet in the middle: logits are linear in the mask of the last hidden layer, "
                  "z = A_j + B_k over the two halves of the units")
        if model.out.out_features == 2:
            method += ("; two classes: σ(A_j + B_k) = 1 / (1 + e^(−A_j)·e^(−B_k)), products of the "
                       f"halves' exponentials (σ itself if an exponent passes ±{EXP_SPAN:g})")
        gen = _enumerate_linear(model, h, units, p, y_lab)
    else:
        if exact:
            masks = None
            method = (f"batched forward passes of the layers after {site} over all 2^{len(units)} "
                      "masks (the logits are not linear in this mask)")
        else:
            g = torch.Generator(device="cpu")
            g.manual_seed(request.seed)
            masks = torch.rand(request.samples, len(units), generator=g) >= p
            method = f"{request.samples} masks sampled from P(m), batched forward passes"
            notes.append(f"{len(units)} units > {MAX_EXACT}: {request.samples} masks sampled "
                         f"(an estimate), not all 2^{len(units)}; pick ≤ {MAX_EXACT} `units` "
                         "to enumerate")
        gen = _enumerate_forward(model, h, idx, units, p, y_lab, masks)
    arith, geo_logits, sub_correct, weights, kept = yield from gen
    n_lab = len(y_lab)
    geo = torch.softmax(geo_logits, -1)
    ws = torch.softmax(logits_ws, -1)
    lab = slice(len(x_all) - n_lab, len(x_all))

    def acc(prob: torch.Tensor) -> float:
        return float((prob[lab].argmax(-1) == y_lab).double().mean())

    a_acc, g_acc, w_acc = acc(arith), acc(geo), acc(ws)
    sub_accuracy = (sub_correct / n_lab).cpu().numpy()
    # The requested page, evaluated directly (one batched pass of its masks): the pictures.
    n_masks = len(sub_accuracy)
    page = np.arange(request.page * request.page_size,
                     min(n_masks, (request.page + 1) * request.page_size), dtype=np.int64)
    if request.order == "accuracy":  # rank r → the r-th best sub-network (ties by mask index)
        page = np.argsort(-sub_accuracy, kind="stable")[page].astype(np.int64)
    if exact:
        page_masks = mask_bits(page, len(units))
    else:
        page_masks = (masks[torch.as_tensor(page)].numpy() if len(page)
                      else np.zeros((0, len(units)), bool))
    if len(page):
        scale = torch.ones(len(page), n_all, dtype=h.dtype, device=h.device)
        scale[:, units] = torch.as_tensor(page_masks, dtype=h.dtype, device=h.device) / (1 - p)
        page_probs = torch.softmax(after_site(model, h[None, :n_eval] * scale[:, None], idx), -1)
        page_probs = page_probs.cpu().numpy()
    else:
        page_probs = np.zeros((0, n_eval, ws.shape[1]), np.float32)
    arith_e, geo_e, ws_e = arith[:n_eval], geo[:n_eval], ws[:n_eval]
    weights_np = weights.cpu().numpy()
    return EnsembleResult(
        step=run.step, site=site, p=p, n_units=n_all, units=np.asarray(units, dtype=np.int64),
        n_masks=n_masks, exact=exact, linear=linear, method=method, note="; ".join(notes),
        points=request.points, x=x_eval.cpu().numpy(), grid_shape=shape,
        arithmetic=arith_e.cpu().numpy(), geometric=geo_e.cpu().numpy(), weight_scaled=ws_e.cpu().numpy(),
        labels=y_lab.cpu().numpy(), sub_accuracy=sub_accuracy, mask_weight=weights_np,
        kept=kept.cpu().numpy(), accuracy_arithmetic=a_acc, accuracy_geometric=g_acc,
        accuracy_weight_scaled=w_acc, mean_sub_accuracy=float(np.dot(weights_np, sub_accuracy)),
        max_diff_geometric=float((geo_e - ws_e).abs().max()),
        mean_diff_geometric=float((geo_e - ws_e).abs().mean()),
        max_diff_arithmetic=float((arith_e - ws_e).abs().max()),
        mean_diff_arithmetic=float((arith_e - ws_e).abs().mean()),
        max_diff_arithmetic_geometric=float((arith_e - geo_e).abs().max()),
        page_masks=page_masks, page_index=page, page_probs=page_probs,
        elapsed=time.perf_counter() - t0,
        masks=np.zeros((0, 0), bool) if exact else masks.numpy())


def _half_weights(n: int, p: float, dtype: Any, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """All 2ⁿ masks of n units as (2ⁿ, n) floats (bit i of the row index = unit i kept), and P(m)."""
    import torch

    bits = torch.as_tensor(mask_bits(np.arange(2**n), n), dtype=dtype, device=device)  # (2ⁿ, n)
    kept = bits.sum(1)
    prob = (1 - p) ** kept * p ** (n - kept)
    return bits, prob


def _enumerate_linear(model: Any, h: torch.Tensor, units: list[int], p: float, y: torch.Tensor
                      ) -> Generator[Progress, None, tuple]:
    """All 2ⁿ masks of the last hidden layer by meet in the middle (see the module docstring).

    Returns (arithmetic (N, C) probabilities, Σ_m P(m) z_m (N, C), correct (2ⁿ,) counts on the last
    len(y) points, P(m) (2ⁿ,), kept (2ⁿ,)), mask index = j + 2^lo · k."""
    import torch

    n, N = len(units), h.shape[0]
    w, b = model.out.weight, model.out.bias  # (C, n_all), (C,)
    C = w.shape[0]
    others = [i for i in range(h.shape[1]) if i not in set(units)]
    base = b + h[:, others] @ w[:, others].T  # (N, C) units outside the enumeration at E[m]
    u = h[:, units].T[:, :, None] * w[:, units].T[:, None, :] / (1 - p)  # (n, N, C) unit i's share
    lo = n // 2
    bits_a, pa = _half_weights(lo, p, h.dtype, h.device)
    bits_b, pb = _half_weights(n - lo, p, h.dtype, h.device)
    za = (bits_a @ u[:lo].reshape(lo, -1)).reshape(-1, N, C) + base  # (J, N, C)
    zb = (bits_b @ u[lo:].reshape(n - lo, -1)).reshape(-1, N, C)  # (K, N, C)
    J, K = len(pa), len(pb)
    # Σ_m P(m) z_m separates: Σ_j Σ_k P_j P_k (A_j + B_k) = Σ_j P_j A_j + Σ_k P_k B_k.
    mean_logits = torch.einsum("j,jnc->nc", pa, za) + torch.einsum("k,knc->nc", pb, zb)
    lab = slice(N - len(y), N)
    correct = torch.empty(K, J, dtype=torch.float64, device=h.device)
    arith = torch.zeros(N, C, dtype=torch.float64, device=h.device)
    chunk = max(1, min(K, WORK_PER_YIELD // (J * N * max(C - 1, 1))))
    if C == 2:  # softmax of two logits = sigmoid of their difference: one number per (mask, point)
        da, db = za[..., 1] - za[..., 0], zb[..., 1] - zb[..., 0]  # (J, N), (K, N)
        halves = _exp_halves(da, db, y, lab)
        if halves is not None:
            yield from _two_class_factorized(halves, pa, pb, lab, chunk, correct, arith)
        else:
            yield from _two_class_sigmoid(da, db, y, pa, pb, lab, chunk, correct, arith)
        arith[:, 0] = 1 - arith[:, 1]
    else:
        for k0 in range(0, K, chunk):
            z = za[None] + zb[k0:k0 + chunk, None]  # (k, J, N, C)
            correct[k0:k0 + chunk] = (z[:, :, lab].argmax(-1) == y).sum(-1).double()
            s = torch.softmax(z, -1)
            wk = pb[k0:k0 + chunk, None] * pa[None]
            arith += torch.einsum("m,mnc->nc", wk.reshape(-1), s.reshape(-1, N, C)).double()
            yield Progress(min(K, k0 + chunk) * J, J * K)
    weights = (pb[:, None] * pa[None]).reshape(-1)  # index k·J + j
    kept = (bits_b.sum(1)[:, None] + bits_a.sum(1)[None]).reshape(-1).long()
    return arith.to(h.dtype), mean_logits, correct.reshape(-1), weights.double(), kept


def _enumerate_forward(model: Any, h: torch.Tensor, idx: int, units: list[int], p: float,
                       y: torch.Tensor, masks: torch.Tensor | None) -> Generator[Progress, None, tuple]:
    """Every mask (or the sampled `masks`, (K, n) bool) through the layers after site `idx`, in
    batched chunks; the same return as _enumerate_linear (sampled masks weigh 1/K each)."""
    import torch

    n, (N, n_all) = len(units), h.shape
    total = 2**n if masks is None else len(masks)
    chunk = max(1, MACS_PER_YIELD // (N * (macs_after(model, idx) + n_all)))
    lab = slice(N - len(y), N)
    arith = torch.zeros(N, model.out.out_features, dtype=torch.float64, device=h.device)
    mean_logits = torch.zeros_like(arith)
    correct = torch.empty(total, dtype=torch.float64, device=h.device)
    weights = torch.empty(total, dtype=torch.float64, device=h.device)
    kept = torch.empty(total, dtype=torch.long, device=h.device)
    for m0 in range(0, total, chunk):
        if masks is None:
            bits = torch.as_tensor(mask_bits(np.arange(m0, min(total, m0 + chunk)), n), device=h.device)
            k = bits.sum(1)
            w = ((1 - p) ** k * p ** (n - k)).double()
        else:
            bits = masks[m0:m0 + chunk].to(h.device)
            w = torch.full((len(bits),), 1.0 / total, dtype=torch.float64, device=h.device)
        scale = torch.ones(len(bits), n_all, dtype=h.dtype, device=h.device)
        scale[:, units] = bits.to(h.dtype) / (1 - p)
        z = after_site(model, h[None] * scale[:, None], idx)  # (G, N, C)
        sl = slice(m0, m0 + len(bits))
        correct[sl] = (z[:, lab].argmax(-1) == y).sum(-1).double()
        weights[sl], kept[sl] = w, bits.sum(1)
        arith += torch.einsum("g,gnc->nc", w, torch.softmax(z, -1).double())
        mean_logits += torch.einsum("g,gnc->nc", w, z.double())
        yield Progress(m0 + len(bits), total)
    return arith.to(h.dtype), mean_logits.to(h.dtype), correct, weights, kept


# Largest |exponent| of a half's factor e^(−A) in the factorized sigmoid: e^±80 ∈ [1.8e-35, 5.5e34]
# stays a normal float32, so a product of two never is inf·0 (a NaN); it may overflow to inf
# (σ = 0) or underflow to 0 (σ = 1), both what float32's σ gives for |d| > 104. A point whose halves
# reach further sends the whole enumeration through σ itself (_two_class_sigmoid).
EXP_SPAN = 80.0


def _exp_halves(da: torch.Tensor, db: torch.Tensor, y: torch.Tensor, lab: slice
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(e^(−A'), e^(−B'), flip) for the factorized sigmoid, or None when an exponent leaves ±EXP_SPAN.

    flip (N,) is −1 on the labelled points of class 0, +1 elsewhere; A' = flip·A − c, B' = flip·B + c
    with c per point centring both halves' exponents on the same value (A' + B' = flip·d is kept).
    With the flip, "this sub-network is right on point n" is d'_n > 0 for either class."""
    import torch

    flip = torch.ones(da.shape[1], dtype=da.dtype, device=da.device)  # (N,)
    flip[lab] = (2 * y - 1).to(da.dtype)
    fa, fb = da * flip, db * flip  # (J, N), (K, N)
    c = ((fa.amax(0) + fa.amin(0)) - (fb.amax(0) + fb.amin(0))) / 4  # (N,)
    fa, fb = fa - c, fb + c
    if max(float(fa.abs().max()), float(fb.abs().max())) > EXP_SPAN:
        return None
    return fa.neg_().exp_(), fb.neg_().exp_(), flip  # fa, fb are new tensors: in place is safe


def _two_class_factorized(halves: tuple, pa: torch.Tensor, pb: torch.Tensor, lab: slice, chunk: int,
                          correct: torch.Tensor, arith: torch.Tensor) -> Generator[Progress, None, None]:
    """Two classes through σ(d') = 1 / (1 + e^(−A'_j)·e^(−B'_k)): an exp is the costly part of σ,
    and here the 2ⁿ exponentials are products of 2^⌊n/2⌋ + 2^⌈n/2⌉ of them. Fills correct (K, J)
    and arith[:, 1] (N,) in place.

    Per chunk: one addcmul (1 + αβ), one reciprocal (σ), one matmul with P_j (the mean), and
    round(σ) = [d' > 0] summed over the labelled points (the counts of right answers, exact
    integers). Measured at 2¹⁶ masks × 1000 points, one thread, load 0.2: 34 ms for this loop
    against 80 ms for add + σ + clamp-matmul + bmm (the previous loop). It agrees with σ(A + B) to
    ~1e-8 in the mean; a d' within ~1e-7 of 0 may count differently (float32 rounds d itself that
    much)."""
    import torch

    alpha, beta, flip = halves  # (J, N), (K, N), (N,)
    J, N = alpha.shape
    K = beta.shape[0]
    one = torch.ones((), dtype=alpha.dtype, device=alpha.device)
    buf = torch.empty(chunk, J, N, dtype=alpha.dtype, device=alpha.device)
    n_lab = lab.stop - lab.start
    ind = torch.empty(chunk, J, n_lab, dtype=alpha.dtype, device=alpha.device)
    row = pa.expand(chunk, 1, J)  # (k, 1, J): P_j, for bmm
    means = torch.empty(K, 1, N, dtype=alpha.dtype, device=alpha.device)  # Σ_j P_j σ per k, float32
    counts = torch.empty(K, J, dtype=alpha.dtype, device=alpha.device)  # right answers per mask
    for k0 in range(0, K, chunk):
        kk = min(K, k0 + chunk) - k0
        s = torch.addcmul(one, alpha[None], beta[k0:k0 + kk, None], out=buf[:kk]).reciprocal_()
        torch.bmm(row[:kk], s, out=means[k0:k0 + kk])  # Σ_j P_j σ in float32 (≤ 256 terms)
        torch.sum(torch.round(s[..., lab], out=ind[:kk]), -1, out=counts[k0:k0 + kk])
        yield Progress((k0 + kk) * J, J * K)
    correct.copy_(counts)
    mean = pb.double() @ means[:, 0].double()  # Σ_k P_k … in float64
    arith[:, 1] = torch.where(flip > 0, mean, 1 - mean)


def _two_class_sigmoid(da: torch.Tensor, db: torch.Tensor, y: torch.Tensor, pa: torch.Tensor,
                       pb: torch.Tensor, lab: slice, chunk: int, correct: torch.Tensor,
                       arith: torch.Tensor) -> Generator[Progress, None, None]:
    """Two classes through σ(A_j + B_k) itself (any logits); fills correct and arith[:, 1] in place.

    correct = #(y = 0) + Σ_n [d > 0]·(2y − 1), as argmax picks class 1 iff d > 0. The indicator
    is clamp(d, 0, 2⁻¹⁰⁰)·2¹⁰⁰ folded into the matmul's weights (exact powers of two, so the
    counts are exact integers): measured at 2¹⁶ masks × 1000 points on a busy CPU, 43 ms
    against 275 ms for (d > 0).float() @ sign. A d in (0, 2⁻¹⁰⁰) would count fractionally;
    float32 sums of the units' shares are never that small unless every share is."""
    import torch

    J, N = da.shape
    K = db.shape[0]
    sign = ((2 * y - 1) * 2.0**100).to(da.dtype)  # (M,)
    n0 = float((y == 0).sum())
    buf = torch.empty(chunk, J, N, dtype=da.dtype, device=da.device)
    ind = torch.empty(chunk, J, len(y), dtype=da.dtype, device=da.device)
    for k0 in range(0, K, chunk):
        kk = min(K, k0 + chunk) - k0
        d = torch.add(da[None], db[k0:k0 + kk, None], out=buf[:kk])  # (k, J, N)
        i = torch.clamp(d[..., lab], 0.0, 2.0**-100, out=ind[:kk])
        correct[k0:k0 + kk] = (i.reshape(kk, J, -1) @ sign).double() + n0
        s = d.sigmoid_()  # P(class 1) of each sub-network
        # Σ_j in float32 per k, then Σ_k in float64: one float32 matmul over all the chunk's
        # masks was 1.2e-6 off a per-mask loop at n = 8 (seen on a trained net)
        arith[:, 1] += torch.matmul(pa, s).double().T @ pb[k0:k0 + kk].double()
        yield Progress((k0 + kk) * J, J * K)
