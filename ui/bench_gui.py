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


def measure_live(seconds: float, device: str, mode: str = "process") -> dict:
    """Train with the window showing the Training tab; measure steps/s, fps and event-loop lag."""
    from PySide6.QtCore import QElapsedTimer, QSettings, QTimer

    from ui.main_window import MainWindow

    app = _app()
    settings = QSettings(str(Path(os.environ.get("TMPDIR", "/tmp")) / "regsim-bench.ini"),
                         QSettings.Format.IniFormat)
    w = MainWindow(_bench_hparams(), engine_mode=mode, device=device, settings=settings,
                   restore=False)
    w.resize(1600, 1000)
    w.show()
    w.start_engine()
    run_event_loop(60, until=lambda: w.latest is not None)
    if w.latest is None:
        w.close()
        raise RuntimeError("the engine sent no snapshot within 60 s")
    w.toggle_run()
    run_event_loop(1.5)  # warm up: let the engine reach full speed
    frames = [0]
    w.panels_redrawn.connect(lambda: frames.__setitem__(0, frames[0] + 1))
    lateness: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def tick() -> None:
        now = clock.nsecsElapsed()
        lateness.append(max(0.0, (now - last[0]) / 1e6 - 10.0))
        last[0] = now

    probe = QTimer()
    probe.setInterval(10)
    probe.timeout.connect(tick)
    probe.start()
    step0 = w.latest.step
    t0 = time.perf_counter()
    run_event_loop(seconds)
    elapsed = time.perf_counter() - t0
    steps = w.latest.step - step0
    probe.stop()
    w.close()
    app.processEvents()
    lateness.sort()
    p99 = lateness[int(0.99 * (len(lateness) - 1))] if lateness else float("nan")
    return {"steps_per_s": steps / elapsed, "fps": frames[0] / elapsed, "lag_p99_ms": p99}


def bench_gui(quick: bool, device: str) -> list[dict]:
    from regsim.bench import _bare_loop_rate, print_table

    secs = 4.0 if quick else 10.0
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
    from regsim.trainer import set_threads
    from ui.engine_client import engine_threads

    h = _bench_hparams()
    default_threads = set_threads(0)  # just reads the count
    bare_a = _bare_loop_rate(h, secs / 2, device)
    live = measure_live(secs, device)
    bare_b = _bare_loop_rate(h, secs / 2, device)
    bare = statistics.mean([bare_a, bare_b])
    # The engine leaves one core to the GUI (see engine_threads); the same loop on that many
    # threads isolates what the live GUI itself costs.
    bare_same = _bare_loop_rate(h, secs / 2, device, threads=engine_threads())
    ratio = live["steps_per_s"] / bare
    ratio_same = live["steps_per_s"] / bare_same
    rows += [
        {"name": "live app (Training tab) steps/s", "value": live["steps_per_s"], "unit": "steps/s",
         "target": "", "ok": None},
        {"name": f"live app ÷ bare loop ({default_threads} threads)", "value": ratio, "unit": "×",
         "target": "≥ 0.90", "ok": ratio >= 0.90},
        {"name": f"live app ÷ bare loop ({engine_threads()} thread(s), as the engine)",
         "value": ratio_same, "unit": "×", "target": "", "ok": None},
        {"name": "GUI frame rate while training (30 Hz snapshots)", "value": live["fps"],
         "unit": "fps", "target": "≥ 30", "ok": live["fps"] >= 29.5},
        {"name": "event-loop lag p99 (10 ms timer)", "value": live["lag_p99_ms"], "unit": "ms",
         "target": "≤ 33", "ok": live["lag_p99_ms"] <= 33},
    ]
    from ui.export import bench_export

    rows += bench_export(quick, device)
    print_table(rows)
    return rows


def soak(minutes: float, device: str) -> int:
    """Run the live app for `minutes`, printing RSS (GUI + engine) and frame rate every 30 s
    (more often on short runs), visiting every panel in turn."""
    import psutil
    from PySide6.QtCore import QSettings

    from ui.main_window import MainWindow

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

    def rss_mb() -> float:
        procs = [me, *me.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20

    print(f"{'minute':>7s} {'step':>10s} {'RSS MB':>9s} {'fps':>6s} {'tab':>10s}", flush=True)
    start = time.monotonic()
    first_rss = None
    interval = min(30.0, minutes * 60 / 4)  # at least four reports
    next_report = start + interval
    tab = 0
    while time.monotonic() - start < minutes * 60:
        run_event_loop(max(0.0, next_report - time.monotonic()))
        now = time.monotonic()
        if now >= next_report:
            rss = rss_mb()
            first_rss = first_rss or rss
            print(f"{(now - start) / 60:7.1f} {w.latest.step:10d} {rss:9.1f} {frames[0] / interval:6.1f} "
                  f"{w.current_panel().key:>10s}", flush=True)
            frames[0] = 0
            next_report = now + interval
            tab = (tab + 1) % w.tabs.count()  # visit every panel over the run
            w.tabs.setCurrentIndex(tab)
    rss = rss_mb()
    print(f"RSS growth: {rss - (first_rss or rss):+.1f} MB (target < 50 MB)")
    w.close()
    app.processEvents()
    return 0
