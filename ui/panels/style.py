"""Theme styling shared by every panel: one place decides how a plot looks on screen and on a slide.

pyqtgraph 0.14 quirks handled here: `enableAutoSIPrefix(False)` still computes a scale (the step axis
became "3e+06", a loss label "loss (x0.001)"); the title row is fixed at 30 px, too short for slide
fonts; legends do not re-render existing labels on `setLabelTextSize`; FillBetweenItem rebuilds its
path with slow Python polygon concatenation.
"""

from __future__ import annotations

import re

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QSizeF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainterPath, QPalette
from PySide6.QtWidgets import QCheckBox, QWidget

from ui.theme import Theme

# Live frames without antialiasing (about 3× cheaper to paint here); the slide theme and exports turn
# it on per item. Images are indexed [row, column] like numpy.
pg.setConfigOptions(antialias=False, imageAxisOrder="row-major")


def color(value: str | tuple, alpha: int | None = None) -> QColor:
    """A QColor from a theme colour, optionally with a new alpha (0..255)."""
    c = pg.mkColor(value)
    if alpha is not None:
        c.setAlpha(alpha)
    return c


def is_light(theme: Theme) -> bool:
    """True for a light background (the slide theme): decides dark-on-light text and ink."""
    return color(theme.background).lightnessF() > 0.5


def fix_axis_width(plot: pg.PlotItem, theme: Theme, sample: str = "−0.00", side: str = "left") -> None:
    """Give `plot`'s `side` axis a fixed width: room for `sample` in the theme's tick font, the
    ticks and the axis label.

    Left to itself, a pyqtgraph axis widens for longer tick text and narrows only with hysteresis,
    so a plot's width (and, with a locked aspect, its range and ticks) depended on the labels drawn
    before: after a slide export the race's right column came back 4.7 px wider and the empty
    Hessian plane with other ticks (measured). A width from the font is the same every time."""
    import math

    from PySide6.QtGui import QFontMetricsF

    font = QFont()
    font.setPointSize(theme.font_pt)
    fm = QFontMetricsF(font)
    axis = plot.getAxis(side)
    tick = max(0, axis.style["tickLength"]) + axis.style["tickTextOffset"][0]
    label = fm.height() * 1.4 if axis.labelText else 0.0
    axis.setWidth(int(math.ceil(fm.horizontalAdvance(sample) + tick + label)))


def style_plot(widget: pg.PlotWidget, theme: Theme, title: str | None = None,
               left: str | None = None, bottom: str | None = None) -> None:
    """Background, axis pens, tick fonts, axis labels, title and grid of one plot, from `theme`.

    Everything a slide export needs to be readable at a distance is set here, so no plot keeps a
    colour or size from the theme it was built in.
    """
    plot = widget.getPlotItem()
    widget.setBackground(theme.background)
    font = QFont()
    font.setPointSize(theme.font_pt)
    label_style = {"color": theme.foreground, "font-size": f"{theme.font_pt}pt"}
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(theme.foreground, width=1))
        axis.setTextPen(pg.mkPen(theme.foreground))
        axis.setTickFont(font)
        # Major ticks only: grid lines are drawn per tick level, and minor-level grid lines cost
        # ~10 ms a frame on a 900×600 plot here (measured), a third of the 30 fps budget.
        axis.setStyle(tickTextOffset=max(4, theme.font_pt // 3), maxTickLevel=0)
        if axis.autoSIPrefix:  # "loss (x0.001)" reads as a different quantity
            axis.enableAutoSIPrefix(False)
        axis.autoSIPrefixScale = 1.0  # pyqtgraph 0.14 still computes a scale when disabled
        axis.labelUnitPrefix = ""
        text = left if name == "left" else bottom
        if text:
            plot.setLabel(name, text, **label_style)
    if title is not None:
        plot.setTitle(title, color=theme.foreground, size=f"{theme.title_pt}pt")
        title_font = QFont()
        title_font.setPointSize(theme.title_pt)
        height = QFontMetrics(title_font).height() + 8  # pyqtgraph fixes the row at 30 px
        plot.titleLabel.setMaximumHeight(height)
        plot.layout.setRowFixedHeight(0, height)
    plot.showGrid(x=True, y=True, alpha=theme.grid_alpha)


def style_legend(legend: pg.LegendItem, theme: Theme) -> None:
    """Legend text in the theme's colour and size, on a half-opaque background."""
    legend.setLabelTextColor(theme.foreground)
    legend.setLabelTextSize(f"{theme.font_pt}pt")
    for _sample, label in legend.items:  # setAttr alone does not re-render existing labels
        label.setText(label.text, color=theme.foreground, size=f"{theme.font_pt}pt")
    legend.updateSize()
    legend.setBrush(color(theme.background, 200))
    legend.setPen(color(theme.foreground, 60))


def style_text(widget: QWidget, theme: Theme, pt: int | None = None) -> None:
    """Plain Qt text (labels, check boxes) in the theme's colour and font size."""
    pt = pt or theme.font_pt
    css = f"color: {theme.foreground}; font-size: {pt}pt;"
    if isinstance(widget, QCheckBox):  # the box grows with the text, or it is lost on a slide
        box = round(pt * 1.4)
        css = f"QCheckBox {{ {css} }} QCheckBox::indicator {{ width: {box}px; height: {box}px; }}"
    widget.setStyleSheet(css)


def fill_background(widget: QWidget, theme: Theme) -> None:
    """Paint the space between plots in the theme's background, so an export is one colour."""
    pal = widget.palette()
    pal.setColor(QPalette.ColorRole.Window, color(theme.background))
    pal.setColor(QPalette.ColorRole.WindowText, color(theme.foreground))
    widget.setPalette(pal)
    widget.setAutoFillBackground(True)


class FastFillBetween(pg.FillBetweenItem):
    """A FillBetweenItem whose path is built with numpy.

    The stock `updatePath` concatenates QPolygonF objects in Python: about 8 ms per update at 3000
    points, paid once per curve on every redraw. This one draws the same region (down curve 1, back
    along curve 2) from the curves' display data, so it follows log mode, in well under 1 ms.
    Non-finite points are dropped from both curves rather than tearing the fill.
    """

    def updatePath(self) -> None:
        path = QPainterPath()
        if self.curves is not None:
            (x1, y1), (x2, y2) = (c.getData() for c in self.curves)
            if x1 is not None and x2 is not None and len(x1) == len(x2) and len(x1) > 1:
                ok = np.isfinite(x1) & np.isfinite(y1) & np.isfinite(x2) & np.isfinite(y2)
                if ok.sum() > 1:
                    x = np.concatenate([x1[ok], x2[ok][::-1]])
                    y = np.concatenate([y1[ok], y2[ok][::-1]])
                    path = pg.arrayToQPath(x, y, connect="all")
                    path.closeSubpath()
        self.setPath(path)


def mix(a: str | QColor, b: str | QColor, t: float, alpha: int = 255) -> QColor:
    """Colour between `a` (t = 0) and `b` (t = 1): readable 'dim' colours on either theme."""
    ca, cb = pg.mkColor(a), pg.mkColor(b)
    return QColor(round(ca.red() + (cb.red() - ca.red()) * t),
                  round(ca.green() + (cb.green() - ca.green()) * t),
                  round(ca.blue() + (cb.blue() - ca.blue()) * t), alpha)


def style_plot_item(plot: pg.PlotItem, theme: Theme) -> None:
    """Axis pens, tick fonts and label fonts of one PlotItem (all four sides) for `theme`."""
    font = QFont()
    font.setPointSize(theme.font_pt)
    for name in ("left", "bottom", "right", "top"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(theme.foreground, width=1))
        axis.setTextPen(pg.mkPen(theme.foreground))
        axis.setTickFont(font)
        axis.setStyle(maxTickLevel=0)  # major ticks only: minor grid lines are costly to paint
        axis.enableAutoSIPrefix(False)  # "(x0.001)" scale factors are confusing on log values
        axis.autoSIPrefixScale = 1.0
        if axis.labelText:
            axis.setLabel(axis.labelText, color=theme.foreground,
                          **{"font-size": f"{theme.font_pt}pt"})


def set_title(plot: pg.PlotItem, text: str, theme: Theme, size_pt: int | None = None) -> None:
    """A plot title in the theme's colour whose row grows to fit it (pyqtgraph fixes it at 30 px,
    too small for slide fonts and two-line titles); multi-line titles are centred. Setting the same
    title again does nothing (a title's HTML layout is a few hundred µs, and panels set theirs every
    frame)."""
    key = (text, theme.foreground, size_pt or theme.title_pt)
    if getattr(plot, "_regsim_title", None) == key:
        return
    plot._regsim_title = key  # type: ignore[attr-defined]
    plot.setTitle(text, color=theme.foreground, size=f"{size_pt or theme.title_pt}pt")
    item = plot.titleLabel.item
    item.setTextWidth(-1)
    item.setTextWidth(item.document().idealWidth())
    height = item.boundingRect().height()
    plot.titleLabel.setMaximumHeight(height)
    plot.layout.setRowFixedHeight(0, height)
    # LabelItem.setText centred the text for its old width; a cell whose size does not change gets
    # no resizeEvent, so a new title of another width sat off centre (the ensemble's tiles after a
    # page turn): centre it again for the width just set.
    plot.titleLabel.resizeEvent(None)


def set_axis_label(plot: pg.PlotItem, side: str, text: str, theme: Theme) -> None:
    """An axis label in the theme's colour and size (skipped when unchanged: it relayouts)."""
    axis = plot.getAxis(side)
    if axis.labelText != text or axis.labelStyle.get("font-size") != f"{theme.font_pt}pt":
        axis.setLabel(text, color=theme.foreground, **{"font-size": f"{theme.font_pt}pt"})


class LegendRow(pg.LegendItem):
    """A legend that lives in its PlotItem's layout, in a row above the view box.

    A legend anchored inside the view box covers whatever data sits in its corner, and the newest
    points of a training curve end up exactly there (the val-loss peak under the loss legend, the
    total ‖W‖ under the norm legend). In the layout it takes its own strip: the view box shrinks by
    one text line and no data point can ever be under it. It sits in the top axis' cell (row 1),
    which these plots never show.
    """

    def __init__(self, plot: pg.PlotItem, columns: int = 4) -> None:
        super().__init__(offset=None, colCount=columns)
        self.setFlag(self.GraphicsItemFlag.ItemIgnoresTransformations, False)
        self.setParentItem(plot)
        top = plot.getAxis("top")
        plot.layout.removeItem(top)  # the hidden axis would share the cell
        plot.layout.addItem(self, 1, 1)
        plot.layout.setAlignment(self, Qt.AlignmentFlag.AlignLeft)
        plot.legend = self  # so PlotItem.plot(name=...) adds to this legend

    def updateSize(self) -> None:
        """Size hints from the entries (the stock version sets a geometry, which a layout
        overrides); an empty legend takes no height."""
        if not hasattr(self, "layout") or not hasattr(self, "items"):
            return
        self.layout.invalidate()
        self.layout.activate()
        hint = self.layout.effectiveSizeHint(Qt.SizeHint.PreferredSize) if self.items else QSizeF(0, 0)
        self.setMinimumSize(hint)
        self.setMaximumSize(hint)
        self.setPreferredSize(hint)
        self.updateGeometry()


_NUMBER = re.compile(r"(?<![\w.])-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")


def round_numbers(text: str, digits: int = 3) -> str:
    """Every number in `text` to `digits` significant digits ("lr 0.0031622 → 0.01" becomes
    "lr 0.00316 → 0.01"): a marker label is read at a glance, the exact value is in its tooltip."""
    return _NUMBER.sub(lambda m: f"{float(m.group()):.{digits}g}", text)


class ChangeMarkers:
    """Settings-change markers on one plot: a dashed line per step, a label per line.

    Labels are laid out in pixels after every range or size change: each one goes right of its
    line, or left of it where it would pass the view box's right edge (never clipped), in the
    first row where it overlaps no earlier label (staggered downwards). A label that finds no row
    inside the view box is hidden; its line keeps the full text as a tooltip.
    """

    GAP_PX = 4  # space between a line and its label, and between labels in a row

    def __init__(self, plot: pg.PlotItem, capacity: int = 30) -> None:
        self.plot = plot
        self.capacity = capacity
        self.lines: list[pg.InfiniteLine] = []
        self.labels: list[pg.TextItem] = []
        for _ in range(capacity):
            line = pg.InfiniteLine(angle=90, movable=False)
            label = pg.TextItem(anchor=(0, 0))
            line.hide()
            label.hide()
            self.lines.append(line)
            self.labels.append(label)
        self.shown: list[tuple[int, str]] = []  # (step, label text) of the lines on the plot
        self._key: tuple | None = None
        self._font = QFont()
        self._in_layout = False
        plot.getViewBox().sigRangeChanged.connect(self.relayout)
        plot.getViewBox().sigResized.connect(self.relayout)

    def set_style(self, theme: Theme) -> None:
        pen = pg.mkPen(theme.accent, width=max(1.0, theme.line_width / 2), style=Qt.PenStyle.DashLine)
        self._font = QFont()
        self._font.setPointSize(max(7, theme.font_pt - 2))
        for line, label in zip(self.lines, self.labels, strict=True):
            line.setPen(pen)
            label.setColor(theme.accent)
            label.setFont(self._font)
            label.fill = pg.mkBrush(color(theme.background, 190))
        self._key = None

    def set_events(self, events: list[tuple[int, str]]) -> None:
        """Show the newest `capacity` steps with changes; changes at one step share a line."""
        key = tuple(events[-4 * self.capacity:])
        if key == self._key:
            return
        self._key = key
        groups: dict[int, list[str]] = {}
        for step, text in key:
            groups.setdefault(int(step), []).append(str(text))
        shown = list(groups.items())[-self.capacity:]
        self.shown = []
        for i, (line, label) in enumerate(zip(self.lines, self.labels, strict=True)):
            on = i < len(shown)
            self._show(line, on)
            self._show(label, on)
            if not on:
                continue
            step, texts = shown[i]
            full = "; ".join(texts)
            text = round_numbers(full)
            line.setPos(step)
            line.setToolTip(f"step {step}: {full}")
            label.setToolTip(f"step {step}: {full}")
            label.setText(text)
            self.shown.append((step, text))
        self.relayout()

    def _show(self, item: pg.GraphicsObject, on: bool) -> None:
        """Items are in the scene only while shown: a hidden InfiniteLine still recomputes its
        bounding rect on every range change (3.5 ms a frame for 30 of them, measured)."""
        if on and item.scene() is None:
            self.plot.addItem(item, ignoreBounds=True)
        elif not on and item.scene() is not None:
            self.plot.removeItem(item)
        item.setVisible(on)

    def relayout(self, *_args: object) -> None:
        """Place every label in pixels: right of its line or, near the right edge, left of it, in
        the first row (from the top) where it overlaps nothing."""
        if self._in_layout or not self.shown:
            return
        self._in_layout = True
        try:
            vb = self.plot.getViewBox()
            box = vb.sceneBoundingRect()
            if box.width() <= 0 or box.height() <= 0:
                return
            # The labels' own rectangles (TextItem pads its text by a few pixels), one row height.
            sizes = [self.labels[i].boundingRect() for i in range(len(self.shown))]
            height = max(r.height() for r in sizes) + 1
            rows: list[float] = []  # right edge (scene x) of the last label in each row
            order = sorted(range(len(self.shown)), key=lambda i: self.shown[i][0])
            for i in order:
                step = self.shown[i][0]
                label = self.labels[i]
                x = vb.mapViewToScene(QPointF(step, 0)).x()
                width = sizes[i].width() + 1
                left = x + self.GAP_PX
                anchor_x = 0.0
                if left + width > box.right():
                    left, anchor_x = x - self.GAP_PX - width, 1.0
                row = next((r for r, right in enumerate(rows) if left >= right + self.GAP_PX), len(rows))
                top = box.top() + 2 + row * height
                visible = (box.left() <= x <= box.right() and top + height <= box.bottom()
                           and left >= box.left())
                label.setVisible(visible)
                if not visible:
                    continue
                if row == len(rows):
                    rows.append(left + width)
                else:
                    rows[row] = left + width
                label.setAnchor((anchor_x, 0.0))
                pos = vb.mapSceneToView(QPointF(x + (self.GAP_PX if anchor_x == 0 else -self.GAP_PX), top))
                label.setPos(pos)
        finally:
            self._in_layout = False

    def label_rects(self) -> list:
        """Scene rectangles of the labels on screen (for tests and layout checks)."""
        return [label.mapRectToScene(label.boundingRect()) for label in self.labels
                if label.scene() is not None and label.isVisible()]


EMPTY_STEPS = 500  # the step axis of an empty plot: a few hundred steps, where a run begins
HINT = "press Space to train"


def show_empty(plot: pg.PlotItem, empty: bool, x: tuple[float, float] = (0.0, EMPTY_STEPS),
               y: tuple[float, float] = (0.0, 1.0), hint: str = HINT,
               theme: Theme | None = None) -> None:
    """A sensible empty state: fixed ranges (a step axis from 0, losses and accuracies 0–1) and
    a hint in the middle, instead of pyqtgraph's ±0.4 around nothing. With data the plot is
    auto-ranged again. Cheap to call every frame: it acts only when the state flips."""
    item = getattr(plot, "_regsim_hint", None)
    if item is None:
        item = pg.TextItem(hint, anchor=(0.5, 0.5))
        plot.addItem(item, ignoreBounds=True)
        plot._regsim_hint = item  # type: ignore[attr-defined]
        plot._regsim_empty = None  # type: ignore[attr-defined]
    if item.toPlainText() != hint:  # the hint may change while empty (grokking: the dataset arrived)
        item.setText(hint)
    if theme is not None:
        item.setColor(mix(theme.foreground, theme.background, 0.35))
        font = QFont()
        font.setPointSize(theme.font_pt)
        item.setFont(font)
    if plot._regsim_empty == empty:  # type: ignore[attr-defined]
        return
    plot._regsim_empty = empty  # type: ignore[attr-defined]
    item.setVisible(empty)
    if empty:
        plot.setRange(xRange=x, yRange=y, padding=0.02)  # also turns auto-range off
        item.setPos((x[0] + x[1]) / 2, (y[0] + y[1]) / 2)
    else:
        plot.enableAutoRange()


def limit_degenerate(plot: pg.PlotItem, min_x: float = 50.0, min_y: float = 0.02,
                     y_bounds: tuple[float, float] | None = None) -> None:
    """Minimum spans, so one point (or a flat curve) never gets a ±0.4 or 0.140–0.148 range; a
    step axis that never goes far below 0; `y_bounds` for quantities with a range (accuracy)."""
    limits = dict(minXRange=min_x, minYRange=min_y, xMin=-0.05 * EMPTY_STEPS)
    if y_bounds is not None:
        limits.update(yMin=y_bounds[0], yMax=y_bounds[1])
    plot.getViewBox().setLimits(**limits)
