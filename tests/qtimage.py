"""Shared helpers for GUI tests: QImage → numpy, view-box sampling, feeding panels."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage

from regsim.snapshot import History


def to_rgba(img: QImage) -> np.ndarray:
    """(H, W, 4) uint8 RGBA copy of a QImage."""
    img = img.convertToFormat(QImage.Format.Format_RGBA8888)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.sizeInBytes())
    return buf.reshape(h, img.bytesPerLine())[:, : w * 4].reshape(h, w, 4).copy()


def to_rgb(img: QImage) -> np.ndarray:
    """(H, W, 3) uint8 RGB copy of a QImage."""
    return to_rgba(img)[..., :3].copy()


def image_std(img: QImage) -> float:
    """Pixel standard deviation: near 0 for a blank (single-colour) image."""
    return float(to_rgb(img).std())


def show_on_screen(widget, qtbot, width: int = 1200, height: int = 800) -> None:
    """Size a widget and put it on the (offscreen) screen, as a window would show a panel."""
    widget.resize(width, height)
    widget.show()
    qtbot.waitExposed(widget)


def feed(panel, history: History, snaps) -> None:
    """Give snapshots to a history and a panel the way the main window does, then draw."""
    for snap in snaps:
        history.add(snap)
        panel.ingest(snap)
    panel.redraw()


def n_points(item) -> int:
    """Points a PlotDataItem holds (pyqtgraph stores None for empty data)."""
    return 0 if item.xData is None else len(item.xData)


def viewbox_pixel(panel, view, plot, dx: int = 6, dy: int = 6) -> tuple[int, int]:
    """Panel coordinates of a point just inside the top-left corner of `plot`'s view box."""
    corner = plot.getViewBox().sceneBoundingRect().topLeft()
    pt = view.viewport().mapTo(panel, view.mapFromScene(corner))
    return pt.x() + dx, pt.y() + dy

def viewbox_mode_color(panel, widget, pixels: np.ndarray) -> tuple[int, int, int]:
    """The most common colour inside a plot's view box (its background, whatever is drawn on it)."""
    vb = widget.getPlotItem().getViewBox()
    rect = widget.mapFromScene(vb.sceneBoundingRect()).boundingRect()
    top_left = widget.mapTo(panel, rect.topLeft())
    ratio = pixels.shape[1] / panel.width()
    x0, y0 = int((top_left.x() + 3) * ratio), int((top_left.y() + 3) * ratio)
    x1, y1 = x0 + int((rect.width() - 6) * ratio), y0 + int((rect.height() - 6) * ratio)
    assert x1 - x0 > 50 and y1 - y0 > 50, "view box too small to sample"
    region = pixels[y0:y1, x0:x1, :3].reshape(-1, 3)
    colors, counts = np.unique(region, axis=0, return_counts=True)
    return tuple(int(v) for v in colors[np.argmax(counts)])
