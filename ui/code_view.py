"""A read-only, syntax-highlighted code view whose lines are picked by a click or ↑/↓.

pygments colours the code through superqt's CodeSyntaxHighlight (on the document, so the editor's
background stays the theme's). One line can be *marked* (a tinted background: the line that makes
an update rule L2 or decoupled) and one is *selected* (the accent tint); spans of a line can be
emphasised (the live values written after the code). No caret, no text selection: the view is for
reading and pointing.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontDatabase, QPalette, QTextCharFormat, QTextCursor, QTextFormat
from PySide6.QtWidgets import QPlainTextEdit, QSizePolicy, QTextEdit, QWidget
from superqt.utils import CodeSyntaxHighlight

from ui.theme import Theme


def _blend(a: str, b: str, t: float) -> QColor:
    """The colour between `a` (t = 0) and `b` (t = 1); here, not ui.panels.style: ui modules
    outside panels/ must not import from it (the import contract's no-cycle rule)."""
    ca, cb = QColor(a), QColor(b)
    return QColor(round(ca.red() + (cb.red() - ca.red()) * t),
                  round(ca.green() + (cb.green() - ca.green()) * t),
                  round(ca.blue() + (cb.blue() - ca.blue()) * t))


class CodeView(QPlainTextEdit):
    """Python source, highlighted; `line_picked(index)` when the user picks a line."""

    line_picked = Signal(int)

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setCursorWidth(0)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        # A small window scrolls the code rather than growing (see update_code's minimum height).
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.viewport().installEventFilter(self)
        self._highlighter: CodeSyntaxHighlight | None = None
        self._style = ""
        self.theme: Theme | None = None
        self.selected = -1
        self.marked = -1
        self._spans: list[tuple[int, int, int]] = []  # (line, start column, length) emphasised
        self.setPlainText(text)

    def set_code(self, text: str) -> None:
        """New text (only when it differs: a re-set would reset the highlighting work)."""
        if text != self.toPlainText():
            self.setPlainText(text)
            self._refresh()

    def line_count(self) -> int:
        return self.document().blockCount()

    def select_line(self, index: int) -> None:
        self.selected = index
        self._refresh()

    def mark_line(self, index: int) -> None:
        self.marked = index
        self._refresh()

    def emphasise(self, spans: list[tuple[int, int, int]]) -> None:
        """Draw these (line, column, length) spans bold in the accent colour."""
        if spans != self._spans:
            self._spans = spans
            self._refresh()

    def line_rect(self, index: int):
        """The on-screen rectangle of line `index` (tests click it)."""
        return self.cursorRect(QTextCursor(self.document().findBlockByNumber(index)))

    def restyle(self, theme: Theme, point_size: int) -> None:
        self.theme = theme
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setPointSize(point_size)
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.setFont(mono)
        palette = self.palette()
        palette.setColor(QPalette.ColorRole.Base, QColor(theme.background))
        palette.setColor(QPalette.ColorRole.Text, QColor(theme.foreground))
        self.setPalette(palette)
        self.setStyleSheet(f"QPlainTextEdit {{ border: none; background: {theme.background}; "
                           f"color: {theme.foreground}; }}")
        style = "monokai" if QColor(theme.background).lightness() < 128 else "default"
        if self._highlighter is None:
            self._highlighter = CodeSyntaxHighlight(self.document(), "python", style)
            self._style = style
        elif style != self._style:
            self._style = style
            self._highlighter.setTheme(style)
        self._refresh()

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt's name)
        if watched is self.viewport() and event.type() == QEvent.Type.MouseButtonPress:
            self.setFocus()
            self.line_picked.emit(self.cursorForPosition(event.position().toPoint()).blockNumber())
            return True
        return super().eventFilter(watched, event)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down) and self.selected >= 0:
            step = -1 if event.key() == Qt.Key.Key_Up else 1
            self.line_picked.emit(min(self.line_count() - 1, max(0, self.selected + step)))
            return
        super().keyPressEvent(event)

    def _refresh(self) -> None:
        if self.theme is None:
            return
        sels = []
        bg = self.theme.background
        for index, colour, share in ((self.marked, self.theme.val, 0.22),
                                     (self.selected, self.theme.accent, 0.30)):
            if not 0 <= index < self.line_count():
                continue
            sel = QTextEdit.ExtraSelection()
            sel.format.setBackground(_blend(bg, colour, share))
            sel.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
            cursor = QTextCursor(self.document().findBlockByNumber(index))
            cursor.clearSelection()
            sel.cursor = cursor
            sels.append(sel)
        fmt = QTextCharFormat()
        fmt.setForeground(QColor(self.theme.accent))
        fmt.setFontWeight(QFont.Weight.Bold)
        for line, col, length in self._spans:
            block = self.document().findBlockByNumber(line)
            if not block.isValid():
                continue
            sel = QTextEdit.ExtraSelection()
            sel.format = fmt
            cursor = QTextCursor(block)
            cursor.setPosition(block.position() + col)
            cursor.setPosition(block.position() + min(col + length, block.length() - 1),
                               QTextCursor.MoveMode.KeepAnchor)
            sel.cursor = cursor
            sels.append(sel)
        self.setExtraSelections(sels)
