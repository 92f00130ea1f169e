"""Dropout from scratch: the NumPy code of inverted dropout, and the live values flowing through it.

    forward (training):  m = [u ≥ p], u ~ U(0, 1)  ⇒  m ~ Bernoulli(1 − p);   y = m ⊙ x / (1 − p)
    backward:            dL/dx = dL/dy ⊙ m / (1 − p)      (the same mask, the same scale)
    inference:           y = x

Why a panel: the seed says dropout "is surprisingly simple — just a binary mask and a scaling
factor", and the surest way to believe it is to watch the ten lines run on the real network. The
code on the left is regsim.scratch.SOURCE, the very text that is executed; clicking a line (or
moving to it with ↑/↓) shows the arrays on it for the live batch at the chosen site: the module's
input x, the uniforms u the run drew, the mask m, the output y, the upstream gradient dL/dy and
the downstream dL/dx, as small heat tables (first examples × first units). Beside them: the
run's own dropout module (its hooked output and autograd's gradient) and torch's nn.Dropout on
the same x, with the largest difference over the whole batch. nn.Dropout draws its own mask m′;
given m′ the same NumPy lines reproduce its output. Eval shows the identity, y = x.

The values come with the snapshot part "scratch" (computed in regsim.scratch); this panel draws
numpy only.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase, QFontMetrics, QPalette, QTextCursor, QTextFormat
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import CodeSyntaxHighlight

from regsim.scratch import ScratchSite, function_of_line, line_variables, source_lines
from regsim.snapshot import SCRATCH_SITE, History, Snapshot
from ui.panels.base import Panel
from ui.panels.style import fill_background, mix
from ui.theme import Theme
from ui.widgets import LiveLabel

LINES = source_lines()
SOURCE_TEXT = "\n".join(LINES)
DEFAULT_LINE = next(i for i, line in enumerate(LINES) if line.strip().startswith("y = x * m"))
RETURN_IDENTITY = next(i for i, line in enumerate(LINES) if "return x, None" in line)
BACKWARD_IDENTITY = next(i for i, line in enumerate(LINES) if line.strip().startswith("return dy"))
MAX_BLOCKS = 3  # arrays per table
SHAPE = {"screen": (6, 6), "slide": (3, 4)}  # (examples, units) shown, by theme

NAMES = {"x": "x  (the module's input)", "u": "u  (the run's uniforms)", "m": "m = [u ≥ p]",
         "y": "y = x·m/(1 − p)", "dy": "dy = dL/dy  (from autograd)", "dx": "dx = dy·m/(1 − p)"}
TIP = ("Inverted dropout from scratch.\nTraining: m = [u ≥ p] with u ~ U(0, 1), so m ~ Bernoulli(1 − p); "
       "y = m ⊙ x / (1 − p), hence E[y] = x.\nBackward: dL/dx = dL/dy ⊙ m / (1 − p): the same mask, the "
       "same scale.\nInference: y = x (nothing to rescale: that is why it is called inverted).\n"
       "Click a line (or use ↑/↓) to see its arrays for the live batch.")


def scaled(a: np.ndarray) -> tuple[np.ndarray, int]:
    """(a / 10^k, k): k chosen so the largest |value| shows as 1–99 with two decimals (k = 0 when
    that is already so). Gradients of a mean loss are ~1e-3: a shared ×10⁻³ keeps them readable."""
    finite = np.abs(a[np.isfinite(a)])
    top = float(finite.max()) if finite.size else 0.0
    if top == 0.0 or 0.1 <= top < 100.0:
        return a, 0
    k = math.floor(math.log10(top))
    return a / 10.0**k, k


def superscript(k: int) -> str:
    return str(k).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


class HeatTable(QTableWidget):
    """Blocks of small arrays as numbers on coloured cells: a title row, then one row per example.

    Rows, columns and spans are set up only when the block layout changes; a frame only writes
    texts and colours into existing items."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.horizontalHeader().hide()
        self.verticalHeader().hide()
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setShowGrid(False)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
        self._layout: tuple | None = None
        self.theme: Theme | None = None
        self.blocks_shown: list[tuple[str, np.ndarray | None]] = []  # tests read what is shown

    def _items(self, rows: int, cols: int, heights: tuple[int, ...]) -> None:
        key = (rows, cols, heights)
        if key == self._layout:
            return
        self._layout = key
        self.clearSpans()
        self.setRowCount(rows)
        self.setColumnCount(cols)
        for r in range(rows):
            for c in range(cols):
                if self.item(r, c) is None:
                    item = QTableWidgetItem("")
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    self.setItem(r, c, item)
        row = 0
        for h in heights:
            self.setSpan(row, 0, 1, cols)
            row += h + 1

    def show_blocks(self, blocks: list[tuple[str, np.ndarray | None]], theme: Theme,
                    shape: tuple[int, int], units: np.ndarray | None = None) -> None:
        """blocks: (title, (R, K) array or None for a title-only row); `units`: the unit number
        of each column, said in the first block's title."""
        self.theme = theme
        rows_n, units_n = shape
        heights = tuple(0 if a is None else min(rows_n, a.shape[0]) for _, a in blocks)
        cols = 1 + max([min(units_n, a.shape[1]) for _, a in blocks if a is not None] + [1])
        self._items(sum(h + 1 for h in heights), cols, heights)
        fg, bg = QColor(theme.foreground), QColor(theme.background)
        pos, neg = QColor(theme.train), QColor(theme.val)
        row = 0
        self.blocks_shown = []
        for (title, a), h in zip(blocks, heights, strict=True):
            head = self.item(row, 0)
            if a is not None:
                a = np.asarray(a, dtype=np.float64)[:h, :cols - 1]
                shown, k = scaled(a)
                title = title + (f"   ×10{superscript(k)}" if k else "")
            if a is not None and units is not None and not any(b is not None for _, b in
                                                               self.blocks_shown):
                title += "   units " + ", ".join(str(int(u)) for u in units[:cols - 1])
            head.setText(title)
            head.setTextAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
            head.setForeground(fg)
            head.setBackground(bg)
            self.blocks_shown.append((title, a))
            row += 1
            if a is None:
                continue
            finite = np.abs(shown[np.isfinite(shown)])
            top = float(finite.max()) if finite.size else 1.0
            for r in range(h):
                label = self.item(row + r, 0)
                label.setText(f"b{r}")
                label.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                label.setForeground(mix(bg, fg, 0.6))
                label.setBackground(bg)
                for c in range(1, cols):
                    item = self.item(row + r, c)
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    v = shown[r, c - 1] if c - 1 < shown.shape[1] else np.nan
                    if not np.isfinite(v):
                        item.setText("—")
                        item.setBackground(bg)
                    else:
                        item.setText(f"{v:.2f}")
                        t = min(1.0, abs(v) / top) if top > 0 else 0.0
                        item.setBackground(mix(bg, pos if v >= 0 else neg, 0.65 * t))
                    item.setForeground(fg)
            row += h
        for r in range(row, self.rowCount()):
            for c in range(self.columnCount()):
                self.item(r, c).setText("")

    def restyle(self, theme: Theme) -> None:
        font = self.font()
        font.setPointSize(max(7, theme.font_pt - (6 if theme.name == "slide" else 1)))
        self.setFont(font)
        metrics = QFontMetrics(font)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)  # fit the width
        self.horizontalHeader().setMinimumSectionSize(8)
        self.verticalHeader().setDefaultSectionSize(metrics.height() + 4)
        self.verticalHeader().setMinimumSectionSize(8)
        palette = self.palette()
        for role in (QPalette.ColorRole.Base, QPalette.ColorRole.Window):
            palette.setColor(role, QColor(theme.background))
        palette.setColor(QPalette.ColorRole.Text, QColor(theme.foreground))
        self.setPalette(palette)
        self.setStyleSheet(f"QTableWidget {{ border: none; background: {theme.background}; }} "
                           "QTableWidget::item { padding: 0px; }")


class ScratchPanel(Panel):
    """The NumPy dropout code, clickable, with the live batch's values and nn.Dropout's beside it."""

    key = "scratch"
    title = "Dropout from scratch"

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self._mode = "train"
        self._line = DEFAULT_LINE
        self._drawn: Snapshot | None = None
        self._dirty = True
        self._sites: tuple[str, ...] = ()
        self._highlighter: CodeSyntaxHighlight | None = None
        self._style = ""

        self.train_button = QPushButton("Train")
        self.eval_button = QPushButton("Eval")
        self.mode_group = QButtonGroup(self)
        for b, tip in ((self.train_button, "model.train(): y = m ⊙ x / (1 − p)"),
                       (self.eval_button, "model.eval(): dropout is the identity, y = x")):
            b.setCheckable(True)
            b.setToolTip(tip)
            self.mode_group.addButton(b)
        self.train_button.setChecked(True)
        self.train_button.toggled.connect(self._on_mode)
        self.site_combo = QComboBox()
        self.site_combo.setToolTip("The dropout site whose live values the code shows")
        self.site_combo.currentIndexChanged.connect(self._site_chosen)
        self.status_label = LiveLabel("waiting for the first snapshot…")
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        top = QHBoxLayout()
        top.addWidget(self.train_button)
        top.addWidget(self.eval_button)
        top.addSpacing(16)
        site_label = QLabel("site:")
        site_label.setProperty("export_hidden", True)
        top.addWidget(site_label)
        top.addWidget(self.site_combo)
        top.addSpacing(16)
        top.addWidget(self.status_label, 1)

        self.code = QPlainTextEdit()
        self.code.setReadOnly(True)
        self.code.setCursorWidth(0)  # a line is selected by its highlight, no blinking caret
        self.code.setPlainText(SOURCE_TEXT)
        self.code.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        # No text interaction (no caret, no selection to paint): a click or ↑/↓ picks a line
        # through the event filter below.
        self.code.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self.code.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.code.viewport().installEventFilter(self)
        self.code.installEventFilter(self)
        self.code.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
        self.code.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.code.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.code.setToolTip(TIP)

        self.line_label = LiveLabel()
        self.line_label.setTextFormat(Qt.TextFormat.PlainText)
        self.numpy_title = LiveLabel("from scratch (NumPy)")
        self.torch_title = LiveLabel("torch: this run's module and nn.Dropout")
        self.numpy_table = HeatTable()
        self.torch_table = HeatTable()
        self.agree_label = QLabel()
        self.agree_label.setWordWrap(True)
        self.agree_label.setToolTip("Largest |difference| over the whole batch at this site, not "
                                    "only the corner shown")
        tables = QHBoxLayout()
        for title, table in ((self.numpy_title, self.numpy_table), (self.torch_title, self.torch_table)):
            col = QVBoxLayout()
            col.addWidget(title)
            col.addWidget(table, 1)
            tables.addLayout(col, 1)
        right = QVBoxLayout()
        right.addWidget(self.line_label)
        right.addLayout(tables, 1)
        right.addWidget(self.agree_label)
        body = QHBoxLayout()
        body.addWidget(self.code, 1)
        body.addLayout(right, 1)
        root = QVBoxLayout(self)
        root.addLayout(top)
        root.addLayout(body, 1)
        self.apply_theme(self.theme)
        self.select_line(DEFAULT_LINE)

    # ---------------------------------------------------------------------------- Panel contract
    def ingest(self, snap: Snapshot) -> None:
        self.snapshot = snap

    def redraw(self) -> None:
        snap = self.snapshot
        if snap is self._drawn and not self._dirty:
            return
        self._drawn, self._dirty = snap, False
        site = self._site(snap)
        self._draw(snap, site)

    def reset(self) -> None:
        super().reset()
        self._drawn = None
        self._dirty = True
        self.redraw()

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        fill_background(self, theme)
        font = self.font()
        font.setPointSize(theme.font_pt)
        self.setFont(font)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setPointSize(max(7, theme.font_pt - (8 if theme.name == "slide" else 0)))
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.code.setFont(mono)
        code_palette = self.code.palette()
        code_palette.setColor(QPalette.ColorRole.Base, QColor(theme.background))
        code_palette.setColor(QPalette.ColorRole.Text, QColor(theme.foreground))
        self.code.setPalette(code_palette)
        self.code.setStyleSheet(f"QPlainTextEdit {{ border: none; background: {theme.background}; "
                                f"color: {theme.foreground}; }}")
        style = "monokai" if QColor(theme.background).lightness() < 128 else "default"
        if self._highlighter is None:  # pygments through superqt; on the document, not the
            # editor, so the editor's background stays the theme's (set above)
            self._highlighter = CodeSyntaxHighlight(self.code.document(), "python", style)
            self._style = style
        elif style != self._style:
            self._style = style
            self._highlighter.setTheme(style)
        for table in (self.numpy_table, self.torch_table):
            table.restyle(theme)
        small = self.font()
        small.setPointSize(max(7, theme.font_pt - (6 if theme.name == "slide" else 1)))
        for label in (self.agree_label, self.numpy_title, self.torch_title):
            label.setFont(small)
        self._mark_line()
        self._dirty = True
        self.redraw()

    # ------------------------------------------------------------------------------ public API
    @property
    def mode(self) -> str:
        """"train" or "eval"."""
        return self._mode

    @property
    def line(self) -> int:
        """The selected line of regsim.scratch.SOURCE (0-based)."""
        return self._line

    def set_mode(self, mode: str) -> None:
        if mode not in ("train", "eval"):
            raise ValueError(f"mode must be 'train' or 'eval', not {mode!r}")
        (self.train_button if mode == "train" else self.eval_button).setChecked(True)

    def select_line(self, index: int) -> None:
        """Select line `index` (0-based) as a click would."""
        if not 0 <= index < len(LINES):
            raise ValueError(f"line must be in [0, {len(LINES) - 1}], not {index}")
        if index != self._line:
            self._line = index
            self._dirty = True
        self._mark_line()
        self.redraw()

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt's name)
        """A click on the code picks its line; ↑/↓ move the selection."""
        kind = event.type()
        if watched is self.code.viewport() and kind == QEvent.Type.MouseButtonPress:
            self.code.setFocus()
            self.select_line(self.code.cursorForPosition(event.position().toPoint()).blockNumber())
            return True
        if watched is self.code and kind == QEvent.Type.KeyPress and event.key() in (
                Qt.Key.Key_Up, Qt.Key.Key_Down):
            step = -1 if event.key() == Qt.Key.Key_Up else 1
            self.select_line(min(len(LINES) - 1, max(0, self._line + step)))
            return True
        return super().eventFilter(watched, event)

    def line_rect(self, index: int):
        """The on-screen rectangle of line `index` in the code view (tests click it)."""
        block = self.code.document().findBlockByNumber(index)
        return self.code.cursorRect(QTextCursor(block))

    # ------------------------------------------------------------------------------- internals
    def _on_mode(self, train: bool) -> None:
        self._mode = "train" if train else "eval"
        self._mark_dirty()

    def measure_parts(self) -> frozenset[str]:
        """Only the shown site's replay ("scratch:fc1"): all sites cost 6–8 ms a snapshot."""
        site = self.site_combo.currentText()
        return frozenset({SCRATCH_SITE + site}) if site else frozenset()

    def _site_chosen(self, *_: object) -> None:
        self.request.emit("measure", {})  # the engine replays the newly chosen site from now on
        self._mark_dirty()

    def _mark_dirty(self, *_: object) -> None:
        self._dirty = True
        self.redraw()

    def _mark_line(self) -> None:
        sel = QTextEdit.ExtraSelection()
        sel.format.setBackground(mix(self.theme.background, self.theme.accent, 0.28))
        sel.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
        cursor = QTextCursor(self.code.document().findBlockByNumber(self._line))
        cursor.clearSelection()
        sel.cursor = cursor
        self.code.setExtraSelections([sel])

    def _site(self, snap: Snapshot | None) -> ScratchSite | None:
        if snap is None:
            return None
        sites = snap.dropout_sites  # in every snapshot: the site choice survives unmeasured ones
        if sites != self._sites:
            current = self.site_combo.currentText()
            self._sites = sites
            self.site_combo.blockSignals(True)
            self.site_combo.clear()
            self.site_combo.addItems(list(sites))
            rates = list(snap.dropout_rates) + [0.0] * len(sites)
            if current in sites:
                self.site_combo.setCurrentIndex(sites.index(current))
            else:  # the first hidden site that drops something: it has a mask and gradients
                hidden = [i for i, s in enumerate(sites) if s != "input"]
                active = [i for i in hidden if rates[i] > 0]
                self.site_combo.setCurrentIndex(active[0] if active else hidden[0] if hidden else 0)
            self.site_combo.blockSignals(False)
            if self.site_combo.currentText() != current:
                self.request.emit("measure", {})
        i = self.site_combo.currentIndex()
        if "scratch" not in snap.measured or not 0 <= i < len(snap.dropout_scratch):
            return None
        return snap.dropout_scratch[i]

    def _draw(self, snap: Snapshot | None, s: ScratchSite | None) -> None:
        shape = SHAPE.get(self.theme.name, SHAPE["screen"])
        line = LINES[self._line]
        code, _, comment = line.partition("#")
        self.line_label.setText(f"line {self._line + 1}:  {code.strip()}"
                                + (f"   # {comment.strip()}" if comment.strip() else ""))
        if s is None:
            why = ("waiting for the first snapshot…" if snap is None else
                   "the live values are measured while this panel is shown…"
                   if "scratch" not in snap.measured else
                   f"measuring {self.site_combo.currentText()}'s values from the next snapshot on…"
                   if snap.step > 0 and any(v is not None for v in snap.dropout_scratch) else
                   "No training step yet: press Space (Run) or Step to train, then click a line.")
            self.status_label.setText(why)
            self.numpy_table.show_blocks([(why, None)], self.theme, shape)
            self.torch_table.show_blocks([], self.theme, shape)
            self.agree_label.setText("")
            return
        train = self._mode == "train"
        identity = not train or s.p == 0.0
        fn = function_of_line(self._line)
        names = line_variables(line)
        np_blocks: list[tuple[str, np.ndarray | None]] = []
        torch_blocks: list[tuple[str, np.ndarray | None]] = []
        skipped = identity and fn == "forward" and self._line > RETURN_IDENTITY
        skipped |= identity and fn == "backward" and self._line > BACKWARD_IDENTITY
        why = "eval mode" if not train else "p = 0 at this site"
        values = {"x": s.x, "u": s.u, "m": s.m, "y": s.y, "dy": s.dy, "dx": s.dx}
        if identity:
            values.update(y=s.x, dx=s.dy, m=None, u=None)
        no_grad = not s.has_grad
        if skipped:
            ret = (RETURN_IDENTITY if fn == "forward" else BACKWARD_IDENTITY) + 1
            np_blocks.append((f"{why}: this line does not run (returned at line {ret})", None))
        elif identity and self._line in (RETURN_IDENTITY - 1, RETURN_IDENTITY):
            np_blocks += [(NAMES["x"], s.x), ("y = x  (the identity)", s.x)]
            if not train:
                torch_blocks.append((f"{s.torch_name}(p).eval()(x)", s.torch_eval_y))
            else:
                torch_blocks.append(("the run's module output (p = 0: y = x)", s.live_y))
        else:
            if not names and "scale" in line:
                np_blocks.append((f"scale = 1/(1 − p) = {1.0 / (1.0 - s.p):.4g}   (p = {s.p:g})", None))
            for n in names[:MAX_BLOCKS]:
                a = values.get(n)
                if n in ("dy", "dx") and no_grad:
                    np_blocks.append((f"{n}: no gradient reaches {s.site} (the data needs none); "
                                      "choose a hidden site", None))
                elif a is None:
                    np_blocks.append((f"{n}: None ({why})", None))
                else:
                    np_blocks.append((NAMES[n], a))
            torch_blocks = self._torch_blocks(s, names, identity, fn)
        self.numpy_table.show_blocks(np_blocks, self.theme, shape, s.unit_index)
        self.torch_table.show_blocks(torch_blocks[:MAX_BLOCKS], self.theme, shape, s.unit_index)
        self.agree_label.setText(self._agreement(s))
        mode = "train" if train else "eval"
        self.status_label.setText(f"{s.site}: p = {s.p:g}, batch {s.batch} × {s.units} units, "
                                  f"values of step {s.step} ({mode} mode)   "
                                  f"showing {min(shape[0], s.batch)} × {min(shape[1], s.units)}")

    @staticmethod
    def _torch_blocks(s: ScratchSite, names: tuple[str, ...], identity: bool, fn: str) -> list:
        out: list[tuple[str, np.ndarray | None]] = []
        if identity:
            if "y" in names or "x" in names:
                out.append((f"{s.torch_name}(p).eval()(x): the identity", s.torch_eval_y))
            if "dy" in names or "dx" in names:
                out.append(("eval: autograd passes dy through unchanged", None))
            return out
        if fn == "forward" and ("u" in names or "m" in names):
            out.append((f"the run's mask: {'= NumPy m' if s.mask_equal else '≠ NumPy m (!)'}", None))
            out.append((f"m′: {s.torch_name}'s own mask (torch RNG)", s.torch_m))
        if "y" in names and fn == "forward":
            out.append(("the run's module output (hooked)", s.live_y))
            out.append((f"{s.torch_name}(p)(x) with its m′", s.torch_y))
        if fn == "backward" and ("dx" in names or "dy" in names):
            if s.has_grad:
                out.append(("autograd's dL/dx at the module", s.live_dx))
                out.append((f"{s.torch_name} backward of dy (its m′)", s.torch_dx))
            else:
                out.append(("no gradient at the data input: choose a hidden site", None))
        return out

    @staticmethod
    def _agreement(s: ScratchSite) -> str:
        def d(v: float) -> str:
            return "—" if not np.isfinite(v) else "0 (identical)" if v == 0 else f"{v:.2g}"

        text = (f"max |Δ| over the whole batch ({s.batch} × {s.units}):  NumPy vs the run's module: "
                f"y {d(s.diff_live_y)}, dx {d(s.diff_live_dx)}.  NumPy with m′ vs {s.torch_name}: "
                f"y {d(s.diff_torch_y)}, dx {d(s.diff_torch_dx)}.  Eval vs {s.torch_name}.eval(): "
                f"{d(s.diff_eval)}.")
        if not s.has_grad:
            text += " (No gradient is captured at the data input.)"
        return text
