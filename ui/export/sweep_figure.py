"""sweep.png for `python main.py sweep --out DIR`: the sweep panel itself, rendered offscreen in the
slide theme, so the file shows what the app shows (the core, regsim.cli, has no Qt: main.py passes
this function in)."""

from __future__ import annotations

import os
from pathlib import Path

from regsim.analyses.sweep import SweepResult
from regsim.snapshot import History


def write_figure(result: SweepResult, path: str | Path, size: tuple[int, int] = (1920, 1080)) -> Path:
    """The sweep's heatmaps as a slide PNG (the panel itself, rendered offscreen): what
    `python main.py sweep --out DIR` writes as sweep.png."""
    from PySide6.QtWidgets import QApplication

    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QApplication.instance() or QApplication([])
    from ui.export.render import export_figure
    from ui.panels.sweep import SweepPanel

    panel = SweepPanel(History())
    panel.resize(*size)
    panel.show_result(result)
    try:
        return export_figure(panel, Path(path), size=size, theme="slide")
    finally:
        panel.cleanup()
        panel.deleteLater()
        app.processEvents()
