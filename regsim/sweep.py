"""The (lr × λ) sweep: Loshchilov & Hutter (2019) Fig. 2 at small scale.

Every cell is a short training run of the base settings with one (variant, lr, λ, seed); its result
is the final validation error (1 − accuracy; the validation loss for regression). The paper's finding
is about the *shape* of the grid: with L2 (SGD+L2, Adam+L2) the best λ moves as lr moves (for SGD
lr·λ ≈ constant, a diagonal valley), with decoupled decay (SGDW, AdamW in the paper's form) the best
λ stays put (a vertical/horizontal valley), so lr and λ can be tuned separately. PyTorch's AdamW
multiplies λ by lr, so its valley is diagonal again; the paper's η_t·λ removes that.

What a small grid can and cannot show: seeds give a spread per cell (`std`); a best cell that beats
its neighbours by less than their standard error is noise, not an effect (`SweepGrid.resolved`).

`run_sweep` is a generator that yields partial grids, so it can run as a background job that fills a
heatmap in. One at a time, each cell is `Trainer(h).step(steps)`: the same run as training it alone.
Batched (the default when the base has no dropout and no clipping), the runs of one seed and one
optimizer family train as one model under torch.func.vmap, from the same initial weights and batches,
with one update formula for all decay modes: the test checks each run's weights against the run alone
(1e-5) and the grid against the one-at-a-time grid. Measured (`python3 main.py bench --only optim`,
one thread, the 2-core machine shared with other work): 108 runs × 120 steps (64-128-128-10 digits,
batch 128, 3 Adam variants) took 55.7 s one at a time and 26.9 s batched (2.07×; 2.73× for 12 runs in
the quick bench); 72 runs × 600 steps batched took 59 s, above the issue's 25 s target (which was
measured on 2 idle cores).
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_write_json, atomic_write_text
from .hparams import HParams

# variant slug → (display name, settings it implies). The paper's SGD is SGD with momentum 0.9.
VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "sgd-l2": ("SGD+L2", dict(optimizer="momentum", decay_mode="l2")),
    "sgdw": ("SGDW", dict(optimizer="momentum", decay_mode="decoupled")),
    "sgdw-paper": ("SGDW (paper)", dict(optimizer="momentum", decay_mode="decoupled_paper")),
    "adam-l2": ("Adam+L2", dict(optimizer="adam", decay_mode="l2")),
    "adamw": ("AdamW", dict(optimizer="adam", decay_mode="decoupled")),
    "adamw-paper": ("AdamW (paper)", dict(optimizer="adam", decay_mode="decoupled_paper")),
}


@dataclass(frozen=True)
class SweepSpec:
    """What to sweep."""

    base: HParams  # everything but the swept settings (a preset plus --set overrides)
    lrs: tuple[float, ...]  # the lr axis
    decays: tuple[float, ...]  # the λ axis (for the paper variants: the λ of η_t·λ)
    variants: tuple[str, ...] = ("adam-l2", "adamw", "adamw-paper")  # VARIANTS slugs
    seeds: tuple[int, ...] = (0,)  # each cell is trained once per seed (the spread)
    steps: int = 300  # optimizer steps per run

    def __post_init__(self) -> None:
        for name in ("lrs", "decays", "variants", "seeds"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad:
            raise ValueError(f"variants: {bad[0]!r} is not allowed; choose from: {', '.join(VARIANTS)}")
        for name in ("lrs", "decays", "variants", "seeds"):
            if not getattr(self, name):
                raise ValueError(f"{name}: give at least one value")
        if not 1 <= self.steps <= 10_000_000:
            raise ValueError(f"steps = {self.steps} is out of range; allowed: [1, 10000000]")
        for lr, lam, seed in ((lr, lam, s) for lr in self.lrs for lam in self.decays for s in self.seeds):
            self.cell_hparams(self.variants[0], lr, lam, seed)  # validates every value once, up front

    def cell_hparams(self, variant: str, lr: float, lam: float, seed: int) -> HParams:
        """The settings of one cell: a ValueError names the field and its range (lr, weight_decay…)."""
        return self.base.replace(lr=float(lr), weight_decay=float(lam), seed=int(seed),
                                 **VARIANTS[variant][1])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return len(self.variants), len(self.lrs), len(self.decays), len(self.seeds)

    @property
    def run_steps(self) -> int:
        """Optimizer steps of all runs together: the unit of `sweep_steps`' progress."""
        return int(np.prod(self.shape)) * self.steps


@dataclass(frozen=True)
class SweepGrid:
    """The grid so far: NaN where a cell has not been trained yet."""

    spec: SweepSpec
    error: np.ndarray  # (V, L, D, S) final validation error per variant, lr, λ, seed
    diverged: np.ndarray  # (V, L, D, S) bool: the run diverged (its error is the restored weights')
    done: int  # cells × seeds trained so far
    seconds: float  # wall time so far
    total: int = field(init=False)  # cells × seeds in all

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", int(np.prod(self.spec.shape)))

    def mean(self) -> np.ndarray:
        """(V, L, D) mean error over the seeds trained so far (NaN where none)."""
        with np.errstate(invalid="ignore"):
            return _nanmean(self.error, axis=3)

    def std(self) -> np.ndarray:
        """(V, L, D) standard deviation over seeds (ddof=1; NaN with fewer than two)."""
        n = np.sum(~np.isnan(self.error), axis=3)
        out = np.full(n.shape, np.nan)
        ok = n >= 2
        if ok.any():
            e = self.error[ok]
            out[ok] = np.array([np.std(r[~np.isnan(r)], ddof=1) for r in e])
        return out

    def best_decay_per_lr(self) -> np.ndarray:
        """(V, L) index of the λ with the lowest mean error at each lr (-1 where nothing is done)."""
        m = self.mean()
        filled = np.where(np.isnan(m), np.inf, m)
        best = np.argmin(filled, axis=2)
        return np.where(np.isinf(filled.min(axis=2)), -1, best)

    def top(self, k: int = 10) -> list[list[tuple[int, int]]]:
        """Per variant, the (lr index, λ index) of the k lowest-error cells, best first."""
        out = []
        for m in self.mean():
            flat = np.where(np.isnan(m), np.inf, m).ravel()
            order = [int(i) for i in np.argsort(flat, kind="stable") if np.isfinite(flat[i])][:k]
            out.append([divmod(i, m.shape[1]) for i in order])
        return out

    def resolved(self) -> np.ndarray:
        """(V,) True where the best cell beats the runner-up by more than one standard error of their
        difference: only then is "the best λ" more than seed noise."""
        m, s, n = self.mean(), self.std(), len(self.spec.seeds)
        out = np.zeros(len(self.spec.variants), dtype=bool)
        for v, ranked in enumerate(self.top(2)):
            if len(ranked) == 2 and n >= 2:
                (a, b) = ranked
                se = math.sqrt((s[v][a] ** 2 + s[v][b] ** 2) / n)
                out[v] = bool(m[v][b] - m[v][a] > se)
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One row per trained run, for the CSV."""
        sp, out = self.spec, []
        for (v, i, j, s), e in np.ndenumerate(self.error):
            if not np.isnan(e):
                out.append({"variant": sp.variants[v], "name": VARIANTS[sp.variants[v]][0],
                            "lr": sp.lrs[i], "weight_decay": sp.decays[j], "seed": sp.seeds[s],
                            "steps": sp.steps, "val_error": float(e),
                            "diverged": bool(self.diverged[v, i, j, s])})
        return out

    def to_dict(self) -> dict[str, Any]:
        sp = self.spec
        m, s = self.mean(), self.std()
        return {"base": sp.base.to_dict(), "lrs": list(sp.lrs), "decays": list(sp.decays),
                "variants": {v: VARIANTS[v][0] for v in sp.variants}, "seeds": list(sp.seeds),
                "steps": sp.steps, "done": self.done, "total": self.total, "seconds": self.seconds,
                "mean_val_error": _jsonable(m), "std_val_error": _jsonable(s),
                "best_decay_index_per_lr": self.best_decay_per_lr().tolist(),
                "top10": [[list(c) for c in t] for t in self.top(10)],
                "best_resolved_from_noise": self.resolved().tolist(), "runs": self.rows()}


def _nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    n = np.sum(~np.isnan(a), axis=axis)
    total = np.nansum(a, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _jsonable(a: np.ndarray) -> Any:
    return [None if (isinstance(x, float) and math.isnan(x)) else x for x in a.ravel().tolist()] \
        if a.ndim == 1 else [_jsonable(r) for r in a]


def train_cell(h: HParams, steps: int, device: str = "cpu") -> tuple[float, bool]:
    """(final validation error, diverged) of one run, trained as the app's engine trains it:
    `Trainer(h).step(n)` in chunks of CELL_CHUNK steps (the same weights as one `step(steps)` call;
    only a divergence is seen at the end of the chunk it happened in, as in the app)."""
    return drain_steps(cell_steps(h, steps, device))


CELL_CHUNK = 50  # steps between yields of a cell trained alone (~10–50 ms of a small net)


def cell_steps(h: HParams, steps: int, device: str = "cpu") -> Generator[int, None, tuple[float, bool]]:
    """`train_cell` as a generator: yields the steps done after each chunk, returns (error, diverged)."""
    from .trainer import Trainer

    t = Trainer(h, device=device)
    done = 0
    while done < steps:
        n = min(CELL_CHUNK, steps - done)
        t.step(n)
        done += n
        yield done
    _, val_loss, _, val_acc = t.evaluate()
    err = val_loss if t.data.task == "regression" else 1.0 - val_acc
    return float(err), t.status == "diverged"


def drain_steps(gen: Generator[Any, None, Any]) -> Any:
    """Run a step generator to its end; its return value."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def can_batch(h: HParams) -> bool:
    """The batched path covers runs without dropout and clipping (the rest of Trainer.step is the
    batch order, the schedule and the update rule, which it reproduces)."""
    return (h.dropout == 0 and not any(h.layer_dropout) and h.input_dropout == 0 and h.grad_clip == 0)


def train_batched(hs: list[HParams], steps: int, device: str = "cpu") -> tuple[list[float], list[bool],
                                                                                 dict[str, Any]]:
    """`batched_steps` run to its end: (errors, unstable, final params (K, ...))."""
    return drain_steps(batched_steps(hs, steps, device))


def batched_steps(hs: list[HParams], steps: int, device: str = "cpu") -> Generator[
        int, None, tuple[list[float], list[bool], dict[str, Any]]]:
    """Train runs that share seed, data and architecture (they differ in lr, λ, decay mode, within
    one optimizer family) as one vmapped model: (errors, unstable, final params (K, ...)).

    Each run starts from the weights `Trainer(h)` would start from and sees the same batches; one
    update formula covers every decay mode, per run k (c_l2, c_dec from regsim.optim's group
    settings, so exactly what the run alone would use):
        g ← g + c_l2·θ;  Adam: m, v, θ ← θ − lr_t·c_dec·θ − lr_t·m̂/(√v̂ + ε)
                         SGD:  b ← μb + g,  θ ← θ − lr_t·c_dec·θ − lr_t·b
    A run whose loss went non-finite or above 4× its start is flagged `unstable`: the caller trains
    it alone, because Trainer's divergence handling (restoring a checkpoint) is not reproduced."""
    import torch
    from torch.func import functional_call, grad, vmap

    from .optim import DECAY_KEY, family, group_settings, lr_at
    from .trainer import Trainer

    t = Trainer(hs[0], device=device)  # the shared init and batch order
    model = t.model.eval()  # no dropout in a batched run, so eval = train
    k, adam = len(hs), family(hs[0].optimizer) == "adam"
    names = [n for n, _ in model.named_parameters()]
    base = {n: p.detach() for n, p in model.named_parameters()}
    params = {n: p.unsqueeze(0).repeat(k, *([1] * p.dim())).clone() for n, p in base.items()}  # (K, ...)
    dev = t.x_train.device

    def coefs(no_decay: bool) -> tuple[torch.Tensor, torch.Tensor]:
        l2, dec = [], []
        for h in hs:
            g = group_settings(h, no_decay)
            if adam:
                c = g["weight_decay"]
                l2.append(0.0 if g["decoupled_weight_decay"] else c)
                dec.append(c if g["decoupled_weight_decay"] else 0.0)
            else:
                l2.append(g["weight_decay"])
                dec.append(g[DECAY_KEY])
        return torch.tensor(l2, device=dev), torch.tensor(dec, device=dev)

    c = {False: coefs(False), True: coefs(True)}
    view = {n: (k,) + (1,) * base[n].dim() for n in names}
    c_l2 = {n: c[base[n].dim() < 2][0].view(view[n]) for n in names}
    c_dec = {n: c[base[n].dim() < 2][1].view(view[n]) for n in names}
    mu = torch.tensor([h.momentum if h.optimizer == "momentum" else 0.0 for h in hs], device=dev)
    b1, b2 = hs[0].betas  # betas are not swept: one value for the whole grid
    m = {n: torch.zeros_like(p) for n, p in params.items()}
    v = {n: torch.zeros_like(p) for n, p in params.items()}

    def loss(p, xb, yb):
        return t._loss(functional_call(model, p, (xb,)), yb)

    grads = vmap(grad(loss), in_dims=(0, None, None))
    losses = vmap(loss, in_dims=(0, None, None))
    first = losses(params, t.x_train, t.y_train)
    for step in range(steps):
        xb, yb = t._next_batch()
        lr = torch.tensor([lr_at(h, step) for h in hs], device=dev)
        g = grads(params, xb, yb)
        for n in names:
            lr_n, p = lr.view(view[n]), params[n]
            gn = g[n] + c_l2[n] * p
            if adam:
                m[n].mul_(b1).add_(gn, alpha=1 - b1)
                v[n].mul_(b2).addcmul_(gn, gn, value=1 - b2)
                upd = (m[n] / (1 - b1 ** (step + 1))) / ((v[n] / (1 - b2 ** (step + 1))).sqrt() + 1e-8)
            else:
                m[n] = gn if step == 0 else mu.view(view[n]) * m[n] + gn
                upd = m[n]
            params[n] = p - lr_n * c_dec[n] * p - lr_n * upd
        yield step + 1  # one vmapped step of K runs: ~5–20 ms for the digits MLP
    with torch.no_grad():
        last = losses(params, t.x_train, t.y_train)
        out = vmap(lambda p: functional_call(model, p, (t.x_val,)))(params)  # (K, N, C)
        if t.data.task == "regression":
            err = vmap(lambda o: t._loss(o, t.y_val))(out)
        else:
            err = 1.0 - (out.argmax(-1) == t.y_val).float().mean(-1)
        bad = ~torch.isfinite(last) | (last > 4 * first)
    return err.cpu().tolist(), bad.cpu().tolist(), params


def run_sweep(spec: SweepSpec, device: str = "cpu", batched: bool | None = None) -> Iterator[SweepGrid]:
    """Train every (variant, lr, λ, seed), yielding the partial grid after each run (one at a time)
    or each batch (batched: the runs of one seed and optimizer family at once).

    Order: seed-major, so the whole grid fills in at one seed first (the heatmap is readable early)
    and the spread arrives with the later seeds. `batched=None` batches when `can_batch(base)`."""
    for item in sweep_steps(spec, device, batched):
        if isinstance(item, SweepGrid):
            yield item


def sweep_groups(spec: SweepSpec, batched: bool | None = None) -> list[list[tuple[int, int, int, int]]]:
    """The units of work, in order: lists of (variant, lr, λ, seed) indices trained together (one
    batch: one seed × one optimizer family; one at a time: one cell each). Ray runs each as a task."""
    from .optim import family

    if batched is None:
        batched = can_batch(spec.base)
    if batched and not can_batch(spec.base):
        raise ValueError("batched sweep: the base settings need dropout = 0 and grad_clip = 0")
    V, L, D, S = spec.shape
    groups = []
    for s in range(S):
        if batched:
            for fam in ("sgd", "adam"):
                cells = [(v, i, j, s) for v in range(V)
                         if family(VARIANTS[spec.variants[v]][1]["optimizer"]) == fam
                         for i in range(L) for j in range(D)]
                if cells:
                    groups.append(cells)
        else:
            groups += [[(v, i, j, s)] for v in range(V) for i in range(L) for j in range(D)]
    return groups


def group_steps(spec: SweepSpec, cells: list[tuple[int, int, int, int]], device: str = "cpu",
                batched: bool = True) -> Generator[int, None, list[tuple[float, bool]]]:
    """Train one group of `sweep_groups`: yields run-steps done so far, returns (error, diverged)
    per cell. Batched, a run the vmapped model flags unstable is trained alone (Trainer's
    divergence handling is not reproduced under vmap)."""
    hs = [spec.cell_hparams(spec.variants[v], spec.lrs[i], spec.decays[j], spec.seeds[s])
          for v, i, j, s in cells]
    if not batched:
        out = []
        for k, h in enumerate(hs):
            gen = cell_steps(h, spec.steps, device)
            while True:
                try:
                    done = next(gen)
                except StopIteration as stop:
                    out.append(stop.value)
                    break
                yield k * spec.steps + done
        return out
    gen = batched_steps(hs, spec.steps, device)
    while True:
        try:
            done = next(gen)
        except StopIteration as stop:
            errs, bad, _ = stop.value
            break
        yield done * len(hs)
    out = []
    for h, e, b in zip(hs, errs, bad):
        if not b:
            out.append((e, False))
            continue
        alone = cell_steps(h, spec.steps, device)
        while True:  # progress stays at the group's end meanwhile
            try:
                next(alone)
            except StopIteration as stop:
                out.append(stop.value)
                break
            yield len(hs) * spec.steps
    return out


def train_group(spec: SweepSpec, cells: list[tuple[int, int, int, int]], device: str = "cpu",
                batched: bool = True) -> list[tuple[float, bool]]:
    """`group_steps` run to its end (what a Ray task computes)."""
    return drain_steps(group_steps(spec, cells, device, batched))


def sweep_steps(spec: SweepSpec, device: str = "cpu", batched: bool | None = None) -> Generator[
        int | SweepGrid, None, None]:
    """`run_sweep` in small steps, for a background job: yields the run-steps done so far (an int)
    every optimizer step or chunk, and the partial SweepGrid whenever a group of runs is done. In
    all, spec.run_steps run-steps."""
    if batched is None:
        batched = can_batch(spec.base)
    groups = sweep_groups(spec, batched)
    error = np.full(spec.shape, np.nan)
    diverged = np.zeros(spec.shape, dtype=bool)
    t0, done = time.perf_counter(), 0
    for cells in groups:
        gen = group_steps(spec, cells, device, batched)
        base_steps = done * spec.steps
        while True:
            try:
                n = next(gen)
            except StopIteration as stop:
                results = stop.value
                break
            yield base_steps + min(n, len(cells) * spec.steps)
        for (v, i, j, s), (e, d) in zip(cells, results):
            error[v, i, j, s], diverged[v, i, j, s] = e, d
        done += len(cells)
        yield SweepGrid(spec, error.copy(), diverged.copy(), done, time.perf_counter() - t0)


def write_grid(grid: SweepGrid, out: Path) -> tuple[Path, Path]:
    """sweep.csv (one row per run) and sweep.json (the grid, stats and runs), each written atomically."""
    rows = grid.rows()
    buf = io.StringIO()
    fields = ["variant", "name", "lr", "weight_decay", "seed", "steps", "val_error", "diverged"]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = atomic_write_text(out / "sweep.csv", buf.getvalue())
    json_path = atomic_write_json(out / "sweep.json", json.loads(json.dumps(grid.to_dict())))
    return csv_path, json_path


def parse_floats(text: str, name: str) -> tuple[float, ...]:
    """"1e-3,3e-3,1e-2" → floats; a bad item raises a ValueError naming the option."""
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--{name} {text!r}: expected comma-separated numbers such as 1e-3,1e-2") from None
    if not vals:
        raise ValueError(f"--{name}: give at least one number")
    return vals
