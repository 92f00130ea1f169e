"""GUI measurements for `python main.py bench`: the live app's speed, latency, start-up and memory.

Everything runs offscreen (QT_QPA_PLATFORM=offscreen) so it works on a machine with no display;
painting still happens (into offscreen buffers), so frame costs are real.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _app():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from ui.app import build_app

    return build_app()


def _bench_hparams():
    from regsim.hparams import HParams

    return HParams(dataset="digits", hidden=(512, 512), train_size=1000, batch_size=64, dropout=0.5,
                   optimizer="adam", decay_mode="decoupled", weight_decay=0.01, lr=1e-3)


def measure_startup() -> tuple[float, float, float]:
    """(seconds until the window is visible, until its panels are drawn, until the first training
    step), measured from launching `python main.py` as a user would."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "main.py", "--device", "cpu", "--run", "--quit-after", "30"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    visible = panels = first = float("nan")
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            if "window visible" in line and visible != visible:
                visible = time.perf_counter() - t0
            if "panels drawn" in line and panels != panels:
                panels = time.perf_counter() - t0
            if "first step" in line:
                first = time.perf_counter() - t0
                break
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
    return visible, panels, first


def measure_close(busy: bool, settle: float = 2.0) -> float:
    """Seconds from a close request to the process having exited (engine included), the app
    training. The request is SIGTERM, which ui.app turns into window.close() — the same path as a
    window manager's close (tests/test_real_window.py times that one on a real X server). With
    `busy`, a spinning process keeps one core busy throughout, as another program would."""
    import signal

    import psutil

    spinner = (subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONUNBUFFERED="1",
               XDG_CONFIG_HOME=str(Path(os.environ.get("TMPDIR", "/tmp")) / "regsim-bench-close"))
    proc = subprocess.Popen([sys.executable, "main.py", "--device", "cpu", "--run"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            if "first step" in line:
                break
        time.sleep(settle)  # training, every panel built
        children = psutil.Process(proc.pid).children(recursive=True)
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        elapsed = time.perf_counter() - t0
        _, alive = psutil.wait_procs(children, timeout=3)
        return float("inf") if alive else elapsed
    except subprocess.TimeoutExpired:
        return float("inf")
    finally:
        for p in (proc, spinner):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(5)


def run_event_loop(seconds: float, until=None) -> None:
    """Run Qt's event loop for `seconds` (or until `until()` is true, checked every 50 ms), the
    way app.exec() runs it: blocking on events, not polling, so the GUI's CPU use is the app's."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    if until is not None:
        check = QTimer()
        check.timeout.connect(lambda: loop.quit() if until() else None)
        check.start(50)
    loop.exec()


def measure_live(live_seconds: float, bare_seconds: float, device: str, rounds: int = 3,
                 mode: str = "process") -> dict:
    """Train with the window showing the Training tab, and compare with the bare loop.

    This machine's speed drifts by ±20% from one few-second window to the next (shared cores), so
    a bare run before and one after a single live run compare badly. Instead `rounds` live
    segments alternate with bare segments (bare, live, bare, live, …, bare; the engine paused and
    the window frozen while the bare loop runs), and each live segment is compared with the mean of
    the two bare segments around it. Reported: the median of those ratios; frames, snapshots and
    event-loop lag are counted over the live segments only. Then each other tab is shown for one
    live segment, for its frame rate and lag (no bare comparison: the engine is the same).
    """
    from PySide6.QtCore import QElapsedTimer, QSettings, QTimer

    from regsim.bench import _bare_loop_rate, _engine_rate
    from ui.engine_client import engine_threads
    from ui.main_window import MainWindow

    app = _app()
    settings = QSettings(str(Path(os.environ.get("TMPDIR", "/tmp")) / "regsim-bench.ini"),
                         QSettings.Format.IniFormat)
    h = _bench_hparams()
    w = MainWindow(h, engine_mode=mode, device=device, settings=settings, restore=False)
    w.resize(1600, 1000)
    w.show()
    w.start_engine()
    run_event_loop(60, until=lambda: w.latest is not None)
    if w.latest is None:
        w.close()
        raise RuntimeError("the engine sent no snapshot within 60 s")
    frames = [0]
    snapshots = [0]
    counting = [False]
    w.panels_redrawn.connect(lambda: counting[0] and frames.__setitem__(0, frames[0] + 1))
    w.client.snapshot.connect(lambda _s: counting[0] and snapshots.__setitem__(0, snapshots[0] + 1))
    lateness: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def tick() -> None:
        now = clock.nsecsElapsed()
        if counting[0]:
            lateness.append(max(0.0, (now - last[0]) / 1e6 - 10.0))
        last[0] = now

    probe = QTimer()
    probe.setInterval(10)
    probe.timeout.connect(tick)
    probe.start()

    def bare() -> tuple[float, float, float]:
        """Steps/s without the window: the plain torch loop (torch's default threads), then
        regsim's own trainer driven as the engine drives it (default threads; the engine's)."""
        third = bare_seconds / 3
        return (_bare_loop_rate(h, third, device), _engine_rate(h, third, device),
                _engine_rate(h, third, device, threads=engine_threads()))

    def counted(seconds: float) -> float:
        """Run the event loop for `seconds`, counting frames, snapshots and lag; the time taken."""
        last[0] = clock.nsecsElapsed()
        counting[0] = True
        t0 = time.perf_counter()
        run_event_loop(seconds)
        counting[0] = False
        return time.perf_counter() - t0

    bares = [bare()]
    lives: list[float] = []
    other_tabs: list[tuple[str, float, float]] = []  # (title, fps, lag p99 ms)
    live_time = 0.0
    try:
        for _ in range(rounds):
            w.toggle_run()
            run_event_loop(0.5)  # the engine's chunk size settles; not counted
            step0 = w.latest.step
            elapsed = counted(live_seconds)
            lives.append((w.latest.step - step0) / elapsed)
            live_time += elapsed
            w.toggle_run()
            run_event_loop(5, until=lambda: w.latest.status != "running")
            bares.append(bare())
        training_frames, training_snapshots = frames[0], snapshots[0]
        # The other tabs, for the record: their frame rate and lag while training.
        w.toggle_run()
        for index in range(1, w.tabs.count()):
            w.tabs.setCurrentIndex(index)
            run_event_loop(0.5)
            frames[0], lateness_before = 0, len(lateness)
            elapsed = counted(live_seconds)
            tab_lag = _p99(lateness[lateness_before:])
            del lateness[lateness_before:]
            other_tabs.append((w.current_panel().title, frames[0] / elapsed, tab_lag))
    finally:
        probe.stop()
        w.close()
        app.processEvents()

    def ratios(k: int) -> list[float]:
        return [live / statistics.mean([a[k], b[k]]) for live, a, b in zip(lives, bares, bares[1:])]

    return {"steps_per_s": statistics.median(lives),
            "bare_steps_per_s": statistics.median(b[0] for b in bares),
            "alone_steps_per_s": statistics.median(b[1] for b in bares),
            "ratio": statistics.median(ratios(0)), "ratios": ratios(0),
            "ratio_alone": statistics.median(ratios(1)),
            "ratio_alone_same_threads": statistics.median(ratios(2)),
            "fps": training_frames / live_time, "snapshots_per_s": training_snapshots / live_time,
            "lag_p99_ms": _p99(lateness), "other_tabs": other_tabs}


def _p99(values: list[float]) -> float:
    """The 99th percentile (nearest rank below), NaN for no values."""
    ordered = sorted(values)
    return ordered[int(0.99 * (len(ordered) - 1))] if ordered else float("nan")


def bench_gui(quick: bool, device: str) -> list[dict]:
    from regsim.bench import print_table
    from regsim.trainer import set_threads
    from ui.engine_client import engine_threads

    rows: list[dict] = []
    visible, panels, first = measure_startup()
    rows += [
        {"name": "window visible after launch", "value": visible, "unit": "s", "target": "≤ 1.2",
         "ok": visible <= 1.2},
        {"name": "all four panels drawn after launch", "value": panels, "unit": "s", "target": "",
         "ok": None},
        {"name": "first training step after launch", "value": first, "unit": "s", "target": "≤ 4",
         "ok": first <= 4.0},
    ]
    for busy in (False, True):
        closed = measure_close(busy)
        rows.append({"name": f"close request → process exited ({'one core busy' if busy else 'idle'})",
                     "value": closed, "unit": "s", "target": "≤ 2", "ok": closed <= 2.0})
    default_threads = set_threads(0)  # just reads the count
    live = measure_live(2.0 if quick else 4.0, 1.5 if quick else 3.0, device)
    spread = f"{min(live['ratios']):.2f}–{max(live['ratios']):.2f}"
    drawn = live["fps"] / live["snapshots_per_s"] if live["snapshots_per_s"] else float("nan")
    rows += [
        {"name": "live app (Training tab) steps/s", "value": live["steps_per_s"], "unit": "steps/s",
         "target": "", "ok": None},
        {"name": f"bare torch loop steps/s ({default_threads} threads)",
         "value": live["bare_steps_per_s"], "unit": "steps/s", "target": "", "ok": None},
        {"name": f"live app ÷ bare torch loop ({default_threads} threads; rounds {spread})",
         "value": live["ratio"], "unit": "×", "target": "≥ 0.90", "ok": live["ratio"] >= 0.90},
        # The engine's trainer is faster per step than the plain loop (fused optimizer kernels,
        # a cheaper dropout mask), so these two isolate what the window itself costs: the same
        # trainer with no window, on torch's default threads and on the engine's (it leaves one
        # core to the GUI; see engine_threads).
        {"name": f"regsim trainer without the window ({default_threads} threads)",
         "value": live["alone_steps_per_s"], "unit": "steps/s", "target": "", "ok": None},
        {"name": f"live app ÷ that trainer ({default_threads} threads)",
         "value": live["ratio_alone"], "unit": "×", "target": "", "ok": None},
        {"name": f"live app ÷ that trainer ({engine_threads()} thread(s), as the engine)",
         "value": live["ratio_alone_same_threads"], "unit": "×", "target": "", "ok": None},
        {"name": "snapshots received per second", "value": live["snapshots_per_s"], "unit": "Hz",
         "target": "≤ 30", "ok": live["snapshots_per_s"] <= 30.5},
        # A frame is drawn per snapshot (never two per snapshot), so 30 fps means no snapshot went
        # undrawn; the bar allows for the few a late frame merges with the next.
        {"name": "GUI frame rate while training", "value": live["fps"], "unit": "fps",
         "target": "≥ 30", "ok": live["fps"] >= 29.5},
        {"name": "snapshots drawn (frames ÷ snapshots)", "value": drawn, "unit": "×",
         "target": "≥ 0.98", "ok": drawn >= 0.98},
        {"name": "event-loop lag p99 (10 ms timer)", "value": live["lag_p99_ms"], "unit": "ms",
         "target": "≤ 33", "ok": live["lag_p99_ms"] <= 33},
    ]
    for title, fps, lag in live["other_tabs"]:
        rows += [{"name": f"{title} tab while training: frame rate", "value": fps, "unit": "fps",
                  "target": "", "ok": None},
                 {"name": f"{title} tab while training: event-loop lag p99", "value": lag,
                  "unit": "ms", "target": "", "ok": None}]
    from ui.app import headless_window
    from ui.export.cli import bench_export

    rows += bench_export(headless_window, quick, device)
    print_table(rows)
    return rows


def _slope_mb_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope (MB/min) of (minute, MB) points; NaN for fewer than two."""
    if len(points) < 2:
        return float("nan")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else float("nan")


def soak(minutes: float, device: str) -> int:
    """Run the live app for `minutes`, printing RSS per process (GUI, engine) and frame rate every
    30 s (more often on short runs), visiting every panel in turn; at the end the growth since the
    first report and the slope after warm-up (the first two minutes, or the first third of a
    shorter run: caches, pyqtgraph's item pools and torch's allocator fill up there).

    With REGSIM_SOAK_DIAG=1 the GUI process also traces its Python allocations (tracemalloc) and
    counts live objects by type, and prints what grew between the end of warm-up and the end."""
    import gc
    import tracemalloc

    import psutil
    from PySide6.QtCore import QSettings

    from ui.main_window import MainWindow

    diag = os.environ.get("REGSIM_SOAK_DIAG") == "1"
    app = _app()
    settings = QSettings(str(Path(os.environ.get("TMPDIR", "/tmp")) / "regsim-soak.ini"),
                         QSettings.Format.IniFormat)
    w = MainWindow(_bench_hparams(), engine_mode="process", device=device, settings=settings,
                   restore=False)
    w.resize(1600, 1000)
    w.show()
    w.start_engine()
    run_event_loop(120, until=lambda: w.latest is not None)
    w.toggle_run()
    frames = [0]
    w.panels_redrawn.connect(lambda: frames.__setitem__(0, frames[0] + 1))
    me = psutil.Process()
    engine = psutil.Process(w.client._worker.pid)

    def rss(proc: psutil.Process) -> float:
        try:
            return proc.memory_info().rss / 2**20
        except psutil.Error:
            return float("nan")

    def type_counts() -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in gc.get_objects():
            name = type(o).__qualname__
            counts[name] = counts.get(name, 0) + 1
        return counts

    print(f"{'minute':>7s} {'step':>10s} {'GUI MB':>8s} {'engine MB':>10s} {'total MB':>9s} {'fps':>6s} "
          f"{'tab':>10s}", flush=True)
    start = time.monotonic()
    warmup = min(2.0, minutes / 3)
    points: dict[str, list[tuple[float, float]]] = {"gui": [], "engine": [], "total": []}
    interval = min(30.0, minutes * 60 / 6)  # at least six reports
    next_report = start + interval
    tab = 0
    trace_start = counts_start = None
    while time.monotonic() - start < minutes * 60:
        run_event_loop(max(0.0, next_report - time.monotonic()))
        now = time.monotonic()
        if now >= next_report:
            minute = (now - start) / 60
            gui, eng = rss(me), rss(engine)
            for key, value in (("gui", gui), ("engine", eng), ("total", gui + eng)):
                points[key].append((minute, value))
            print(f"{minute:7.1f} {w.latest.step:10d} {gui:8.1f} {eng:10.1f} {gui + eng:9.1f} "
                  f"{frames[0] / interval:6.1f} {w.current_panel().key:>10s}", flush=True)
            if diag and trace_start is None and minute >= warmup:
                tracemalloc.start(8)
                trace_start, counts_start = tracemalloc.take_snapshot(), type_counts()
            frames[0] = 0
            next_report = now + interval
            tab = (tab + 1) % w.tabs.count()  # visit every panel over the run
            w.tabs.setCurrentIndex(tab)
    for key in ("gui", "engine", "total"):
        series = points[key]
        after = [p for p in series if p[0] >= warmup]
        growth = series[-1][1] - series[0][1] if series else float("nan")
        print(f"{key:>6s} RSS growth: {growth:+.1f} MB; slope after {warmup:.1f} min warm-up: "
              f"{_slope_mb_per_min(after):+.2f} MB/min")
    total = points["total"]
    growth = total[-1][1] - total[0][1] if total else float("nan")
    print(f"RSS growth: {growth:+.1f} MB (target < 50 MB)")
    if diag and trace_start is not None:
        stats = tracemalloc.take_snapshot().compare_to(trace_start, "traceback")
        print("GUI: Python allocations grown since warm-up (top 12):")
        for stat in stats[:12]:
            print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} objects")
            for line in stat.traceback.format()[-6:]:
                print("     " + line)
        counts = type_counts()
        grown = sorted(((counts.get(k, 0) - counts_start.get(k, 0), k) for k in counts), reverse=True)
        print("GUI: live objects by type, grown since warm-up:",
              ", ".join(f"{k} {d:+d}" for d, k in grown[:15] if d > 0))
    w.close()
    app.processEvents()
    return 0
