"""`python main.py export`: train headless, then write slide figures of the panels, without a display.

    python main.py export --preset moons_dropout --steps 2000 --out figs \\
        [--set weight_decay=0.1 ...] [--panels training,weights] [--size 1920x1080] \\
        [--format png,svg] [--theme slide|screen] [--device cpu] [--no-caption]

It trains with `regsim.Trainer` in this process (no engine process: nothing to wait for or clean up),
feeds the snapshots and one loss landscape to a real, never-shown `MainWindow` (so the figures are the
app's own panels, not look-alikes), and writes one file per panel and format plus `metrics.json`.

The window comes from a factory the caller passes in (`main.py` passes `ui.app.headless_window`):
the window installs the Export menu from this package, so this package never imports the window —
the dependency points one way, window → export, and `ui.export` is importable without the app.

Every argument is checked before training starts and before anything is written, so bad input costs
a second, not a training run, and leaves the folder as it was: `regsim: error: <what, and what is
allowed>` on stderr, exit status 2. If a write fails midway, the files this run already wrote are
removed again: a folder holds a complete export or none. A run that diverges still writes its figures
(the divergence is worth showing) and exits with 3, like `python main.py train`.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regsim.files import atomic_write_json
from ui.panels.registry import panel_keys

if TYPE_CHECKING:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QWidget

    from regsim.hparams import HParams

# (hparams, device, settings) → a never-shown app window: `.panels` (each with `.key`),
# `.on_snapshot`, `.on_landscape`, `.shutdown()`. In the app: `ui.app.headless_window`.
WindowFactory = Callable[["HParams", str, "QSettings"], "QWidget"]


def panel_help() -> str:
    """The allowed --panels values, from the panel registry (the one list of panels)."""
    return f"{', '.join(panel_keys())} (or all)"


class _UsageError(Exception):
    """argparse's complaints, re-raised so they print as `regsim: error: …` like every other one."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


@dataclass(frozen=True)
class Plan:
    """Everything the export needs, validated."""

    preset: str
    hparams: Any  # HParams
    steps: int
    out: Path
    panels: tuple[str, ...] | None  # None = every panel of the registry
    formats: tuple[str, ...]
    size: tuple[int, int]
    theme: str
    device: str
    caption: bool
    landscape_resolution: int
    threads: int = 0  # torch CPU threads (regsim.threads: 0 = one per spare core)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python main.py export",
                description="Train headless, then write slide-ready figures of the panels.")
    p.add_argument("--preset", required=True,
                   help="preset name (see `python main.py presets`) or path to a preset .json")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting of the preset (repeatable)")
    p.add_argument("--steps", type=int, default=1000, help="training steps before the figures "
                   "(default 1000)")
    p.add_argument("--out", required=True, help="folder the figures go into (created if missing)")
    p.add_argument("--panels", default="all", help=f"comma-separated: {panel_help()}")
    p.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT in pixels, each in [64, 8192]")
    p.add_argument("--format", default="png", help="comma-separated: png, svg")
    p.add_argument("--theme", default="slide", help="slide (white, large type) or screen (dark)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--no-caption", action="store_true",
                   help="leave out the caption strip with the settings under each figure")
    p.add_argument("--landscape-resolution", type=int, default=51,
                   help="grid points per axis of the loss surface, in [3, 201] (default 51)")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="torch CPU threads; 0 (default) = one per spare core, as the app's engine")
    return p


def _split(value: str) -> list[str]:
    return [v.strip().lower() for v in str(value).split(",") if v.strip()]


def _unique(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def validate(args: argparse.Namespace) -> Plan:
    """Check every argument (cheap checks first, torch last); ValueError names the flag and what is
    allowed. Panel names are checked against `ui.panels.registry`, before any window is built."""
    from regsim.cli import parse_sets
    from regsim.presets import load_preset
    from ui.export.files import FORMATS, check_format, parse_size

    try:
        base = load_preset(args.preset)
    except ValueError as e:
        raise ValueError(f"--preset: {e}") from None
    try:
        hparams = parse_sets(args.set, base)
    except ValueError as e:
        raise ValueError(f"--set: {e}") from None
    if not 0 <= args.steps <= 10_000_000:
        raise ValueError(f"--steps = {args.steps} is out of range; allowed: [0, 10000000]")
    if not 3 <= args.landscape_resolution <= 201:
        raise ValueError(f"--landscape-resolution = {args.landscape_resolution} is out of range; "
                         "allowed: [3, 201]")
    panels = _split(args.panels)
    if not panels:
        raise ValueError(f"--panels is empty; allowed: {panel_help()}")
    unknown = [k for k in panels if k != "all" and k not in panel_keys()]
    if unknown:
        raise ValueError(f"--panels: unknown panel {unknown[0]!r}; allowed: {panel_help()}")
    formats = _split(args.format)
    if not formats:
        raise ValueError(f"--format is empty; allowed: {', '.join(FORMATS)}")
    try:
        formats = [check_format(f) for f in formats]
    except ValueError as e:
        raise ValueError(f"--format: {e}") from None
    try:
        size = parse_size(args.size)
    except ValueError as e:
        raise ValueError(f"--size: {e}") from None
    theme = str(args.theme).strip().lower()
    if theme not in ("slide", "screen"):
        raise ValueError(f"--theme: {args.theme!r} is not allowed; choose one of: slide, screen")
    try:
        out = check_out_folder(args.out)
    except ValueError as e:
        raise ValueError(f"--out: {e}") from None
    from regsim.threads import check_threads

    threads = check_threads(args.threads)  # names --threads and the allowed range
    from regsim.trainer import resolve_device  # imports torch: after the cheap checks

    try:
        device = str(resolve_device(args.device))
    except ValueError as e:
        raise ValueError(f"--device: {e}") from None
    return Plan(preset=str(args.preset), hparams=hparams, steps=args.steps, out=out,
                panels=None if "all" in panels else _unique(panels), formats=_unique(formats),
                size=size, theme=theme, device=device, caption=not args.no_caption,
                landscape_resolution=args.landscape_resolution, threads=threads)


def check_out_folder(folder: str | os.PathLike) -> Path:
    """The output folder, which need not exist yet (`--out figs` as in the README): an existing one
    must be a writable folder; a missing one must be creatable, i.e. its nearest existing ancestor
    is a writable folder. It is created only when the first figure is written, so a run refused
    later (an unknown panel name) leaves no empty folder behind."""
    from ui.export.files import check_folder

    path = Path(folder)
    if path.exists():
        return check_folder(path)
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"cannot create folder {str(path)!r}: {str(parent)!r} is not a folder")
    try:
        check_folder(parent)
    except ValueError as e:
        raise ValueError(f"cannot create folder {str(path)!r}: {e}") from None
    return path


def final_status(snap: Any, steps_done: int, steps: int) -> str:
    """What the run really ended as: "diverged", or "finished" once the requested steps are done
    (the trainer still says "running" in its last snapshot: it does not know the CLI stops there)."""
    if snap.status == "diverged":
        return "diverged"
    return "finished" if steps_done >= steps else str(snap.status)


def uses_dropout(hparams: Any) -> bool:
    """True if any unit is dropped: some hidden rate, or the input rate, above 0."""
    return any(r > 0 for r in hparams.hidden_dropout()) or hparams.input_dropout > 0


NO_DROPOUT_NOTE = ("p = 0: no unit is ever dropped, so every mask is all ones and the figure shows "
                   "nothing about dropout")


def feed_window(window: Any, snap: Any) -> None:
    """Give `snap` to the window the way its engine client does: first as the run-addressed
    RunSnapshots message (ui.runs puts it in the run's History: the curves, bands and frames),
    then as the selected run's snapshot. Calling `window.on_snapshot` alone, as the export did
    before Compare mode, left every History empty and every curve of the figures blank ("press
    Space to train" on a trained run)."""
    client = getattr(window, "client", None)
    if client is None or not hasattr(client, "snapshots"):
        window.on_snapshot(snap)  # a window without runs (a test double)
        return
    from regsim.runs import RunSnapshots

    name = client.run_names[0] if client.run_names else "A"
    client.snapshots.emit(RunSnapshots({name: snap}, name))
    client.snapshot.emit(snap)


def train_into_window(window: Any, trainer: Any, steps: int, landscape: bool = True,
                      log: Callable[[str], None] | None = None, resolution: int = 51) -> Any:
    """Train `steps` steps, feeding ~100 snapshots to the window (`feed_window`: the curves get their
    points, the panels their newest state), then one landscape to `window.on_landscape`.

    Returns the last snapshot. Stops early, keeping what it has, if the run diverges.
    """
    from regsim.analyses import analyze

    snap = trainer.snapshot()
    feed_window(window, snap)
    every = max(1, steps // 100)
    log_every = max(every, steps // 10)
    done, next_log = 0, log_every
    t0 = time.perf_counter()
    while done < steps:
        n = min(every, steps - done)
        trainer.step(n)
        done += n
        snap = trainer.snapshot()
        feed_window(window, snap)
        if log is not None and (done >= next_log or done == steps or snap.status == "diverged"):
            next_log += log_every
            acc = (f"  val_acc {snap.val_acc:.3f}" if math.isfinite(snap.val_acc) else "")
            log(f"step {snap.step:7d}  train_loss {snap.train_loss:.4f}  val_loss {snap.val_loss:.4f}"
                f"  gap {snap.val_loss - snap.train_loss:+.4f}{acc}")
        if snap.status == "diverged":
            break
    if log is not None and steps:
        log(f"trained {done} steps in {time.perf_counter() - t0:.1f} s")
    if landscape:
        t1 = time.perf_counter()
        window.on_landscape(analyze(trainer, "landscape", resolution=resolution, preview=0))
        if log is not None:
            log(f"loss landscape {resolution}×{resolution} in {time.perf_counter() - t1:.1f} s")
    return snap


# Panels whose figure is an analysis's result (a Compute button asking for a background job): the
# export asks each for its job as a click would and answers it from the trained run, so the slide
# shows the result, not "press Compute".
ANALYSIS_PANELS = ("uncertainty", "ensemble", "calibration", "constraint", "coadaptation")


def compute_panel_analyses(window: Any, trainer: Any, keys: tuple[str, ...],
                           log: Callable[[str], None] | None = None) -> dict[str, str]:
    """Run the jobs the ANALYSIS_PANELS among `keys` ask for (the panel's own request, parameters
    as on screen) in this process and hand each panel its result; {key: why} for those that cannot
    run on this network (the panel then shows that message, e.g. the conv net)."""
    from regsim.analyses import analyze
    from regsim.analyses.jobs import JobEvent

    notes: dict[str, str] = {}
    by_key = {p.key: p for p in window.panels}
    for key in (k for k in ANALYSIS_PANELS if k in keys and k in by_key):
        panel = by_key[key]
        asked: list[tuple[str, dict]] = []
        def slot(name: str, payload: dict, asked: list = asked) -> None:
            asked.append((name, payload))

        panel.request.connect(slot)
        try:
            panel.compute_button.click()
        finally:
            panel.request.disconnect(slot)
        for name, args in asked:
            if name != "analyze":
                continue
            t1 = time.perf_counter()
            try:
                res = analyze(trainer, args["analysis"], **args.get("params", {}))
            except ValueError as e:  # NotApplicable or a bad request: shown like a failed job
                notes[key] = str(e)
                panel.on_job(JobEvent(args["id"], args.get("run", ""), args["analysis"], "failed",
                                      message=str(e)))
                if log is not None:
                    log(f"{key}: {e}")
                continue
            panel.on_job(JobEvent(args["id"], args.get("run", ""), args["analysis"], "result",
                                  result=res))
            if log is not None:
                log(f"{key}: result in {time.perf_counter() - t1:.1f} s ({args['analysis']})")
    return notes


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _metrics(plan: Plan, snap: Any, files: list[Path], seconds: float,
             skipped: dict[str, str] | None = None) -> dict:
    return {
        "preset": plan.preset,
        "hparams": plan.hparams.to_dict(),
        "device": snap.device,
        "status": final_status(snap, snap.step, plan.steps),
        "message": snap.message,
        "skipped": skipped or {},
        "steps": plan.steps,
        "final": {"step": snap.step, "epoch": _finite(snap.epoch),
                  "train_loss": _finite(snap.train_loss), "val_loss": _finite(snap.val_loss),
                  "gap": _finite(snap.val_loss - snap.train_loss),
                  "train_acc": _finite(snap.train_acc), "val_acc": _finite(snap.val_acc),
                  "weight_norms": {n: _finite(v) for n, v in zip(snap.layer_names,
                                                                 snap.weight_norms)}},
        "figures": {"size": list(plan.size), "theme": plan.theme, "formats": list(plan.formats),
                    "caption": plan.caption},
        "files": [f.name for f in files],
        "seconds": round(seconds, 2),
    }


def export(plan: Plan, make_window: WindowFactory, out: Callable[[str], None] = print) -> int:
    """Build the window, check the panel names against it, train, write. 0, 2 (bad input or a
    failed write, nothing left behind) or 3 (diverged; figures written)."""
    # Qt, pyqtgraph and torch are imported only once the arguments are known to be good: a typo
    # costs a second, not the ~3 s these take to load.
    from PySide6.QtCore import QEvent, QSettings
    from PySide6.QtWidgets import QApplication

    from regsim.trainer import Trainer
    from ui.export import render
    from ui.export.files import caption_for, default_filename

    t0 = time.perf_counter()
    written: list[Path] = []
    created: list[Path] = []  # the output folder, if this run made it
    with tempfile.TemporaryDirectory(prefix="regsim-export-") as tmp:
        # The user's own settings are neither read nor changed by a headless export.
        settings = QSettings(str(Path(tmp) / "regsim.ini"), QSettings.Format.IniFormat)
        window = make_window(plan.hparams, plan.device, settings)
        try:
            by_key = {p.key: p for p in window.panels}
            keys = plan.panels or panel_keys()
            missing = [k for k in keys if k not in by_key]
            if missing:  # the registry and the window disagree: a bug, said plainly
                raise ValueError(f"--panels: the window has no panel {missing[0]!r} (it has: "
                                 f"{', '.join(by_key)})")
            if plan.device == "cpu":
                # The app's engine policy: all cores but one. On a small machine with other work
                # running, OpenMP's spinning threads otherwise fight for the busy core (the engine
                # measured 4.8 steps/s with 2 threads, 150 with 1, on 2 cores).
                from regsim.threads import engine_threads
                from regsim.trainer import set_threads

                set_threads(engine_threads(plan.threads))
            trainer = Trainer(plan.hparams, plan.device)
            out(f"regsim export: {plan.preset} on {trainer.snapshot().device}, {plan.steps} steps: "
                f"{plan.hparams.caption()}")
            snap = train_into_window(window, trainer, plan.steps, landscape="landscape" in keys,
                                     log=out, resolution=plan.landscape_resolution)
            if snap.status != "diverged":
                compute_panel_analyses(window, trainer, keys, log=out)
            caption = caption_for(snap) if plan.caption else None
            w, h = plan.size
            skipped: dict[str, str] = {}
            if plan.panels is None and not uses_dropout(plan.hparams):
                # Skipped, not drawn: a slide of all-ones masks looks like a broken panel. Asked
                # for by name (--panels dropout), it is written, and the note says why it is empty.
                keys = tuple(k for k in keys if k != "dropout")
                skipped["dropout"] = NO_DROPOUT_NOTE
                out(f"skipped the dropout figure: {NO_DROPOUT_NOTE} (ask for it with --panels)")
            elif "dropout" in keys and not uses_dropout(plan.hparams):
                out(f"note: dropout figure written although {NO_DROPOUT_NOTE}")
            if not plan.out.exists():
                plan.out.mkdir(parents=True)
                created.append(plan.out)
            for key in keys:
                for fmt in plan.formats:
                    path = plan.out / default_filename(key, snap, fmt)
                    t1 = time.perf_counter()
                    render.export_figure(by_key[key], path, fmt, plan.size, plan.theme, caption)
                    written.append(path)
                    out(f"wrote {path} ({w}×{h} {fmt.upper()}, {plan.theme} theme, "
                        f"{time.perf_counter() - t1:.2f} s)")
            metrics = plan.out / "metrics.json"
            atomic_write_json(metrics, _metrics(plan, snap, written, time.perf_counter() - t0,
                                                skipped))
            written.append(metrics)
            out(f"wrote {metrics}")
        except ValueError:
            for path in written:  # all or nothing: no folder holds half an export
                try:
                    path.unlink()
                except OSError:
                    pass
            for folder in created:  # a folder made for a failed export goes again (if empty)
                try:
                    folder.rmdir()
                except OSError:
                    pass
            raise
        finally:
            window.shutdown()
            window.deleteLater()  # gone before the interpreter tears Qt down, not during
            QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    out(f"done: {len(written) - 1} figures and metrics.json in {time.perf_counter() - t0:.1f} s")
    if snap.status == "diverged":
        sys.stdout.flush()
        print(f"regsim: training diverged at step {snap.step}: {snap.message} (figures written)",
              file=sys.stderr, flush=True)
        return 3
    return 0


def _needs_offscreen() -> bool:
    """No display to talk to (a server, CI, ssh): Qt must render offscreen or it aborts."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return False
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return False


def _quiet_qt() -> Any:
    """Drop one harmless Qt warning the offscreen platform prints for every figure (it cannot pass
    size hints to a window manager it does not have); every other message still reaches stderr.
    Returns the previous handler, to put back."""
    from PySide6.QtCore import qInstallMessageHandler

    def handler(_mode: Any, _context: Any, message: str) -> None:
        if "propagateSizeHints" not in message:
            print(message, file=sys.stderr, flush=True)

    return qInstallMessageHandler(handler)


def run_export(argv: list[str], make_window: WindowFactory) -> int:
    """Entry point for `python main.py export …`; returns the exit status."""
    if _needs_offscreen():  # before anything imports Qt
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    quiet = os.environ.get("QT_QPA_PLATFORM") == "offscreen"
    previous = _quiet_qt() if quiet else None
    try:
        args = build_parser().parse_args(argv)
        plan = validate(args)
        return export(plan, make_window, out=lambda line: print(line, flush=True))
    except (_UsageError, ValueError) as e:
        sys.stdout.flush()
        print(f"regsim: error: {e}", file=sys.stderr, flush=True)
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    finally:
        if quiet:
            from PySide6.QtCore import qInstallMessageHandler

            qInstallMessageHandler(previous)


# ------------------------------------------------------------------------------------ bench


def bench_export(make_window: WindowFactory, quick: bool = True, device: str = "cpu",
                 preset: str = "moons_dropout") -> list[dict]:
    """PNG and SVG export time of every panel at 1920×1080 in the slide theme, measured on a window
    filled by a real training run (a Trainer in this process, snapshots fed to `on_snapshot`, a
    landscape to `on_landscape`; no engine), so every plot holds real data.

    Rows follow regsim/bench.py: {"name", "value", "unit", "target", "ok"}.
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings

    from regsim.presets import load_preset
    from regsim.trainer import Trainer
    from ui.export.files import DEFAULT_SIZE, caption_for
    from ui.export.render import render_widget, write_png, write_svg

    hparams = load_preset(preset)
    reps = 2 if quick else 5
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="regsim-bench-export-") as tmp:
        settings = QSettings(str(Path(tmp) / "regsim.ini"), QSettings.Format.IniFormat)
        window = make_window(hparams, device, settings)
        try:
            snap = train_into_window(window, Trainer(hparams, device), 200 if quick else 600,
                                     landscape=True)
            caption = caption_for(snap)
            for panel in window.panels:
                png_t, svg_t, svg_size = [], [], 0
                for i in range(reps + 1):  # the first round warms caches up and is not counted
                    t0 = time.perf_counter()
                    write_png(render_widget(panel, DEFAULT_SIZE, "slide", caption),
                              Path(tmp) / f"{panel.key}.png")
                    t1 = time.perf_counter()
                    write_svg(panel, Path(tmp) / f"{panel.key}.svg", DEFAULT_SIZE, "slide", caption)
                    t2 = time.perf_counter()
                    if i:
                        png_t.append(t1 - t0)
                        svg_t.append(t2 - t1)
                svg_size = (Path(tmp) / f"{panel.key}.svg").stat().st_size
                png, svg = statistics.median(png_t), statistics.median(svg_t)
                rows += [
                    {"name": f"PNG 1920×1080 slide, {panel.key} panel ({preset})", "value": png,
                     "unit": "s", "target": "≤ 1.0", "ok": png <= 1.0},
                    {"name": f"SVG 1920×1080 slide, {panel.key} panel ({preset})", "value": svg,
                     "unit": "s", "target": "≤ 2.0", "ok": svg <= 2.0},
                    {"name": f"SVG file size, {panel.key} panel ({preset})",
                     "value": svg_size / 2**20, "unit": "MB", "target": "", "ok": None},
                ]
        finally:
            window.shutdown()
            window.deleteLater()
    return rows
