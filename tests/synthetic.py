"""Synthetic snapshots for fast UI tests that need no torch and no engine.

The numbers follow the real shapes (see regsim/snapshot.py) and change with `step`, so a panel fed a
sequence of them has something moving to draw.
"""

from __future__ import annotations

import numpy as np

from regsim.analyses.landscape import LandscapeResult
from regsim.hparams import HParams
from regsim.snapshot import DataView, Snapshot


def make_snapshot(step: int = 100, dataset: str = "moons", weight_decay: float = 0.01,
                  seed: int = 0, status: str = "running", events=()) -> Snapshot:
    rng = np.random.default_rng(seed + step)
    hp = HParams(dataset=dataset, dropout=0.5, weight_decay=weight_decay, hidden=(64, 64))
    in_dim = {"digits": 64, "regression": 1}.get(dataset, 2)
    out_dim = {"digits": 10, "regression": 1}.get(dataset, 2)
    sizes = (in_dim, 64, 64, out_dim)
    names = ("fc1", "fc2", "out")
    scale = 1.0 / (1.0 + weight_decay * step / 100)
    hists, edges, norms, amax = [], [], [], []
    fixed, fixed_edges = [], []
    for i in range(3):
        w = rng.normal(0, 0.5 * scale, size=sizes[i] * sizes[i + 1])
        m = float(np.abs(w).max())
        c, e = np.histogram(w, bins=64, range=(-m, m))
        hists.append(c.astype(np.int64))
        lock = max(2.5, m)  # like the engine: a range locked at the start, widened only if needed
        fc, fe = np.histogram(w, bins=64, range=(-lock, lock))
        fixed.append(fc.astype(np.int64))
        fixed_edges.append(fe)
        edges.append(e)
        norms.append(float(np.linalg.norm(w)))
        amax.append(m)
    rates = (0.0, 0.5, 0.5)  # like the engine: p = 0 at the input keeps every unit
    masks = tuple(rng.random((32, u)) >= p for u, p in zip((in_dim, 64, 64), rates))
    pre = tuple(np.abs(rng.normal(size=min(u, 64))) for u in (in_dim, 64, 64))
    post = tuple(p * (rng.random(p.shape) > 0.5) * 2.0 for p in pre)
    t = step / 1000
    if dataset == "digits":
        data = DataView(kind="images", x_train=np.zeros((0, 0)), y_train=np.zeros(0),
                        x_val=np.zeros((0, 0)), y_val=np.zeros(0),
                        images=rng.random((16, 8, 8)), labels=np.arange(16) % 10,
                        preds=(np.arange(16) + (np.arange(16) % 5 == 0)) % 10)
    elif dataset == "regression":
        x = np.sort(rng.uniform(-3, 3, 40))[:, None]
        cx = np.linspace(-4, 4, 200)
        data = DataView(kind="1d", x_train=x, y_train=np.sin(x[:, 0]), x_val=x + 0.1,
                        y_val=np.sin(x[:, 0] + 0.1), curve_x=cx, curve_y=np.sin(cx) * scale)
    else:
        xt = rng.normal(size=(100, 2))
        g = np.linspace(-3, 3, 64)
        gx, gy = np.meshgrid(g, g)
        data = DataView(kind="2d", x_train=xt, y_train=(xt[:, 0] * xt[:, 1] > 0).astype(int),
                        x_val=xt + 0.2, y_val=(xt[:, 0] > 0).astype(int), grid_x=g, grid_y=g,
                        grid_prob=1 / (1 + np.exp(-(gx * gy) * (1 + t))))
    return Snapshot(
        step=step, epoch=step * 32 / 200, status=status, message="", device="cpu", hparams=hp,
        lr=1e-2, train_loss=float(np.exp(-t) * 0.7), val_loss=float(np.exp(-t) * 0.7 + 0.1 * t),
        train_acc=float(1 - 0.5 * np.exp(-t)), val_acc=float(0.9 - 0.4 * np.exp(-t)),
        batch_loss=float(np.exp(-t) * 0.8), grad_norm=1.0, steps_per_sec=500.0,
        layer_names=names, layer_sizes=sizes, weight_hist=tuple(hists),
        weight_hist_edges=tuple(edges), weight_norms=np.asarray(norms),
        weight_abs_max=np.asarray(amax), dropout_sites=("input", "fc1", "fc2"),
        dropout_rates=rates, dropout_masks=masks, activation_pre=pre,
        activation_post=post, data=data, events=tuple(events), weight_hist_fixed=tuple(fixed),
        weight_hist_fixed_edges=tuple(fixed_edges))


def make_landscape(step: int = 100, n: int = 51, coarse: bool = False) -> LandscapeResult:
    a = np.linspace(-1, 1, n)
    aa, bb = np.meshgrid(a, a)
    loss = 0.3 + aa**2 + 2 * bb**2 + 0.2 * np.sin(5 * aa)
    path = np.stack([np.linspace(-0.8, 0, 20), np.linspace(0.6, 0, 20)], axis=1)
    return LandscapeResult(step=step, alphas=a, betas=a, loss=loss, center_loss=0.3, path=path,
                           path_steps=np.arange(20) * 10, coarse=coarse, elapsed=0.1,
                           done=n * n, total=n * n)
