"""Training panel: loss and accuracy curves beside what the model currently believes.

Regularization is judged by the generalization gap, so the gap (val − train) is shaded between the
two loss curves and every settings change is marked on the step axis: a viewer sees the gap react to
the dropout or weight-decay change that caused it. Next to the curves the model itself is drawn
(decision boundary, regression curve or digit guesses), because a smaller gap should look like a
smoother model.

In Compare mode (two or more runs, or a ghost run loaded from a file) the curves are overlaid: each
run in its own colour (ui/run_colors.py), val solid, train dashed, its gap shaded in its colour; ghosts
grey and dashed behind them. Markers, the readout's detail and the model drawing are the selected run's.

Styling comes from ui/panels/style.py, shared by every panel.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QFont, QTransform
from PySide6.QtWidgets import (
    QCheckBox,
    QGraphicsItem,
    QHBoxLayout,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from regsim.snapshot import DataView, History
from ui.panels.base import Panel
from ui.panels.style import (
    ChangeMarkers,
    FastFillBetween,
    LegendRow,
    color,
    fill_background,
    is_light,
    limit_degenerate,
    show_empty,
    style_legend,
    style_plot,
    style_text,
)
from ui.run_colors import ghost_color, run_color
from ui.theme import Theme
from ui.widgets import LiveLabel

MAX_MARKERS = 30  # settings-change markers shown at once (the most recent steps)
CONTOUR_MAX = 128  # the 0.5 contour is traced on at most this many samples per side
MAX_DIGITS = 36  # digit tiles in the mosaic (a 6×6 grid at most)
DIGIT = 8  # digit images are 8×8
PITCH_X, PITCH_Y, LABEL_ROWS = DIGIT + 1, DIGIT + 4, 4  # mosaic tile pitch; rows left for a label
MAX_OVERLAID = 4  # runs overlaid at once (regsim.runs.MAX_RUNS)
MAX_GHOSTS = 3  # ghost runs drawn at once


def finite(values: np.ndarray) -> bool:
    """True when at least one value is a real number (regression has NaN accuracy throughout)."""
    return bool(values.size) and bool(np.isfinite(values).any())


class _RunCurves:
    """One run's curves in Compare mode: train (dashed) and val (solid) loss with the gap shaded
    between them, and the two accuracies. Created once, hidden while unused."""

    def __init__(self, loss_plot: pg.PlotItem, acc_plot: pg.PlotItem, fill: bool) -> None:
        self.train = loss_plot.plot(antialias=True)
        self.val = loss_plot.plot(antialias=True)
        self.train_acc = acc_plot.plot(antialias=True)
        self.val_acc = acc_plot.plot(antialias=True)
        self.curves = (self.train, self.val, self.train_acc, self.val_acc)
        for c in self.curves:
            c.setDownsampling(auto=True, method="peak")
            c.setClipToView(True)
        self.fill = FastFillBetween(self.train, self.val) if fill else None
        if self.fill is not None:
            loss_plot.addItem(self.fill)
        if not fill:  # a ghost: behind the live runs
            for c in self.curves:
                c.setZValue(-5)
        self.set_visible(False)

    def set_visible(self, on: bool) -> None:
        for item in (*self.curves, self.fill):
            if item is not None:
                item.setVisible(on)

    def style(self, colour: str, theme: Theme, ghost: bool = False) -> None:
        w = theme.line_width * (0.75 if ghost else 1.0)
        solid = pg.mkPen(colour, width=w, style=Qt.PenStyle.DashLine if ghost else Qt.PenStyle.SolidLine)
        dashed = pg.mkPen(colour, width=w * 0.8,
                          style=Qt.PenStyle.DotLine if ghost else Qt.PenStyle.DashLine)
        for c, pen in ((self.val, solid), (self.train, dashed), (self.val_acc, solid),
                       (self.train_acc, dashed)):
            c.setPen(pen)
        if self.fill is not None:
            fill = pg.mkColor(colour)
            fill.setAlpha(45)
            self.fill.setBrush(fill)

    def set_data(self, src) -> None:
        """`src`: a History or a regsim.runs.Ghost (anything with series() and len())."""
        steps = src.series("step")
        self.train.setData(steps, src.series("train_loss"))
        self.val.setData(steps, src.series("val_loss"))
        self.train_acc.setData(steps, src.series("train_acc"))
        self.val_acc.setData(steps, src.series("val_acc"))


# ---------------------------------------------------------------------------------------- the panel


class TrainingPanel(Panel):
    """Loss / accuracy curves with the generalization gap, settings-change markers and the model."""

    key = "training"
    title = "Training"

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self._kind: str | None = None
        self._points_key: tuple | None = None  # the data last given to the scatter items
        self._data_labels = ("", "")
        self._mosaic_shape: tuple[int, ...] = ()

        self.readout = LiveLabel("waiting for the first snapshot")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.log_y = QCheckBox("log-scale loss")
        self.log_y.setToolTip("Plot the loss on a logarithmic axis: late, small improvements and "
                              "the gap between train and val stay visible.")
        self.log_y.toggled.connect(self._on_log_toggled)

        # Loss curves, the shaded gap between them and a legend for all three.
        self.loss_widget = pg.PlotWidget()
        self.loss_plot = self.loss_widget.getPlotItem()
        self.loss_legend = LegendRow(self.loss_plot, columns=3)  # above the plot: covers no data
        self.train_curve = self.loss_plot.plot(name="train", antialias=True)
        self.train_curve.setDownsampling(auto=True, method="peak")
        self.train_curve.setClipToView(True)
        self.val_curve = self.loss_plot.plot(name="val", antialias=True)
        self.val_curve.setDownsampling(auto=True, method="peak")
        self.val_curve.setClipToView(True)
        self.gap_fill = FastFillBetween(self.train_curve, self.val_curve)
        self.loss_plot.addItem(self.gap_fill)
        # A legend needs an item with opts; this stand-in is never added to the plot.
        self._gap_sample = pg.BarGraphItem(x=[0], height=[1], width=1, pen=None)
        self.loss_legend.addItem(self._gap_sample, "gap (val − train)")
        for sample, _label in self.loss_legend.items:
            if sample.item is self._gap_sample:  # clicking "gap" in the legend hides the shading
                sample.sigClicked.connect(lambda item: self.gap_fill.setVisible(item.isVisible()))
        self.loss_widget.setToolTip("Loss measured in eval mode (dropout off) on the whole split.\n"
                                    "Shaded: the generalization gap, val − train. Dashed lines: "
                                    "settings changes.")
        self._plots_key: tuple | None = None  # what the plots show (see Panel.data_key)
        # Settings changes: dashed lines with de-overlapped, rounded labels (style.ChangeMarkers).
        self.change_markers = ChangeMarkers(self.loss_plot, MAX_MARKERS)
        self.markers = self.change_markers.lines

        # Accuracy (classification only): hidden while every value is NaN.
        self.acc_widget = pg.PlotWidget()
        self.acc_plot = self.acc_widget.getPlotItem()
        self.acc_plot.setXLink(self.loss_plot)
        self.train_acc_curve = self.acc_plot.plot(antialias=True)
        self.train_acc_curve.setDownsampling(auto=True, method="peak")
        self.train_acc_curve.setClipToView(True)
        self.val_acc_curve = self.acc_plot.plot(antialias=True)
        self.val_acc_curve.setDownsampling(auto=True, method="peak")
        self.val_acc_curve.setClipToView(True)

        # Compare mode: per-run curves (see set_runs), created once, hidden while one run shows.
        self._runs: list[tuple[str, object, int]] = []  # (name, History, colour slot), run order
        self._ghosts: list[tuple[str, object]] = []  # (name, regsim.runs.Ghost)
        self._selected = ""
        self._legend_key: tuple | None = None
        self._was_comparing = False
        self.run_curves = [_RunCurves(self.loss_plot, self.acc_plot, fill=True)
                           for _ in range(MAX_OVERLAID)]
        self.ghost_curves = [_RunCurves(self.loss_plot, self.acc_plot, fill=False)
                             for _ in range(MAX_GHOSTS)]

        # The model in data space: 2-D decision boundary or 1-D regression curve share one plot.
        self.data_widget = pg.PlotWidget()
        self.data_plot = self.data_widget.getPlotItem()
        self.data_legend = LegendRow(self.data_plot, columns=3)
        self.decision_cmap = pg.colormap.get("CET-D1")  # diverging: blue 0, white 0.5, red 1
        self.decision = pg.ImageItem(axisOrder="row-major")
        self.decision.setLookupTable(self.decision_cmap.getLookupTable(nPts=256))
        self.decision.setOpacity(0.55)
        self.data_plot.addItem(self.decision)
        self.contour = pg.IsocurveItem(level=0.5, axisOrder="row-major")
        self._contour_time = 0.0
        self.contour.setParentItem(self.decision)  # shares the image's pixel → data transform
        self.contour.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresParentOpacity)
        self.model_curve = pg.PlotDataItem(antialias=True)
        self.data_plot.addItem(self.model_curve)
        self.train_points = pg.ScatterPlotItem()
        self.val_points = pg.ScatterPlotItem()
        self.data_plot.addItem(self.val_points)
        self.data_plot.addItem(self.train_points)
        # Legend stand-ins: per-point colours cannot be shown by the scatter items themselves.
        self._train_sample = pg.ScatterPlotItem(symbol="o")
        self._val_sample = pg.ScatterPlotItem(symbol="o")
        self._model_sample = pg.PlotDataItem()

        # Digits: one mosaic image (NaN gaps render transparent) and a text label per tile.
        self.digit_widget = pg.PlotWidget()
        self.digit_plot = self.digit_widget.getPlotItem()
        self.digit_plot.hideAxis("left")
        self.digit_plot.hideAxis("bottom")
        self.digit_plot.setMouseEnabled(False, False)
        self.digit_plot.getViewBox().invertY(True)  # image row 0 at the top, like the digit
        self.digit_plot.setAspectLocked(True)
        self.mosaic = pg.ImageItem(axisOrder="row-major")
        self.digit_plot.addItem(self.mosaic)
        self.digit_labels: list[pg.TextItem] = []
        for _ in range(MAX_DIGITS):
            text = pg.TextItem(anchor=(0.5, 1.0))
            text.hide()
            self.digit_plot.addItem(text)
            self.digit_labels.append(text)

        self.data_stack = QStackedWidget()
        self.data_stack.addWidget(self.data_widget)
        self.data_stack.addWidget(self.digit_widget)

        top = QHBoxLayout()
        top.addWidget(self.readout, 1)
        top.addWidget(self.log_y)
        curves = QWidget()
        curves_layout = QVBoxLayout(curves)
        curves_layout.setContentsMargins(0, 0, 0, 0)
        curves_layout.addWidget(self.loss_widget, 3)
        curves_layout.addWidget(self.acc_widget, 2)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(curves)
        self.splitter.addWidget(self.data_stack)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.splitter, 1)

        # No degenerate ranges: a single point or a flat curve still gets a readable span.
        limit_degenerate(self.loss_plot, min_y=0.02)
        limit_degenerate(self.acc_plot, min_y=0.1, y_bounds=(-0.02, 1.02))

        self._set_kind(None)
        self.apply_theme(self.theme)

    # ------------------------------------------------------------------------------ Panel contract

    def set_runs(self, runs: list[tuple[str, object, int]], selected: str,
                 ghosts: list[tuple[str, object]] = ()) -> None:
        """Compare mode's input, from the window on every snapshot (cheap: references only):
        (name, History, colour slot) per run in run order, the selected run's name, and the ghost
        runs (name, regsim.runs.Ghost). With one run and no ghost the panel looks as it always did."""
        self._runs = list(runs)[:MAX_OVERLAID]
        self._selected = selected
        self._ghosts = list(ghosts)[:MAX_GHOSTS]

    @property
    def comparing(self) -> bool:
        return len(self._runs) >= 2 or bool(self._ghosts)

    def _runs_key(self) -> tuple:
        def state(src) -> tuple:
            n = len(src)
            return (id(src), n, float(src.series("step")[-1]) if n else None)
        return (self._selected, tuple((name, slot, state(h)) for name, h, slot in self._runs),
                tuple((name, id(g)) for name, g in self._ghosts))

    def redraw(self) -> None:
        """Push the history and the newest snapshot into the plot items (setData only)."""
        snap = self.snapshot
        key = (self.data_key(), self.log_y.isChecked(), self._kind, self._runs_key())
        if key != self._plots_key:  # curves and the model only change with a new measurement
            self._plots_key = key
            self._draw_curves()
            self._draw_markers()
            self._draw_data(None if snap is None else snap.data)
        self.readout.setText("waiting for the first snapshot" if snap is None
                             else self._readout_text())

    def reset(self) -> None:
        """Forget the run: empty curves, no markers, no model drawing."""
        self._plots_key = None
        super().reset()
        for curve in (self.train_curve, self.val_curve, self.train_acc_curve, self.val_acc_curve):
            curve.setData([], [])
        self.change_markers.set_events([])
        show_empty(self.loss_plot, True)
        show_empty(self.acc_plot, True, hint="")
        self._set_kind(None)
        self.readout.setText("waiting for the first snapshot")

    def apply_theme(self, theme: Theme) -> None:
        """Restyle every plot, curve, legend and label for `theme`, then redraw."""
        super().apply_theme(theme)
        self._plots_key = None
        t = theme
        fill_background(self, t)
        style_text(self.readout, t)
        style_text(self.log_y, t)
        style_plot(self.loss_widget, t, "Loss (eval mode)", "loss", "step")
        style_plot(self.acc_widget, t, "Accuracy", "accuracy", "step")
        show_empty(self.loss_plot, len(self.history) == 0, theme=t)
        style_plot(self.data_widget, t, self._data_title(), *self._data_labels)
        style_plot(self.digit_widget, t, "Validation digits: prediction (true label)")
        for legend in (self.loss_legend, self.data_legend):
            style_legend(legend, t)
        self.train_curve.setPen(pg.mkPen(t.train, width=t.line_width))
        self.val_curve.setPen(pg.mkPen(t.val, width=t.line_width))
        self.train_acc_curve.setPen(pg.mkPen(t.train, width=t.line_width))
        self.val_acc_curve.setPen(pg.mkPen(t.val, width=t.line_width))
        self.gap_fill.setBrush(color(t.gap))
        self._gap_sample.setOpts(brush=color(t.gap), pen=None)
        self.change_markers.set_style(t)
        light = is_light(t)
        self.class_colors = [self.decision_cmap.map(v, mode="qcolor") for v in (0.0, 1.0)]
        # The boundary is where the diverging map turns white: draw it in the accent, not white.
        self.contour.setPen(pg.mkPen(t.accent, width=t.line_width))
        self.model_curve.setPen(pg.mkPen(t.accent, width=t.line_width))
        self._point_size = 7 + 2 * t.line_width / 2
        self._point_pen = pg.mkPen(t.foreground, width=1)
        self._train_sample.setData([0], [0], size=self._point_size, pen=self._point_pen,
                                   brush=pg.mkBrush(t.foreground))
        self._val_sample.setData([0], [0], size=self._point_size, brush=None,
                                 pen=pg.mkPen(t.foreground, width=1.5))
        self._model_sample.setPen(pg.mkPen(t.accent, width=t.line_width))
        self._points_key = None  # point pens/brushes depend on the theme
        grey = pg.colormap.get("CET-L1")  # black → white
        lut = grey.getLookupTable(nPts=256)
        self.mosaic.setLookupTable(lut[::-1] if light else lut)  # dark ink on a light slide
        self._right, self._wrong = ("#1b7f2a", "#c62828") if light else ("#66d17a", "#ff6b6b")
        label_font = QFont()
        label_font.setPointSize(t.font_pt)
        label_font.setBold(True)
        for text in self.digit_labels:
            text.setFont(label_font)
        self.redraw()

    # ----------------------------------------------------------------------------------- drawing

    def _draw_curves(self) -> None:
        h = self.history
        steps = h.series("step")
        comparing = self.comparing
        empty = len(h) == 0 and not any(len(g) for _, g in self._ghosts)
        show_empty(self.loss_plot, empty, theme=self.theme)
        show_empty(self.acc_plot, empty, hint="")
        self._draw_overlay(comparing)
        if comparing != self._was_comparing:  # (keeps a legend-hidden gap hidden)
            self._was_comparing = comparing
            for item in (self.train_curve, self.val_curve, self.train_acc_curve,
                         self.val_acc_curve, self.gap_fill):
                item.setVisible(not comparing)
        if comparing:
            has_acc = any(finite(src.series("val_acc")) for _, src, _ in self._runs) or any(
                finite(g.series("val_acc")) for _, g in self._ghosts)
            self.acc_widget.setVisible(has_acc or empty)
            return
        self.train_curve.setData(steps, h.series("train_loss"))
        self.val_curve.setData(steps, h.series("val_loss"))
        train_acc, val_acc = h.series("train_acc"), h.series("val_acc")
        has_acc = finite(train_acc) or finite(val_acc)
        self.acc_widget.setVisible(has_acc or len(h) == 0)
        self.train_acc_curve.setData(steps, train_acc)
        self.val_acc_curve.setData(steps, val_acc)

    def _draw_overlay(self, on: bool) -> None:
        """Every run's curves in its colour, each gap shaded; ghosts grey and dashed behind."""
        t = self.theme
        for i, items in enumerate(self.run_curves):
            if on and i < len(self._runs):
                name, src, slot = self._runs[i]
                items.style(run_color(slot, t.name), t)
                items.set_data(src)
                items.set_visible(True)
            else:
                items.set_visible(False)
        for i, items in enumerate(self.ghost_curves):
            if on and i < len(self._ghosts):
                items.style(ghost_color(t.name), t, ghost=True)
                items.set_data(self._ghosts[i][1])
                items.set_visible(True)
            else:
                items.set_visible(False)
        legend_key = (on, tuple((n, s) for n, _, s in self._runs) if on else (),
                      tuple(n for n, _ in self._ghosts) if on else (), t.name, id(t))
        if legend_key == self._legend_key:
            return
        self._legend_key = legend_key
        self.loss_legend.clear()
        if on:
            for i, (name, _, _) in enumerate(self._runs):
                self.loss_legend.addItem(self.run_curves[i].val, name)
            for i, (name, _) in enumerate(self._ghosts):
                self.loss_legend.addItem(self.ghost_curves[i].val, f"ghost: {name}")
        else:
            self.loss_legend.addItem(self.train_curve, "train")
            self.loss_legend.addItem(self.val_curve, "val")
            self.loss_legend.addItem(self._gap_sample, "gap (val − train)")
            for sample, _label in self.loss_legend.items:
                if sample.item is self._gap_sample:  # clicking "gap" hides the shading
                    sample.sigClicked.connect(lambda item: self.gap_fill.setVisible(item.isVisible()))
        style_legend(self.loss_legend, t)
        style_plot(self.loss_widget, t, "Loss (eval mode): val solid, train dashed, gap shaded"
                   if on else "Loss (eval mode)", "loss", "step")

    def _draw_markers(self) -> None:
        """One dashed line per step with a settings change (one slider gesture is one change, see
        History._add_event); changes at one step share a line."""
        self.change_markers.set_events(self.history.visible_events())

    def _draw_data(self, data: DataView | None) -> None:
        kind = data.kind if data is not None else None
        if kind != self._kind:
            self._set_kind(kind)
        if data is None:
            return
        if kind == "2d":
            self._draw_2d(data)
        elif kind == "1d":
            self._draw_1d(data)
        elif kind == "images":
            self._draw_digits(data)

    def _draw_2d(self, d: DataView) -> None:
        if d.grid_prob is not None and d.grid_x is not None and d.grid_y is not None:
            prob = np.asarray(d.grid_prob, dtype=np.float64)
            self.decision.setImage(prob, levels=(0.0, 1.0), autoLevels=False)
            self.decision.setRect(_grid_rect(np.asarray(d.grid_x), np.asarray(d.grid_y)))
            now = time.monotonic()
            # pyqtgraph's isocurve costs ~12 ms on 64², 25 ms on 128², 83 ms on 256² (measured):
            # it is traced on at most CONTOUR_MAX² samples of the map, at ≤ 4 Hz while training.
            if now - self._contour_time >= 0.25 or self.snapshot is None or \
                    self.snapshot.status != "running":
                self._contour_time = now
                k = max(1, math.ceil(max(prob.shape) / CONTOUR_MAX))
                # Sample j of the thinned map is fine pixel k·j (centre k·j + ½).
                shift = 0.5 / k - 0.5
                self.contour.setTransform(QTransform.fromScale(k, k).translate(shift, shift)
                                          if k > 1 else QTransform())
                self.contour.setData(np.nan_to_num(prob[::k, ::k], nan=0.5))
            self.decision.show()
        else:
            self.decision.hide()
        key = _points_key(d)
        if key == self._points_key:
            return  # the data set is fixed during a run; only the model changes
        self._points_key = key
        x_tr, x_va = _as_2d(d.x_train), _as_2d(d.x_val)
        cls_tr = np.asarray(d.y_train).astype(np.int64) % 2
        cls_va = np.asarray(d.y_val).astype(np.int64) % 2
        brushes = [pg.mkBrush(c) for c in self.class_colors]
        pens = [pg.mkPen(c, width=2) for c in self.class_colors]
        self.train_points.setData(x=x_tr[:, 0], y=x_tr[:, 1], size=self._point_size,
                                  pen=self._point_pen, brush=[brushes[c] for c in cls_tr])
        self.val_points.setData(x=x_va[:, 0], y=x_va[:, 1], size=self._point_size * 0.8,
                                brush=None, pen=[pens[c] for c in cls_va])

    def _draw_1d(self, d: DataView) -> None:
        if d.curve_x is not None and d.curve_y is not None:
            self.model_curve.setData(np.asarray(d.curve_x), np.asarray(d.curve_y))
        else:
            self.model_curve.setData([], [])
        key = _points_key(d)
        if key == self._points_key:
            return
        self._points_key = key
        t = self.theme
        x_tr, x_va = _as_2d(d.x_train), _as_2d(d.x_val)
        self.train_points.setData(x=x_tr[:, 0], y=np.asarray(d.y_train, dtype=np.float64),
                                  size=self._point_size, pen=self._point_pen,
                                  brush=pg.mkBrush(t.train))
        self.val_points.setData(x=x_va[:, 0], y=np.asarray(d.y_val, dtype=np.float64),
                                size=self._point_size * 0.8, brush=None,
                                pen=pg.mkPen(t.val, width=1.5))

    def _draw_digits(self, d: DataView) -> None:
        images = np.zeros((0, DIGIT, DIGIT)) if d.images is None else np.asarray(d.images)
        images = images[:MAX_DIGITS]
        k = len(images)
        cols = max(1, math.ceil(math.sqrt(k)))
        rows = max(1, math.ceil(k / cols))
        mosaic = np.full((rows * PITCH_Y, cols * PITCH_X - 1), np.nan)
        labels = np.zeros(k, dtype=np.int64) if d.labels is None else np.asarray(d.labels)
        preds = labels if d.preds is None else np.asarray(d.preds)
        for i in range(MAX_DIGITS):
            text = self.digit_labels[i]
            if i >= k:
                text.hide()
                continue
            r, c = divmod(i, cols)
            y0, x0 = r * PITCH_Y + LABEL_ROWS, c * PITCH_X
            mosaic[y0:y0 + DIGIT, x0:x0 + DIGIT] = images[i]
            ok = int(preds[i]) == int(labels[i])
            text.setText(f"{int(preds[i])} ({int(labels[i])})",
                         color=self._right if ok else self._wrong)
            text.setPos(x0 + DIGIT / 2, y0 - 0.3)
            text.show()
        self.mosaic.setImage(mosaic, levels=(0.0, 1.0), autoLevels=False)
        if mosaic.shape != self._mosaic_shape:  # fit the view once per layout, not every frame
            self._mosaic_shape = mosaic.shape
            self.digit_plot.getViewBox().autoRange(padding=0.02)

    def _set_kind(self, kind: str | None) -> None:
        """Show the items of one data kind and hide the rest; called only when the kind changes."""
        self._kind = kind
        self._points_key = None
        images = kind == "images"
        self.data_stack.setCurrentWidget(self.digit_widget if images else self.data_widget)
        two_d, one_d = kind == "2d", kind == "1d"
        self.decision.setVisible(two_d)
        self.model_curve.setVisible(one_d)
        if not two_d:
            self.decision.clear()
            self.contour.setData(None)
        if not one_d:
            self.model_curve.setData([], [])
        if kind != "images":
            self.mosaic.clear()
            self._mosaic_shape = ()
            for text in self.digit_labels:
                text.hide()
        if kind not in ("2d", "1d"):
            self.train_points.clear()
            self.val_points.clear()
        self.data_legend.clear()
        if two_d or one_d:
            self.data_legend.addItem(self._train_sample, "train")
            self.data_legend.addItem(self._val_sample, "val")
            self.data_legend.addItem(self._model_sample, "P(class 1) = 0.5" if two_d else "model")
        self._data_labels = ("x₂", "x₁") if two_d else ("y", "x") if one_d else ("", "")
        # Not aspect-locked: in the narrow, tall plot a locked aspect stretched the y range to
        # −5…5 for data within ±2. The view fits the map, which fits the data (see Trainer).
        self.data_plot.setAspectLocked(False)
        style_plot(self.data_widget, self.theme, self._data_title(), *self._data_labels)
        for name, text in zip(("left", "bottom"), self._data_labels):
            if not text:  # style_plot leaves an old label: no data, no x₁/x₂ either
                axis = self.data_plot.getAxis(name)
                axis.labelText = ""
                axis.showLabel(False)
        self.data_plot.enableAutoRange()

    def _data_title(self) -> str:
        if self._kind == "2d":
            return "Model: P(class 1), blue → red"
        if self._kind == "1d":
            return "Model: prediction vs data"
        return "Model"

    def _readout_text(self) -> str:
        s = self.snapshot
        assert s is not None
        parts = [f"step {s.step:,}", f"epoch {s.epoch:.1f}",
                 f"loss  train {s.train_loss:.4g}  val {s.val_loss:.4g}",
                 f"gap {s.val_loss - s.train_loss:+.4g}"]
        if math.isfinite(s.train_acc) or math.isfinite(s.val_acc):
            parts.append(f"acc  train {_pct(s.train_acc)}  val {_pct(s.val_acc)}")
        if s.status != "running":
            parts.append(s.status + (f": {s.message}" if s.message else ""))
        if len(self._runs) >= 2:  # every run's gap at its newest measurement
            gaps = []
            for name, src, _ in self._runs:
                if len(src):
                    gap = src.series("val_loss")[-1] - src.series("train_loss")[-1]
                    gaps.append(f"{name} {gap:+.3g}")
            parts.append("gaps  " + "  ".join(gaps))
        return "   ·   ".join(parts)

    def _on_log_toggled(self, on: bool) -> None:
        self.loss_plot.setLogMode(y=on)
        self.loss_plot.enableAutoRange()
        self.redraw()


def _pct(v: float) -> str:
    return f"{v:.1%}" if math.isfinite(v) else "—"


def _as_2d(x: np.ndarray) -> np.ndarray:
    """Points as (N, ≥1) float; an empty array becomes (0, 2) so column indexing never fails."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return np.zeros((0, 2))
    return x.reshape(len(x), -1)


def _points_key(d: DataView) -> tuple:
    """A cheap fingerprint of the points: redraws skip re-creating hundreds of scatter spots."""
    def fp(a: np.ndarray) -> tuple:
        a = np.ascontiguousarray(a)
        return a.shape, a.dtype.str, hash(a.tobytes())
    return d.kind, fp(d.x_train), fp(d.y_train), fp(d.x_val), fp(d.y_val)


def _grid_rect(gx: np.ndarray, gy: np.ndarray) -> QRectF:
    """The image rectangle with pixel centres on the grid points (half a cell past each end)."""
    dx = (gx[-1] - gx[0]) / (len(gx) - 1) if len(gx) > 1 else 1.0
    dy = (gy[-1] - gy[0]) / (len(gy) - 1) if len(gy) > 1 else 1.0
    return QRectF(float(gx[0] - dx / 2), float(gy[0] - dy / 2), float(gx[-1] - gx[0] + dx),
                  float(gy[-1] - gy[0] + dy))
