"""Painting a laid-out figure: into a QImage (PNG, clipboard) or a QSvgGenerator (SVG), with the
figure's margin and caption strip, and writing the file.

The figure is painted with `QWidget.render` into a `QImage` of exactly the requested pixel size
(device pixel ratio = layout scale, so a 4K figure is the 1080p layout twice as sharp, and a HiDPI
screen does not double it), or into a `QSvgGenerator` for vector output. pyqtgraph's own SVG exporter
is not used: on Qt ≥ 6.11 it raises ValueError in `correctCoordinates` (pyqtgraph issues #3485,
#3495). Every file is written atomically (`regsim.files`), so a failed export never leaves a
half-written figure; every failure is a ValueError with a message that names the problem (missing or
unwritable folder, bad size, unknown format).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PySide6.QtCore import QBuffer, QIODevice, QPoint, QPointF, QRectF, QSize, Qt
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
from PySide6.QtWidgets import QWidget

from regsim.files import atomic_write_bytes
from ui.export.files import (
    DEFAULT_SIZE,
    MAX_SIDE,
    MIN_SIDE,
    check_format,
    check_size,
    check_target,
)
from ui.export.stage import export_mode, laid_out, panels_in, resolve_theme, settle, themed, warm_up_axes
from ui.panels.base import Panel
from ui.theme import SCREEN, Theme

LAYOUT_HEIGHT = 1080  # figures are laid out this high and scaled to the requested pixels


def figure_margin(height: int) -> int:
    """Pixel margin left, right and above a figure: 1.5 % of its height (16 px at 1080)."""
    return round(height * 0.015)


def caption_height(height: int) -> int:
    """Pixel height of the caption strip: about 4.5 % of the figure, legible at the back of a room."""
    return max(16, round(height * 0.045))


# ------------------------------------------------------------------------------------ painting


@contextmanager
def figure_painter(device: QPaintDevice, full: QRectF, background: str) -> Iterator[QPainter]:
    """A painter on `device` for one figure: checked open, antialiased (lines, text, scaled
    pixmaps), the whole figure `full` filled with `background`, and always ended, even when
    painting fails (a painter left active on a QImage or QSvgGenerator crashes Qt later)."""
    painter = QPainter(device)
    if not painter.isActive():
        raise ValueError("cannot paint the figure (the paint device did not open)")
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.fillRect(full, QColor(background))
        yield painter
    finally:
        painter.end()


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


def paint_widget(target: QWidget, painter: QPainter, rect: QRectF) -> None:
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


def dock_columns(controls: QWidget, n: int) -> list[tuple[int, int]]:
    """The controls cut into `n` vertical ranges (y0, y1), each cut between two of its top-level
    boxes (never through a control), as even as the boxes allow."""
    from PySide6.QtWidgets import QGroupBox

    ch = max(1, controls.height())
    if n <= 1:
        return [(0, ch)]
    tops = sorted({b.geometry().top() for b in controls.findChildren(QGroupBox)
                   if b.parentWidget() is controls and b.isVisible()} - {0})
    cuts: list[int] = []
    for k in range(1, n):
        want = ch * k / n
        best = min((t for t in tops if t not in cuts), key=lambda t: abs(t - want), default=None)
        if best is not None:
            cuts.append(best)
    edges = [0, *sorted(cuts), ch]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def window_slide_layout(window: QWidget, content: QRectF, theme: Theme) -> tuple[QRectF, QRectF, float]:
    """Where a slide figure of the window puts the controls and the panel, and the controls' scale.

    The controls are drawn as they are on screen (their live layout, never resized, so nothing is
    truncated that is not truncated live), scaled so that their text comes close to the panels'
    slide type: at most `theme` font size × 0.8 (labels beside large plot text read as secondary),
    at most the figure's height, at most a third of its width. A dock taller than that allows (it
    grew to ~875 px with the per-layer and architecture settings: 13 px text beside 29 px) is drawn
    in two columns, cut between its boxes. The panel gets the rest, laid out at that size like a
    panel figure. The old window figure was the live window resized to the slide: ~9 px dock text,
    elided ("moons_dr"), beside 29 px panel text (issue 8 #19).
    """
    dock, panel, f, _ = _window_slide_columns(window, content, theme)
    return dock, panel, f


def _window_slide_columns(window: QWidget, content: QRectF, theme: Theme
                          ) -> tuple[QRectF, QRectF, float, list[tuple[int, int]]]:
    controls = window.controls
    cw = max(1, controls.width())
    own_px = max(1, QFontInfo(controls.font()).pixelSize())
    slide_px = theme.font_pt * max(1, window.logicalDpiY()) / 72
    gap = content.height() * 0.02
    best: tuple[float, list[tuple[int, int]]] | None = None
    for n in (1, 2):
        ranges = dock_columns(controls, n)
        tall = max(b - a for a, b in ranges)
        f = min(0.8 * slide_px / own_px, content.height() / tall,
                (content.width() * (0.3 if n == 1 else 0.42) - gap * (len(ranges) - 1))
                / (cw * len(ranges)))
        # A second column only where one column's text would read small (under 0.6 of the slide type).
        if best is None or (f > best[0] and best[0] * own_px < 0.6 * slide_px):
            best = (f, ranges)
    f, ranges = best
    tall = max(b - a for a, b in ranges)
    width = cw * f * len(ranges) + gap * (len(ranges) - 1)
    dock = QRectF(content.left(), content.top(), width, tall * f)
    panel = QRectF(dock.right() + gap, content.top(), content.right() - dock.right() - gap,
                   content.height())
    return dock, panel, f, ranges


def _render_window_slide(window: QWidget, device: QPaintDevice, full: QRectF, content: QRectF,
                         strip: float, theme: Theme, scale: float, caption: str | None) -> None:
    """A slide of the window: its controls (scaled, as on screen, in one or two columns) beside the
    current panel (laid out and themed like a panel figure). The live window is not resized."""
    dock, panel_rect, f, ranges = _window_slide_columns(window, content, theme)
    gap = content.height() * 0.02
    cw = max(1, window.controls.width())
    panel = window.current_panel()
    size = QSize(max(1, round(panel_rect.width())), max(1, round(panel_rect.height())))
    with (laid_out(panel, size) as target, themed([panel], theme, scale), export_mode(panel)):
        warm_up_axes(target)
        with figure_painter(device, full, theme.background) as painter:
            for i, (y0, y1) in enumerate(ranges):
                painter.save()
                left = dock.left() + i * (cw * f + gap)
                painter.setClipRect(QRectF(left, dock.top(), cw * f, (y1 - y0) * f))
                painter.translate(left, dock.top())
                painter.scale(f, f)
                window.controls.render(painter, QPoint(0, 0), QRegion(0, y0, cw, y1 - y0),
                                       QWidget.RenderFlag.DrawWindowBackground
                                       | QWidget.RenderFlag.DrawChildren)
                painter.restore()
            paint_widget(target, painter, panel_rect)
            if caption:
                draw_caption(painter, QRectF(0, content.bottom(), full.width(), strip), caption,
                             theme)


def _render_laid_out(widget: QWidget, device: QPaintDevice, layout_size: QSize, full: QRectF,
                     content: QRectF, strip: float, panels: list[Panel], chosen: Theme | None,
                     shown: Theme, scale: float, caption: str | None) -> None:
    with (laid_out(widget, layout_size) as target, themed(panels, chosen, scale),
          export_mode(widget)):
        warm_up_axes(target)
        with figure_painter(device, full, shown.background) as painter:
            paint_widget(target, painter, content)
            if caption:
                draw_caption(painter, QRectF(0, content.bottom(), full.width(), strip), caption,
                             shown)


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
    path = check_target(path, "png")
    return atomic_write_bytes(path, image_bytes(image, "PNG"))


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
    path = check_target(path, "svg")
    return atomic_write_bytes(path, svg_bytes(widget, size, theme, caption, title=path.stem))


def export_figure(widget: QWidget, path: str | os.PathLike, fmt: str | None = None,
                  size: tuple[int, int] = DEFAULT_SIZE, theme: str | Theme | None = "slide",
                  caption: str | None = None) -> Path:
    """One figure file; the format is `fmt` or, when None, the file's extension."""
    path = Path(path)
    fmt = check_format(fmt if fmt is not None else (path.suffix or "(none)"))
    check_size(size)
    resolve_theme(theme)
    check_target(path, fmt)
    if fmt == "svg":
        return write_svg(widget, path, size, theme, caption)
    return write_png(render_widget(widget, size, theme, caption), path)


def copy_to_clipboard(image: QImage) -> None:
    """Put the image on the system clipboard, ready to paste into a slide."""
    if image.isNull():
        raise ValueError("the image is empty: nothing to copy")
    QGuiApplication.clipboard().setImage(image)


