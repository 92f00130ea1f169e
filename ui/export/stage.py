"""Laying the live widget out as a figure, and putting it back exactly as it was.

A figure is the live widget itself, restyled, laid out and painted at the size of the slide — not a
second drawing that could drift from what the app shows. This module does the first and the last of
that; `ui.export.render` paints in between.

* **Size.** A panel is moved for the duration of the export onto an invisible *stage* (a top-level
  widget with `WA_DontShowOnScreen`), laid out there at exactly the requested size, painted, and put
  back into its tab. Resizing it in place would not hold: its tab widget lays it out again at the next
  layout request, and a large minimum size would spread up the layouts and grow the user's window. A
  whole window is never resized (see `_window_at`); a hidden one (the command line) is shown with
  `WA_DontShowOnScreen` meanwhile.
* **Theme.** Panels are switched to the slide theme (white background, dark text, large fonts, thick
  lines) with `Panel.apply_theme`, redrawn, and switched back in a `finally`, whatever happens. Their
  layouts are invalidated afterwards: Qt caches a minimum size computed with the slide fonts, and that
  stale cache would otherwise widen the window when the panel goes back into its tab; pyqtgraph's
  graphics layouts, legends and axes are re-measured too (`refit_graphics`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QImage, QPainter
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

from ui.export.files import CURRENT
from ui.panels.base import Panel
from ui.theme import THEMES, Theme

EXPORT_HIDDEN = (QAbstractButton, QComboBox, QAbstractSpinBox, QProgressBar)  # live-app controls


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


def graphics_views(widget: QWidget) -> list[pg.GraphicsView]:
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
    for view in graphics_views(widget):
        for item in view.scene().items():
            if isinstance(item, pg.ViewBox) and any(item.autoRangeEnabled()):
                item.updateAutoRange()
    settle()


def _refit_scenes(widget: QWidget) -> None:
    for view in graphics_views(widget):
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
    return [(item, item.textWidth, item.textHeight) for p in panels for view in graphics_views(p)
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
def themed(panels: list[Panel], theme: Theme | None, line_scale: float = 1.0) -> Iterator[None]:
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
def export_mode(widget: QWidget) -> Iterator[None]:
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


