"""Small Qt widgets shared by the window and the panels (no pyqtgraph here: the dock uses them too)."""

from __future__ import annotations

import unicodedata

from PySide6 import QtGui
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QStyle, QStyleOption, QWidget

MIN_CHARS = 12  # a LiveLabel may be squeezed to about this many characters (then it elides)

# Combining marks that Qt (6.x, HarfBuzz) draws away from their letter in DejaVu Sans, the default
# font here, when the letter has no precomposed form: the hat of "v̂" (v + U+0302) landed over the
# space before the word, and moved by a pixel between paints depending on which font sizes Qt had
# laid out before (a loss-surface export at slide size shifted ~21 pixels of the live "√v̂ᵢ" label).
# Measured per mark: U+0302 and U+0307 fail over v, m, θ, x; U+0303 and U+0304 are drawn right
# (and a joiner before U+0304 would push the macron off "L̄"), so only these two are joined.
DETACHED_MARKS = ("\u0302", "\u0307")  # combining circumflex (v̂, m̂), combining dot above (v̇)
ZWJ = "\u200d"  # zero-width joiner: with it, Qt places the mark over the letter, at any font size


def drawable_text(text: str) -> str:
    """`text` as Qt draws it right: precomposed where Unicode has a character for it (e + U+0302 →
    ê), and a zero-width joiner before each of the marks in DETACHED_MARKS that remain. Only what is
    drawn changes: the same letters and marks, in the same order. Idempotent."""
    text = unicodedata.normalize("NFC", text)
    for mark in DETACHED_MARKS:
        text = text.replace(ZWJ + mark, mark).replace(mark, ZWJ + mark)
    return text


class MathLabel(QLabel):
    """A QLabel for text with mathematical accents (v̂, m̂ from the core's formulas): see
    `drawable_text`. The text is stored as drawn; `text()` returns it with the joiners."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(drawable_text(text), parent)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        super().setText(drawable_text(text))


class LiveLabel(QLabel):
    """A QLabel for text that changes every frame (a readout, a step counter) without relayouts,
    and that never widens the window.

    A QLabel asks its layout to recompute on every setText. When the new text is a little wider or
    taller ("9.87" → "10.02"), the layout moves the plots beside it by a pixel and every one of them
    repaints: measured on the Weights tab, a frame with new numbers cost two full paint passes
    instead of one (50 ms instead of 25). Here the size hint only ever grows (so nothing beside the
    label moves once it has seen its widest text), identical text is not set again, and the label
    never asks for height-for-width (which lays the rich text out again on every layout pass).
    The hints start over when the font or the style sheet changes (a theme switch).

    The *minimum* size hint does not follow the text: a plain QLabel's minimum width is its whole
    text, so one long message (a divergence explanation on one line) once grew the window from 1400
    to 2087 px on a 1600 px screen and squashed the control dock, and a hint that only grows kept it
    so. Here the minimum is a few characters wide; plain text that does not fit is elided ("…") and
    the whole text goes into the tooltip, so nothing is lost.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self._hint = QSize(0, 0)
        self._min_hint = QSize(0, 0)
        self._hint_key: tuple = ()
        self._own_tooltip = ""  # a tooltip set by the owner; the elided text is shown below it

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        if text != self.text():
            super().setText(text)
            self._update_tooltip()

    def setToolTip(self, tip: str) -> None:  # noqa: N802
        self._own_tooltip = tip
        self._update_tooltip()

    def is_elided(self) -> bool:
        """True when plain text is wider than the label and is drawn cut short with an ellipsis."""
        if self.wordWrap() or self._is_rich():
            return False
        longest = max((self.fontMetrics().horizontalAdvance(line) for line in self.text().split("\n")),
                      default=0)
        return longest > self.contentsRect().width()

    def _is_rich(self) -> bool:
        fmt = self.textFormat()
        return fmt == Qt.TextFormat.RichText or (fmt == Qt.TextFormat.AutoText
                                                 and QtGui.Qt.mightBeRichText(self.text()))

    def _update_tooltip(self) -> None:
        tip = self._own_tooltip
        if self.is_elided():
            tip = self.text() + (f"\n\n{tip}" if tip else "")
        super().setToolTip(tip)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._update_tooltip()

    def _reset_on_restyle(self) -> None:
        """After a font or style-sheet change (a theme switch) the hints start over."""
        key = (self.font().key(), self.styleSheet(), self.wordWrap())
        if key != self._hint_key:
            self._hint_key = key
            self._hint, self._min_hint = QSize(0, 0), QSize(0, 0)

    def sizeHint(self) -> QSize:  # noqa: N802
        self._reset_on_restyle()
        self._hint = self._hint.expandedTo(super().sizeHint())
        return QSize(self._hint)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        self._reset_on_restyle()
        natural = super().minimumSizeHint()
        cap = self.fontMetrics().averageCharWidth() * MIN_CHARS + 2 * self.margin()
        self._min_hint = self._min_hint.expandedTo(QSize(min(natural.width(), cap), natural.height()))
        return QSize(self._min_hint)

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return False

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        if not self.is_elided():
            super().paintEvent(event)
            return
        # Plain text wider than the label: draw each line elided at the right, in the label's
        # alignment and palette (what QLabel would draw, cut short instead of clipped mid-glyph).
        painter = QPainter(self)
        opt = QStyleOption()
        opt.initFrom(self)
        self.style().drawPrimitive(QStyle.PrimitiveElement.PE_Widget, opt, painter, self)
        self.drawFrame(painter)
        rect = self.contentsRect().adjusted(self.margin(), self.margin(), -self.margin(), -self.margin())
        fm = self.fontMetrics()
        lines = [fm.elidedText(line, Qt.TextElideMode.ElideRight, rect.width())
                 for line in self.text().split("\n")]
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(rect, int(self.alignment()), "\n".join(lines))
        painter.end()
