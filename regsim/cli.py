"""Headless command line: train from a preset, list presets. No Qt here."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .files import atomic_write_json, check_parent
from .hparams import HParams
from .presets import list_presets, load_preset
from .snapshot import History
from .threads import check_threads

LOG_OVERHEAD = 0.03  # share of training time the log lines' snapshots may take


def parse_sets(pairs: list[str], base: HParams) -> HParams:
    """Apply `key=value` overrides; a malformed pair or bad value raises ValueError naming it."""
    changes = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set {pair!r}: expected key=value")
        key, value = pair.split("=", 1)
        changes[key.strip()] = value.strip()
    return HParams.from_dict(changes, base=base)


def _train(args: argparse.Namespace) -> int:
    h = parse_sets(args.set or [], load_preset(args.preset) if args.preset else HParams())
    if args.steps < 1:
        raise ValueError(f"--steps = {args.steps} is out of range; allowed: [1, ∞)")
    threads = check_threads(args.threads)
    from .trainer import Trainer, set_threads

    # The engine's policy (regsim.threads), before any torch work: with torch's default of one
    # thread per core this ran at 20–23 steps/s beside one busy process on 2 cores, 454 with 1.
    set_threads(threads)
    trainer = Trainer(h, args.device)
    first = trainer.snapshot()
    print(f"regsim: {args.preset or 'defaults'} on {first.device}, {_threads_note(threads, args)}: "
          f"{h.caption()}", flush=True)
    history = History()
    history.add(first)
    log_every = max(1, args.steps // 20)
    chunk = log_every
    t0 = time.perf_counter()
    done = 0
    snap = first
    while done < args.steps:
        n = min(chunk, args.steps - done)
        c0 = time.perf_counter()
        trainer.step(n)
        c1 = time.perf_counter()
        done += n
        snap = trainer.snapshot()
        # A log line's full evaluation costs ~8 steps on a 64-512-512-10 net: logging every
        # steps/20 took ~45 % of a short run (0.58× the engine's rate, measured beside a busy
        # core). Space the lines so they take at most LOG_OVERHEAD of the time, as the engine does.
        per_step = (c1 - c0) / n
        chunk = max(log_every, math.ceil((time.perf_counter() - c1)
                                         / (LOG_OVERHEAD * max(per_step, 1e-9))))
        history.add(snap)
        acc = (f" train_acc {snap.train_acc:.3f} val_acc {snap.val_acc:.3f}"
               if snap.train_acc == snap.train_acc else "")  # NaN for regression
        print(f"step {snap.step:6d}  train_loss {snap.train_loss:.4f}  val_loss {snap.val_loss:.4f}"
              f"  gap {snap.val_loss - snap.train_loss:+.4f}{acc}", flush=True)
        if snap.status == "diverged":
            sys.stdout.flush()
            print(f"regsim: {snap.message}", file=sys.stderr, flush=True)
            break
    elapsed = time.perf_counter() - t0
    rate = done / max(elapsed, 1e-9)
    print(f"done: step {snap.step} after {done} steps in {elapsed:.1f} s ({rate:.0f} steps/s)")
    if args.json:
        # The run is over: "finished" (or "diverged"), not the trainer's last live "running".
        status = "diverged" if snap.status == "diverged" else "finished"
        record = {"hparams": h.to_dict(), "device": snap.device, "status": status,
                  "message": snap.message, "threads": set_threads(0),
                  "steps_per_sec": rate, "seconds": elapsed,
                  "final": {k: getattr(snap, k) for k in ("step", "train_loss", "val_loss",
                                                          "train_acc", "val_acc")},
                  "history": {k: history.series(k).tolist() for k in History.SERIES},
                  "events": history.events}
        atomic_write_json(Path(args.json), record)
        print(f"wrote {args.json}")
    return 3 if snap.status == "diverged" else 0


def _lesson(args: argparse.Namespace) -> int:
    """`lesson [NAME] [--seed N] [--json PATH]`: without a name, list the lessons; with one, train
    its runs in lockstep, print the claim's verdict and return 0 if it holds, 1 if not."""
    from .lessons import evaluate_claim, list_lessons, load_lesson, train_lesson

    if not args.name:
        for name, title in list_lessons().items():
            print(f"{name:30s} {title}")
        return 0
    lesson = load_lesson(args.name)
    if args.seed is not None and not 0 <= args.seed <= 2**31 - 1:
        raise ValueError(f"--seed = {args.seed} is out of range; allowed: [0, {2**31 - 1}]")
    if args.json:
        check_parent(args.json)  # before training, not after it
    threads = check_threads(args.threads)
    from .trainer import set_threads

    set_threads(threads)  # the engine's policy (regsim.threads), before any torch work
    runs = lesson.hparams(args.seed)
    seeds = sorted({h.seed for h in runs.values()})
    differ = "; ".join(f"{k} " + ", ".join(f"{n}={v}" for n, v in vals.items())
                       for k, vals in lesson.differences().items())
    print(f"regsim: lesson {lesson.id}: {lesson.title}\n  seed {', '.join(map(str, seeds))}, "
          f"{lesson.steps} steps, {_threads_note(threads, args)}; runs differ in: {differ}", flush=True)
    t0 = time.perf_counter()
    traces, problem = train_lesson(lesson, args.seed, args.device)
    result = evaluate_claim(lesson, traces)
    text = f"✗ cannot judge: {problem}" if problem else result.text
    holds = result.holds and not problem
    elapsed = time.perf_counter() - t0
    print(text)
    print(f"done: {len(runs)} runs × {lesson.steps} steps in {elapsed:.1f} s", flush=True)
    if args.json:
        atomic_write_json(Path(args.json), {
            "lesson": lesson.id, "title": lesson.title, "seed": args.seed, "seconds": elapsed,
            "hparams": {n: h.to_dict() for n, h in runs.items()},
            "claim": {**result.to_dict(), "holds": holds, "text": text, "problem": problem},
            "curves": {n: {"step": tr.steps.tolist(), **{k: v.tolist() for k, v in tr.series.items()}}
                       for n, tr in traces.items()}})
        print(f"wrote {args.json}")
    return 0 if holds else 1


def _sweep(args: argparse.Namespace, figure: Callable[[Any, Path], Path] | None = None) -> int:
    """The (lr × λ) sweep: one line per finished run, then sweep.csv + sweep.json in --out, and
    sweep.png when `figure` (the Qt side's renderer, passed by main.py) is given."""
    from .sweep import VARIANTS, SweepSpec, parse_floats, run_sweep, write_grid

    base = parse_sets(args.set or [], load_preset(args.preset) if args.preset else HParams())
    seeds = tuple(int(s) for s in parse_floats(args.seeds, "seeds"))
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    spec = SweepSpec(base, parse_floats(args.lrs, "lrs"), parse_floats(args.decays, "decays"),
                     variants, seeds, args.steps)
    out = Path(args.out)
    try:  # before training, not after it
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out {str(out)!r}: cannot create the folder ({e.strerror})") from None
    check_parent(out / "sweep.json")
    threads = check_threads(args.threads)
    from .trainer import set_threads

    set_threads(threads)
    v, lr, lam, s = spec.shape
    print(f"regsim: sweep {v} variants × {lr} lrs × {lam} λ × {s} seeds = {v * lr * lam * s} runs × "
          f"{spec.steps} steps, {_threads_note(threads, args)}", flush=True)
    if args.backend == "ray":
        from .sweep_ray import run_sweep_ray

        grids = run_sweep_ray(spec, args.address, args.device)
    elif args.backend == "local":
        grids = run_sweep(spec, args.device)
    else:
        raise ValueError(f"--backend {args.backend!r}: choose local or ray")
    grid, shown = None, 0
    for grid in grids:  # one grid per run, or per batch of runs (Ray: per finished task)
        if grid.done - shown >= max(1, grid.total // 20) or grid.done == grid.total:
            print(f"  {grid.done}/{grid.total} runs, {grid.seconds:.1f} s", flush=True)
            shown = grid.done
    assert grid is not None
    for k, variant in enumerate(spec.variants):
        best = grid.best_decay_per_lr()[k]
        pairs = ", ".join(f"lr {spec.lrs[i]:g}: λ {spec.decays[b]:g}" for i, b in enumerate(best))
        print(f"  {VARIANTS[variant][0]:14s} best λ per lr: {pairs}"
              f"{'' if grid.resolved()[k] or len(spec.seeds) < 2 else '  (within seed noise)'}")
    paths = write_grid(grid, out)
    print(f"done: {grid.total} runs in {grid.seconds:.1f} s ({grid.total / grid.seconds:.2f} runs/s); "
          f"wrote {paths[0]} and {paths[1]}")
    if figure is not None:
        from .analyses.sweep import result_of
        from .sweep import can_batch

        regression = spec.base.dataset == "regression"
        print(f"wrote {figure(result_of(grid, regression, can_batch(spec.base)), out / 'sweep.png')}")
    return 0


def _threads_note(threads: int, args: argparse.Namespace) -> str:
    how = "as asked" if args.threads > 0 else "automatic: one per spare core"
    return f"{threads} CPU thread{'s' if threads != 1 else ''} ({how})"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python main.py", description="regsim, headless")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train headless from a preset")
    t.add_argument("--preset", help="preset name (see `presets`) or path to a preset .json")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting")
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    t.add_argument("--json", help="write settings, final metrics and history to this file")
    t.add_argument("--threads", type=int, default=0, metavar="N",
                   help="torch CPU threads; 0 (default) = one per spare core (all cores but one), "
                        "as the app's engine uses")
    sub.add_parser("presets", help="list presets")
    les = sub.add_parser("lesson", help="list lessons, or run one and check its claim (exit 0: holds)")
    les.add_argument("name", nargs="?", help="lesson id (see `lesson` without a name) or a .json path")
    les.add_argument("--seed", type=int, default=None, help="seed for every run (default: the lesson's)")
    les.add_argument("--json", help="write the claim result and the runs' curves to this file")
    les.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, mps")
    les.add_argument("--threads", type=int, default=0, metavar="N",
                     help="torch CPU threads; 0 (default) = one per spare core, as `train`")
    sw = sub.add_parser("sweep", help="the (lr × λ) grid of short runs per decay variant (L&H Fig. 2)")
    sw.add_argument("--preset", help="preset name or .json path for everything but lr, λ, optimizer")
    sw.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting")
    sw.add_argument("--lrs", default="1e-3,3e-3,1e-2", help="comma-separated learning rates")
    sw.add_argument("--decays", default="0,1e-3,1e-2,1e-1", help="comma-separated weight decays λ")
    sw.add_argument("--variants", default="adam-l2,adamw,adamw-paper",
                    help="comma-separated: sgd-l2, sgdw, sgdw-paper, adam-l2, adamw, adamw-paper")
    sw.add_argument("--seeds", default="0", help="comma-separated seeds (the spread per cell)")
    sw.add_argument("--steps", type=int, default=300, help="optimizer steps per run")
    sw.add_argument("--out", required=True, help="folder for sweep.csv and sweep.json")
    sw.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, mps")
    sw.add_argument("--threads", type=int, default=0, metavar="N",
                    help="torch CPU threads; 0 (default) = one per spare core, as `train`")
    sw.add_argument("--backend", default="local", choices=("local", "ray"),
                    help="local (default): this process; ray: each batch of runs a Ray task "
                         "(pip install 'regsim[ray]')")
    sw.add_argument("--address", default="",
                    help="with --backend ray: '' starts a local Ray, 'auto' joins this machine's "
                         "cluster, ray://HOST:10001 a remote one")
    return p


def run_cli(argv: list[str], sweep_figure: Callable[[Any, Path], Path] | None = None) -> int:
    """The headless commands. `sweep_figure(result, path)`: how `sweep` draws sweep.png (the core
    has no Qt; main.py passes the panel's renderer, ui.panels.sweep.write_figure)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "presets":
            for name, desc in list_presets().items():
                print(f"{name:20s} {desc}")
            return 0
        if args.command == "lesson":
            return _lesson(args)
        if args.command == "sweep":
            return _sweep(args, sweep_figure)
        return _train(args)
    except ValueError as e:
        print(f"regsim: error: {e}", file=sys.stderr)
        return 2
