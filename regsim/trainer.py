"""The trainer: real training you can steer while it runs, observed through snapshots.

    trainer = Trainer(HParams(dataset="digits", dropout=0.5))
    trainer.step(500)
    trainer.update(weight_decay=1e-2)   # safe from any thread; applied before the next step
    snap = trainer.snapshot()           # numpy only

Metrics stay on the device during training; the host syncs only inside `snapshot()` and at the
divergence check at the end of each `step(n)` call (one transfer: that call's per-step batch losses
and a finiteness flag for the weights).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import threading
import time
from collections import deque
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .analyses.base import RunView
from .data import Dataset, make_dataset
from .divergence import EMA_STEPS, LossMonitor, Verdict, constant_loss
from .hparams import (
    CHOICE_SHORT,
    LOSS_LEVEL_FIELDS,
    REBUILD_FIELDS,
    SHORT_LABELS,
    SYMBOL_FIELDS,
    HParams,
    coerce,
)
from .models import build_model
from .optim import apply_decoupled_decay, apply_settings, build_optimizer, lr_at, named_kinds
from .optstate import OptStateCache
from .scratch import site_values
from .snapshot import SCRATCH_SITE, Counters, DataView, Snapshot, check_parts
from .transformer import build_transformer, site_view
from .update_code import check_pick, group_views, record
from .update_code import view as update_code_view

HIST_BINS = 64  # fixed bin count: a histogram costs the same at any λ
MASK_ROWS, MASK_COLS = 32, 256  # cap on the mask image sent per dropout site
MASK_COLS_CONV = 1024  # a conv site's mask: up to 16 whole 8×8 channels, channel-major
ACT_UNITS = 64  # units of one example's activations sent per site
GRID = 64  # decision map: coarse cells per side for 2-D data (see _decision_map)
GRID_FINE = 4  # each refined cell is evaluated on GRID_FINE × GRID_FINE points
GRID_MAX_REFINED = 300  # cap on refined cells per snapshot (300 × 16 = 4 800 extra points)
GRID_MARGIN = 0.08  # the map spans the data plus this share of its extent on each side
PATH_MEMORY_BYTES = 64 * 2**20  # cap on the weight trajectory kept for the loss-surface path
PATH_POINTS = 300
PATH_EVERY = 10  # steps between recorded trajectory points
# A candidate checkpoint (a copy of weights and optimizer state) is taken while the loss is near its
# best, as often as this share of the training time allows: measured on one CPU thread, a copy takes
# 0.18 ms on the 64-64 moons net (so one every ~9 ms) and 0.47 ms on 64-512-512-10 digits with Adam.
CHECKPOINT_OVERHEAD = 0.02
EARLY_POINTS_OVERHEAD = 0.05  # time share the log-spaced early measurements may take (snapshot())
GRAD_NORM_EVERY_S = 0.02  # the gradient norm is measured at most this often (snapshots show it)
EVENT_LOG_MAX = 10_000  # events kept for readers (a slider gesture logs ~20 a second)
DEFAULT_READER = 0  # the reader of snapshot() calls that name none

# Which settings need a reset (REBUILD_FIELDS: data, architecture) and which move the loss level of
# the same weights (LOSS_LEVEL_FIELDS: the divergence monitor restarts its "best so far") come from
# the settings table in regsim/hparams.py.


def resolve_device(device: str = "auto") -> torch.device:
    """cuda > mps > cpu for "auto"; an explicit device that is absent is a clear error."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    available = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (
        ["mps"] if has_mps else [])
    if device == "auto":
        return torch.device("cuda" if "cuda" in available else "mps" if has_mps else "cpu")
    kind = device.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device = {device!r} is not allowed; choose one of: auto, cpu, cuda, mps")
    if kind not in available:
        raise ValueError(f"device = {device!r} is not available on this machine; "
                         f"available: {', '.join(available)}")
    return torch.device(device)


def set_threads(n: int) -> int:
    """Use `n` CPU threads for torch (n ≤ 0: leave as is); returns the previous count.

    For callers that must not touch torch themselves (the UI's headless export, the GUI bench)."""
    previous = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    return previous


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    return device.type.upper()


_CACHED_PARTS = frozenset({"eval", "histograms", "data"})  # reused between measurements


@dataclasses.dataclass(frozen=True)
class _Cursor:
    """What one reader saw at its previous snapshot."""

    counters: Counters  # the totals then
    rate: float  # the steps/s it was told (repeated while no step was taken since)


class Trainer:
    """Trains an MLP on one dataset; every setting in HParams can change between steps."""

    def __init__(self, hparams: HParams | None = None, device: str = "auto") -> None:
        self.device = resolve_device(device)
        self._lock = threading.Lock()
        self._pending: dict[str, Any] = {}
        # Per reader: the counters it saw at its previous snapshot (see snapshot(), Counters).
        self._cursors: dict[int, _Cursor] = {}
        self._next_reader = DEFAULT_READER + 1
        self._run = 0
        # The update-code view's parameter (tensor name, flat index; None: the first tensor's
        # element 0), and whether a reader wants it (then step() records the picked tensor's step).
        self.explain_pick: tuple[str, int] | None = None
        self._explain_on = False
        self._build(hparams or HParams())

    def reader(self) -> int:
        """A new, independent snapshot reader. Pass it as `snapshot(reader=...)`: that reader's
        snapshots then report the batch loss, rate and events since its own previous snapshot,
        whoever else takes snapshots in between (a lesson checker beside the engine, a CLI log
        beside a figure)."""
        token, self._next_reader = self._next_reader, self._next_reader + 1
        return token

    # ----------------------------------------------------------------------------------- set-up
    def _build(self, h: HParams) -> None:
        self.hparams = h
        torch.manual_seed(h.seed)
        self.data: Dataset = make_dataset(h)
        dev = self.device
        self.x_train = torch.as_tensor(self.data.x_train, device=dev)  # (N, D)
        self.y_train = torch.as_tensor(self.data.y_train, device=dev)  # (N,) or (N, 1)
        self.x_val = torch.as_tensor(self.data.x_val, device=dev)
        self.y_val = torch.as_tensor(self.data.y_val, device=dev)
        build = build_transformer if h.architecture == "transformer" else build_model
        self.model = build(h, self.data.input_dim, self.data.n_classes).to(dev)
        self.model.train()
        self.optimizer = build_optimizer(self.model, h)
        self.generator = torch.Generator(device=dev)
        self.generator.manual_seed(h.seed)
        self.step_count = 0
        self.status = "idle"
        self.message = ""
        self._perm = torch.empty(0, dtype=torch.long, device=dev)
        self._perm_pos = 0
        # Running totals, never reset by a snapshot (readers keep cursors: see snapshot()). The
        # losses are summed on the host, in float64, from the one transfer each step(n) makes anyway.
        self._run += 1
        self._loss_total = 0.0
        self._loss_count = 0
        self._steps_total = 0
        self._time_total = 0.0
        self._event_log: list[tuple[int, str]] = []
        self._event_base = 0  # the event index of _event_log[0] (the log drops its oldest half)
        self._grad_norm = torch.zeros((), device=dev)
        self._clip_events = torch.zeros((), dtype=torch.long, device=dev)  # steps clipped, on device
        self._grad_norm_due = 0.0  # perf_counter time after which the next norm is measured
        self._heavy: dict | None = None  # the last heavy snapshot parts (see snapshot())
        self._recorded = None  # the picked tensor's last step (regsim.update_code.record)
        self._optstate = OptStateCache()  # the "optstate" part, within the same budget
        self._heavy_at = 0.0
        self._heavy_cost = 0.0
        # The share of the wall clock this run trains for: 1/N in a Comparison of N runs stepped
        # one after another. The snapshot budgets below are shares of *this run's* time, so N runs
        # together spend what one run would (measured: without it, 2 runs in lockstep made
        # 0.80× the steps of one, their early log-spaced measurements taking 5 % each).
        self.time_share = 1.0
        self._chance = constant_loss(self.data.task, self.data.y_train, self.data.n_classes,
                                     h.label_smoothing)
        self._initial_loss = self.evaluate()[0]
        self._monitor = LossMonitor(self._chance, self._initial_loss)
        # Divergence recovery: `_checkpoint` is trusted (validated by the steps after it);
        # `_candidate` was taken while the loss was near its best and awaits that validation.
        self._checkpoint = self._save_state()
        self._candidate: dict | None = None
        self._checkpoint_time = time.perf_counter()
        self._checkpoint_cost = 0.0
        n_params = sum(p.numel() for p in self.model.parameters())
        self._path: deque[tuple[int, torch.Tensor]] = deque(
            maxlen=max(8, min(PATH_POINTS, PATH_MEMORY_BYTES // (4 * n_params))))
        self._grid = self._make_grid()
        # The fixed histogram axis: locked at each layer's max|w| when the run starts (here, and at
        # every reset), so a higher λ shows the weights compressing toward zero on a steady axis.
        self._hist_lock = np.asarray([float(lin.weight.detach().abs().max())
                                      for lin in self.model.weight_layers()], dtype=np.float64)

    def _make_grid(self) -> torch.Tensor | None:
        """Points where the model is drawn: the decision map's coarse grid (2-D) or the curve (1-D).

        The 2-D map spans the data (train and val points) plus GRID_MARGIN of its extent, not the
        dataset's padded bounds, so no resolution is spent on empty space. It is GRID × GRID
        coarse cells of GRID_FINE × GRID_FINE pixels each; the coarse grid is evaluated at the cell
        centres and refined where it matters (see _decision_map).
        """
        x0, x1, y0, y1 = self.data.bounds
        if self.data.view == "2d":
            pts = np.concatenate([self.data.x_train, self.data.x_val])[:, :2].astype(np.float64)
            lo, hi = pts.min(0), pts.max(0)
            span = np.maximum(hi - lo, 1e-3)
            lo, hi = lo - GRID_MARGIN * span, hi + GRID_MARGIN * span
            n = GRID * GRID_FINE
            fx, fy = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)  # pixel centres
            self._grid_axes = (fx, fy)
            cx, cy = fx.reshape(GRID, GRID_FINE).mean(1), fy.reshape(GRID, GRID_FINE).mean(1)
            xx, yy = np.meshgrid(cx, cy)  # rows = y
            # The coarse cells holding a training point: always refined, so the map is right where
            # the points are drawn (memorised noise points sit in islands smaller than a cell).
            tr = self.data.x_train[:, :2].astype(np.float64)
            col = np.clip(np.searchsorted(fx, tr[:, 0]) // GRID_FINE, 0, GRID - 1)
            row = np.clip(np.searchsorted(fy, tr[:, 1]) // GRID_FINE, 0, GRID - 1)
            self._data_cells = np.zeros((GRID, GRID), dtype=bool)
            self._data_cells[row, col] = True
            coarse = np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32)
            return torch.as_tensor(coarse, device=self.device)  # (G*G, 2)
        if self.data.view == "1d":
            cx = np.linspace(x0, x1, 200).astype(np.float32)
            self._grid_axes = (cx, cx)
            return torch.as_tensor(cx[:, None], device=self.device)  # (200, 1)
        return None

    def _decision_map(self) -> np.ndarray:
        """P(class 1) on the fine grid (rows = y), evaluated adaptively.

        The coarse GRID × GRID grid is evaluated at cell centres and repeated into each cell's
        pixels; then the cells that hold a training point, and the cells on the coarse 0.5
        boundary (a neighbour on the other side), are evaluated at all their GRID_FINE² pixels.
        A uniform 64² grid showed an almost straight boundary for a net at 100 % train accuracy:
        the islands around memorised noise points are smaller than its cells (2 % of the training
        points fell in a cell of the wrong class). Refined cells are capped at GRID_MAX_REFINED
        (training-point cells first), which bounds the cost.

        Cost (no_regularization, 128-128 MLP, one CPU thread, shared 2-core machine): the old
        uniform 64² map 11 ms; a uniform 128² map 38 ms, 256² 265 ms; this map ~4096 + ≤ 14 400
        points, measured in tests/test_panel_training.py's note (see the report numbers).
        """
        f = GRID_FINE
        prob = torch.softmax(self.model(self._grid), dim=1)[:, 1].reshape(GRID, GRID).cpu().numpy()
        side = prob > 0.5
        edge = np.zeros_like(side)
        edge[:-1, :] |= side[:-1, :] != side[1:, :]
        edge[1:, :] |= side[:-1, :] != side[1:, :]
        edge[:, :-1] |= side[:, :-1] != side[:, 1:]
        edge[:, 1:] |= side[:, :-1] != side[:, 1:]
        rows, cols = np.nonzero(self._data_cells)
        er, ec = np.nonzero(edge & ~self._data_cells)
        keep = max(0, GRID_MAX_REFINED - len(rows))
        rows, cols = np.concatenate([rows, er[:keep]]), np.concatenate([cols, ec[:keep]])
        image = np.repeat(np.repeat(prob, f, axis=0), f, axis=1)
        if len(rows):
            fx, fy = self._grid_axes
            o = np.arange(f)
            xi = np.broadcast_to(cols[:, None, None] * f + o[None, None, :], (len(cols), f, f))
            yi = np.broadcast_to(rows[:, None, None] * f + o[None, :, None], (len(rows), f, f))
            pts = np.stack([fx[xi].ravel(), fy[yi].ravel()], 1).astype(np.float32)
            fine = torch.softmax(self.model(torch.as_tensor(pts, device=self.device)), dim=1)[:, 1]
            image[yi.ravel(), xi.ravel()] = fine.cpu().numpy()
        return image

    def reset(self, hparams: HParams | None = None) -> None:
        """Start over (new data, new weights) with `hparams` or the current settings."""
        with self._lock:
            self._pending.clear()
        self._build(hparams or self.hparams)

    # ----------------------------------------------------------------------------------- updates
    def update(self, **changes: Any) -> None:
        """Queue setting changes; they take effect before the next optimizer step.

        Safe to call from any thread. Invalid values raise ValueError here, naming the field, and
        nothing is queued. Data and architecture fields need `reset()` instead.
        """
        rebuild = sorted(set(changes) & REBUILD_FIELDS)
        if rebuild:
            raise ValueError(f"{rebuild[0]} changes the data or the network; it needs a reset, "
                             "not a live update")
        changes = {k: coerce(k, v) for k, v in changes.items()}
        with self._lock:
            self.hparams.replace(**{**self._pending, **changes})  # validate the combination now
            self._pending.update(changes)

    def _apply_pending(self) -> None:
        with self._lock:
            if not self._pending:
                return
            changes, self._pending = self._pending, {}
        old, new = self.hparams, self.hparams.replace(**changes)
        self.optimizer = apply_settings(self.optimizer, self.model, old, new)
        self.model.set_dropout(new.input_dropout, new.hidden_dropout(), new.dropout_kind == "channel")
        if hasattr(self.model, "apply_hparams"):  # the transformer's sites and answer-only path
            self.model.apply_hparams(new)
        self.hparams = new
        if any(getattr(old, k) != getattr(new, k) for k in LOSS_LEVEL_FIELDS & set(changes)):
            self._monitor.settings_changed(self.step_count + 1)
            if "label_smoothing" in changes:
                self._chance = self._monitor.chance = constant_loss(
                    self.data.task, self.data.y_train, self.data.n_classes, new.label_smoothing)
        for key in changes:
            a, b = getattr(old, key), getattr(new, key)
            if a != b:
                self._log_event(self.step_count, change_text(key, a, b))

    # ----------------------------------------------------------------------------------- training
    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.x_train)
        bs = min(self.hparams.batch_size, n)
        if self._perm_pos + bs > len(self._perm):
            self._perm = torch.randperm(n, device=self.device, generator=self.generator)
            self._perm_pos = 0
        idx = self._perm[self._perm_pos:self._perm_pos + bs]
        self._perm_pos += bs
        return self.x_train[idx], self.y_train[idx]

    def _loss(self, out: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return task_loss(self.data.task, self.hparams.label_smoothing, out, y, reduction)

    def step(self, n: int = 1) -> None:
        """Take `n` optimizer steps. After the last one, check for divergence (one host sync)."""
        if self.status == "diverged":
            return
        t0 = time.perf_counter()
        params = [p for p in self.model.parameters() if p.requires_grad]
        losses: list[torch.Tensor] = []  # stay on the device until the check after the loop
        for i in range(n):
            self._apply_pending()
            h = self.hparams
            x, y = self._next_batch()  # (B, D), (B,)
            lr = lr_at(h, self.step_count)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.model.seed_dropout(h.seed, self.step_count)  # this step's masks (models.py)
            loss = self._loss(self.model(x), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if h.grad_clip > 0:
                self._grad_norm = torch.nn.utils.clip_grad_norm_(params, h.grad_clip)
                self._clip_events += self._grad_norm > h.grad_clip  # counted on the device: no sync
            elif i == n - 1 and time.perf_counter() >= self._grad_norm_due:
                # Only snapshots show it, so ~30 times a second is enough.
                self._grad_norm = torch.linalg.vector_norm(torch.stack(
                    torch._foreach_norm([p.grad for p in params if p.grad is not None])))
                self._grad_norm_due = time.perf_counter() + GRAD_NORM_EVERY_S
            if self._explain_on and i == n - 1:  # the step as it is taken: no host sync here
                self._recorded = record(self.model, self.optimizer, self._pick()[0],
                                        self.step_count + 1)
            apply_decoupled_decay(self.optimizer)
            self.optimizer.step()
            losses.append(loss.detach())
            self.step_count += 1
            if self.step_count % PATH_EVERY == 0:
                self._record_path()
        self._check_divergence(losses)
        self._time_total += time.perf_counter() - t0
        self._steps_total += n
        if self.status != "diverged":
            self.status = "running"

    def _check_divergence(self, losses: list[torch.Tensor]) -> None:
        """Stop on NaN/inf, an exploding loss, or a collapse to chance level; keep good checkpoints.

        The per-step batch losses of this call and one flag for the weights come to the host in
        a single transfer; `LossMonitor` walks them step by step (regsim/divergence.py has the
        rules and the measurements behind them). On failure the trusted checkpoint is restored:
        one whose smoothed loss was near the best so far, validated by the steps after it.
        """
        params = list(self.model.parameters())
        # One fused pass over the weights: a norm is finite only if every entry is (a per-tensor
        # isfinite().all() cost ~15% of a training step here).
        weights_ok = torch.isfinite(torch.stack(torch._foreach_norm(params))).all()
        vals = torch.stack(losses).float() if losses else torch.zeros(0, device=self.device)
        host = torch.cat([vals, weights_ok.float().reshape(1)]).tolist()  # the host sync
        verdict = self._monitor.feed(host[:-1])
        if verdict is None and host[-1] != 1.0:
            verdict = Verdict("nonfinite", self.step_count)
        if verdict is None:  # a failed call's losses (NaN, exploded) are undone with its weights
            self._loss_total += float(np.sum(host[:-1], dtype=np.float64))
            self._loss_count += len(losses)
        self._keep_checkpoints(take=verdict is None)  # promotes one validated before a failure
        if verdict is not None:
            self._restore(verdict)

    def _keep_checkpoints(self, take: bool) -> None:
        """Promote a candidate whose VALIDATE_STEPS next steps were clean, drop a rejected one,
        and take a new candidate while the loss is near its best, as often as
        CHECKPOINT_OVERHEAD of the time allows."""
        m = self._monitor
        if self._candidate is not None and m.candidate_ok is not None:
            if m.candidate_ok:
                self._checkpoint = self._candidate
            self._candidate = None
            m.candidate = None
        now = time.perf_counter()
        if (take and self._candidate is None
                and (now - self._checkpoint_time) * CHECKPOINT_OVERHEAD >= self._checkpoint_cost
                and m.clean_now()):
            self._candidate = self._save_state()
            m.watch(self.step_count)
            self._checkpoint_time = time.perf_counter()
            self._checkpoint_cost = self._checkpoint_time - now

    def _restore(self, verdict: Verdict) -> None:
        good = self._checkpoint
        bad_step = verdict.step
        self._load_state(good)
        self._candidate = None
        self.step_count = good["step"]
        while self._path and self._path[-1][0] > self.step_count:
            self._path.pop()  # the blown-up part is no longer this run's trajectory
        self._monitor.restored(good["step"], good["ema"])
        restored_loss = self.evaluate()[0]  # one more sync, only when training stops anyway
        h = self.hparams
        if verdict.kind == "nonfinite":
            what = "the loss or the weights became NaN/inf"
        elif verdict.kind == "explode":
            what = (f"the loss exploded to {verdict.value:.3g} (smoothed over ~{EMA_STEPS} steps; "
                    f"it started at {self._initial_loss:.3g})")
        else:
            what = (f"it collapsed to chance level: the loss blew up to {verdict.value:.3g} at step "
                    f"{verdict.spike_step} and has stayed near {self._chance:.3g} since (the loss "
                    "of ignoring the input), so the network no longer learns")
        hint = (" (lr·λ ≥ 1 also makes each decay step overshoot zero)"
                if h.weight_decay * h.lr >= 1 else "")
        self.status = "diverged"
        self.message = (f"Training diverged at step {bad_step}: {what}. "
                        f"Restored the weights from step {good['step']} "
                        f"(train loss {restored_loss:.3g}). "
                        f"Lower lr (now {_fmt(h.lr)}), e.g. ×0.1 to {_fmt(h.lr / 10)}, then "
                        f"resume{hint}.")
        self._log_event(good["step"], "diverged: weights restored")

    def resume(self) -> None:
        """Clear a divergence so training can continue (after lowering the culprit setting)."""
        if self.status == "diverged":
            self.status = "paused"
            self.message = ""

    def _save_state(self) -> dict:
        return {"step": self.step_count, "ema": self._monitor.ema,
                "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
                "optimizer_class": type(self.optimizer),
                "optimizer": _clone_state(self.optimizer.state_dict())}

    def _load_state(self, state: dict) -> None:
        """Weights and optimizer state from `state`, under the *current* settings.

        A state dict also carries the param_groups' settings from when it was saved; the current
        λ, decay mode, momentum and betas are applied again, so a restore never silently undoes
        a change the user made since. After a switch between Adam and the SGD family the saved
        moments belong to the other optimizer: the current one then starts from empty state."""
        self.model.load_state_dict(state["model"])
        if state["optimizer_class"] is type(self.optimizer):
            self.optimizer.load_state_dict(_clone_state(state["optimizer"]))
            self.optimizer = apply_settings(self.optimizer, self.model, self.hparams, self.hparams)
        else:
            self.optimizer = build_optimizer(self.model, self.hparams)

    def fork(self) -> Trainer:
        """An independent copy of this run at its current step, as if it had trained alongside:
        the same data, weights, optimizer state (moments), step, batch order position, divergence
        monitor, checkpoints and trajectory. Stepping both afterwards gives bit-identical weights
        until their settings differ (the dropout masks are indexed by step, see models.py).
        Settings queued with update() but not yet applied are queued on the copy too."""
        with self._lock:
            pending = dict(self._pending)
        twin = Trainer(self.hparams, str(self.device))  # same data and architecture: rebuilt
        twin._load_state(self._save_state())
        twin.step_count = self.step_count
        twin.generator.set_state(self.generator.get_state())
        twin._perm, twin._perm_pos = self._perm.clone(), self._perm_pos
        twin._monitor = copy.deepcopy(self._monitor)
        twin._initial_loss, twin._chance = self._initial_loss, self._chance
        # Saved states are never modified in place (a restore copies them), so they can be shared.
        twin._checkpoint, twin._candidate = self._checkpoint, self._candidate
        twin._path = deque(self._path, maxlen=self._path.maxlen)
        twin._hist_lock = self._hist_lock.copy()
        twin._grad_norm = self._grad_norm.clone()
        twin._clip_events = self._clip_events.clone()
        twin.explain_pick = self.explain_pick
        twin.status = "paused" if self.status == "running" else self.status
        twin.message = self.message
        with twin._lock:
            twin._pending.update(pending)
        return twin

    def _record_path(self) -> None:
        if self._path and self._path[-1][0] == self.step_count:
            return
        flat = torch.cat([p.detach().reshape(-1) for p in self.model.parameters()]).clone()
        self._path.append((self.step_count, flat))

    # ----------------------------------------------------------------------------------- views
    @torch.no_grad()
    def evaluate(self) -> tuple[float, float, float, float]:
        """(train_loss, val_loss, train_acc, val_acc) in eval mode over whole splits."""
        was_training = self.model.training
        self.model.eval()
        try:
            out_t, out_v = self.model(self.x_train), self.model(self.x_val)
            losses = torch.stack([self._loss(out_t, self.y_train), self._loss(out_v, self.y_val)])
            if self.data.task == "classification":
                accs = torch.stack([(out_t.argmax(1) == self.y_train).float().mean(),
                                    (out_v.argmax(1) == self.y_val).float().mean()])
            else:
                accs = torch.full((2,), float("nan"), device=self.device)
            vals = torch.cat([losses, accs]).cpu().numpy()  # one host sync
        finally:
            self.model.train(was_training)
        return float(vals[0]), float(vals[1]), float(vals[2]), float(vals[3])

    @torch.no_grad()
    def snapshot(self, max_overhead: float | None = None, parts: Any = None,
                 reader: int = DEFAULT_READER) -> Snapshot:
        """Copy the run's state to the host as numpy arrays (the only regular host sync).

        `parts` (a subset of regsim.snapshot.PARTS; None = all, as scripts want) names the heavy
        parts to measure; the others come empty and `Snapshot.measured` says which are in. The
        heavy parts cost 17–30 ms on a 64-512-512-10 net on one CPU thread (about 8 training
        steps), half to all of the time between 30 Hz snapshots. With `max_overhead` (a fraction,
        e.g. 0.02) "eval", "histograms" and "data" are recomputed only as often as that budget
        allows while running, and reused in between (`eval_step` says when they were measured); a
        part asked for that the last measurement lacks is measured at once. The cheap parts (step,
        lr, weight norms, masks, settings, events) are always fresh. Without `max_overhead`
        (scripts, a paused engine) everything is fresh.

        Taking a snapshot changes no counter: the trainer keeps running totals (Counters, carried
        by every snapshot) and one cursor per `reader` (see reader()), the totals it saw last.
        The batch loss is Δloss_sum / Δloss_count since that reader's previous snapshot, the rate
        Δsteps / Δseconds, the events those logged since; so two readers each see every event
        once and their own interval's means, never an interval another reader emptied.
        """
        want = check_parts(parts)
        self._apply_pending()  # so a paused engine's snapshot shows a change at once
        h = self.hparams
        now = time.perf_counter()
        heavy = self._heavy
        want_heavy = want & _CACHED_PARTS
        # Also due when the step count grew by 10 % since the last measurement: log-spaced points
        # keep the early, fast-changing part of a run dense. They may take up to
        # EARLY_POINTS_OVERHEAD of the time (on a 64-512-512-10 net a measurement costs ~8 steps,
        # and unbounded they took 16 % of the first seconds of a run).
        since = (now - self._heavy_at) * self.time_share
        missing = heavy is not None and not want_heavy <= heavy["parts"]
        due = (max_overhead is None or heavy is None or self.status != "running" or missing
               or since * max_overhead >= self._heavy_cost
               or (self.step_count >= max(heavy["step"] * 1.1, heavy["step"] + 5)
                   and since * max(max_overhead, EARLY_POINTS_OVERHEAD) >= self._heavy_cost))
        if due and (heavy is None or heavy["step"] != self.step_count or max_overhead is None
                    or missing):
            heavy = self._measure(want_heavy)
            self._heavy = heavy
            done = time.perf_counter()
            self._heavy_cost = done - now
            self._heavy_at = done
        got = want_heavy & heavy["parts"]
        nan = float("nan")
        train_loss, val_loss, train_acc, val_acc = heavy["eval"] if "eval" in got else (nan,) * 4
        hists = heavy["hists"] if "histograms" in got else ((), (), (), ())
        data = heavy["data"] if "data" in got else None
        if "masks" in want:
            masks, pre, post, inference = self._dropout_views()
            got = got | {"masks"}
        else:
            masks, pre, post, inference = (), (), (), ()
        modules = self.model.dropout_modules()
        shapes = tuple(tuple(d.last_input.shape[1:]) if d.last_input is not None else ()
                       for d in modules) if "masks" in want else ()
        for d in modules:  # the gradients are kept only while a reader wants the replay
            d.capture_grads = "scratch" in want
        only = {p[len(SCRATCH_SITE):] for p in want if p.startswith(SCRATCH_SITE)}  # none: every site
        scratch = tuple(site_values(d, name, self.step_count - 1) if not only or name in only else None
                        for d, name in zip(modules, self.model.dropout_sites)) if "scratch" in want else ()
        got = got | ({"scratch"} if "scratch" in want else set())
        tview = None
        if "transformer" in want:  # measured; None for a network that is not a transformer
            tview = site_view(self.model) if hasattr(self.model, "site_modules") else None
            got = got | {"transformer"}
        self._explain_on = "update_code" in want
        code = update_code_view(self.model, self.optimizer, self._pick(), self._recorded,
                                self.step_count) if self._explain_on else None
        groups = group_views(self.model, self.optimizer) if "param_groups" in want else ()
        got = got | (want & {"update_code", "param_groups"})
        opt_state = self._optstate.get(self.model, self.optimizer, self.step_count,
                                       self.status == "running", max_overhead) if "optstate" in want else None
        got = got | ({"optstate"} if "optstate" in want else set())
        counters, batch_loss, rate, events = self._read(reader)
        return Snapshot(
            step=self.step_count, epoch=self.step_count * min(h.batch_size, len(self.x_train))
            / len(self.x_train), status=self.status, message=self.message,
            device=device_name(self.device), hparams=h, lr=lr_at(h, max(0, self.step_count - 1)),
            train_loss=train_loss, val_loss=val_loss, train_acc=train_acc, val_acc=val_acc,
            batch_loss=batch_loss, grad_norm=float(self._grad_norm),
            steps_per_sec=rate if self.status == "running" else 0.0,
            layer_names=self.model.layer_names, layer_sizes=self.model.sizes,
            weight_hist=hists[0], weight_hist_edges=hists[1],
            weight_norms=heavy["norms"], weight_abs_max=heavy["amax"],
            weight_hist_fixed=hists[2], weight_hist_fixed_edges=hists[3],
            dropout_sites=self.model.dropout_sites,
            dropout_rates=(self.model.site_rates() if hasattr(self.model, "site_rates")
                           else (h.input_dropout, *h.hidden_dropout())), dropout_masks=masks,
            activation_pre=pre, activation_post=post, activation_inference=inference, data=data,
            events=events, eval_step=heavy["step"], measured=frozenset(got), counters=counters,
            dropout_shapes=shapes, dropout_scratch=scratch, transformer=tview,
            clip_events=int(self._clip_events), update_code=code,
            param_groups=groups, opt_state=opt_state)

    def pick_parameter(self, param: str, index: int) -> None:
        """The parameter the update-code view explains: tensor `param` ("fc1.weight"), element
        `index` (flat, row-major). A ValueError names the field and its range."""
        check_pick(self.model, param, index)
        self.explain_pick = (param, index)

    def _pick(self) -> tuple[str, int]:
        """The picked parameter; when none (or no longer) fits, the first tensor's largest |θᵢ|,
        kept from then on: element 0 of the digits' first layer is a blank corner pixel, whose
        gradient is always 0 (measured: θ ≈ 1e-10, every line 0 or noise)."""
        if self.explain_pick is not None:
            try:
                check_pick(self.model, *self.explain_pick)
                return self.explain_pick
            except ValueError:
                pass
        name, p, _ = named_kinds(self.model)[0]
        self.explain_pick = (name, int(p.detach().abs().argmax()))  # one sync, once
        return self.explain_pick

    def _measure(self, parts: frozenset[str]) -> dict:
        """The cached heavy parts in `parts`, plus the weight norms and max |w| (always: they
        are cheap, and the history's norm curves must not have gaps)."""
        weights = [lin.weight for lin in self.model.weight_layers()]
        amax = torch.stack([w.detach().abs().max() for w in weights])
        norms = torch.stack([torch.linalg.vector_norm(w.detach()) for w in weights])
        host = torch.stack([amax, norms]).cpu().numpy().astype(np.float64)  # one sync
        self._hist_lock = np.maximum(self._hist_lock, host[0])  # never hide a weight (see below)
        heavy = {"step": self.step_count, "parts": parts, "amax": host[0], "norms": host[1]}
        if "histograms" in parts:
            hists, edges, _, _ = weight_histograms(weights)
            fixed, fixed_edges = locked_histograms(weights, self._hist_lock)
            heavy["hists"] = (hists, edges, fixed, fixed_edges)
        if "eval" in parts:
            heavy["eval"] = self.evaluate()
        if "data" in parts:
            heavy["data"] = self._data_view()
        return heavy

    def _read(self, reader: int) -> tuple[Counters, float, float, tuple[tuple[int, str], ...]]:
        """(totals, batch loss, steps/s, events) since `reader`'s previous snapshot; moves only
        that reader's cursor."""
        counters = Counters(run=self._run, loss_sum=self._loss_total, loss_count=self._loss_count,
                            steps=self._steps_total, train_seconds=self._time_total,
                            events=self._event_base + len(self._event_log))
        cur = self._cursors.get(reader)
        if cur is None or cur.counters.run != self._run:  # a new reader, or a new run: from 0
            cur = _Cursor(Counters(self._run, 0.0, 0, 0, 0.0, 0), 0.0)
        prev = cur.counters
        n = counters.loss_count - prev.loss_count
        batch_loss = (counters.loss_sum - prev.loss_sum) / n if n else float("nan")
        steps = counters.steps - prev.steps
        seconds = counters.train_seconds - prev.train_seconds
        rate = steps / seconds if steps and seconds > 0 else cur.rate
        first = max(prev.events, self._event_base) - self._event_base
        events = tuple(self._event_log[first:])
        self._cursors[reader] = _Cursor(counters, rate)
        return counters, batch_loss, rate, events

    def _log_event(self, step: int, text: str) -> None:
        self._event_log.append((step, text))
        if len(self._event_log) > EVENT_LOG_MAX:  # a reader this far behind misses the oldest
            drop = len(self._event_log) // 2
            del self._event_log[:drop]
            self._event_base += drop

    def _dropout_views(self) -> tuple[tuple, tuple, tuple, tuple]:
        """Per dropout site: the batch's masks, and the first example's activations before (h) and
        after (y = m ⊙ h / (1 − p)) dropout in the last training pass, plus what inference computes
        for that same example: one eval-mode forward (no mask anywhere, weights as they are) whose
        input to each site is read with a forward pre-hook. Those differ from the training h beyond
        the first site, since upstream masks changed it; costs one 1-row forward per snapshot."""
        modules = self.model.dropout_modules()
        masks, pre, post = [], [], []
        for d in modules:
            if d.last_input is None:  # no training step yet
                masks.append(np.ones((0, 0), dtype=bool))
                pre.append(np.zeros(0, dtype=np.float32))
                post.append(np.zeros(0, dtype=np.float32))
                continue
            # A conv site (B, C, H, W) is sent flattened channel-major, so a channel-wise mask
            # shows as whole H·W-wide blocks of a row.
            cols = MASK_COLS_CONV if d.last_input.dim() > 2 else MASK_COLS
            x = d.last_input[:MASK_ROWS].flatten(1)[:, :cols]
            scaled = d.last_scaled_mask  # compared on the sent part only: last_mask compares it all
            mask = (scaled[:MASK_ROWS].expand_as(d.last_input[:MASK_ROWS]).flatten(1)[:, :cols] != 0
                    if scaled is not None else torch.ones_like(x, dtype=torch.bool))
            masks.append(mask.cpu().numpy())
            pre.append(d.last_input[0].flatten()[:ACT_UNITS].float().cpu().numpy())
            post.append(d.last_output[0].flatten()[:ACT_UNITS].float().cpu().numpy())
        first = getattr(self.model, "last_tokens", None)  # a transformer's input is its tokens
        first = modules[0].last_input if first is None else first
        if first is None:
            return tuple(masks), tuple(pre), tuple(post), tuple(np.zeros(0, np.float32)
                                                               for _ in modules)
        seen: dict[int, torch.Tensor] = {}
        hooks = [d.register_forward_pre_hook(lambda _m, args, i=i: seen.setdefault(i, args[0]))
                 for i, d in enumerate(modules)]
        # Inference differs from training only at the dropout sites (Linear, LayerNorm and the
        # activations behave the same in both modes), so only they are switched: model.eval() and
        # train() walk every module, and took 0.8 of this method's 3 ms per snapshot (profiled on
        # the loaded 2-core machine, 64-512-512-10), a cost each run in a Comparison pays.
        modes = [d.training for d in modules]
        for d in modules:
            d.training = False
        try:
            self.model(first[:1])
        finally:
            for d, mode in zip(modules, modes):
                d.training = mode
            for hook in hooks:
                hook.remove()
        inference = tuple(seen[i][0].flatten()[:ACT_UNITS].float().cpu().numpy() if i in seen
                          else np.zeros(0, np.float32) for i in range(len(modules)))
        return tuple(masks), tuple(pre), tuple(post), inference

    @torch.no_grad()
    def _data_view(self) -> DataView:
        d = self.data
        common = dict(x_train=d.x_train, y_train=np.asarray(d.y_train).reshape(len(d.y_train)),
                      x_val=d.x_val, y_val=np.asarray(d.y_val).reshape(len(d.y_val)))
        self.model.eval()
        try:
            if d.view == "2d":
                gx, gy = self._grid_axes
                return DataView(kind="2d", grid_x=gx, grid_y=gy, grid_prob=self._decision_map(),
                                **common)
            if d.view == "1d":
                curve = self.model(self._grid)[:, 0].cpu().numpy()
                return DataView(kind="1d", curve_x=self._grid_axes[0], curve_y=curve, **common)
            if d.view == "tokens":
                return self._token_view(common)
            k = 16
            preds = self.model(self.x_val[:k]).argmax(1).cpu().numpy()
            return DataView(kind="images", x_train=np.zeros((0, 0), np.float32),
                            y_train=np.zeros(0), x_val=np.zeros((0, 0), np.float32),
                            y_val=np.zeros(0), images=d.x_val[:k].reshape(-1, 8, 8),
                            labels=d.y_val[:k], preds=preds)
        finally:
            self.model.train()

    def _token_view(self, common: dict) -> DataView:
        """Modular data: the (p, p) table of the model's answers, 1 = right, 0 = wrong, NaN = no
        such pair ('/' with b = 0), over both splits (x_train / x_val say which pair is where)."""
        x = torch.cat([self.x_train, self.x_val])  # every pair once: (N, 2)
        right = (self.model(x).argmax(1) == torch.cat([self.y_train, self.y_val])).float()
        p = self.data.n_classes
        table = torch.full((p, p), float("nan"), device=self.device)
        table[x[:, 0], x[:, 1]] = right
        return DataView(kind="tokens", grid_prob=table.cpu().numpy(), **common)

    def view(self) -> RunView:
        """What an analysis may see of this run now (regsim.analyses): a consistent copy.

        The network is deep-copied (eval mode) and the optimizer's state cloned, so an analysis
        that runs across many training chunks sees one θ, and nothing it does reaches the live
        model, the optimizer, the random streams or the step count. The data and the recorded
        trajectory are shared (training never writes to them). Measured on one busy CPU thread:
        1–1.5 ms for the 2-64-64-2 moons net, 2–4 ms for 64-512-512-10 with Adam.
        """
        model = copy.deepcopy(self.model)
        for d in model.dropout_modules():  # the last batch's masks: no business of an analysis
            d.last_scaled_mask = d.last_input = d.last_output = None
            d.last_grad_output = d.last_grad_input = None
            d.capture_grads = False
        model.eval()
        index = {id(p): i for i, p in enumerate(self.model.parameters())}
        groups = []
        for g in self.optimizer.param_groups:
            plain = {k: v for k, v in g.items() if k != "params"}
            plain["params"] = tuple(index[id(p)] for p in g["params"])
            plain["state"] = tuple(_clone_state(dict(self.optimizer.state.get(p, {})))
                                   for p in g["params"])
            groups.append(plain)
        return RunView(model=model,
                       loss=functools.partial(task_loss, self.data.task, self.hparams.label_smoothing),
                       x_train=self.x_train, y_train=self.y_train, x_val=self.x_val, y_val=self.y_val,
                       trajectory=tuple(self._path), hparams=self.hparams,
                       optimizer="adam" if isinstance(self.optimizer, torch.optim.Adam) else "sgd",
                       param_groups=tuple(groups), step=self.step_count, task=self.data.task)

    def history_path(self) -> list[tuple[int, torch.Tensor]]:
        return list(self._path)


def task_loss(task: str, label_smoothing: float, out: torch.Tensor, y: torch.Tensor,
              reduction: str = "mean") -> torch.Tensor:
    """The training objective's data term: MSE for regression, cross-entropy (with label
    smoothing) for classification."""
    if task == "regression":
        return F.mse_loss(out, y, reduction=reduction)
    return F.cross_entropy(out, y, label_smoothing=label_smoothing, reduction=reduction)


def weight_histograms(weights: list[torch.Tensor]) -> tuple[tuple, tuple, np.ndarray, np.ndarray]:
    """Per-matrix histograms with HIST_BINS bins over the symmetric range [−max|w|, max|w|].

    The range follows the weights, so when decay piles them up near zero the bins shrink with them
    and the shape stays readable; the cost is one pass with a fixed bin count, the same at any λ.
    """
    amax = torch.stack([w.detach().abs().max() for w in weights])
    norms = torch.stack([torch.linalg.vector_norm(w.detach()) for w in weights])
    amax_h = amax.clamp_min(1e-12).cpu().numpy().astype(np.float64)  # one sync for the ranges
    counts = torch.stack([torch.histc(w.detach().float(), bins=HIST_BINS, min=-m, max=m)
                          for w, m in zip(weights, amax_h)]).cpu().numpy()
    edges = tuple(np.linspace(-m, m, HIST_BINS + 1) for m in amax_h)
    return (tuple(c.astype(np.int64) for c in counts), edges, norms.cpu().numpy().astype(np.float64),
            amax.cpu().numpy().astype(np.float64))


def locked_histograms(weights: list[torch.Tensor], ranges: np.ndarray) -> tuple[tuple, tuple]:
    """Per-matrix histograms with HIST_BINS bins over a given symmetric range [−r, r] per layer.

    For the panel's fixed axis: the ranges are locked when training starts (and at every reset),
    so when λ goes up the same bins fill toward the centre and the picture compresses, instead of
    the bins shrinking with the weights (which makes the shape look *wider*). Binned here, on the
    engine side, because re-binning a 64-bin adaptive histogram onto a wider axis would leave one
    or two coarse bars once the weights have shrunk.

    A weight beyond its locked range is not clamped into the outer bin (that would draw a false
    spike at the edge): the caller widens the range instead (Trainer keeps the running maximum of
    max|w|), so the axis only ever grows, which is rare (weights grow past their initial scale only
    without decay) and still shows compression after it. Counts are exact for the returned edges:
    bin k holds the weights with edges[k] ≤ w < edges[k + 1], the last bin closed, as numpy does.
    """
    counts, edges = [], []
    for w, r in zip(weights, ranges, strict=True):
        r = max(float(r), 1e-12)
        e = np.linspace(-r, r, HIST_BINS + 1)
        x = w.detach().reshape(-1).double()
        idx = torch.floor((x + r) * (HIST_BINS / (2 * r))).long().clamp_(0, HIST_BINS - 1)
        # Rounding can put a value next to an edge in the neighbouring bin: compare with the
        # edges themselves, as numpy.histogram does.
        et = torch.as_tensor(e, dtype=torch.float64, device=x.device)
        idx = idx - (x < et[idx]).long()
        idx = idx + ((x >= et[idx + 1]) & (idx < HIST_BINS - 1)).long()
        counts.append(torch.bincount(idx.clamp_(0, HIST_BINS - 1), minlength=HIST_BINS))
        edges.append(e)
    host = torch.stack(counts).cpu().numpy().astype(np.int64)  # one sync for all layers
    return tuple(host), tuple(edges)


def _clone_state(state: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        return {k: _clone_state(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_clone_state(v) for v in state]
    return state


def change_text(key: str, old: Any, new: Any) -> str:
    """A change event in the controls' words: "λ 0.001 → 0.05", "decay mode: decoupled → L2",
    "optimizer: Adam → SGD + momentum" (numbers to 3 significant digits)."""
    name = SHORT_LABELS.get(key, key.replace("_", " "))
    sep = " " if key in SYMBOL_FIELDS else ": "
    return f"{name}{sep}{_fmt(old, key)} → {_fmt(new, key)}"


def _fmt(v: Any, key: str = "") -> str:
    """A setting's value as the controls show it: choice labels, on/off, 3 significant digits
    (0.00123, 1e-5, 0.05)."""
    if key in CHOICE_SHORT and isinstance(v, str):
        return CHOICE_SHORT[key].get(v, v)
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        text = "0" if v == 0 else f"{v:.3g}"
        if "e" in text:  # 1e-05 → 1e-5, 1e+03 → 1e3
            mant, exp = text.split("e")
            text = f"{mant}e{int(exp)}"
        return text
    if isinstance(v, tuple):
        return "(" + ", ".join(_fmt(x) for x in v) + ")"
    return str(v)
