"""Theme styling shared by every panel: one place decides how a plot looks on screen and on a slide.

pyqtgraph 0.14 quirks handled here: `enableAutoSIPrefix(False)` still computes a scale (the step axis
became "3e+06", a loss label "loss (x0.001)"); the title row is fixed at 30 px, too short for slide
fonts; legends do not re-render existing labels on `setLabelTextSize`; FillBetweenItem rebuilds its
path with slow Python polygon concatenation.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
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


def set_axis_label(plot: pg.PlotItem, side: str, text: str, theme: Theme) -> None:
    """An axis label in the theme's colour and size (skipped when unchanged: it relayouts)."""
    axis = plot.getAxis(side)
    if axis.labelText != text or axis.labelStyle.get("font-size") != f"{theme.font_pt}pt":
        axis.setLabel(text, color=theme.foreground, **{"font-size": f"{theme.font_pt}pt"})
