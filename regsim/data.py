"""Datasets, deterministic by seed, with a train/validation split.

Small training sets and adjustable noise make overfitting visible within seconds: the 2-D sets for
decision boundaries, a 1-D regression with a gap in its inputs (where MC dropout's uncertainty should
grow), and real data: the 8×8 UCI handwritten digits bundled in resources/data/digits.npz.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .hparams import HParams

DIGITS_PATH = Path(__file__).resolve().parent.parent / "resources" / "data" / "digits.npz"
DIGITS_TOTAL = 1797
DIGITS_MIN_VAL = 360  # digits train_size is capped so at least this many images stay for validation


@dataclass(frozen=True)
class Dataset:
    name: str
    task: str  # "classification" or "regression"
    view: str  # "2d", "1d", "images" or "tokens" (modular: x holds int64 tokens (a, b))
    x_train: np.ndarray  # (N, D) float32
    y_train: np.ndarray  # (N,) int64 labels, or (N, 1) float32 targets
    x_val: np.ndarray  # (M, D) float32
    y_val: np.ndarray  # (M,) / (M, 1)
    n_classes: int  # output width: classes, or 1 for regression
    bounds: tuple[float, float, float, float]  # (xmin, xmax, ymin, ymax) for 2-D grids / 1-D curves

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])


def make_dataset(h: HParams) -> Dataset:
    """Build the dataset named by `h.dataset`; the same HParams always give the same arrays."""
    rng = np.random.default_rng(h.seed)
    if h.dataset == "digits":
        return _digits(h, rng)
    if h.dataset == "regression":
        return _regression(h, rng)
    if h.dataset == "modular":
        return _modular(h)
    n = h.train_size + h.val_size
    x, y = _TWO_D[h.dataset](n, h.noise, rng)
    x = x.astype(np.float32)
    tr, va = slice(0, h.train_size), slice(h.train_size, n)
    pad = 0.5
    b = (float(x[:, 0].min() - pad), float(x[:, 0].max() + pad),
         float(x[:, 1].min() - pad), float(x[:, 1].max() + pad))
    return Dataset(h.dataset, "classification", "2d", x[tr], y[tr].astype(np.int64), x[va],
                   y[va].astype(np.int64), 2, b)


def _moons(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, n)
    t = rng.uniform(0, np.pi, n)
    x = np.where(y[:, None] == 0,
                 np.stack([np.cos(t), np.sin(t)], 1),
                 np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1))
    x = x - np.array([0.5, 0.25])
    return x + rng.normal(0, noise, x.shape), y


def _circles(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, n)
    t = rng.uniform(0, 2 * np.pi, n)
    r = np.where(y == 1, 0.5, 1.0)
    x = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    return x + rng.normal(0, noise * 0.5, x.shape), y


def _spiral(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, n)
    r = rng.uniform(0.05, 1.0, n)
    t = 3.5 * np.pi * r + np.pi * y
    x = np.stack([r * np.cos(t), r * np.sin(t)], 1) * 1.5
    return x + rng.normal(0, noise * 0.3, x.shape), y


def _xor(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(-1, 1, (n, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    return x + rng.normal(0, noise * 0.5, x.shape), y


_TWO_D = {"moons": _moons, "circles": _circles, "spiral": _spiral, "xor": _xor}


def regression_target(x: np.ndarray) -> np.ndarray:
    """The noiseless function behind the regression set."""
    return np.sin(1.5 * x) + 0.1 * x


def _regression(h: HParams, rng: np.random.Generator) -> Dataset:
    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        # Inputs avoid (-1, 1): a model's prediction there is pure extrapolation.
        side = rng.integers(0, 2, n)
        x = np.where(side == 0, rng.uniform(-3, -1, n), rng.uniform(1, 3, n))
        y = regression_target(x) + rng.normal(0, h.noise * 0.5, n)
        return x[:, None].astype(np.float32), y[:, None].astype(np.float32)

    xt, yt = sample(h.train_size)
    xv, yv = sample(h.val_size)
    return Dataset("regression", "regression", "1d", xt, yt, xv, yv, 1, (-4.0, 4.0, -2.5, 2.5))


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 8×8 digit images (uint8, 0..16) and their labels, from the bundled file."""
    if not DIGITS_PATH.exists():
        raise FileNotFoundError(f"bundled digits data missing: {DIGITS_PATH}")
    with np.load(DIGITS_PATH) as f:
        return f["images"], f["labels"]


def _digits(h: HParams, rng: np.random.Generator) -> Dataset:
    images, labels = load_digits()
    cap = DIGITS_TOTAL - DIGITS_MIN_VAL
    if h.train_size > cap:
        raise ValueError(f"train_size = {h.train_size} is out of range for digits; allowed: [8, {cap}]")
    order = rng.permutation(len(labels))
    x = (images.reshape(len(labels), 64).astype(np.float32) / 16.0)[order]
    y = labels.astype(np.int64)[order]
    n = h.train_size
    return Dataset("digits", "classification", "images", x[:n], y[:n], x[n:], y[n:], 10,
                   (0.0, 1.0, 0.0, 1.0))


def _modular(h: HParams) -> Dataset:
    """a ∘ b mod p over every pair, split by a seeded permutation (regsim/modular.py)."""
    from .modular import split

    p = h.modulus
    xt, yt, xv, yv = split(p, h.operation, h.train_fraction, h.seed)
    return Dataset("modular", "classification", "tokens", xt, yt, xv, yv, p,
                   (0.0, float(p), 0.0, float(p)))
