"""Start the desktop app: the window first (no torch in this process), then the engine behind it."""

from __future__ import annotations

import argparse
import os
import sys
import time


def build_app():
    """The QApplication with regsim's look; created once per process. (pyqtgraph's options are set
    where it is first imported for plotting: ui/panels/style.py.)"""
    # Qt's raster engine hands every large fill, polygon and image blit to a thread pool and then
    # waits for it. Beside an engine that keeps one core busy, those helper threads wait for a
    # core themselves: measured here, GUI stalls of 30–45 ms on the Training tab (and the training
    # process preempted for them). Painting serially on the GUI thread is cheaper for plot-sized
    # shapes. Qt reads this once, before the first paint; a user's own setting wins.
    os.environ.setdefault("QT_NO_GUI_THREADPOOL", "1")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("regsim")
    app.setOrganizationName("regsim")
    return app



def headless_window(hparams, device: str, settings):
    """A main window that is never shown, fed by the caller instead of an engine (its thread engine
    is never started): what `python main.py export` and the export bench fill from a Trainer in this
    process. `settings` keeps the user's own QSettings out of it. The export package receives this
    function instead of importing the window (the window imports the export package)."""
    build_app()
    from ui.main_window import MainWindow  # Qt widgets and pyqtgraph: only when a window is wanted

    return MainWindow(hparams, engine_mode="thread", device=device, settings=settings, restore=False)

STATE_MS = 500  # how often REGSIM_STATE_FILE is rewritten


def write_state(window, path: str) -> None:
    """Write what a user sees and what the engine does to `path` (JSON, replaced atomically), for
    scripts that drive the real window from outside (tests/test_real_window.py): the Run/Pause
    button's text next to the engine's own status (issue 8: they disagreed), the step, the banner,
    the window's frame on screen, and where the controls a script clicks or drags are, in screen
    pixels. Set REGSIM_STATE_FILE to enable; it costs ~0.2 ms per write."""
    import json

    def rect(widget) -> list[int] | None:
        if widget is None or not widget.isVisible():
            return None
        top_left = widget.mapToGlobal(widget.rect().topLeft())
        return [top_left.x(), top_left.y(), widget.width(), widget.height()]

    def handle(widget) -> list[int] | None:
        """The slider handle of `widget` (a QSlider or a widget holding one), where a drag starts."""
        from PySide6.QtWidgets import QSlider, QStyle, QStyleOptionSlider

        slider = widget if isinstance(widget, QSlider) else widget.findChild(QSlider)
        if slider is None or not slider.isVisible():
            return None
        opt = QStyleOptionSlider()
        slider.initStyleOption(opt)
        r = slider.style().subControlRect(QStyle.ComplexControl.CC_Slider, opt,
                                          QStyle.SubControl.SC_SliderHandle, slider)
        top_left = slider.mapToGlobal(r.topLeft())
        groove = slider.mapToGlobal(slider.rect().topLeft())
        return [top_left.x(), top_left.y(), r.width(), r.height(), groove.x(), slider.width()]

    snap = window.latest
    controls = window.controls
    frame = window.frameGeometry()
    state = {
        "pid": os.getpid(),
        "button": controls.run_btn.text(),
        "ui_running": bool(window.running),
        "engine_status": snap.status if snap is not None else None,
        "step": snap.step if snap is not None else 0,
        "lr": snap.hparams.lr if snap is not None else None,
        "dropout": snap.hparams.dropout if snap is not None else None,
        "banner_visible": window.banner.isVisible(),
        "banner_text": window.banner.label.text() if window.banner.isVisible() else "",
        "banner_action": window.banner.action.text() if window.banner.isVisible() else "",
        "frame": [frame.x(), frame.y(), frame.width(), frame.height()],
        "widgets": {"run": rect(controls.run_btn), "dropout": rect(controls.dropout),
                    "lr": rect(controls.lr.slider), "banner_action": rect(window.banner.action)},
        # [x, y, w, h, slider_x, slider_width]: press on the handle, move along the slider
        "handles": {"dropout": handle(controls.dropout), "lr": handle(controls.lr.slider),
                    "weight_decay": handle(controls.weight_decay.slider)},
        "status_bar": window.statusBar().currentMessage(),
    }
    from regsim.files import atomic_write_text

    try:  # no fsync: a scratch file rewritten twice a second, read only while the app runs
        atomic_write_text(path, json.dumps(state), fsync=False)
    except ValueError:  # the folder went away: the script reading it is gone too
        pass


XCB_DESTROY_NOTIFY = 17  # X11 event code (xproto.h); the top bit of response_type marks SendEvent


def watch_for_window_loss(app, window):
    """Quit, engine included, when the main window's X window is destroyed by someone else
    (`xdotool`/`xkill`-style tools, a crashed compositor): Qt is not told — the QWidget stays
    "visible" with nothing on screen, and the engine went on training with no window, burning a core
    (issue 8). X sends us a DestroyNotify for it; a native event filter sees it and runs the normal
    shutdown (settings saved, engine stopped) and quits. A window closed by the user or the window
    manager never gets here: Qt destroys its X window only after closeEvent, with the window already
    marked closed. Returns the filter (keep a reference), or None off X11."""
    import ctypes

    from PySide6.QtCore import QAbstractNativeEventFilter

    if app.platformName() != "xcb":
        return None

    class WindowLossFilter(QAbstractNativeEventFilter):
        def nativeEventFilter(self, event_type, message):  # noqa: N802
            if event_type == b"xcb_generic_event_t" and not window._closed:
                # xcb_destroy_notify_event_t: u8 response_type, u8 pad, u16 sequence,
                # u32 event (the window told), u32 window (the one destroyed)
                raw = ctypes.string_at(int(message), 12)
                if raw[0] & 0x7F == XCB_DESTROY_NOTIFY:
                    destroyed = int.from_bytes(raw[8:12], sys.byteorder)
                    if destroyed == int(window.winId()):
                        print("regsim: the window was destroyed from outside; quitting", flush=True)
                        window.shutdown()
                        app.quit()
            return False, 0

    watcher = WindowLossFilter()
    app.installNativeEventFilter(watcher)
    return watcher


def run_app(argv: list[str]) -> int:
    t0 = time.perf_counter()
    p = argparse.ArgumentParser(prog="python main.py")
    p.add_argument("--preset", help="start with this preset instead of the last settings")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--thread", action="store_true",
                   help="run the engine in a thread instead of a child process")
    p.add_argument("--run", action="store_true", help="start training as soon as the engine is ready")
    p.add_argument("--quit-after", type=float, default=0.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    from PySide6.QtCore import QSettings, QTimer

    from regsim.presets import load_preset
    from ui.engine_client import EngineClient

    app = build_app()
    try:
        hparams = load_preset(args.preset) if args.preset else None
    except ValueError as e:
        print(f"regsim: error: {e}", file=sys.stderr)
        return 2
    # Start the engine first: the child process imports torch while this one builds the window.
    from ui.session import DEFAULT_PRESET, saved_hparams

    start_with = hparams or saved_hparams(QSettings()) or load_preset(DEFAULT_PRESET)
    client = EngineClient(mode="thread" if args.thread else "process", device=args.device)
    client.start(start_with)
    if args.run:
        client.run()

    from ui.main_window import MainWindow

    window = MainWindow(start_with, device=args.device, client=client)
    window.show()
    app.processEvents()
    print(f"regsim: window visible after {time.perf_counter() - t0:.2f} s", flush=True)
    if args.run:
        window.running = True
        window.controls.set_running(True)

        def first_snapshot(snap) -> None:
            if snap.step > 0:
                print(f"regsim: first step after {time.perf_counter() - t0:.2f} s", flush=True)
                window.client.snapshot.disconnect(first_snapshot)

        window.client.snapshot.connect(first_snapshot)
    def build_panels() -> None:
        window.build_panels()
        app.processEvents()
        print(f"regsim: panels drawn after {time.perf_counter() - t0:.2f} s", flush=True)

    watcher = watch_for_window_loss(app, window)  # noqa: F841  (kept alive until exit)
    state_file = os.environ.get("REGSIM_STATE_FILE")
    if state_file:
        state_timer = QTimer(window)
        state_timer.timeout.connect(lambda: write_state(window, state_file))
        state_timer.start(STATE_MS)
    QTimer.singleShot(0, build_panels)
    QTimer.singleShot(0, window.start_engine)
    # SIGTERM / Ctrl+C close the window properly (engine stopped, settings saved). Python only sees
    # signals when it runs, so a idle timer hands it control a few times a second.
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: window.close())
    heartbeat = QTimer(window)
    heartbeat.timeout.connect(lambda: None)
    heartbeat.start(200)
    if args.quit_after > 0:
        QTimer.singleShot(int(args.quit_after * 1000), window.close)
    code = app.exec()
    window.shutdown()  # no-op after a close; stops the engine if the loop ended another way
    _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """Leave without the interpreter's teardown. Everything that must persist is written by now
    (QSettings synced in MainWindow.closeEvent, exports written whole), and the engine is stopped;
    what remains is destroying thousands of Qt and pyqtgraph objects one by one and pyqtgraph's
    atexit hooks, which measured ~0.3–1 s with a core busy, after the window had already gone.
    multiprocessing's own exit hook still runs: it releases the queues' semaphores and reaps the
    engine, so no child and no "leaked semaphore" warning is left behind."""
    import multiprocessing.util

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    try:
        multiprocessing.util._exit_function()
    finally:
        os._exit(code)
