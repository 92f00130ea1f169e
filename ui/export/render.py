"""Figures for slides: a panel or the whole window as PNG, SVG, clipboard image or animated GIF.

A figure is the live widget itself, restyled, laid out and painted at the size of the slide — not a
second drawing that could drift from what the app shows. Three things make that work:

* **Size.** A panel is moved for the duration of the export onto an invisible *stage* (a top-level
  widget with `WA_DontShowOnScreen`), laid out there at exactly the requested size, painted, and put
  back into its tab. Resizing it in place would not hold: its tab widget lays it out again at the next
  layout request, and a large minimum size would spread up the layouts and grow the user's window. A
  whole window is resized in place (shown with `WA_DontShowOnScreen` first when it is hidden, as in the
  command line), and its size is put back afterwards.
* **Theme.** Panels are switched to the slide theme (white background, dark text, large fonts, thick
  lines) with `Panel.apply_theme`, redrawn, and switched back in a `finally`, whatever happens. Their
  layouts are invalidated afterwards: Qt caches a minimum size computed with the slide fonts, and that
  stale cache would otherwise widen the window when the panel goes back into its tab.
* **Pixels.** The figure is painted with `QWidget.render` into a `QImage` of exactly the requested
  pixel size (device pixel ratio 1, so a HiDPI screen does not double it), or into a `QSvgGenerator`
  for vector output. pyqtgraph's own SVG exporter is not used: on Qt ≥ 6.11 it raises ValueError in
  `correctCoordinates` (pyqtgraph issues #3485, #3495).

Every file is written atomically (a temporary file in the same folder, then `os.replace`), so a failed
export never leaves a half-written figure; every failure is a ValueError with a message that names the
problem (missing or unwritable folder, bad size, unknown format).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

import pyqtgraph as pg
from PySide6.QtCore import (
    QBuffer,
    QEvent,
    QIODevice,
    QObject,
    QPoint,
    QPointF,
    QRectF,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontInfo,
    QFontMetrics,
    QGuiApplication,
    QImage,
    QPaintDevice,
    QPainter,
    QPen,
    QRegion,
)
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QGraphicsWidget,
    QLayout,
    QProgressBar,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from regsim.hparams import HParams
from regsim.snapshot import Snapshot
from ui.panels.base import Panel
from ui.theme import SCREEN, THEMES, Theme

EXPORT_HIDDEN = (QAbstractButton, QComboBox, QAbstractSpinBox, QProgressBar)  # live-app controls

MIN_SIDE, MAX_SIDE = 64, 8192  # pixels, per side, for every figure
DEFAULT_SIZE = (1920, 1080)  # a Full HD slide
LAYOUT_HEIGHT = 1080  # figures are laid out this high and scaled to the requested pixels
FORMATS = ("png", "svg")
CURRENT = "current"  # theme name meaning "as on screen": keep whatever theme each panel shows now
# A slide: the frames are laid out like a PNG export (1280×720 is that figure at 2/3 scale, text
# ~20 px); 5 s at 10 fps is ~46 MB of frames in memory. 800×450 gave ~6 px text.
GIF_SIZE, GIF_FPS = (1280, 720), 10
GIF_MAX_SECONDS, GIF_MAX_FPS = 60.0, 30
GIF_MAX_BYTES = 600 * 2**20  # frames are kept in memory (1 byte per pixel) until written

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: temporary files are created 0600, the figure gets the usual mode

OPTIMIZER_SLUGS = {("adam", "decoupled"): "adamw", ("adam", "l2"): "adam-l2",
                   ("momentum", "decoupled"): "sgdw", ("momentum", "l2"): "sgd-momentum",
                   ("sgd", "decoupled"): "sgd", ("sgd", "l2"): "sgd"}
OPTIMIZER_NAMES = {("adam", "decoupled"): "AdamW", ("adam", "l2"): "Adam+L2",
                   ("momentum", "decoupled"): "SGDW", ("momentum", "l2"): "SGD+momentum",
                   ("sgd", "decoupled"): "SGD", ("sgd", "l2"): "SGD"}


# ------------------------------------------------------------------------------------ validation


def check_size(size: Any) -> tuple[int, int]:
    """(width, height) as ints, each in [MIN_SIDE, MAX_SIDE]; otherwise a ValueError naming the side."""
    try:
        width, height = size
    except (TypeError, ValueError):
        raise ValueError(f"size {size!r} is not (width, height)") from None
    out = []
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{name} = {value!r} is not a whole number of pixels; "
                             f"allowed: [{MIN_SIDE}, {MAX_SIDE}]")
        if not MIN_SIDE <= value <= MAX_SIDE:
            raise ValueError(f"{name} = {value!r} is out of range; allowed: [{MIN_SIDE}, {MAX_SIDE}] "
                             "pixels")
        out.append(int(value))
    return out[0], out[1]


def parse_size(text: str) -> tuple[int, int]:
    """'1920x1080' (also '1920×1080', '1920X1080', '1920,1080') → (1920, 1080), range-checked."""
    m = re.fullmatch(r"\s*(\d+)\s*[x×X,*]\s*(\d+)\s*", str(text))
    if not m:
        raise ValueError(f"size {text!r} is not WIDTHxHEIGHT (for example 1920x1080); width and "
                         f"height must each be in [{MIN_SIDE}, {MAX_SIDE}]")
    return check_size((int(m.group(1)), int(m.group(2))))


def resolve_theme(theme: str | Theme | None) -> Theme | None:
    """A Theme from its name; None (or "current") means: keep each panel's theme as it is."""
    if theme is None or isinstance(theme, Theme):
        return theme
    key = str(theme).strip().lower()
    if key == CURRENT:
        return None
    if key not in THEMES:
        raise ValueError(f"theme {theme!r} is not allowed; choose one of: "
                         f"{', '.join(THEMES)}, {CURRENT}")
    return THEMES[key]


def check_format(fmt: str) -> str:
    """'png' / 'svg' (case and a leading dot ignored); anything else is a ValueError listing both."""
    key = str(fmt).strip().lower().lstrip(".")
    if key not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    return key


def check_folder(folder: str | os.PathLike, probe: bool = True) -> Path:
    """The folder as a Path if it exists, is a folder and accepts new files (probed for real when
    `probe`: permission bits do not tell the whole story, e.g. for root or on a read-only mount)."""
    folder = Path(folder)
    if not folder.exists():
        raise ValueError(f"folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"folder {str(folder)!r} is not writable")
    if probe:
        try:
            fd, tmp = tempfile.mkstemp(prefix=".regsim-probe.", dir=folder)
        except OSError as e:
            raise ValueError(f"folder {str(folder)!r} is not writable: {e.strerror or e}") from None
        os.close(fd)
        os.unlink(tmp)
    return folder


def _check_target(path: str | os.PathLike, ext: str) -> Path:
    """A file path with the right extension in an existing folder (checked before any rendering)."""
    path = Path(path)
    if path.suffix.lower() != f".{ext}":
        raise ValueError(f"file name {path.name!r} must end in .{ext}")
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a folder, not a file name")
    check_folder(path.parent, probe=False)
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None] | bytes) -> Path:
    """Write a file through a temporary name in the same folder and `os.replace`.

    `write` is the bytes, or a function that writes into the open file. Whatever goes wrong, the
    temporary file is removed and the target is untouched: a reader sees the old file or the whole new
    one, never half of one. OS errors become a ValueError naming the file; other exceptions (a
    cancelled GIF) propagate unchanged after the clean-up.
    """
    path = Path(path)
    folder = check_folder(path.parent, probe=False)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise ValueError(f"cannot write to folder {str(folder)!r}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(write, bytes | bytearray):
                f.write(write)
            else:
                write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except OSError as e:
        raise ValueError(f"cannot write {str(path)!r}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# ------------------------------------------------------------------------------------ names, captions


def compact_number(value: float) -> str:
    """0.01 → '1e-2', 0.0025 → '2.5e-3', 0.5 → '5e-1', 1 → '1', 0 → '0': short and sortable-ish."""
    value = float(value)
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    mantissa, exponent = f"{value:.3e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    exp = int(exponent)
    return mantissa if exp == 0 else f"{mantissa}e{exp}"


def _hparams_and_step(source: Snapshot | HParams | None) -> tuple[HParams, int | None]:
    if isinstance(source, Snapshot):
        return source.hparams, source.step
    if isinstance(source, HParams):
        return source, None
    return HParams(), None


def default_filename(panel_key: str, snapshot: Snapshot | HParams | None, ext: str) -> str:
    """`weights_p0.5_wd1e-2_adamw_step3120.png`: what, with which settings, when.

    A folder of exported figures then sorts by panel and reads as a record of the experiment; the
    optimizer slug tells AdamW (decoupled) from Adam with L2, which look alike in a caption-less plot.
    """
    hp, step = _hparams_and_step(snapshot)
    key = re.sub(r"[^A-Za-z0-9_-]+", "-", str(panel_key)).strip("-") or "figure"
    rates = hp.hidden_dropout()
    p = f"{rates[0]:g}" if len(set(rates)) <= 1 and rates else "-".join(f"{r:g}" for r in rates)
    p = p or f"{hp.dropout:g}"
    opt = OPTIMIZER_SLUGS.get((hp.optimizer, hp.decay_mode), hp.optimizer)
    ext = str(ext).strip().lower().lstrip(".")
    return f"{key}_p{p}_wd{compact_number(hp.weight_decay)}_{opt}_step{step or 0}.{ext}"


def caption_for(snapshot: Snapshot | HParams | None) -> str:
    """The caption strip under a figure: dataset, p, λ, decay mode, optimizer, lr and step.

    A slide shown weeks later must say which settings produced the curves; the strip carries them in
    the figure itself, so it survives being copied out of the deck.
    """
    hp, step = _hparams_and_step(snapshot)
    rates = hp.hidden_dropout()
    p = f"{rates[0]:g}" if len(set(rates)) <= 1 and rates else ", ".join(f"{r:g}" for r in rates)
    parts = [hp.dataset, f"p = {p or f'{hp.dropout:g}'}"]
    if hp.input_dropout:
        parts[-1] += f" (input {hp.input_dropout:g})"
    parts += [f"λ = {hp.weight_decay:g} ({hp.decay_mode})",
              OPTIMIZER_NAMES.get((hp.optimizer, hp.decay_mode), hp.optimizer),
              f"lr = {hp.lr:g}"]
    if step is not None:
        parts.append(f"step {step:,}")
    return "   ·   ".join(parts)


def figure_margin(height: int) -> int:
    """Pixel margin left, right and above a figure: 1.5 % of its height (16 px at 1080)."""
    return round(height * 0.015)


def caption_height(height: int) -> int:
    """Pixel height of the caption strip: about 4.5 % of the figure, legible at the back of a room."""
    return max(16, round(height * 0.045))


# ------------------------------------------------------------------------------------ laying out


def panels_in(widget: QWidget) -> list[Panel]:
    """The panels a figure of `widget` shows: the panel itself, or the visible ones inside it."""
    if isinstance(widget, Panel):
        return [widget]
    return [p for p in widget.findChildren(Panel) if p.isVisibleTo(widget)]


def settle() -> None:
    """Deliver pending layout requests (widgets and pyqtgraph's QGraphicsLayouts) now, not later."""
    for _ in range(3):
        QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)


def invalidate_layouts(widget: QWidget) -> None:
    """Drop every cached size hint under `widget` (they were computed with the slide fonts)."""
    layouts = widget.findChildren(QLayout)
    if widget.layout() is not None:
        layouts.append(widget.layout())
    for layout in layouts:
        layout.invalidate()
    widget.updateGeometry()


def _graphics_views(widget: QWidget) -> list[pg.GraphicsView]:
    views = widget.findChildren(pg.GraphicsView)
    if isinstance(widget, pg.GraphicsView):
        views.append(widget)
    return [v for v in views if v.scene() is not None]


def refit_legend(legend: pg.LegendItem) -> None:
    """Shrink a legend back to its entries after a restyle.

    `LegendItem.updateSize` adds up the entries' *current* widths, and those are whatever the
    legend's own grid last gave them: after the slide theme the labels are still laid out at the
    large font's width, so the legend measured itself at that width again and stayed ~40 % too
    large on screen, over the data (issue 8 item 3: 158 → 274 px wide on the loss plot). Each entry
    is first put back at its preferred size (the size a freshly added entry has), then measured.
    """
    for row in range(legend.layout.rowCount()):
        for col in range(legend.layout.columnCount()):
            item = legend.layout.itemAt(row, col)
            if item is not None and hasattr(item, "resize"):
                item.updateGeometry()
                item.resize(item.effectiveSizeHint(Qt.SizeHint.PreferredSize))
    legend.updateSize()


def refit_graphics(widget: QWidget) -> None:
    """Re-measure every pyqtgraph scene under `widget` for the theme it has now.

    Qt widget layouts are dropped by `invalidate_layouts`; pyqtgraph's QGraphicsLayouts keep their
    own caches. Left alone, a graphics layout keeps the minimum width it computed with the slide
    fonts, the view's central item cannot shrink below it, and the live plot stays laid out wider
    than its view: the right-hand column of the loss surface and of the dropout panel was cut off
    after an export (measured: central item 1508 px in a 1015 px view). Axes only shrink their
    tick-label space when they paint, so they are painted (off screen) first.
    """
    _refit_scenes(widget)
    warm_up_axes(widget, rounds=1)  # at the restored size: the axes see the live ranges
    _refit_scenes(widget)
    # Auto-ranged views padded their range for the figure's size (pyqtgraph's padding shrinks as
    # the view grows): range them again at the live size, as they were before the export.
    for view in _graphics_views(widget):
        for item in view.scene().items():
            if isinstance(item, pg.ViewBox) and any(item.autoRangeEnabled()):
                item.updateAutoRange()
    settle()


def _refit_scenes(widget: QWidget) -> None:
    for view in _graphics_views(widget):
        items = view.scene().items()
        for item in items:
            if isinstance(item, pg.LegendItem):
                refit_legend(item)
        for item in items:
            if isinstance(item, QGraphicsWidget):
                layout = QGraphicsWidget.layout(item)  # pyqtgraph shadows .layout with an attribute
                if layout is not None:
                    layout.invalidate()
                item.updateGeometry()
        settle()
        central = view.centralWidget
        if central is not None and view.autoPixelRange:
            central.setGeometry(view.range)
    settle()


def _axis_text_space(panels: list[Panel]) -> list[tuple[pg.AxisItem, float, float]]:
    """The room every axis keeps for its tick labels now (`textWidth` / `textHeight`)."""
    return [(item, item.textWidth, item.textHeight) for p in panels for view in _graphics_views(p)
            for item in view.scene().items() if isinstance(item, pg.AxisItem)]


def _restore_axis_text_space(axes: list[tuple[pg.AxisItem, float, float]]) -> None:
    """Give every axis back the tick-label room it had before the export.

    An axis widens itself for longer labels and narrows only when its labels are more than 10 px
    shorter (pyqtgraph's hysteresis, so a plot does not jitter). The room it has on screen is
    therefore a product of its history, not of its labels now: after the slide fonts, the first
    screen paint re-measured it from scratch, and the plot area came back a few pixels larger, with
    other ticks. Putting the old value back makes the live plot pixel-identical again.
    """
    for axis, width, height in axes:
        try:
            axis.textWidth, axis.textHeight = width, height
            if axis.orientation in ("left", "right"):
                axis._updateWidth()
            else:
                axis._updateHeight()
        except RuntimeError:  # deleted meanwhile (the window closed)
            pass


@contextmanager
def _themed(panels: list[Panel], theme: Theme | None, line_scale: float = 1.0) -> Iterator[None]:
    """Panels in `theme` (None: their own) and freshly redrawn; their own themes restored
    afterwards, always.

    `line_scale` widens the data lines for a figure drawn at more pixels than it is laid out in:
    pyqtgraph's pens are cosmetic, so they keep their pixel width at any device pixel ratio or SVG
    viewBox scale, and a 4K figure would otherwise have lines half as heavy as its 1080p twin.
    """
    previous = [(p, p.theme) for p in panels]
    axes = _axis_text_space(panels)
    try:
        for p in panels:
            target = theme if theme is not None else p.theme
            if abs(line_scale - 1.0) > 0.05:
                target = dataclasses.replace(target, line_width=target.line_width * line_scale)
            if p.theme != target:
                p.apply_theme(target)
            p.redraw()
        yield
    finally:
        for p, old in previous:
            if p.theme != old:
                p.apply_theme(old)
            invalidate_layouts(p)
        _restore_axis_text_space(axes)
        for p in panels:
            refit_graphics(p)


def _detach(widget: QWidget) -> Callable[[], None] | None:
    """Take `widget` out of its tab widget or stacked widget; return the function that puts it back
    exactly (index, tab text, icon, tool tip, current tab). None when it has no such host."""
    stack = widget.parentWidget()
    if not isinstance(stack, QStackedWidget):
        return None
    tabs = stack.parentWidget()
    if isinstance(tabs, QTabWidget) and tabs.indexOf(widget) >= 0:
        i = tabs.indexOf(widget)
        info = (tabs.tabText(i), tabs.tabIcon(i), tabs.tabToolTip(i), tabs.tabWhatsThis(i),
                tabs.isTabEnabled(i), tabs.isTabVisible(i))
        current = tabs.currentWidget()
        blocked = tabs.blockSignals(True)  # the app must not react to a tab that vanishes for 0.2 s
        try:
            tabs.removeTab(i)
        finally:
            tabs.blockSignals(blocked)

        def put_back() -> None:
            text, icon, tip, whats, enabled, visible = info
            was = tabs.blockSignals(True)
            try:
                tabs.insertTab(i, widget, icon, text)
                tabs.setTabToolTip(i, tip)
                tabs.setTabWhatsThis(i, whats)
                tabs.setTabEnabled(i, enabled)
                tabs.setTabVisible(i, visible)
                tabs.setCurrentWidget(current)
            finally:
                tabs.blockSignals(was)

        return put_back
    i = stack.indexOf(widget)
    current = stack.currentWidget()
    stack.removeWidget(widget)

    def put_back_stack() -> None:
        stack.insertWidget(i, widget)
        stack.setCurrentWidget(current)

    return put_back_stack


@contextmanager
def _on_stage(widget: QWidget, size: QSize, put_back: Callable[[], None]) -> Iterator[QWidget]:
    """`widget` alone on an invisible top-level stage of exactly `size`; put back afterwards."""
    stage = QWidget()
    stage.setObjectName("regsim_export_stage")
    stage.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
    layout = QVBoxLayout(stage)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(0)
    try:
        layout.addWidget(widget)
        widget.show()
        stage.resize(size)
        stage.show()
        settle()
        yield stage
    finally:
        stage.hide()
        layout.removeWidget(widget)
        put_back()
        stage.deleteLater()


@contextmanager
def _window_at(window: QWidget, size: QSize) -> Iterator[QWidget]:
    """A top-level window as it is: never resized. Resizing the live window to the figure's size
    and back squeezed the dock (its width is what is left once the panels, laid out with slide
    fonts, took theirs) and it stayed narrow, with a scroll bar (issue 8 #3). A hidden window (the
    command line) is shown off screen meanwhile, so that its layouts have run; `_paint_widget`
    scales it into the figure."""
    hidden = not window.isVisible()
    had_attr = window.testAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
    try:
        if hidden:
            window.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
            window.show()
            settle()
        yield window
    finally:
        if hidden:
            window.hide()
            window.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, had_attr)


@contextmanager
def _fixed_at(widget: QWidget, size: QSize) -> Iterator[QWidget]:
    """Fallback for a widget that is neither a window nor a tab/stack page: pinned at `size`."""
    old_min, old_max, old_size = widget.minimumSize(), widget.maximumSize(), widget.size()
    window = widget.window()
    old_window_size = window.size()
    try:
        widget.setFixedSize(size)
        settle()
        yield widget
    finally:
        widget.setMinimumSize(old_min)
        widget.setMaximumSize(old_max)
        widget.resize(old_size)
        invalidate_layouts(window)  # the pinned size spread up as minimum sizes: drop them
        settle()
        window.resize(old_window_size)  # a window grown to hold the pinned widget shrinks back


@contextmanager
def laid_out(widget: QWidget, size: QSize) -> Iterator[QWidget]:
    """The widget to paint, laid out at `size` (see the module docstring for the three cases)."""
    if widget.isWindow():
        with _window_at(widget, size) as target:
            yield target
        return
    put_back = _detach(widget)
    if put_back is not None:
        with _on_stage(widget, size, put_back) as target:
            yield target
        return
    with _fixed_at(widget, size) as target:
        yield target


# ------------------------------------------------------------------------------------ painting


def layout_scale(size: tuple[int, int]) -> float:
    """Device pixels per layout pixel for a figure of `size`.

    The slide theme's fonts and line widths are sized for a figure laid out LAYOUT_HEIGHT pixels high.
    A 3840×2160 export is the same figure, twice as sharp (scale 2), not a twice larger canvas on
    which the type shrinks to half its share of the slide; a 1920×1080 one is laid out at exactly its
    size (scale 1). The layout is kept within [MIN_SIDE, MAX_SIDE] on both sides.
    """
    w, h = size
    scale = h / LAYOUT_HEIGHT
    scale = max(scale, w / MAX_SIDE, h / MAX_SIDE)  # the layout may not exceed MAX_SIDE
    return min(scale, w / MIN_SIDE, h / MIN_SIDE)  # nor fall under MIN_SIDE


def _paint_widget(target: QWidget, painter: QPainter, rect: QRectF) -> None:
    """Paint `target` into `rect` (painter units); if a window manager refused the size, scale it."""
    actual = target.size()
    painter.save()
    try:
        painter.setClipRect(rect)
        sx, sy = rect.width() / max(1, actual.width()), rect.height() / max(1, actual.height())
        if abs(sx - 1) < 0.01 and abs(sy - 1) < 0.01:
            painter.translate(rect.topLeft())
        else:
            scale = min(sx, sy)
            painter.translate(rect.x() + (rect.width() - actual.width() * scale) / 2,
                              rect.y() + (rect.height() - actual.height() * scale) / 2)
            painter.scale(scale, scale)
        target.render(painter, QPoint(0, 0), QRegion(),
                      QWidget.RenderFlag.DrawWindowBackground | QWidget.RenderFlag.DrawChildren)
    finally:
        painter.restore()


def draw_caption(painter: QPainter, rect: QRectF, text: str, theme: Theme) -> None:
    """The caption strip: theme background, a hairline on top, the text as large as fits."""
    painter.save()
    try:
        painter.fillRect(rect, QColor(theme.background))
        rule = QColor(theme.foreground)
        rule.setAlpha(90)
        painter.setPen(QPen(rule, max(1.0, rect.height() / 30)))
        painter.drawLine(QPointF(rect.left(), rect.top()), QPointF(rect.right(), rect.top()))
        pad = max(4.0, rect.height() / 3)
        font = QFont()
        px = max(6, round(rect.height() * 0.56))
        font.setPixelSize(px)
        while px > 6 and QFontMetrics(font).horizontalAdvance(text) > rect.width() - 2 * pad:
            px -= 1
            font.setPixelSize(px)
        painter.setFont(font)
        painter.setPen(QColor(theme.foreground))
        painter.drawText(rect.adjusted(pad, 0, -pad, 0),
                         int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft), text)
    finally:
        painter.restore()


def _render_into(widget: QWidget, device: QPaintDevice, size: tuple[int, int], scale: float,
                 theme: str | Theme | None, caption: str | None) -> None:
    """Lay out, theme, warm up and paint `widget` (plus the caption) onto `device`.

    The painter works in layout units: the device maps them onto its pixels (a QImage through its
    device pixel ratio, so cosmetic pens and glyphs are drawn at full resolution; an SVG through its
    viewBox).
    """
    w, h = size
    chosen = resolve_theme(theme)
    panels = panels_in(widget)
    shown = chosen or (panels[0].theme if panels else SCREEN)
    strip = caption_height(h) / scale if caption else 0.0
    full = QRectF(0, 0, w / scale, h / scale)
    # A margin round the figure: the panels' own layouts start at x = 0, and the header readout
    # sat flush against the slide's left edge (issue 8 #18).
    pad = figure_margin(h) / scale
    content = QRectF(pad, pad, full.width() - 2 * pad, full.height() - strip - pad)
    if content.height() < MIN_SIDE / 2:
        raise ValueError(f"height = {h} leaves no room for the figure above its caption")
    layout_size = QSize(max(1, round(content.width())), max(1, round(content.height())))
    if chosen is not None and is_app_window(widget):
        try:
            _render_window_slide(widget, device, full, content, strip, chosen, scale, caption)
        finally:
            settle()
        return
    try:
        _render_laid_out(widget, device, layout_size, full, content, strip, panels, chosen, shown,
                         scale, caption)
    finally:
        # Lay the restored widgets out now. Left pending (no event loop in the command line), the
        # layout requests of pyqtgraph's graphics layouts crash the interpreter at exit.
        settle()


def is_app_window(widget: QWidget) -> bool:
    """The main window (its controls and a current panel), as opposed to any other widget."""
    return widget.isWindow() and isinstance(getattr(widget, "controls", None), QWidget) and callable(
        getattr(widget, "current_panel", None))


def window_slide_layout(window: QWidget, content: QRectF, theme: Theme) -> tuple[QRectF, QRectF, float]:
    """Where a slide figure of the window puts the controls and the panel, and the controls' scale.

    The controls are drawn as they are on screen (their live layout, never resized, so nothing is
    truncated that is not truncated live), scaled so that their text comes close to the panels'
    slide type: at most `theme` font size × 0.8 (labels beside large plot text read as secondary),
    at most the figure's height, at most a third of its width. The panel gets the rest, laid out at
    that size like a panel figure. The old window figure was the live window resized to the slide:
    ~9 px dock text, elided ("moons_dr"), beside 29 px panel text (issue 8 #19).
    """
    controls = window.controls
    cw, ch = max(1, controls.width()), max(1, controls.height())
    own_px = max(1, QFontInfo(controls.font()).pixelSize())
    slide_px = theme.font_pt * max(1, window.logicalDpiY()) / 72
    f = min(0.8 * slide_px / own_px, content.height() / ch, content.width() / 3 / cw)
    dock = QRectF(content.left(), content.top(), cw * f, ch * f)
    gap = content.height() * 0.02
    panel = QRectF(dock.right() + gap, content.top(), content.right() - dock.right() - gap,
                   content.height())
    return dock, panel, f


def _render_window_slide(window: QWidget, device: QPaintDevice, full: QRectF, content: QRectF,
                         strip: float, theme: Theme, scale: float, caption: str | None) -> None:
    """A slide of the window: its controls (scaled, as on screen) beside the current panel (laid
    out and themed like a panel figure). The live window is not resized."""
    dock, panel_rect, f = window_slide_layout(window, content, theme)
    panel = window.current_panel()
    size = QSize(max(1, round(panel_rect.width())), max(1, round(panel_rect.height())))
    with (laid_out(panel, size) as target, _themed([panel], theme, scale), _export_mode(panel)):
        warm_up_axes(target)
        painter = QPainter(device)
        if not painter.isActive():
            raise ValueError("cannot paint the figure (the paint device did not open)")
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.fillRect(full, QColor(theme.background))
            painter.save()
            painter.setClipRect(dock)
            painter.translate(dock.topLeft())
            painter.scale(f, f)
            window.controls.render(painter, QPoint(0, 0), QRegion(),
                                   QWidget.RenderFlag.DrawWindowBackground
                                   | QWidget.RenderFlag.DrawChildren)
            painter.restore()
            _paint_widget(target, painter, panel_rect)
            if caption:
                draw_caption(painter, QRectF(0, content.bottom(), full.width(), strip), caption,
                             theme)
        finally:
            painter.end()


def warm_up_axes(widget: QWidget, rounds: int = 2) -> None:
    """Let pyqtgraph size its axes for the new fonts and size before the real paint.

    An AxisItem measures its tick labels, and widens itself to fit them, only while it paints; the
    first paint after a restyle would draw labels into the old width, over the axis title. Painting
    just the axes (into a scratch image, after the views have updated their ranges) is enough, and
    costs far less than a throw-away paint of the whole figure.
    """
    views = widget.findChildren(pg.GraphicsView)
    if isinstance(widget, pg.GraphicsView):
        views.append(widget)
    scratch = QImage(8, 8, QImage.Format.Format_ARGB32_Premultiplied)
    for _ in range(rounds):
        painter = QPainter(scratch)
        try:
            for view in views:
                scene = view.scene()
                if scene is None or not view.isVisibleTo(widget):
                    continue
                scene.prepareForPaint()  # views apply pending range changes
                for item in scene.items():
                    if isinstance(item, pg.AxisItem) and item.isVisible():
                        item.picture = None
                        item.paint(painter, None, None)
        finally:
            painter.end()
        settle()


@contextmanager
def _export_mode(widget: QWidget) -> Iterator[None]:
    """pyqtgraph's own export switch on every item under `widget`, off again afterwards.

    In export mode a ScatterPlotItem draws each symbol as a vector path instead of stamping pixmaps
    from its cached atlas: an SVG gets real circles (QSvgGenerator renders `drawPixmapFragments` as
    the whole atlas, a mosaic of symbols) and a 4K PNG gets sharp ones (the atlas is rendered for the
    screen's pixel ratio). Curves are antialiased and plot buttons hidden, as for pyqtgraph's own
    exporters.
    """
    views = widget.findChildren(pg.GraphicsView)
    if isinstance(widget, pg.GraphicsView):
        views.append(widget)
    items = [item for view in views if view.scene() is not None for item in view.scene().items()
             if hasattr(item, "setExportMode")]
    # Buttons, boxes and progress bars steer the live app; they have no place on a slide.
    controls = [c for p in panels_in(widget) for kind in EXPORT_HIDDEN
                for c in p.findChildren(kind) if c.isVisibleTo(p)]
    controls += [c for p in panels_in(widget) for c in p.findChildren(QWidget)
                 if c.property("export_hidden") and c.isVisibleTo(p)]
    try:
        for c in controls:
            c.hide()
        for item in items:
            item.setExportMode(True, {"antialias": True, "resolutionScale": 1.0})
        yield
    finally:
        for c in controls:
            c.show()
        for item in items:
            try:
                item.setExportMode(False)
            except RuntimeError:  # deleted meanwhile
                pass


def _render_laid_out(widget: QWidget, device: QPaintDevice, layout_size: QSize, full: QRectF,
                     content: QRectF, strip: float, panels: list[Panel], chosen: Theme | None,
                     shown: Theme, scale: float, caption: str | None) -> None:
    with (laid_out(widget, layout_size) as target, _themed(panels, chosen, scale),
          _export_mode(widget)):
        warm_up_axes(target)
        painter = QPainter(device)
        if not painter.isActive():
            raise ValueError("cannot paint the figure (the paint device did not open)")
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.fillRect(full, QColor(shown.background))
            _paint_widget(target, painter, content)
            if caption:
                draw_caption(painter, QRectF(0, content.bottom(), full.width(), strip), caption,
                             shown)
        finally:
            painter.end()


def render_widget(widget: QWidget, size: tuple[int, int] = DEFAULT_SIZE,
                  theme: str | Theme | None = "slide", caption: str | None = None,
                  scale: float | None = None) -> QImage:
    """The widget as a QImage of exactly `size` pixels, in `theme` ("slide", "screen", or None /
    "current" for as on screen), with an optional caption strip at the bottom.

    The widget is laid out at `size / scale` (default `layout_scale(size)`: 1 at 1920×1080, 2 at
    3840×2160) and drawn at full resolution. It, and the panels in it, get their own size and theme
    back before this returns.
    """
    w, h = check_size(size)
    scale = layout_scale((w, h)) if scale is None else _check_scale(scale, (w, h))
    image = QImage(w, h, QImage.Format.Format_ARGB32_Premultiplied)
    image.setDevicePixelRatio(scale)
    image.fill(QColor(SCREEN.background))
    _render_into(widget, image, (w, h), scale, theme, caption)
    image.setDevicePixelRatio(1.0)  # a plain w×h picture from here on
    return image.convertToFormat(QImage.Format.Format_RGB32)


def _check_scale(scale: float, size: tuple[int, int]) -> float:
    scale = float(scale)
    if not (math.isfinite(scale) and 0.1 <= scale <= 8):
        raise ValueError(f"scale = {scale:g} is out of range; allowed: [0.1, 8]")
    if min(size) / scale < MIN_SIDE:
        raise ValueError(f"scale = {scale:g} would lay the figure out smaller than {MIN_SIDE} px")
    return scale


def image_bytes(image: QImage, fmt: str = "PNG") -> bytes:
    """Encode a QImage in memory (so the file itself can be written atomically)."""
    if image.isNull():
        raise ValueError("the image is empty: nothing to write")
    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buf, fmt):
        raise ValueError(f"cannot encode the image as {fmt}")
    return bytes(buf.data())


def write_png(image: QImage, path: str | os.PathLike) -> Path:
    """Write `image` as a PNG file, atomically; ValueError on any problem, and no file left behind."""
    path = _check_target(path, "png")
    return atomic_write(path, image_bytes(image, "PNG"))


def svg_bytes(widget: QWidget, size: tuple[int, int] = DEFAULT_SIZE,
              theme: str | Theme | None = "slide", caption: str | None = None,
              title: str = "regsim figure", scale: float | None = None) -> bytes:
    """The widget painted into a QSvgGenerator: real paths and text, editable in a drawing program."""
    w, h = check_size(size)
    scale = layout_scale((w, h)) if scale is None else _check_scale(scale, (w, h))
    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    gen = QSvgGenerator()
    gen.setOutputDevice(buf)
    gen.setSize(QSize(w, h))  # the size it is shown at; the drawing itself is in layout units
    gen.setViewBox(QRectF(0, 0, w / scale, h / scale))
    # Fonts are sized in points: convert them at the widget's own dpi, or the text would not fit the
    # boxes the layout made for it (QSvgGenerator's default is 72 dpi).
    gen.setResolution(max(1, widget.logicalDpiY()))
    gen.setTitle(title)
    gen.setDescription(caption or "")
    _render_into(widget, gen, (w, h), scale, theme, caption)
    data = bytes(buf.data())
    if b"<svg" not in data:
        raise ValueError("the SVG generator produced no drawing")
    data = portable_svg(data, scale)
    # QSvgGenerator states the size in millimetres (at its resolution); say it in pixels, the unit
    # the user asked for and the one slide tools place an SVG by.
    start = data.find(b"<svg")
    end = data.find(b">", start)
    tag = re.sub(rb'\swidth="[^"]*"', b' width="%d"' % w, data[start:end], count=1)
    tag = re.sub(rb'\sheight="[^"]*"', b' height="%d"' % h, tag, count=1)
    return data[:start] + tag + data[end:]


FALLBACK_FONTS = ("DejaVu Sans", "Liberation Sans", "Arial", "Helvetica", "sans-serif")
_GROUP = re.compile(rb"<g\b([^>]*)>((?:(?!<g\b|</g>).)*)</g>", re.DOTALL)
_MATRIX = re.compile(rb'transform="matrix\(([^)]*)\)"')
_NUMBER_PAIR = re.compile(rb"(-?[0-9.]+(?:e-?[0-9]+)?),(-?[0-9.]+(?:e-?[0-9]+)?)")
_STROKE_WIDTH = re.compile(rb'stroke-width="([0-9.e-]+)"')
_NON_SCALING = b' vector-effect="non-scaling-stroke"'


def svg_font_families() -> str:
    """The SVG font-family list: the family Qt really laid the text out with (QFontInfo of the
    default font: "DejaVu Sans" here), then common look-alikes and the generic family.

    QSvgGenerator writes the *requested* family, Qt's alias "Sans Serif", which no browser or
    drawing program knows: each falls back to a font of its own with other widths, and labels
    overflow their boxes.
    """
    real = QFontInfo(QFont()).family()
    names = [real] + [f for f in FALLBACK_FONTS if f != real]
    return ", ".join(n if n == "sans-serif" else f"'{n}'" for n in names)


def _fmt(v: float) -> bytes:
    return (b"%.6g" % v).replace(b"e+", b"e")


def portable_svg(data: bytes, scale: float = 1.0) -> bytes:
    """QSvgGenerator's output made to render alike everywhere.

    * Fonts: the real family first (see `svg_font_families`), instead of "Sans Serif".
    * Strokes: pyqtgraph's pens are cosmetic, which QSvgGenerator writes as
      `vector-effect="non-scaling-stroke"` inside a group whose matrix maps *data* units to the
      figure (e.g. matrix(9.96, 0, 0, -7.81, …)). SVG Tiny's vector-effect is ignored by librsvg,
      Inkscape and LibreOffice; they scale the stroke with that matrix, and lines become blobs ten
      pixels wide. Here the matrix is applied to the path's coordinates instead (the group gets the
      identity), and the stroke width is stated in figure units, so every renderer draws the same
      line. Groups holding anything but paths keep their matrix.
    """
    families = svg_font_families().encode()
    data = data.replace(b'font-family="Sans Serif"', b'font-family="' + families + b'"')

    def bake(m: re.Match) -> bytes:
        head, body = m.group(1), m.group(2)
        if _NON_SCALING not in body:
            return m.group(0)
        mat = _MATRIX.search(head)
        a, b, c, d, e, f = ((float(x) for x in mat.group(1).split(b",")) if mat else
                            (1.0, 0.0, 0.0, 1.0, 0.0, 0.0))
        tags = re.findall(rb"<(\w+)", body)
        if any(t not in (b"path", b"polyline", b"polygon") for t in tags):
            if (a, b, c, d) != (1.0, 0.0, 0.0, 1.0):
                return m.group(0)  # text or images under a scaling matrix: leave it be
        else:
            def point(p: re.Match) -> bytes:
                x, y = float(p.group(1)), float(p.group(2))
                return _fmt(a * x + c * y + e) + b"," + _fmt(b * x + d * y + f)

            def coords(el: re.Match) -> bytes:
                return el.group(1) + _NUMBER_PAIR.sub(point, el.group(2)) + el.group(3)

            body = re.sub(rb'(\sd=")([^"]*)(")', coords, body)
            body = re.sub(rb'(\spoints=")([^"]*)(")', coords, body)
            if mat:
                head = head.replace(mat.group(0), b'transform="matrix(1,0,0,1,0,0)"')
        if abs(scale - 1.0) > 1e-9:  # the widths are device pixels; the drawing is in layout units
            head = _STROKE_WIDTH.sub(
                lambda w: b'stroke-width="' + _fmt(float(w.group(1)) / scale) + b'"', head)
        body = body.replace(_NON_SCALING, b"")
        return b"<g" + head + b">" + body + b"</g>"

    return _GROUP.sub(bake, data)


def write_svg(widget: QWidget, path: str | os.PathLike, size: tuple[int, int] = DEFAULT_SIZE,
              theme: str | Theme | None = "slide", caption: str | None = None) -> Path:
    """Render `widget` as an SVG file of `size`, atomically (checked before rendering)."""
    path = _check_target(path, "svg")
    return atomic_write(path, svg_bytes(widget, size, theme, caption, title=path.stem))


def export_figure(widget: QWidget, path: str | os.PathLike, fmt: str | None = None,
                  size: tuple[int, int] = DEFAULT_SIZE, theme: str | Theme | None = "slide",
                  caption: str | None = None) -> Path:
    """One figure file; the format is `fmt` or, when None, the file's extension."""
    path = Path(path)
    fmt = check_format(fmt if fmt is not None else (path.suffix or "(none)"))
    check_size(size)
    resolve_theme(theme)
    _check_target(path, fmt)
    if fmt == "svg":
        return write_svg(widget, path, size, theme, caption)
    return write_png(render_widget(widget, size, theme, caption), path)


def copy_to_clipboard(image: QImage) -> None:
    """Put the image on the system clipboard, ready to paste into a slide."""
    if image.isNull():
        raise ValueError("the image is empty: nothing to copy")
    QGuiApplication.clipboard().setImage(image)


# ------------------------------------------------------------------------------------ GIF


def fit_image(image: QImage, size: tuple[int, int], background: str) -> QImage:
    """`image` scaled into exactly `size`, aspect kept (text undistorted), centred on `background`."""
    w, h = size
    canvas = QImage(w, h, QImage.Format.Format_RGB888)
    canvas.fill(QColor(background))
    scaled = image.scaled(w, h, Qt.AspectRatioMode.KeepAspectRatio,
                          Qt.TransformationMode.SmoothTransformation)
    painter = QPainter(canvas)
    try:
        painter.drawImage((w - scaled.width()) // 2, (h - scaled.height()) // 2, scaled)
    finally:
        painter.end()
    return canvas


def to_pil(image: QImage) -> Any:
    """A Pillow RGB image holding a copy of the QImage's pixels."""
    from PIL import Image

    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    data = bytes(rgb.constBits())
    return Image.frombuffer("RGB", (rgb.width(), rgb.height()), data, "raw", "RGB",
                            rgb.bytesPerLine(), 1).copy()


class _Cancelled(Exception):
    pass


class GifRecorder(QObject):
    """Records a live panel for a few seconds and writes an animated GIF, without blocking the app.

    Frames are grabbed by a QTimer on the GUI thread (widgets may only be painted there), scaled into
    `size` and reduced to a 256-colour palette at once, so memory stays at one byte per pixel. The GIF
    is then written by a worker thread (Pillow), atomically; the GUI thread polls it for progress.
    Exactly one of `finished(path)` / `failed(message)` ends every started recording, including a
    cancelled one (`failed("cancelled")`).

    Each frame lasts 1/fps s. Pillow merges consecutive identical frames into one longer frame, so
    a GIF of a paused run has fewer frames than were grabbed; it plays for the same time.
    """

    progress = Signal(int, str)  # percent of the current phase, phase ("recording" / "writing")
    frame_captured = Signal(int)  # frames grabbed so far
    finished = Signal(str)  # path of the written GIF
    failed = Signal(str)  # why nothing was written

    CANCELLED = "cancelled"

    def __init__(self, widget: QWidget, seconds: float = 5.0, fps: int = GIF_FPS,
                 path: str | os.PathLike = "", size: tuple[int, int] = GIF_SIZE,
                 theme: str | Theme | None = "slide", parent: QObject | None = None) -> None:
        super().__init__(parent)
        seconds = float(seconds)
        if not (math.isfinite(seconds) and 0 < seconds <= GIF_MAX_SECONDS):
            raise ValueError(f"seconds = {seconds:g} is out of range; allowed: (0, {GIF_MAX_SECONDS:g}]")
        if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= GIF_MAX_FPS:
            raise ValueError(f"fps = {fps!r} is out of range; allowed: whole numbers in "
                             f"[1, {GIF_MAX_FPS}]")
        self.size = check_size(size)
        self.theme = resolve_theme(theme)
        self.path = _check_target(path, "gif")
        check_folder(self.path.parent)
        self.widget = widget
        self.fps = fps
        self.total_frames = max(1, round(seconds * fps))
        need = self.total_frames * self.size[0] * self.size[1]
        if need > GIF_MAX_BYTES:
            raise ValueError(f"a GIF of {self.total_frames} frames at {self.size[0]}×{self.size[1]} "
                             f"needs about {need / 2**20:.0f} MB of memory (limit "
                             f"{GIF_MAX_BYTES / 2**20:.0f} MB): record fewer seconds, fewer frames "
                             "per second or a smaller size")
        self.state = "idle"  # idle → recording → writing → done | failed | cancelled
        self.frames: list[Any] = []
        self._panels: list[Panel] = []
        self._themes: list[tuple[Panel, Theme]] = []
        self._written = 0
        self._error: str | None = None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(max(1, round(1000 / fps)))
        self._timer.timeout.connect(self._grab)
        self._poll = QTimer(self)
        self._poll.setInterval(50)
        self._poll.timeout.connect(self._check_writer)

    @property
    def active(self) -> bool:
        """True while recording or writing."""
        return self.state in ("recording", "writing")

    def start(self) -> None:
        """Lay the panel out as a slide figure (as `render_widget` does), grab the first frame now
        and the rest on the timer.

        Each frame is the slide figure at the GIF's size: the same layout, theme, margin and hidden
        controls as a PNG export (the old frames were the live panel scaled down, ~6 px text with
        the Train/Inference buttons). Meanwhile the panel's tab shows the frames being recorded;
        the panel goes back, exactly as it was, when the recording ends.
        """
        if self.state != "idle":
            raise RuntimeError("a GifRecorder records once; make a new one")
        self.state = "recording"
        self._panels = panels_in(self.widget)
        w, h = self.size
        self._scale = layout_scale(self.size)
        pad = figure_margin(h) / self._scale
        self._content = QRectF(pad, pad, w / self._scale - 2 * pad, h / self._scale - 2 * pad)
        layout_size = QSize(max(1, round(self._content.width())),
                            max(1, round(self._content.height())))
        self._stack = ExitStack()
        try:
            self._preview = self._preview_tab()
            self._target = self._stack.enter_context(laid_out(self.widget, layout_size))
            self._stack.enter_context(_themed(self._panels, self.theme, self._scale))
            self._stack.enter_context(_export_mode(self.widget))
            warm_up_axes(self._target)
        except Exception as e:  # any failure must end in `failed`, not a crash
            self._fail(f"cannot prepare the panel: {e}")
            return
        self.progress.emit(0, "recording")
        self._grab()
        if self.state == "recording":
            self._timer.start()

    def _preview_tab(self) -> Callable[[QImage], None] | None:
        """While the panel is on the stage, its tab shows the recorded frames (a label at the same
        index, with the same title); removed again before the panel goes back."""
        from PySide6.QtGui import QPixmap
        from PySide6.QtWidgets import QLabel

        stack = self.widget.parentWidget()
        tabs = stack.parentWidget() if isinstance(stack, QStackedWidget) else None
        if not isinstance(tabs, QTabWidget) or tabs.indexOf(self.widget) < 0:
            return None
        index, title = tabs.indexOf(self.widget), tabs.tabText(tabs.indexOf(self.widget))
        label = QLabel("Recording…")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setMinimumSize(1, 1)
        label.setToolTip("Recording a GIF: this is the figure being recorded")

        def show(image: QImage) -> None:
            pix = QPixmap.fromImage(image).scaled(label.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                                  Qt.TransformationMode.SmoothTransformation)
            label.setPixmap(pix)

        def remove() -> None:
            blocked = tabs.blockSignals(True)
            try:
                i = tabs.indexOf(label)
                if i >= 0:
                    tabs.removeTab(i)
            finally:
                tabs.blockSignals(blocked)
            label.deleteLater()

        def insert() -> None:
            blocked = tabs.blockSignals(True)
            try:
                tabs.insertTab(index, label, title)
                tabs.setCurrentIndex(index)
            finally:
                tabs.blockSignals(blocked)

        self._stack.callback(remove)  # runs after the panel is back: LIFO, so registered first
        self._insert_preview = insert
        return show

    def cancel(self) -> None:
        """Stop now; nothing is written. A no-op once the recording has ended."""
        if self.state == "recording":
            self._timer.stop()
            self._restore_theme()
            self.frames.clear()
            self.state = "cancelled"
            self.failed.emit(self.CANCELLED)
        elif self.state == "writing":
            self._cancel.set()  # the writer stops at its next frame; _check_writer reports it

    def _restore_theme(self) -> None:
        """Put the panel back into its tab, in its own theme, exactly as it was."""
        stack, self._stack = getattr(self, "_stack", None), None
        if stack is None:
            return
        try:
            stack.close()
        except RuntimeError:  # the panel was deleted (window closed): nothing to restore
            pass
        settle()

    def _fail(self, message: str) -> None:
        self._timer.stop()
        self._poll.stop()
        self._restore_theme()
        self.frames.clear()
        self.state = "failed"
        self.failed.emit(message)

    def _grab(self) -> None:
        if self.state != "recording":
            return
        try:
            for p in self._panels:
                p.redraw()
            warm_up_axes(self._target, rounds=1)
            w, h = self.size
            image = QImage(w, h, QImage.Format.Format_RGB32)
            image.setDevicePixelRatio(self._scale)
            background = (self._panels[0].theme if self._panels else SCREEN).background
            image.fill(QColor(background))
            painter = QPainter(image)
            try:
                painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
                painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
                _paint_widget(self._target, painter, self._content)
            finally:
                painter.end()
            image.setDevicePixelRatio(1.0)
            if getattr(self, "_insert_preview", None) is not None:
                self._insert_preview()
                self._insert_preview = None
            if self._preview is not None:
                self._preview(image)
            frame = to_pil(image)
            from PIL import Image

            self.frames.append(frame.quantize(256, method=Image.Quantize.FASTOCTREE))
        except (RuntimeError, ValueError, OSError) as e:
            self._fail(f"cannot grab a frame: {e}")
            return
        n = len(self.frames)
        self.frame_captured.emit(n)
        if self.state != "recording":  # a slot cancelled us
            return
        self.progress.emit(min(100, round(100 * n / self.total_frames)), "recording")
        if n >= self.total_frames:
            self._timer.stop()
            self._restore_theme()
            self._write()

    def _write(self) -> None:
        self.state = "writing"
        self.progress.emit(0, "writing")
        frames, duration = list(self.frames), max(20, round(1000 / self.fps))

        def rest() -> Iterator[Any]:
            for i, f in enumerate(frames[1:], start=2):
                if self._cancel.is_set():
                    raise _Cancelled
                self._written = i
                yield f

        def save(f: IO[bytes]) -> None:
            self._written = 1
            frames[0].save(f, format="GIF", save_all=True, append_images=rest(), duration=duration,
                           loop=0)

        def work() -> None:
            try:
                atomic_write(self.path, save)
            except _Cancelled:
                self._error = self.CANCELLED
            except ValueError as e:
                self._error = str(e)
            except Exception as e:  # reported to the GUI thread as `failed`
                self._error = f"cannot write the GIF: {e}"

        self._thread = threading.Thread(target=work, name="gif-writer", daemon=True)
        self._thread.start()
        self._poll.start()

    def _check_writer(self) -> None:
        thread = self._thread
        if thread is None:
            return
        if thread.is_alive():
            self.progress.emit(min(99, round(100 * self._written / len(self.frames or [0]))), "writing")
            return
        self._poll.stop()
        self._thread = None
        self.frames.clear()
        if self._error is not None:
            self.state = "cancelled" if self._error == self.CANCELLED else "failed"
            self.failed.emit(self._error)
            return
        self.state = "done"
        self.progress.emit(100, "writing")
        self.finished.emit(str(self.path))


# ------------------------------------------------------------------------------------ bench


def bench_export(quick: bool = True, device: str = "cpu", preset: str = "moons_dropout") -> list[dict]:
    """PNG and SVG export time of every panel at 1920×1080 in the slide theme, measured on a window
    filled by a real training run (a Trainer in this process, snapshots fed to `on_snapshot`, a
    landscape to `on_landscape`; no engine), so every plot holds real data.

    Rows follow regsim/bench.py: {"name", "value", "unit", "target", "ok"}.
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings

    from regsim.presets import load_preset
    from regsim.trainer import Trainer
    from ui.app import build_app
    from ui.export.cli import train_into_window
    from ui.main_window import MainWindow

    build_app()
    hparams = load_preset(preset)
    reps = 2 if quick else 5
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="regsim-bench-export-") as tmp:
        settings = QSettings(str(Path(tmp) / "regsim.ini"), QSettings.Format.IniFormat)
        window = MainWindow(hparams, engine_mode="thread", device=device, settings=settings,
                            restore=False)
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
