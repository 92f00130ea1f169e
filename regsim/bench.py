"""`python main.py bench`: speed and memory targets, printed as ratios measured side by side in one run.

Timings on a shared machine are noisy, so each comparison interleaves its contestants (A, B, A, B, …)
and reports the ratio of medians; no test asserts a time. The GUI measurements (issue: live app) live
in ui/bench_gui.py and are added to the same table when Qt is available.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .transformer_bench import bench_transformer

Row = dict  # {"name", "value", "unit", "target", "ok"}


def _on_threads(threads: int, run: Callable[[], float]) -> float:
    """`run()` with torch on `threads` CPU threads (0: torch's default), restored afterwards."""
    from .trainer import set_threads

    previous = set_threads(threads)
    try:
        return run()
    finally:
        set_threads(previous)


def _bare_loop_rate(h, seconds: float, device: str, threads: int = 0) -> float:
    """Steps/s of the plainest torch loop on the same data and architecture (no engine at all),
    on `threads` CPU threads (0: torch's default)."""
    return _on_threads(threads, lambda: _bare_loop(h, seconds, device))


def _bare_loop(h, seconds: float, device: str) -> float:
    import torch
    from torch import nn

    from .data import make_dataset

    torch.manual_seed(h.seed)
    d = make_dataset(h)
    dev = torch.device(device)
    x = torch.as_tensor(d.x_train, device=dev)
    y = torch.as_tensor(d.y_train, device=dev)
    layers: list[nn.Module] = []
    sizes = (d.input_dim, *h.hidden)
    for i in range(len(h.hidden)):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.ReLU(), nn.Dropout(h.dropout)]
    model = nn.Sequential(*layers, nn.Linear(sizes[-1], d.n_classes)).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=h.lr, weight_decay=h.weight_decay)
    bs = min(h.batch_size, len(x))
    perm, pos, steps = torch.randperm(len(x), device=dev), 0, 0
    t0 = time.perf_counter()
    while True:
        if pos + bs > len(x):
            perm, pos = torch.randperm(len(x), device=dev), 0
        idx = perm[pos:pos + bs]
        pos += bs
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
        if steps % 20 == 0:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if time.perf_counter() - t0 >= seconds:
                break
    return steps / (time.perf_counter() - t0)


def _engine_rate(h, seconds: float, device: str, hz: float = 30.0, threads: int = 0) -> float:
    """Steps/s of the Trainer driven as the engine drives it, with a snapshot every 1/hz s, on
    `threads` CPU threads (0: torch's default)."""
    return _on_threads(threads, lambda: _engine_loop(h, seconds, device, hz))


def _engine_loop(h, seconds: float, device: str, hz: float) -> float:
    from .engine import CHUNK_SECONDS, SNAPSHOT_OVERHEAD
    from .trainer import Trainer

    t = Trainer(h, device)
    t.step(5)  # warm-up, like the bare loop's first steps
    chunk, steps = 1, 0
    last = t0 = time.perf_counter()
    while True:
        c0 = time.perf_counter()
        t.step(chunk)
        steps += chunk
        dt = time.perf_counter() - c0
        chunk = max(1, min(10_000, int(chunk * CHUNK_SECONDS / max(dt, 1e-6) + 0.5)))
        now = time.perf_counter()
        if now - last >= 1.0 / hz:
            t.snapshot(SNAPSHOT_OVERHEAD)
            last = now
        if now - t0 >= seconds:
            break
    return steps / (time.perf_counter() - t0)


def _interleaved(fa: Callable[[], float], fb: Callable[[], float], rounds: int) -> tuple[float, float]:
    a, b = [], []
    for _ in range(rounds):
        a.append(fa())
        b.append(fb())
    return statistics.median(a), statistics.median(b)


def bench_engine_speed(quick: bool, device: str) -> list[Row]:
    from .hparams import HParams

    h = HParams(dataset="digits", hidden=(512, 512), train_size=1000, batch_size=64, dropout=0.5,
                optimizer="adam", decay_mode="decoupled", weight_decay=0.01, lr=1e-3)
    secs, rounds = (1.5, 3) if quick else (4.0, 5)
    bare, eng = _interleaved(lambda: _bare_loop_rate(h, secs, device),
                             lambda: _engine_rate(h, secs, device), rounds)
    ratio = eng / bare
    return [
        {"name": "bare torch loop, 64-512-512-10 digits, p=0.5, AdamW", "value": bare,
         "unit": "steps/s", "target": "", "ok": None},
        {"name": "engine with 30 Hz snapshots", "value": eng, "unit": "steps/s", "target": "",
         "ok": None},
        {"name": "engine ÷ bare loop", "value": ratio, "unit": "×", "target": "≥ 0.97",
         "ok": ratio >= 0.97},
    ]


class _Lockstep:
    """A Comparison driven as the engine drives it (chunks sized by engine.chunk_steps, a snapshot
    of every run every 1/hz s), in timed windows: the bench alternates windows of one and of two
    runs on Comparisons built once, so both see the same machine (on the shared 2-core machine
    the same loop's speed drifted ±15 % from one 4 s run to the next)."""

    def __init__(self, runs: dict, device: str, hz: float = 30.0) -> None:
        from .comparison import Comparison

        self.c = Comparison(runs, device)
        self.c.step(5)  # warm-up
        # The engine sends every run's first, full snapshot before training starts (Loop.run):
        # here too, outside the timing. Inside it, that one heavy measurement per run (~150 ms
        # on the loaded bench machine) took 11 % of a 1.5 s window for one run, 28 % for two.
        self.c.snapshots()
        self.chunk, self.period = 1, 1.0 / hz
        self.parts = None  # the snapshot parts measured (None: all; the window asks for fewer)

    def rate(self, seconds: float) -> float:
        """Steps/s of each run over a window of `seconds`."""
        from .engine import SNAPSHOT_OVERHEAD, chunk_steps

        c, steps = self.c, 0
        last = t0 = time.perf_counter()
        while True:
            c0 = time.perf_counter()
            c.step(self.chunk)
            steps += self.chunk
            self.chunk = chunk_steps(self.chunk, time.perf_counter() - c0, len(c.trainers))
            now = time.perf_counter()
            if now - last >= self.period:
                c.snapshots(SNAPSHOT_OVERHEAD, parts=self.parts)
                last = now
            if now - t0 >= seconds:
                break
        return steps / (time.perf_counter() - t0)


def bench_lockstep(quick: bool, device: str) -> list[Row]:
    """Two runs in lockstep cost at most twice one run (issue 9): each run's steps/s × 2 ÷ the
    steps/s of a single run, both driven as the engine drives them, in alternating windows."""
    from .hparams import HParams

    h = HParams(dataset="digits", hidden=(512, 512), train_size=1000, batch_size=64, dropout=0.5,
                optimizer="adam", decay_mode="decoupled", weight_decay=0.01, lr=1e-3)
    secs, rounds = (0.75, 6) if quick else (1.5, 12)
    one = _Lockstep({"A": h}, device)
    two = _Lockstep({"A": h, "B": h.replace(weight_decay=0.1)}, device)
    r1, r2 = _interleaved(lambda: one.rate(secs), lambda: two.rate(secs), rounds)
    ratio = r2 * 2 / r1
    return [
        {"name": "one run (a Comparison of one), 64-512-512-10 digits", "value": r1,
         "unit": "steps/s", "target": "", "ok": None},
        {"name": "2 runs in lockstep (λ 0.01 vs 0.1), each", "value": r2, "unit": "steps/s",
         "target": "", "ok": None},
        {"name": "2 runs in lockstep: steps/s × 2 ÷ one run's", "value": ratio, "unit": "×",
         "target": "≥ 0.95", "ok": ratio >= 0.95},
    ]


def bench_histograms(quick: bool, device: str) -> list[Row]:
    """Histogram cost per snapshot must not grow with λ (TensorBoard's did: pytorch #43328)."""
    from .hparams import HParams
    from .trainer import Trainer, weight_histograms

    calls = 50 if quick else 200
    trainers = {}
    for lam in (0.0, 0.1):
        t = Trainer(HParams(dataset="digits", hidden=(512, 512), train_size=1000, optimizer="adam",
                            decay_mode="decoupled", weight_decay=lam, lr=0.01), device)
        t.step(100 if quick else 400)  # λ = 0.1 piles the weights up near zero
        trainers[lam] = t
    rounds = {0.0: [], 0.1: []}
    for _ in range(3):
        for lam, t in trainers.items():
            weights = [lin.weight for lin in t.model.weight_layers()]
            t0 = time.perf_counter()
            for _ in range(calls):
                weight_histograms(weights)
            rounds[lam].append((time.perf_counter() - t0) / calls)
    costs = {lam: statistics.median(v) for lam, v in rounds.items()}
    ratio = costs[0.1] / costs[0.0]
    return [
        {"name": "histograms per snapshot at λ=0", "value": costs[0.0] * 1e3, "unit": "ms",
         "target": "", "ok": None},
        {"name": "histograms per snapshot at λ=0.1", "value": costs[0.1] * 1e3, "unit": "ms",
         "target": "", "ok": None},
        {"name": "histogram cost λ=0.1 ÷ λ=0", "value": ratio, "unit": "×", "target": "≤ 1.2",
         "ok": ratio <= 1.2},
    ]


def _plain_landscape(trainer, d1, d2, alphas, betas, x, y) -> float:
    """One grid point at a time, the way the offline scripts do it; for the speed-up ratio."""
    import copy

    import torch

    model = copy.deepcopy(trainer.model).eval()
    base = [p.detach().clone() for p in model.parameters()]
    t0 = time.perf_counter()
    with torch.no_grad():
        for b in betas:
            for a in alphas:
                for p, p0, u, v in zip(model.parameters(), base, d1, d2):
                    p.copy_(p0 + a * u + b * v)
                torch.nn.functional.cross_entropy(model(x), y).item()
    return time.perf_counter() - t0


def bench_landscape(quick: bool, device: str) -> list[Row]:
    import numpy as np

    from .analyses.landscape_math import grid_losses, make_directions
    from .hparams import HParams
    from .trainer import Trainer

    t = Trainer(HParams(dataset="moons", hidden=(64, 64), train_size=512), device)
    t.step(200)
    view = t.view()
    params = list(view.model.parameters())
    d1, d2, _ = make_directions(params, [], "random", 0)
    x, y = view.x_train[:512], view.y_train[:512]
    full, coarse = np.linspace(-1, 1, 51), np.linspace(-1, 1, 11)
    reps = 3 if quick else 7
    grid_losses(view, d1, d2, coarse, coarse, x, y)  # warm-up
    t_full, t_coarse = [], []
    for _ in range(reps):
        s = time.perf_counter()
        grid_losses(view, d1, d2, full, full, x, y)
        t_full.append(time.perf_counter() - s)
        s = time.perf_counter()
        grid_losses(view, d1, d2, coarse, coarse, x, y)
        t_coarse.append(time.perf_counter() - s)
    plain = _plain_landscape(t, d1, d2, full[::5] if quick else full, full[::5] if quick else full,
                             x, y)
    if quick:
        plain *= (51 * 51) / (len(full[::5]) ** 2)  # scaled from an 11×11 sample of the grid
    tf, tc = statistics.median(t_full), statistics.median(t_coarse)
    on_gpu = t.device.type == "cuda"
    target = 0.020 if on_gpu else 0.35
    return [
        {"name": "loss surface 51×51, 512 pts, 2-64-64-2", "value": tf, "unit": "s",
         "target": f"≤ {target}", "ok": tf <= target},
        {"name": "coarse preview 11×11", "value": tc * 1e3, "unit": "ms", "target": "≤ 50",
         "ok": tc <= 0.05},
        {"name": "plain one-point-at-a-time loop ÷ batched", "value": plain / tf, "unit": "×",
         "target": "", "ok": None},
    ]


class _StampedQueue:
    """The engine's output queue, stamping each message with the engine's clock as it is put, so
    gaps between snapshots are the engine's own (not when a reader got round to them)."""

    def __init__(self) -> None:
        import queue

        self._q: Any = queue.Queue()
        self.stamps: list[tuple[float, str, str]] = []  # (perf_counter, kind, job event kind)

    def put(self, item: tuple, *args: Any, **kwargs: Any) -> None:
        kind, payload = item
        self.stamps.append((time.perf_counter(), kind, getattr(payload, "kind", "")))
        self._q.put(item, *args, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._q.get(*args, **kwargs)


def _snapshot_gaps_during_landscape(h, device: str, slice_s: float, resolution: int = 51
                                    ) -> tuple[float, float]:
    """(max gap between snapshots while a landscape job runs, the job's wall time), in seconds,
    for the real engine in a thread, training at 30 Hz snapshots, with job slices of `slice_s`
    (inf: the whole job in one slice, as the engine ran a landscape before issue 9)."""
    import queue
    import threading

    from . import engine
    from .threads import engine_threads

    cmds: Any = queue.Queue()
    out = _StampedQueue()
    previous, engine.JOB_SLICE_S = engine.JOB_SLICE_S, slice_s
    thread = threading.Thread(target=engine.engine_main, daemon=True,
                              args=(cmds, out, h.to_dict(), device, 30.0, engine_threads()))

    def wait(pred: Callable[[str, Any], bool], timeout: float = 120.0) -> Any:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                kind, payload = out.get(timeout=0.2)
            except queue.Empty:
                continue
            if kind in ("error", "stopped"):
                raise RuntimeError(f"the engine stopped: {payload}")
            if pred(kind, payload):
                return payload
        raise RuntimeError("the engine did not answer in time")

    try:
        thread.start()
        wait(lambda k, p: k == "ready")
        cmds.put(("run", None))
        wait(lambda k, p: k == "snapshot" and p.step >= 300)  # a trajectory for the PCA
        time.sleep(0.3)  # a steady cadence before the job
        cmds.put(("analyze", {"id": "bench", "run": "", "analysis": "landscape",
                              "params": {"resolution": resolution}}))
        done = wait(lambda k, p: k == "job" and p.kind in ("result", "failed", "cancelled"))
        if done.kind != "result":
            raise RuntimeError(f"the landscape job ended {done.kind}: {done.message}")
        time.sleep(0.2)  # the first snapshot after the job
    finally:
        cmds.put(("stop", None))
        thread.join(10)
        engine.JOB_SLICE_S = previous
    stamps = list(out.stamps)
    start = next(t for t, k, e in stamps if k == "job" and e == "started")
    end = next(t for t, k, e in stamps if k == "job" and e == "result")
    snaps = [t for t, k, _ in stamps if k == "snapshot"]
    # Every gap between consecutive snapshots that overlaps the job's run.
    gaps = [b - a for a, b in zip(snaps, snaps[1:]) if b > start and a < end]
    return max(gaps) if gaps else float("inf"), end - start


def bench_snapshot_gap(quick: bool, device: str) -> list[Row]:
    """Issue 9: training and snapshots go on while an analysis computes. The worst gap between
    two snapshots over the whole run of a 51×51 landscape job (preview first) while training,
    against the same job run in one piece (what the engine did before: a gap as long as the
    landscape); interleaved, the worst over the rounds."""
    from .hparams import HParams

    h = HParams(dataset="moons", hidden=(64, 64), train_size=512)
    rounds = 2 if quick else 3
    sliced, whole = [], []
    for _ in range(rounds):
        sliced.append(_snapshot_gaps_during_landscape(h, device, _job_slice()))
        whole.append(_snapshot_gaps_during_landscape(h, device, float("inf")))
    gap = max(g for g, _ in sliced)
    return [
        {"name": "max gap between snapshots while a 51×51 landscape computes during training",
         "value": gap * 1e3, "unit": "ms", "target": "≤ 100", "ok": gap <= 0.100},
        {"name": "the same, landscape in one piece (the engine before issue 9)",
         "value": max(g for g, _ in whole) * 1e3, "unit": "ms", "target": "", "ok": None},
        {"name": "51×51 landscape job's wall time while training",
         "value": statistics.median(w for _, w in sliced), "unit": "s", "target": "", "ok": None},
    ]


def _job_slice() -> float:
    from .engine import JOB_SLICE_S

    return JOB_SLICE_S


@contextlib.contextmanager
def busy_core() -> Iterator[subprocess.Popen]:
    """A child process spinning on one core for the duration of the block, stopped (and reaped)
    afterwards even on error: the "other busy process" of a lecture machine (GUI, recorder)."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.2)  # let it start spinning before anything is timed
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def cli_train_rate(h, steps: int, device: str, threads: int = 0) -> tuple[float, int]:
    """(steps/s, torch threads) that `python main.py train` reports in its --json for `h`, run as
    a fresh process exactly as a user runs it (`threads` = 0: the CLI's automatic policy)."""
    from .presets import save_preset

    root = Path(__file__).resolve().parents[1]  # import this checkout's regsim, not another
    with tempfile.TemporaryDirectory(prefix="regsim-bench-") as tmp:
        preset, record = Path(tmp) / "bench.json", Path(tmp) / "run.json"
        save_preset(h, preset, "bench: CLI train under load")
        code = "import sys; from regsim.cli import run_cli; sys.exit(run_cli(sys.argv[1:]))"
        out = subprocess.run(
            [sys.executable, "-c", code, "train", "--preset", str(preset), "--steps", str(steps),
             "--device", device, "--threads", str(threads), "--json", str(record)],
            cwd=root, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"CLI train failed ({out.returncode}): {out.stderr.strip()[-500:]}")
        data = json.loads(record.read_text("utf-8"))
    return float(data["steps_per_sec"]), int(data["threads"])


def bench_cli_threads(quick: bool, device: str, seconds: float | None = None,
                      rounds: int | None = None) -> list[Row]:
    """CLI train against the engine with one core busy (issue 8, item 21).

    Both use the thread policy of regsim.threads (one thread per spare core); before it, the CLI
    ran on torch's default of one thread per core and made 20–23 steps/s beside a busy process on
    2 cores, against 454 with one thread. The rates are interleaved (CLI, engine, CLI, …) under
    the same busy loop; the CLI's rate is the one it reports (its training loop, with its 20 log
    snapshots, not the interpreter's start-up)."""
    from .hparams import HParams
    from .threads import available_cores, engine_threads

    h = HParams(dataset="digits", hidden=(512, 512), train_size=1000, batch_size=64, dropout=0.5,
                optimizer="adam", decay_mode="decoupled", weight_decay=0.01, lr=1e-3)
    secs = seconds if seconds is not None else (2.0 if quick else 4.0)
    n_rounds = rounds if rounds is not None else (2 if quick else 3)
    threads = engine_threads()
    with busy_core():
        first = _engine_rate(h, secs / 2, device, threads=threads)  # sizes the CLI's run
        steps = max(20, int(first * secs))
        cli_threads = [0]

        def cli() -> float:
            rate, cli_threads[0] = cli_train_rate(h, steps, device)
            return rate

        cli_rate, eng = _interleaved(cli, lambda: _engine_rate(h, secs, device, threads=threads),
                                     n_rounds)
        cores = available_cores()
        default = None
        if device == "cpu" and cores > threads:
            # What the CLI did before (torch's default, one thread per core), for comparison; a
            # tenth of the steps, since beside a busy core it may be 20× slower.
            default, _ = cli_train_rate(h, max(20, steps // 10), device, threads=cores)
    ratio = cli_rate / eng
    rows = [
        {"name": f"engine, one core busy ({threads} thread{'s' if threads != 1 else ''})",
         "value": eng, "unit": "steps/s", "target": "", "ok": None},
        {"name": f"CLI train, one core busy ({cli_threads[0]} thread"
                 f"{'s' if cli_threads[0] != 1 else ''}, automatic)",
         "value": cli_rate, "unit": "steps/s", "target": "", "ok": None},
    ]
    if default is not None:
        rows.append({"name": f"CLI train, one core busy, torch default ({cores} threads)",
                     "value": default, "unit": "steps/s", "target": "", "ok": None})
    rows.append({"name": "CLI train ÷ engine with one core busy", "value": ratio, "unit": "×",
                 "target": "≥ 0.9", "ok": ratio >= 0.9})
    return rows


def _naive_ensemble(model, x, y, p: float, n_masks: int) -> float:
    """One full forward pass per dropout mask of the last hidden layer (the way a script would
    enumerate them), accumulating the arithmetic mean and each mask's accuracy; seconds taken."""
    import torch

    n = model.out.in_features
    t0 = time.perf_counter()
    with torch.no_grad():
        arith = torch.zeros(len(x), model.out.out_features)
        for m in range(n_masks):
            mask = torch.tensor([(m >> i) & 1 for i in range(n)], dtype=x.dtype) / (1 - p)
            h = x
            for lin in model.linears:
                h = torch.relu(lin(h))
            z = model.out(h * mask)
            w = (1 - p) ** int(mask.count_nonzero()) * p ** (n - int(mask.count_nonzero()))
            arith += w * torch.softmax(z, 1)
            float((z.argmax(1) == y).double().mean())
    return time.perf_counter() - t0


def _naive_mc(model, x, T: int) -> float:
    """T forward passes through the network's own dropout modules in train mode, one at a time."""
    import torch

    model.train()
    t0 = time.perf_counter()
    with torch.no_grad():
        outs = []
        for t in range(T):
            model.seed_dropout(0, t)  # pass t's masks from the network's own (seed, step) stream
            outs.append(model(x))
        torch.stack(outs).mean(0)
    model.eval()
    return time.perf_counter() - t0


def _naive_calibration(model, x, y, T: int, bins: int) -> float:
    """The MC loop, then ECE bin by bin with boolean masks (the textbook implementation)."""
    import torch

    t0 = time.perf_counter()
    model.train()
    with torch.no_grad():
        probs_t = []
        for t in range(T):
            model.seed_dropout(0, t)
            probs_t.append(torch.softmax(model(x), 1))
        mc = torch.stack(probs_t).mean(0).numpy()
    model.eval()
    with torch.no_grad():
        det = torch.softmax(model(x), 1).numpy()
    for probs in (det, mc):
        conf, pred = probs.max(1), probs.argmax(1)
        ece = 0.0
        for b in range(bins):
            inside = (conf >= b / bins) & ((conf < (b + 1) / bins) | (b == bins - 1))
            if inside.any():
                ece += inside.mean() * abs((pred[inside] == y[inside]).mean() - conf[inside].mean())
    return time.perf_counter() - t0


def bench_dropout(quick: bool, device: str) -> list[Row]:
    """The dropout chapter's analyses (issue 10), each beside the naive loop it replaces, interleaved."""
    import functools

    import torch

    from .analyses import calibration, ensemble, mc_dropout
    from .analyses.base import drain
    from .hparams import HParams
    from .trainer import Trainer

    rounds = 3 if quick else 5
    rows: list[Row] = []

    def timed(mod, view, request) -> float:
        t0 = time.perf_counter()
        drain(mod.compute(view, request))
        return time.perf_counter() - t0

    def scaled(seconds: Callable[[], float], factor: float) -> float:
        return seconds() * factor

    for n in (12, 16):  # moons, 200 train + 800 val = 1000 points, 2-n-2, p = 0.5
        t = Trainer(HParams(dataset="moons", hidden=(n,), dropout=0.5, train_size=200, val_size=800),
                    device)
        t.step(200)
        view = t.view()
        x, y = torch.cat([view.x_train, view.x_val]), torch.cat([view.y_train, view.y_val])
        sample = min(2**n, 2**10 if quick else 2**13)  # the naive loop on a sample of masks, scaled up
        req = ensemble.EnsembleRequest(page_size=0)
        drain(ensemble.compute(view, req))  # warm-up
        naive_fn = functools.partial(_naive_ensemble, view.model, x, y, 0.5, sample)
        fast, naive = _interleaved(functools.partial(timed, ensemble, view, req),
                                   functools.partial(scaled, naive_fn, 2**n / sample), rounds)
        rows += [{"name": f"ensemble 2^{n} masks exact, 1000 pts", "value": fast * 1e3, "unit": "ms",
                  "target": "≤ 50" if n == 16 else "", "ok": fast <= 0.050 if n == 16 else None},
                 {"name": f"  naive one-pass-per-mask loop ÷ ensemble (n = {n})", "value": naive / fast,
                  "unit": "×", "target": "", "ok": None}]
    for label, h, target in (
            ("MC dropout T=100, 400 pts, 1-128-128-1",
             HParams(dataset="regression", hidden=(128, 128), dropout=0.2), 0.060),
            ("MC dropout T=100, digits val, 64-64-64-10", HParams(dataset="digits", dropout=0.5), 0.300)):
        t = Trainer(h, device)
        t.step(50)
        view = t.view()
        req = mc_dropout.MCRequest(T=100)
        x = ensemble.data_grid(view, 400)[0] if h.dataset == "regression" else view.x_val
        drain(mc_dropout.compute(view, req))
        fast, naive = _interleaved(functools.partial(timed, mc_dropout, view, req),
                                   functools.partial(_naive_mc, view.model, x, 100), rounds)
        rows += [{"name": label, "value": fast * 1e3, "unit": "ms", "target": f"≤ {target * 1e3:g}",
                  "ok": fast <= target},
                 {"name": "  naive T-pass loop ÷ batched", "value": naive / fast, "unit": "×",
                  "target": "", "ok": None}]
    req = calibration.CalibrationRequest(T=100, bins=15)  # on the digits run of the last MC row
    drain(calibration.compute(view, req))
    naive_fn = functools.partial(_naive_calibration, view.model, view.x_val, view.y_val.numpy(), 100, 15)
    fast, naive = _interleaved(functools.partial(timed, calibration, view, req), naive_fn, rounds)
    rows += [{"name": "calibration T=100, digits val, 15 bins, both", "value": fast * 1e3, "unit": "ms",
              "target": "", "ok": None},
             {"name": "  naive loop + bin-by-bin ECE ÷ calibration", "value": naive / fast, "unit": "×",
              "target": "", "ok": None}]
    return rows


def _power_topk(hvp: Callable, n: int, k: int, tol: float = 1e-4, max_iter: int = 100) -> list[float]:
    """The baseline Lanczos replaces: power iteration with deflation, one eigenvalue at a time
    (each run until the Rayleigh quotient changes by < tol relative, at most max_iter products)."""
    import torch

    g = torch.Generator().manual_seed(0)
    found: list[tuple[float, torch.Tensor]] = []
    for _ in range(k):
        v = torch.randn(n, dtype=torch.float64, generator=g)
        v /= v.norm()
        lam = 0.0
        for _ in range(max_iter):
            w = hvp(v)
            for lj, qj in found:
                w = w - lj * (qj @ v) * qj
            new = float(w @ v)
            v = w / w.norm()
            if abs(new - lam) <= tol * abs(new):
                break
            lam = new
        found.append((new, v))
    return [lam for lam, _ in found]


def _dense_eigh(view) -> float:
    """torch.func.hessian of the loss in the flat weights, then torch.linalg.eigh: the reference."""
    import math

    import torch
    from torch.func import functional_call, hessian

    t0 = time.perf_counter()
    m = view.model.eval()
    names = [n for n, _ in m.named_parameters()]
    shapes = [p.shape for _, p in m.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in m.parameters()])

    def f(w):
        ps, i = {}, 0
        for name, shape in zip(names, shapes):
            c = math.prod(shape)
            ps[name] = w[i:i + c].reshape(shape)
            i += c
        return view.loss(functional_call(m, ps, (view.x_train,)), view.y_train)

    torch.linalg.eigh(hessian(f)(flat))
    return time.perf_counter() - t0


def _timed_reps(fn: Callable[[], Any], reps: int = 20) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def _bench_hessian_net(label: str, h, targets: dict, quick: bool, device: str, rounds: int
                       ) -> list[Row]:
    import functools

    import torch
    from torch.func import functional_call, grad, jvp

    from .analyses import hessian as hs
    from .analyses.base import drain
    from .trainer import Trainer

    t = Trainer(h, device)
    t.step(200)
    view = t.view()
    P = sum(p.numel() for p in view.model.parameters())
    rows: list[Row] = []

    def lanczos(req) -> float:
        t0 = time.perf_counter()
        drain(hs.compute(view, req))
        return time.perf_counter() - t0

    def power(k: int) -> float:
        t0 = time.perf_counter()
        _power_topk(hs.make_hvp(view, hs.HessianRequest())[0], P, k)
        return time.perf_counter() - t0

    for k in (5, 20):
        req = hs.HessianRequest(k=k, trace_samples=0)
        its = drain(hs.compute(view, req)).iterations  # also the warm-up
        if quick and P > 10_000:  # power iteration on 85 k parameters: tens of seconds a round
            fast, slow = statistics.median(lanczos(req) for _ in range(rounds)), float("nan")
        else:
            fast, slow = _interleaved(functools.partial(lanczos, req), functools.partial(power, k),
                                      1 if P > 10_000 else rounds)
        target = targets.get(k)
        rows += [{"name": f"Hessian top-{k} Lanczos, {label} ({P} params, {its} HVPs)",
                  "value": fast * 1e3, "unit": "ms", "target": f"≤ {target * 1e3:g}" if target else "",
                  "ok": fast <= target if target else None},
                 {"name": f"  power iteration + deflation ÷ Lanczos (top-{k})", "value": slow / fast,
                  "unit": "×", "target": "", "ok": None}]
    hvp = hs.make_hvp(view, hs.HessianRequest())[0]
    v = torch.randn(P, dtype=torch.float64)
    m = view.model
    names = [n for n, _ in m.named_parameters()]
    shapes = [p.shape for _, p in m.named_parameters()]
    sizes = [p.numel() for p in m.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in m.parameters()])

    def f(w):
        ps = {n: c.reshape(s) for n, c, s in zip(names, torch.split(w, sizes), shapes)}
        return view.loss(functional_call(m, ps, (view.x_train,)), view.y_train)

    v32 = v.float()
    jvp(grad(f), (flat,), (v32,))  # warm-up
    a, b = _interleaved(functools.partial(_timed_reps, lambda: hvp(v)),
                        functools.partial(_timed_reps, lambda: jvp(grad(f), (flat,), (v32,))), rounds)
    rows += [{"name": f"one HVP (double backward, kept graph), {label}", "value": a * 1e3, "unit": "ms",
              "target": "", "ok": None},
             {"name": "  torch.func forward-over-reverse HVP ÷ ours", "value": b / a, "unit": "×",
              "target": "", "ok": None}]
    if P < 10_000:  # the dense reference: 4.5 k² entries; at 85 k parameters it would need 29 GB
        req = hs.HessianRequest(k=20, trace_samples=0)
        lan = statistics.median(lanczos(req) for _ in range(rounds))
        rows.append({"name": "  torch.func.hessian + eigh ÷ Lanczos top-20", "value": _dense_eigh(view) / lan,
                     "unit": "×", "target": "", "ok": None})
    return rows


def bench_hessian(quick: bool, device: str) -> list[Row]:
    """Issue 11: Lanczos top-k of the training loss's Hessian and one Hessian-vector product, beside
    power iteration with deflation (both networks) and torch.func.hessian + eigh (the small one)."""
    from .hparams import HParams

    rounds = 3 if quick else 5
    nets = (("2-64-64-2 moons", HParams(dataset="moons", hidden=(64, 64), train_size=200),
             {5: 0.015, 20: 0.130}),
            ("64-256-256-10 digits", HParams(dataset="digits", hidden=(256, 256), train_size=1000),
             {20: 0.500}))
    rows: list[Row] = []
    for label, h, targets in nets:
        rows += _bench_hessian_net(label, h, targets, quick, device, rounds)
    return rows
def bench_optim(quick: bool, device: str) -> list[Row]:
    """Issue 12: the 2-D race's cost, the (lr × λ) sweep's wall time and runs/s, and whether batching
    the sweep's runs with torch.func.vmap wins over training them one by one (the decision in
    regsim/sweep.py), on one CPU thread (the engine's policy on 2 cores)."""
    from . import race
    from .hparams import HParams
    from .sweep import SweepSpec, run_sweep

    def race_ms(loss: str) -> float:
        t0 = time.perf_counter()
        race.race(loss, lr=0.01 if loss == "quadratic" else 1e-3, lam=0.1, steps=200)
        return (time.perf_counter() - t0) * 1e3

    rows: list[Row] = []
    for loss in race.LOSSES:
        ms = statistics.median(race_ms(loss) for _ in range(3))
        rows.append({"name": f"race: {len(race.VARIANTS)} variants × 200 steps, {loss}", "value": ms,
                     "unit": "ms", "target": "", "ok": None})
    h = HParams(dataset="digits", hidden=(128, 128), batch_size=128, train_size=1000, dropout=0.0)
    n_grid, steps = (2, 120) if quick else (6, 120)
    lrs = tuple(float(x) for x in _logspace(1e-4, 1e-2, n_grid))
    decays = tuple(float(x) for x in _logspace(1e-4, 1e-1, n_grid))
    spec = SweepSpec(h, lrs, decays, ("adam-l2", "adamw", "adamw-paper"), (0,), steps)
    one = _on_threads(1, lambda: list(run_sweep(spec, device, batched=False))[-1])
    many = _on_threads(1, lambda: list(run_sweep(spec, device, batched=True))[-1])
    what = f"{one.total} runs × {steps} steps (64-128-128-10 digits, b 128), 1 thread"
    rows += [{"name": f"sweep one run at a time: {what}", "value": one.seconds, "unit": "s",
              "target": "", "ok": None},
             {"name": "sweep one run at a time: runs per second", "value": one.total / one.seconds,
              "unit": "runs/s", "target": "", "ok": None},
             {"name": "sweep batched (torch.func.vmap per seed × family)", "value": many.seconds,
              "unit": "s", "target": "", "ok": None},
             {"name": "sweep batched: runs per second", "value": many.total / many.seconds,
              "unit": "runs/s", "target": "", "ok": None},
             {"name": "sweep batched ÷ one at a time: speed-up", "value": one.seconds / many.seconds,
              "unit": "×", "target": "> 1", "ok": one.seconds > many.seconds}]
    rows += _bench_sweep_job(h, lrs, decays, steps, device, many.seconds)
    if not quick:  # the target: 72 runs × 600 steps ≤ 25 s on this CPU
        spec = SweepSpec(h, lrs, decays, ("adam-l2", "adamw"), (0,), 600)
        big = _on_threads(1, lambda: list(run_sweep(spec, device, batched=True))[-1])
        rows.append({"name": "sweep batched: 72 runs × 600 steps", "value": big.seconds, "unit": "s",
                     "target": "≤ 25", "ok": big.seconds <= 25})
    return rows


def _bench_sweep_job(h, lrs: tuple, decays: tuple, steps: int, device: str, direct_s: float) -> list[Row]:
    """The same batched grid as an engine job (regsim.analyses.sweep through JobRunner slices of
    the engine's budget: a yield per vmapped step, a partial result per batch) against run_sweep
    called directly: what running it in the background costs."""
    from .analyses.jobs import JobRunner
    from .engine import JOB_SLICE_S
    from .trainer import Trainer

    view = Trainer(h, device=device).view
    params = {"lrs": lrs, "decays": decays, "variants": ("adam-l2", "adamw", "adamw-paper"), "seeds": 1,
              "steps": steps}

    def job() -> float:
        runner = JobRunner()
        runner.submit("bench", "", "sweep", params, view)
        t0 = time.perf_counter()
        while runner.busy:
            runner.run_slice(JOB_SLICE_S)
        return time.perf_counter() - t0

    s = _on_threads(1, job)
    n = len(lrs) * len(decays) * 3
    return [{"name": f"sweep as an engine job ({n} runs, {JOB_SLICE_S * 1e3:.0f} ms slices)", "value": s,
             "unit": "s", "target": "", "ok": None},
            {"name": "sweep as an engine job: runs per second", "value": n / s, "unit": "runs/s",
             "target": "", "ok": None},
            {"name": "sweep job ÷ run_sweep direct: overhead", "value": s / direct_s, "unit": "×",
             "target": "≤ 1.2", "ok": s / direct_s <= 1.2}]


def _logspace(lo: float, hi: float, n: int) -> list[float]:
    import math

    return [lo] if n == 1 else [math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * i / (n - 1))
                                for i in range(n)]


def bench_race(quick: bool, device: str) -> list[Row]:
    """The Race panel (issue 12, part 1): the numpy race it runs in the GUI process beside the torch
    race through the readable rules (same arithmetic, tests/test_panel_race.py), per step; the cost of
    the "optstate" snapshot part; and Adam+L2 vs AdamW in lockstep (the panel's comparison, every part
    measured, optstate included) against one run, in alternating windows."""
    from . import race, race_np
    from .optstate import measure
    from .presets import load_preset
    from .trainer import Trainer

    rows: list[Row] = []
    reps = 3 if quick else 7
    for loss in race_np.LOSSES:
        s = race_np.RaceSettings(loss=loss, lr=0.05 if loss == "quadratic" else 2e-3, lam=0.1, steps=200)

        def numpy_ms(s: race_np.RaceSettings = s) -> float:
            t0 = time.perf_counter()
            race_np.race(s)
            return (time.perf_counter() - t0) * 1e3

        def torch_ms(s: race_np.RaceSettings = s) -> float:
            t0 = time.perf_counter()
            race.race(s.loss, s.start, s.lr, s.lam, s.betas, s.momentum, s.steps)
            return (time.perf_counter() - t0) * 1e3

        a, b = _interleaved(numpy_ms, torch_ms, reps)
        rows += [{"name": f"race (numpy, the panel's): 6 variants × 200 steps, {loss}", "value": a,
                  "unit": "ms", "target": "", "ok": None},
                 {"name": f"race per step (numpy), {loss}", "value": a * 1e3 / 200, "unit": "µs",
                  "target": "", "ok": None},
                 {"name": f"race: torch rules ÷ numpy, {loss}", "value": b / a, "unit": "×",
                  "target": "", "ok": None}]
    h = load_preset("adam_l2")
    t = Trainer(h, device)
    t.step(20)
    calls = 10 if quick else 40

    def part_ms() -> float:  # the measurement itself (snapshots reuse it within their budget)
        t0 = time.perf_counter()
        for _ in range(calls):
            measure(t.model, t.optimizer, t.step_count)
        return (time.perf_counter() - t0) * 1e3 / calls

    def step_ms() -> float:
        t0 = time.perf_counter()
        t.step(calls)
        return (time.perf_counter() - t0) * 1e3 / calls

    opt_ms, one_step = _on_threads(1, lambda: _interleaved(part_ms, step_ms, reps))
    rows += [{"name": "optstate part, one measurement (adam_l2: 64-256-256-10, 85 k weights)",
              "value": opt_ms, "unit": "ms", "target": "", "ok": None},
             {"name": "optstate part ÷ one training step", "value": opt_ms / one_step, "unit": "×",
              "target": "", "ok": None}]
    secs, rounds = (0.75, 4) if quick else (1.5, 8)
    one = _Lockstep({"Adam+L2": h}, device)
    two = _Lockstep({"Adam+L2": h, "AdamW": load_preset("adamw")}, device)
    for lock in (one, two):  # what the window asks for while the Race panel shows
        lock.parts = {"eval", "histograms", "optstate"}
    r1, r2 = _interleaved(lambda: one.rate(secs), lambda: two.rate(secs), rounds)
    ratio = r2 * 2 / r1
    rows += [{"name": "Adam+L2 vs AdamW in lockstep (the panel's parts): steps/s × 2 ÷ one run's",
              "value": ratio,
              "unit": "×", "target": "≥ 0.9", "ok": ratio >= 0.9}]
    return rows


def print_table(rows: list[Row], out=sys.stdout) -> None:
    width = max(len(r["name"]) for r in rows) + 2
    print(f"{'measure':{width}s} {'value':>12s}  {'unit':8s} {'target':10s} ok", file=out)
    print("-" * (width + 38), file=out)
    for r in rows:
        ok = "" if r["ok"] is None else ("yes" if r["ok"] else "NO")
        v = r["value"]
        vs = f"{v:12.3f}" if isinstance(v, float) else f"{v!s:>12s}"
        print(f"{r['name']:{width}s} {vs}  {r['unit']:8s} {r['target']:10s} {ok}", file=out,
              flush=True)


def bench_frames(quick: bool, device: str) -> list[Row]:
    """The Compression panel's frames (regsim.compression.FrameRing, fed by History.add) beside the
    snapshot they are recorded from: what recording one frame adds to a snapshot with histograms,
    on the app's default net (moons 2-64-64-2, where the snapshot is cheapest: the worst ratio)."""
    from .compression import FrameRing
    from .hparams import HParams
    from .trainer import Trainer

    t = Trainer(HParams(dataset="moons", hidden=(64, 64), weight_decay=0.01), device)
    t.step(50)
    parts = {"eval", "histograms"}  # what the window always measures (ui.main_window)
    ring, calls, step = FrameRing(), 20 if quick else 100, 0
    plain, recorded, add_only = [], [], []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            t.snapshot(parts=parts)
        plain.append((time.perf_counter() - t0) / calls)
        t0 = time.perf_counter()
        for _ in range(calls):
            snap = t.snapshot(parts=parts)
            step += 1
            ring.add(snap, step)
        recorded.append((time.perf_counter() - t0) / calls)
        t0 = time.perf_counter()
        for _ in range(calls):
            step += 1
            ring.add(snap, step)
        add_only.append((time.perf_counter() - t0) / calls)
    a, b, c = (statistics.median(v) for v in (plain, recorded, add_only))
    ratio = b / a
    return [
        {"name": "snapshot (eval + histograms), moons 64-64", "value": a * 1e3, "unit": "ms",
         "target": "", "ok": None},
        {"name": "recording one compression frame", "value": c * 1e6, "unit": "µs", "target": "",
         "ok": None},
        {"name": "snapshot + frame ÷ snapshot", "value": ratio, "unit": "×", "target": "≤ 1.05",
         "ok": ratio <= 1.05},
    ]


# The bench's sections, in the order they run (`--only` takes their names, plus "gui"). A new
# section is one function and one line here.
SECTIONS: dict[str, Callable[[bool, str], list[Row]]] = {
    "engine": bench_engine_speed, "lockstep": bench_lockstep, "hist": bench_histograms,
    "landscape": bench_landscape, "jobs": bench_snapshot_gap, "cli": bench_cli_threads,
    "dropout": bench_dropout, "hessian": bench_hessian, "optim": bench_optim,
    "frames": bench_frames,
    "race": bench_race,
}
SECTIONS["transformer"] = bench_transformer  # regsim/transformer_bench.py (issue 13)


def run_bench(argv: list[str], gui_bench: Callable | None = None,
              soak: Callable | None = None) -> int:
    """The core sections run here; `gui_bench(quick, device) -> rows` and `soak(minutes, device)`
    come from the UI package (main.py passes them in: the core never imports the UI)."""
    p = argparse.ArgumentParser(prog="python main.py bench")
    p.add_argument("--quick", action="store_true", help="shorter runs (about a minute)")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--device", default="auto")
    p.add_argument("--only", default="",
                   help="comma-separated sections: " + ",".join([*SECTIONS, "gui"]))
    p.add_argument("--soak", type=float, default=0.0, metavar="MINUTES",
                   help="run the live app this long, reporting RSS and frame rate over time")
    args = p.parse_args(argv)
    from .trainer import resolve_device

    try:
        device = str(resolve_device(args.device))
    except ValueError as e:
        print(f"regsim: error: {e}", file=sys.stderr)
        return 2
    if args.soak > 0:
        if soak is None:
            print("regsim: error: --soak needs the desktop app (Qt) installed", file=sys.stderr)
            return 2
        return soak(args.soak, device)
    sections = (set(filter(None, args.only.split(",")))
                or {*SECTIONS, "gui"})
    rows: list[Row] = []
    print(f"regsim bench on {device} ({'quick' if args.quick else 'full'})", flush=True)
    for name, fn in SECTIONS.items():
        if name in sections:
            section = fn(args.quick, device)
            rows += section
            print_table(section)
    if "gui" in sections:
        if gui_bench is None:
            print("(GUI measurements skipped: Qt is not available)")
        else:
            rows += gui_bench(args.quick, device)
    print("\nSummary")
    print_table(rows)
    if args.json:
        from .files import atomic_write_json

        atomic_write_json(Path(args.json), {"device": device, "quick": args.quick, "rows": rows})
    return 0
