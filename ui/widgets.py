"""Small Qt widgets shared by the window and the panels (no pyqtgraph here: the dock uses them too)."""

from __future__ import annotations

import unicodedata

from PySide6 import QtGui
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QLayout, QLayoutItem, QStyle, QStyleOption, QWidget

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


class FlowLayout(QLayout):
    """A row of controls that wraps onto more lines when the panel is narrow, like words in a
    paragraph. A QHBoxLayout's minimum width is the sum of its items: the Sub-network ensemble's two
    rows of eleven controls asked for 717 px, which set the window's minimum width to 1 054 px (a
    1 024 px lecture window could not be had, and exports grew the window from 1 200 to 1 258 px).
    Here the minimum width is the widest single item; the height follows the width
    (`heightForWidth`). Items keep their size hints; an item added with `stretch` > 0 (a status
    label) takes the rest of its line and may be elided by its own widget."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 6) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._stretch: dict[int, int] = {}
        self.setContentsMargins(0, 0, 0, 0)
        self.setSpacing(spacing)

    # -- QLayout's interface ------------------------------------------------------------------
    def addItem(self, item: QLayoutItem) -> None:  # noqa: N802 (Qt's name)
        self._items.append(item)

    def addWidget(self, widget: QWidget, stretch: int = 0) -> None:  # noqa: N802
        super().addWidget(widget)
        if stretch:
            self._stretch[id(self._items[-1])] = stretch

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:  # noqa: N802
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:  # noqa: N802
        if 0 <= index < len(self._items):
            item = self._items.pop(index)
            self._stretch.pop(id(item), None)
            return item
        return None

    def expandingDirections(self) -> Qt.Orientation:  # noqa: N802
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        return self._place(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:  # noqa: N802
        super().setGeometry(rect)
        self._place(rect, move=True)

    def sizeHint(self) -> QSize:  # noqa: N802
        """One line of everything (what a wide panel shows)."""
        items = self._shown()
        w = sum(i.sizeHint().width() for i in items) + self.spacing() * max(0, len(items) - 1)
        h = max((i.sizeHint().height() for i in items), default=0)
        m = self.contentsMargins()
        return QSize(w + m.left() + m.right(), h + m.top() + m.bottom())

    def minimumSize(self) -> QSize:  # noqa: N802
        """The widest single item: every other width wraps."""
        size = QSize()
        for item in self._shown():
            size = size.expandedTo(item.minimumSize())
        m = self.contentsMargins()
        return size + QSize(m.left() + m.right(), m.top() + m.bottom())

    # -- internals ----------------------------------------------------------------------------
    def _shown(self) -> list[QLayoutItem]:
        return [i for i in self._items if not (i.widget() is not None and i.widget().isHidden())]

    def _place(self, rect: QRect, move: bool) -> int:
        """Lay the items out in lines inside `rect` (moving them when `move`); the height used."""
        m = self.contentsMargins()
        left, right = rect.x() + m.left(), rect.right() - m.right()
        x, y, line_h = left, rect.y() + m.top(), 0
        line: list[tuple[QLayoutItem, int]] = []
        gap = self.spacing()

        def flush() -> None:
            nonlocal x
            if not line:
                return
            # Stretch items take what is left of the line (beyond their hint).
            spare = right + 1 - x + gap
            stretch = sum(self._stretch.get(id(it), 0) for it, _ in line)
            cx = left
            for it, w in line:
                extra = spare * self._stretch.get(id(it), 0) // stretch if stretch else 0
                h = it.sizeHint().height()
                if move:
                    it.setGeometry(QRect(cx, y + (line_h - h) // 2, w + extra, h))
                cx += w + extra + gap
            line.clear()

        for item in self._shown():
            hint = item.sizeHint()
            w = min(hint.width(), max(1, right - left + 1))
            if line and x + w > right + 1:
                flush()
                y += line_h + gap
                x, line_h = left, 0
            line.append((item, w))
            x += w + gap
            line_h = max(line_h, hint.height())
        flush()
        return y + line_h + m.bottom() - rect.y()
