"""Start the desktop app: the window first (no torch in this process), then the engine behind it."""

from __future__ import annotations

import argparse
import sys
import time


def build_app():
    """The QApplication with regsim's look; created once per process."""
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("regsim")
    app.setOrganizationName("regsim")
    pg.setConfigOptions(antialias=True, imageAxisOrder="row-major")
    return app


def run_app(argv: list[str]) -> int:
    t0 = time.perf_counter()
    p = argparse.ArgumentParser(prog="python main.py")
    p.add_argument("--preset", help="start with this preset instead of the last settings")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--thread", action="store_true",
                   help="run the engine in a thread instead of a child process")
    p.add_argument("--quit-after", type=float, default=0.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    from PySide6.QtCore import QTimer

    from regsim.presets import load_preset
    from ui.main_window import MainWindow

    app = build_app()
    try:
        hparams = load_preset(args.preset) if args.preset else None
    except ValueError as e:
        print(f"regsim: error: {e}", file=sys.stderr)
        return 2
    window = MainWindow(hparams, engine_mode="thread" if args.thread else "process",
                        device=args.device)
    window.show()
    app.processEvents()
    print(f"regsim: window visible after {time.perf_counter() - t0:.2f} s", flush=True)
    QTimer.singleShot(0, window.start_engine)
    if args.quit_after > 0:
        QTimer.singleShot(int(args.quit_after * 1000), window.close)
    return app.exec()
