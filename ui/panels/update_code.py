"""The update rule as code: the run's optimizer step in ~10 readable lines, with the live values.

    Adam+L2:  g ← g + λθ;  m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;  θ ← θ − lr·m̂/(√v̂ + ε)
    AdamW:    m, v of g alone;  θ ← θ − lr·λ·θ − lr·m̂/(√v̂ + ε)     (the paper: η_t·λ·θ)

Why a panel: "the code below implements both approaches so you can see exactly where the
decoupling happens" (the reference, "Adam vs. AdamW"). The code shown is regsim.rules, the very
functions the tests hold torch.optim.Adam, AdamW and SGD to (1e-6 over 50 steps), so the lines on
screen are the arithmetic the run does. Top: the rule the run follows; below: its counterpart
(L2 ↔ decoupled) computed from the same θ, g, m, v. The line that makes a rule L2 or decoupled is
tinted. After each line, its value for one element θᵢ of a tensor the user picks (layer + index),
at the step the run just took: for Adam+L2 the L2 term before (λθ) and after the division by
√v̂ + ε, which is why "parameters with large gradients get less decay"; for AdamW the decoupled
term lr·λ·θ, the same fraction for every element. Click a line for its comment and full values.

The values come with the snapshot part "update_code" (regsim.update_code); this panel draws numpy
and numbers only.
"""

from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from regsim.snapshot import History, Snapshot
from regsim.update_code import TensorInfo, UpdateCodeView
from ui.code_view import CodeView
from ui.panels.base import Panel
from ui.panels.style import fill_background
from ui.theme import Theme
from ui.widgets import LiveLabel, MathLabel

TIP = ("The update rule of the run's optimizer, line by line (regsim.rules: the functions the tests "
       "compare torch.optim against).\nAfter each line: its value for the picked element θᵢ at the "
       "step just taken.\nThe tinted line makes the rule L2 (λθ joins the gradient, so Adam divides "
       "it by √v̂ + ε) or decoupled (θ shrinks by lr·λ·θ, or η_t·λ·θ in the paper's variant, outside "
       "Adam's rescaling).\nClick a line (or ↑/↓) for its comment and full values.")
MODE_WORDS = {"Adam+L2": "L2 in the gradient", "AdamW": "decoupled, PyTorch (lr·λ)",
              "AdamW (paper)": "decoupled, paper (η_t·λ)", "SGD+L2": "L2 in the gradient",
              "SGDW": "decoupled, PyTorch (lr·λ)", "SGDW (paper)": "decoupled, paper (η_t·λ)"}
NAMES = {"theta": "θ", "theta_new": "θ_new", "m_hat": "m̂", "v_hat": "v̂", "buf": "buf", "l2": "λθ"}


def fmt(v: float) -> str:
    """3 significant digits, exponents short: 0.0123, 7.2e-6."""
    if not math.isfinite(v):
        return "—"
    text = f"{v:.3g}"
    if "e" in text:
        mant, exp = text.split("e")
        text = f"{mant}e{int(exp)}"
    return text


def parse_index(text: str, info: TensorInfo) -> int:
    """A flat index ("5") or one index per dimension ("2, 1") into `info`'s tensor → the flat,
    row-major index; a ValueError naming the field and its range otherwise."""
    shape = "×".join(str(s) for s in info.shape)
    span = f"allowed: 0 … {info.numel - 1}" + (
        ", or " + ", ".join(f"[0, {s - 1}]" for s in info.shape) + " per dimension"
        if len(info.shape) > 1 else "")
    parts = [p for p in text.replace("[", "").replace("]", "").replace("(", "").replace(")", "")
             .split(",") if p.strip()]
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"index: {text.strip()!r} is not a whole number; {span} for {info.name} "
                         f"({shape})") from None
    if len(nums) == 1:
        if not 0 <= nums[0] < info.numel:
            raise ValueError(f"index: {nums[0]} is out of range for {info.name} ({shape}, "
                             f"{info.numel} elements); {span}")
        return nums[0]
    if len(nums) != len(info.shape):
        raise ValueError(f"index: {text.strip()!r} gives {len(nums)} numbers; {info.name} ({shape}) "
                         f"takes 1 (flat) or {len(info.shape)}; {span}")
    flat = 0
    for d, (n, size) in enumerate(zip(nums, info.shape)):
        if not 0 <= n < size:
            raise ValueError(f"index: dimension {d} = {n} is out of range for {info.name} ({shape}); "
                             f"allowed: [0, {size - 1}]")
        flat = flat * size + n
    return flat


def unravel(index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    out = []
    for size in reversed(shape):
        out.append(index % size)
        index //= size
    return tuple(reversed(out))


MIN_CODE_LINES = 5  # a code view's minimum height, in lines

class UpdateCodePanel(Panel):
    """The run's update rule and its counterpart as code, with one picked element's live values."""

    key = "update_code"
    title = "Update rule as code"

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self._tensors: tuple[TensorInfo, ...] = ()
        self._pick: tuple[str, int] | None = None  # what the user asked for (validated)
        self._resent_at = -1
        self._sel = (0, 2)  # (0: the run's rule, 1: the counterpart; the line as shown, 0-based)
        self._drawn: Snapshot | None = None
        self._dirty = True

        self.param_combo = QComboBox()
        self.param_combo.setToolTip("The parameter tensor of the live model whose element the code "
                                    "follows (decay group: weight matrices; no_decay: biases, norms)")
        self.param_combo.activated.connect(self._picked)
        self.param_combo.setMinimumContentsLength(18)
        self.param_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.index_edit = QLineEdit("0")
        self.index_edit.setMaximumWidth(110)
        self.index_edit.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # no caret blinking unasked
        self.index_edit.setPlaceholderText("e.g. 5 or 2, 1")
        self.index_edit.setToolTip("The element: a flat (row-major) index, or one index per "
                                   "dimension such as 2, 1 (row 2, column 1). Enter applies it.")
        self.index_edit.editingFinished.connect(self._picked)
        self.pick_label = LiveLabel("")
        self.pick_label.setTextFormat(Qt.TextFormat.PlainText)
        top = QHBoxLayout()
        for text, w in (("parameter:", self.param_combo), ("index:", self.index_edit)):
            label = QLabel(text)
            for x in (label, w):  # a slide names the element in the status line instead
                x.setProperty("export_hidden", True)
            top.addWidget(label)
            top.addWidget(w)
        top.addSpacing(12)
        top.addWidget(self.pick_label, 1)

        self.status_label = MathLabel("waiting for the first snapshot…")
        self.status_label.setWordWrap(True)
        self.rule_title = MathLabel("")
        self.other_title = MathLabel("")
        self.inputs_label = MathLabel("")
        self.code = CodeView()
        self.other_code = CodeView()
        for view in (self.code, self.other_code):
            view.setToolTip(TIP)
        self.code.line_picked.connect(lambda row: self.select_line(row, 0))
        self.other_code.line_picked.connect(lambda row: self.select_line(row, 1))
        self.detail_label = MathLabel("")
        self.detail_label.setWordWrap(True)
        self.summary_label = MathLabel("")
        self.summary_label.setWordWrap(True)
        self.summary_label.setToolTip("The fraction of θᵢ this step's decay removes. Adam+L2: "
                                      "lr·λ/(√v̂ᵢ + ε), different for every element; AdamW: lr·λ "
                                      "(the paper: η_t·λ), the same for all (Loshchilov & Hutter 2019).")
        root = QVBoxLayout(self)
        root.addLayout(top)
        root.addWidget(self.status_label)
        root.addWidget(self.inputs_label)
        root.addWidget(self.rule_title)
        root.addWidget(self.code, 1)
        root.addWidget(self.other_title)
        root.addWidget(self.other_code, 1)
        root.addWidget(self.summary_label)
        root.addWidget(self.detail_label)
        self.apply_theme(self.theme)

    # ---------------------------------------------------------------------------- Panel contract
    def redraw(self) -> None:
        snap = self.snapshot
        if snap is self._drawn and not self._dirty:
            return
        self._drawn, self._dirty = snap, False
        self._fill_tensors(snap)
        view = snap.update_code if snap is not None else None
        if view is not None and self._pick is not None and (view.param, view.index) != self._pick \
                and snap.step != self._resent_at:
            self._resent_at = snap.step  # a new engine (or run) forgot the pick: ask again
            self.request.emit("explain", {"param": self._pick[0], "index": self._pick[1]})
        self._draw(snap, view)

    def reset(self) -> None:
        super().reset()
        self._drawn, self._dirty = None, True
        self.redraw()

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        fill_background(self, theme)
        font = self.font()
        font.setPointSize(theme.font_pt - (8 if theme.name == "slide" else 0))
        self.setFont(font)
        for view in (self.code, self.other_code):
            view.restyle(theme, max(7, theme.font_pt - (9 if theme.name == "slide" else 0)))
        title = self.font()
        title.setBold(True)
        for label in (self.rule_title, self.other_title):
            label.setFont(title)
        self._dirty = True
        self.redraw()

    # ------------------------------------------------------------------------------ public API
    @property
    def pick(self) -> tuple[str, int] | None:
        return self._pick

    def set_pick(self, param: str, index_text: str) -> bool:
        """Pick tensor `param`, element `index_text` (as typed), as the controls do. False (and
        the reason shown) when it is not valid."""
        i = self.param_combo.findData(param)
        if i < 0:
            names = ", ".join(t.name for t in self._tensors) or "none yet (take a step first)"
            self._say(f"parameter: {param!r} is not in this model; allowed: {names}", bad=True)
            return False
        self.param_combo.setCurrentIndex(i)
        self.index_edit.setText(index_text)
        return self._picked()

    @property
    def selected(self) -> tuple[int, int]:
        """(0: the run's rule or 1: its counterpart, the line as shown)."""
        return self._sel

    def select_line(self, row: int, which: int = 0) -> None:
        """Select line `row` (as shown, 0-based) of the run's rule (which = 0) or of its
        counterpart (1), as a click does."""
        self._sel = (which, row)
        self._dirty = True
        self.redraw()

    # ------------------------------------------------------------------------------- internals
    def _say(self, text: str, bad: bool = False) -> None:
        self.pick_label.setText(text)
        self.pick_label.setStyleSheet(f"color: {self.theme.val};" if bad else "")

    def _fill_tensors(self, snap: Snapshot | None) -> None:
        tensors: tuple[TensorInfo, ...] = ()
        if snap is not None and snap.update_code is not None:
            tensors = snap.update_code.tensors
        elif snap is not None and snap.param_groups:
            tensors = tuple(t for g in snap.param_groups for t in g.tensors)
        if not tensors and self._tensors:  # nothing measured: no stale list (the pick is kept)
            self._tensors = ()
            self.param_combo.clear()
            return
        if not tensors or tensors == self._tensors:
            return
        self._tensors = tensors
        current = self.param_combo.currentData()
        self.param_combo.blockSignals(True)
        self.param_combo.clear()
        for t in tensors:
            self.param_combo.addItem(f"{t.name}  ({'×'.join(str(s) for s in t.shape)})", t.name)
        j = self.param_combo.findData(self._pick[0] if self._pick else current)
        self.param_combo.setCurrentIndex(max(0, j))
        self.param_combo.blockSignals(False)

    def _picked(self, *_: object) -> bool:
        name = self.param_combo.currentData()
        info = next((t for t in self._tensors if t.name == name), None)
        if info is None:
            self._say("parameter: none yet: press Space (Run) or Step to train", bad=True)
            return False
        try:
            index = parse_index(self.index_edit.text(), info)
        except ValueError as e:
            self._say(str(e), bad=True)
            return False
        self._pick = (info.name, index)
        where = unravel(index, info.shape)
        self._say(f"θᵢ = {info.name}[{', '.join(str(k) for k in where)}]   (flat index {index} of "
                  f"{info.numel})")
        self.request.emit("explain", {"param": info.name, "index": index})
        return True

    def _draw(self, snap: Snapshot | None, v: UpdateCodeView | None) -> None:
        if v is None:
            why = ("waiting for the first snapshot…" if snap is None else
                   "the live values are measured while this panel is shown…"
                   if "update_code" not in snap.measured else
                   "No training step yet: press Space (Run) or Step, then pick a parameter.")
            self.status_label.setText(why)
            for view, title in ((self.code, self.rule_title), (self.other_code, self.other_title)):
                view.set_code("")
                title.setText("")
            self.inputs_label.setText("")
            self.summary_label.setText("")
            self.detail_label.setText("")
            if self._pick is None and not self.index_edit.hasFocus():
                self.index_edit.setText("0")  # the engine's default is shown only with its values
            return
        where = ", ".join(str(k) for k in unravel(v.index, v.shape))
        when = (f"the values of step {v.step}, the step the run just took" if v.recorded else
                f"step {v.step}, not taken yet: predicted from the live state with the last batch's "
                "gradient (a step shows the values of the step taken)")
        self.status_label.setText(f"{v.param}[{where}]: {when}.  θᵢ in the live model now: "
                                  f"{fmt(v.theta_live)}")
        width = 2 + max(len(line.split("#")[0].rstrip()) for rv in (v.rule, v.counterpart)
                        for line in rv.source if not line.startswith("def ")
                        and not line.strip().startswith('"""'))
        for view, title, rv, own in ((self.code, self.rule_title, v.rule, True),
                                     (self.other_code, self.other_title, v.counterpart, False)):
            text, spans = self._text(rv, width)
            view.set_code(text)
            view.mark_line(self._shown_line(rv, rv.marked))
            view.emphasise(spans)
            view.select_line(self._sel[1] if self._sel[0] == (0 if own else 1) else -1)
            title.setText(f"This run: {rv.rule}  ({MODE_WORDS[rv.rule]})" if own else
                          f"Its counterpart: {rv.rule}  ({MODE_WORDS[rv.rule]}), one step from the "
                          "same θ, g and state")
            # Room for every line where there is room (the views expand); at least MIN_CODE_LINES
            # in a small window, which then scrolls: every line as a minimum grew a 640 px lecture
            # window to 744 px (seen in a real window at 1024 × 640).
            lines = min(len(self._kept(rv)) + 1, MIN_CODE_LINES)
            view.setMinimumHeight(view.fontMetrics().height() * lines)
        inputs = v.rule.values[0]
        self.inputs_label.setText("inputs:  " + ",  ".join(
            f"{NAMES.get(k, k)} = {int(x) if k == 't' else fmt(x)}" for k, x in inputs))
        if self._pick is None and not self.index_edit.hasFocus():  # the engine's default element
            self.param_combo.setCurrentIndex(max(0, self.param_combo.findData(v.param)))
            self.index_edit.setText(where)
        self.summary_label.setText(self._summary(v))
        self._detail(v)

    @staticmethod
    def _kept(rv) -> list[int]:
        """The source lines shown: all but the docstring (in the title's tooltip instead)."""
        return [i for i, line in enumerate(rv.source) if not line.strip().startswith('"""')]

    def _shown_line(self, rv, source_line: int) -> int:
        kept = self._kept(rv)
        return kept.index(source_line) if source_line in kept else -1

    def _text(self, rv, width: int) -> tuple[str, list[tuple[int, int, int]]]:
        lines, spans = [], []
        for row, i in enumerate(self._kept(rv)):
            code = rv.source[i].split("#")[0].rstrip()
            pairs = rv.values[i] if not code.lstrip().startswith("def ") else ()
            if pairs:
                shown = ", ".join(f"{NAMES.get(k, k)} = {fmt(x)}" for k, x in pairs)
                prefix = code.ljust(width) + "# "
                spans.append((row, len(prefix), len(shown)))
                code = prefix + shown
            if i == rv.marked:
                code += "   <- " + ("L2" if "<- L2" in rv.source[i] else "DECOUPLED")
            lines.append(code)
        return "\n".join(lines), spans

    @staticmethod
    def _summary(v: UpdateCodeView) -> str:
        own, other = v.rule, v.counterpart
        pct = (lambda r: f"{100 * r:.3g} %")  # noqa: E731
        if math.isfinite(v.l2_before):  # an L2 rule
            text = f"L2 term: λθ = {fmt(v.l2_before)} joins the gradient"
            if own.rule.startswith("Adam"):
                ratio = v.l2_after / v.l2_before if v.l2_before else float("nan")
                text += (f"; after Adam's division by √v̂ + ε it is λθ/(√v̂+ε) = {fmt(v.l2_after)} "
                         f"(×{fmt(ratio)}). ")
            else:
                text += " (SGD does not rescale it). "
        else:
            text = f"Decoupled term: {fmt(v.decoupled)} subtracted from θ outside the gradient step. "
        text += (f"This step's decay takes {pct(own.effective_decay)} of θᵢ with {own.rule}, "
                 f"{pct(other.effective_decay)} with {other.rule}")
        if own.rule.startswith("Adam"):
            text += (" (Adam+L2: lr·λ/(√v̂ᵢ + ε), smaller where gradients are large; AdamW: the same "
                     "fraction for every element).")
        else:
            text += " (for plain SGD the two are the same update; momentum carries λθ along in L2)."
        return text

    def _detail(self, v: UpdateCodeView) -> None:
        which, row = self._sel
        rv = v.rule if which == 0 else v.counterpart
        kept = self._kept(rv)
        i = kept[max(0, min(row, len(kept) - 1))]
        code, _, comment = rv.source[i].partition("#")
        vals = ",  ".join(f"{NAMES.get(k, k)} = {x:.6g}" for k, x in rv.values[i])
        self.detail_label.setText(f"{rv.rule}, line {kept.index(i) + 1}:  {code.strip()}"
                                  + (f"   # {comment.strip()}" if comment.strip() else "")
                                  + (f"\n→ {vals}" if vals else ""))
