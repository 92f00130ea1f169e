"""Small Qt widgets shared by the window and the panels (no pyqtgraph here: the dock uses them too)."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QLabel, QWidget


class LiveLabel(QLabel):
    """A QLabel for text that changes every frame (a readout, a step counter) without relayouts.

    A QLabel asks its layout to recompute on every setText. When the new text is a little wider or
    taller ("9.87" → "10.02"), the layout moves the plots beside it by a pixel and every one of them
    repaints: measured on the Weights tab, a frame with new numbers cost two full paint passes
    instead of one (50 ms instead of 25). Here the size hints only ever grow (so nothing beside the
    label moves once it has seen its widest text), identical text is not set again, and the label
    never asks for height-for-width (which lays the rich text out again on every layout pass).
    The hints start over when the font or the style sheet changes (a theme switch).
    """

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self._hint = QSize(0, 0)
        self._min_hint = QSize(0, 0)
        self._hint_key: tuple = ()

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        if text != self.text():
            super().setText(text)

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
        self._min_hint = self._min_hint.expandedTo(super().minimumSizeHint())
        return QSize(self._min_hint)

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return False
