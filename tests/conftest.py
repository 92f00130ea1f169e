"""Shared test setup: the import path, Qt off screen, and the live-window fixtures that several
window test files use (tests/test_app.py, tests/test_compare_window.py; other files import
`SMALL` and `make_window` through test_app, as before)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from regsim import HParams  # noqa: E402  (after the path and platform are set)

# The small, quick run the live-window tests start: moons, two hidden layers of 16, Adam.
SMALL = HParams(dataset="moons", hidden=(16, 16), dropout=0.3, weight_decay=1e-3, lr=0.01,
                optimizer="adam", train_size=100, val_size=100)


@pytest.fixture
def settings(tmp_path):
    """A QSettings of the test's own (an ini file in tmp_path): no test reads another's state."""
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "regsim.ini"), QSettings.Format.IniFormat)


def make_window(qtbot, settings, mode="thread", hparams=SMALL, restore=False, size=(1400, 900)):
    """A shown window with its engine started and a first snapshot in; `size=None` keeps the size
    the window chose itself (or restored)."""
    from ui.app import build_app
    from ui.main_window import MainWindow

    build_app()
    w = MainWindow(hparams, engine_mode=mode, device="cpu", settings=settings, restore=restore)
    if size is not None:
        w.resize(*size)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    w.start_engine()
    qtbot.waitUntil(lambda: w.latest is not None, timeout=60_000)
    return w


@pytest.fixture
def window(qtbot, settings):
    """The live window on SMALL with a thread engine, shut down after the test."""
    w = make_window(qtbot, settings)
    yield w
    w.shutdown()
