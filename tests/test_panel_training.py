"""TrainingPanel: the plot items must hold exactly what the history and the snapshot say."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from qtimage import feed, n_points, show_on_screen, viewbox_mode_color
from qtimage import to_rgba as to_array
from synthetic import make_snapshot

from regsim.snapshot import History
from ui.panels.training import MAX_MARKERS, TrainingPanel
from ui.theme import SCREEN, SLIDE


@pytest.fixture
def history() -> History:
    return History()


@pytest.fixture
def panel(qtbot, history):
    p = TrainingPanel(history)
    qtbot.addWidget(p)
    yield p
    p.cleanup()






def grab(panel, qtbot) -> np.ndarray:
    show_on_screen(panel, qtbot)
    qtbot.wait(30)
    return to_array(panel.grab().toImage())




def test_curves_hold_the_history(panel, history):
    feed(panel, history, [make_snapshot(step=s) for s in range(0, 2000, 50)])
    steps = history.series("step")
    np.testing.assert_array_equal(panel.train_curve.xData, steps)
    np.testing.assert_array_equal(panel.train_curve.yData, history.series("train_loss"))
    np.testing.assert_array_equal(panel.val_curve.xData, steps)
    np.testing.assert_array_equal(panel.val_curve.yData, history.series("val_loss"))
    np.testing.assert_array_equal(panel.train_acc_curve.yData, history.series("train_acc"))
    np.testing.assert_array_equal(panel.val_acc_curve.yData, history.series("val_acc"))
    # The gap is shaded between the curves: its outline spans them, step 0 to the last step.
    box = panel.gap_fill.path().boundingRect()
    assert box.left() == steps[0] and box.right() == steps[-1]
    lo = np.minimum(history.series("train_loss"), history.series("val_loss")).min()
    hi = np.maximum(history.series("train_loss"), history.series("val_loss")).max()
    assert box.top() == pytest.approx(lo) and box.bottom() == pytest.approx(hi)
    assert not panel.acc_widget.isHidden()
    legend = [label.text for _, label in panel.loss_legend.items]
    assert legend[:2] == ["train", "val"] and "gap" in legend[2]


def test_readout_shows_step_losses_gap_and_accuracy(panel, history):
    snap = make_snapshot(step=1234)
    feed(panel, history, [snap])
    text = panel.readout.text()
    assert "step 1,234" in text
    assert f"{snap.train_loss:.4g}" in text and f"{snap.val_loss:.4g}" in text
    assert f"{snap.val_loss - snap.train_loss:+.4g}" in text
    assert f"{snap.val_acc:.1%}" in text


def test_log_toggle_keeps_data_and_logs_the_display(panel, history):
    feed(panel, history, [make_snapshot(step=s) for s in range(0, 1000, 100)])
    panel.log_y.setChecked(True)
    assert panel.loss_plot.ctrl.logYCheck.isChecked()
    np.testing.assert_array_equal(panel.train_curve.yData, history.series("train_loss"))
    _, shown = panel.train_curve.getData()
    np.testing.assert_allclose(shown, np.log10(history.series("train_loss")))
    panel.log_y.setChecked(False)
    _, shown = panel.train_curve.getData()
    np.testing.assert_allclose(shown, history.series("train_loss"))


def test_decision_image_contour_and_points(panel, history):
    snap = make_snapshot(step=300)
    # An asymmetric model (P depends on x₁ only), so a transposed image cannot pass.
    gx = snap.data.grid_x
    prob = np.tile(1 / (1 + np.exp(-3 * gx)), (len(snap.data.grid_y), 1))
    snap = dataclasses.replace(snap, data=dataclasses.replace(snap.data, grid_prob=prob))
    feed(panel, history, [snap])
    d = snap.data
    assert panel.data_stack.currentWidget() is panel.data_widget
    np.testing.assert_array_equal(panel.decision.image, d.grid_prob)
    np.testing.assert_array_equal(panel.contour.data, d.grid_prob)
    assert panel.contour.level == 0.5
    # The image covers the grid, pixel centres on grid points: half a cell beyond each end.
    rect = panel.decision.mapRectToParent(panel.decision.boundingRect())
    cell = d.grid_x[1] - d.grid_x[0]
    assert rect.left() == pytest.approx(d.grid_x[0] - cell / 2)
    assert rect.right() == pytest.approx(d.grid_x[-1] + cell / 2)
    assert rect.top() == pytest.approx(d.grid_y[0] - cell / 2)
    assert rect.bottom() == pytest.approx(d.grid_y[-1] + cell / 2)
    # Pixel (row r, col c) is drawn at (grid_x[c], grid_y[r]).
    for r, c in ((0, 5), (40, 2), (63, 60)):
        centre = panel.decision.mapToParent(QPointF(c + 0.5, r + 0.5))
        assert (centre.x(), centre.y()) == pytest.approx((d.grid_x[c], d.grid_y[r]))
    x, y = panel.train_points.getData()
    np.testing.assert_array_equal(x, d.x_train[:, 0])
    np.testing.assert_array_equal(y, d.x_train[:, 1])
    assert len(panel.val_points.getData()[0]) == len(d.x_val)
    # Class colours: points of different classes get different brushes; val points are hollow.
    spots = panel.train_points.data
    c0 = {spots["brush"][i].color().name() for i in np.flatnonzero(d.y_train == 0)}
    c1 = {spots["brush"][i].color().name() for i in np.flatnonzero(d.y_train == 1)}
    assert len(c0) == 1 and len(c1) == 1 and c0 != c1
    brushes = [b or panel.val_points.opts["brush"] for b in panel.val_points.data["brush"]]
    assert all(b.style() == Qt.BrushStyle.NoBrush for b in brushes)
    # The next snapshot's model replaces the image.
    snap2 = make_snapshot(step=900)
    feed(panel, history, [snap2])
    np.testing.assert_array_equal(panel.decision.image, snap2.data.grid_prob)


def test_event_markers_match_events(panel, history):
    snaps = [make_snapshot(step=s, events=[(s, f"lr → {s}")] if s in (200, 500, 800) else [])
             for s in range(0, 1000, 100)]
    feed(panel, history, snaps)
    shown = [m for m in panel.markers if m.isVisible()]
    assert len(shown) == len(history.events) == 3
    assert [m.value() for m in shown] == [200, 500, 800]
    assert panel.change_markers.shown[1][1] == "lr → 500"
    # Two changes at one step share a line; braces in the text are not format fields.
    feed(panel, history, [make_snapshot(step=1000, events=[(1000, "p {0.5}"), (1000, "λ 0.1")])])
    shown = [m for m in panel.markers if m.isVisible()]
    assert len(shown) == 4
    assert panel.change_markers.shown[-1][1] == "p {0.5}; λ 0.1"


def test_event_markers_are_bounded_to_the_latest(panel, history):
    n = MAX_MARKERS + 25
    feed(panel, history, [make_snapshot(step=10 * i, events=[(10 * i, f"change {i}")])
                          for i in range(n)])
    assert len(panel.markers) == MAX_MARKERS
    shown = [m for m in panel.markers if m.isVisible()]
    assert len(shown) == MAX_MARKERS
    assert [m.value() for m in shown] == [10 * i for i in range(n - MAX_MARKERS, n)]


def test_regression_hides_accuracy_and_draws_the_model_curve(panel, history):
    snaps = [make_snapshot(step=s, dataset="regression") for s in range(0, 500, 100)]
    snaps = [dataclasses.replace(s, train_acc=math.nan, val_acc=math.nan) for s in snaps]
    feed(panel, history, snaps)
    d = snaps[-1].data
    assert panel.acc_widget.isHidden()
    assert not panel.decision.isVisible()
    np.testing.assert_array_equal(panel.model_curve.xData, d.curve_x)
    np.testing.assert_array_equal(panel.model_curve.yData, d.curve_y)
    x, y = panel.train_points.getData()
    np.testing.assert_array_equal(x, d.x_train[:, 0])
    np.testing.assert_array_equal(y, d.y_train)
    assert "acc" not in panel.readout.text()


def test_digits_mosaic_and_labels(panel, history):
    snap = make_snapshot(step=100, dataset="digits")
    feed(panel, history, [snap])
    d = snap.data
    assert panel.data_stack.currentWidget() is panel.digit_widget
    mosaic = panel.mosaic.image
    k = len(d.images)
    shown = [t for t in panel.digit_labels if t.isVisible()]
    assert len(shown) == k
    right, wrong = panel._right, panel._wrong
    for i in range(k):
        text = panel.digit_labels[i]
        assert text.toPlainText() == f"{d.preds[i]} ({d.labels[i]})"
        expected = right if d.preds[i] == d.labels[i] else wrong
        assert text.color.name() == expected
        # The tile under the label holds the digit image.
        x0, y_label = text.pos().x() - 4, text.pos().y()
        r0 = int(round(y_label + 0.3))
        np.testing.assert_array_equal(mosaic[r0:r0 + 8, int(x0):int(x0) + 8], d.images[i])
    assert np.isnan(mosaic).any()  # gaps between tiles stay transparent


def test_dataset_kind_changes_between_snapshots(panel, history):
    feed(panel, history, [make_snapshot(step=100)])
    assert panel.decision.image is not None
    feed(panel, history, [make_snapshot(step=200, dataset="digits")])
    assert panel.data_stack.currentWidget() is panel.digit_widget
    assert panel.decision.image is None and len(panel.train_points.getData()[0]) == 0
    feed(panel, history, [make_snapshot(step=300, dataset="regression")])
    assert panel.data_stack.currentWidget() is panel.data_widget
    assert panel.mosaic.image is None and not any(t.isVisible() for t in panel.digit_labels)
    assert n_points(panel.model_curve) == 200
    snap = make_snapshot(step=400)
    feed(panel, history, [snap])
    np.testing.assert_array_equal(panel.decision.image, snap.data.grid_prob)
    assert n_points(panel.model_curve) == 0


def test_empty_history_nan_values_and_reset(panel, history):
    panel.redraw()  # nothing at all yet
    assert n_points(panel.train_curve) == 0
    snap = make_snapshot(step=0)
    panel.ingest(snap)
    panel.redraw()  # a snapshot the history has not seen
    bad = dataclasses.replace(make_snapshot(step=100), train_loss=math.nan, val_loss=math.inf,
                              train_acc=math.nan, val_acc=math.nan)
    feed(panel, history, [make_snapshot(step=50), bad])
    panel.log_y.setChecked(True)
    panel.redraw()
    feed(panel, history, [make_snapshot(step=150, events=[(150, "p 0.1")])])
    assert any(m.isVisible() for m in panel.markers)
    panel.reset()
    assert panel.snapshot is None
    for curve in (panel.train_curve, panel.val_curve, panel.train_acc_curve, panel.val_acc_curve):
        assert n_points(curve) == 0
    assert not any(m.isVisible() for m in panel.markers)
    assert panel.decision.image is None
    assert "waiting" in panel.readout.text()
    history.clear()
    panel.redraw()
    assert n_points(panel.train_curve) == 0


def viewbox_pixels(panel, widget, pixels: np.ndarray) -> np.ndarray:
    """The RGB pixels inside a plot's view box (a few pixels in from its frame)."""
    vb = widget.getPlotItem().getViewBox()
    rect = widget.mapFromScene(vb.sceneBoundingRect()).boundingRect()
    tl = widget.mapTo(panel, rect.topLeft())
    return pixels[tl.y() + 5: tl.y() + rect.height() - 5, tl.x() + 5: tl.x() + rect.width() - 5, :3]


def test_grab_is_not_blank(panel, history, qtbot):
    def background_shares(pixels):
        shares = []
        for widget in (panel.loss_widget, panel.acc_widget, panel.data_widget):
            area = viewbox_pixels(panel, widget, pixels).reshape(-1, 3)
            _, counts = np.unique(area, axis=0, return_counts=True)
            shares.append(counts.max() / len(area))
        return np.array(shares)

    empty = background_shares(grab(panel, qtbot))  # axes and grid only
    feed(panel, history, [make_snapshot(step=s) for s in range(0, 3000, 30)])
    pixels = grab(panel, qtbot)
    assert pixels[..., :3].astype(float).std() > 15
    # Each plot shows more than its background and grid: curves, the shaded gap, the decision
    # image under the points. Measured: empty (0.97, 0.97, 0.98), fed (0.78, 0.96, 0.50).
    full = background_shares(pixels)
    assert np.all(full < empty - 0.005), (empty, full)
    assert full[0] < 0.9 and full[2] < 0.6, full


def test_slide_theme_makes_plot_backgrounds_white(panel, history, qtbot):
    feed(panel, history, [make_snapshot(step=s) for s in range(0, 3000, 30)])
    before = grab(panel, qtbot)
    assert viewbox_mode_color(panel, panel.loss_widget, before) == (0x1e, 0x1f, 0x24)
    panel.apply_theme(SLIDE)
    qtbot.wait(30)
    after = to_array(panel.grab().toImage())
    assert viewbox_mode_color(panel, panel.loss_widget, after) == (255, 255, 255)
    assert viewbox_mode_color(panel, panel.acc_widget, after) == (255, 255, 255)
    assert panel.train_curve.opts["pen"].widthF() == SLIDE.line_width
    assert panel.loss_plot.getAxis("bottom").labelStyle["font-size"] == f"{SLIDE.font_pt}pt"
    assert f"{SLIDE.font_pt}pt" in panel.loss_legend.items[0][1].text or \
        panel.loss_legend.items[0][1].opts["size"] == f"{SLIDE.font_pt}pt"
    panel.apply_theme(SCREEN)
    qtbot.wait(30)
    back = to_array(panel.grab().toImage())
    assert viewbox_mode_color(panel, panel.loss_widget, back) == (0x1e, 0x1f, 0x24)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_one_slider_gesture_is_one_rounded_marker(qtbot):
    """A drag sends λ 0.001 → 0.0012 → … → 0.05 within a second: one marker, first old value to
    the last new one, 3 significant digits; a change 3 s later (or of another setting) is a new one."""
    clock = FakeClock()
    history = History(clock=clock)
    panel = TrainingPanel(history)
    qtbot.addWidget(panel)
    values = [0.001, 0.0012, 0.0031622, 0.012345, 0.05]
    snaps = []
    for i, (a, b) in enumerate(zip(values, values[1:], strict=False)):
        clock.t = 0.1 * i
        snaps.append(make_snapshot(step=100 + i, events=[(100 + i, f"λ {a:g} → {b:g}")]))
        feed(panel, history, snaps[-1:])
    assert history.events == [(100, "λ 0.001 → 0.05")]
    assert sum(m.isVisible() for m in panel.markers) == 1
    clock.t = 3.0  # a later gesture of the same setting
    feed(panel, history, [make_snapshot(step=200, events=[(200, "λ 0.05 → 0.0123456")])])
    clock.t = 3.1  # another setting in between ends a gesture
    feed(panel, history, [make_snapshot(step=201, events=[(201, "p 0.5 → 0.3")])])
    clock.t = 3.2
    feed(panel, history, [make_snapshot(step=202, events=[(202, "λ 0.0123456 → 0.02")])])
    assert [e[1] for e in history.events] == ["λ 0.001 → 0.05", "λ 0.05 → 0.0123456",
                                              "p 0.5 → 0.3", "λ 0.0123456 → 0.02"]
    assert [t for _, t in panel.change_markers.shown][1] == "λ 0.05 → 0.0123"
    # A drag that comes back to where it started leaves no marker.
    clock.t = 5.0
    feed(panel, history, [make_snapshot(step=300, events=[(300, "lr 0.01 → 0.02")])])
    clock.t = 5.2
    feed(panel, history, [make_snapshot(step=301, events=[(301, "lr 0.02 → 0.01")])])
    assert sum(m.isVisible() for m in panel.markers) == 4
    panel.cleanup()


def test_marker_labels_never_overlap_or_leave_the_plot(panel, history, qtbot):
    """Changes a few steps apart (labels would collide) and one at the very last step (its label
    would be clipped at the right edge)."""
    steps = list(range(0, 1000, 10))
    names = dict(zip((400, 410, 420, 430, 980), ("λ", "p", "lr", "p_in", "λ"), strict=True))
    events = {s: [(s, f"{n} {s / 1e4:.4f} → {s / 1e4 + 0.0123:.4f}")] for s, n in names.items()}
    feed(panel, history, [make_snapshot(step=s, events=events.get(s, [])) for s in steps])
    show_on_screen(panel, qtbot, 1366, 768)
    qtbot.wait(50)
    panel.change_markers.relayout()
    rects = panel.change_markers.label_rects()
    assert len(rects) == 5
    box = panel.loss_plot.getViewBox().sceneBoundingRect()
    for i, r in enumerate(rects):
        assert box.contains(r), (r, box)
        for other in rects[i + 1:]:
            assert not r.intersects(other), (r, other)
    labels = [t for _, t in panel.change_markers.shown]
    assert labels[0] == "λ 0.04 → 0.0523"  # 3 significant digits


def _points_in_scene(plot, curve) -> list:
    x, y = curve.getData()
    vb = plot.getViewBox()
    return [vb.mapViewToScene(QPointF(float(a), float(b))) for a, b in zip(x, y, strict=True)
            if np.isfinite(a) and np.isfinite(b)]


def test_loss_legend_covers_no_data(panel, history, qtbot):
    """The newest val loss peaks in the top right corner, where the legend used to sit."""
    snaps = []
    for s in range(0, 2000, 20):
        snap = make_snapshot(step=s)
        snaps.append(dataclasses.replace(snap, val_loss=0.3 + (2.0 if s >= 1900 else 0.0)))
    feed(panel, history, snaps)
    show_on_screen(panel, qtbot, 1366, 768)
    qtbot.wait(50)
    legend = panel.loss_legend.mapRectToScene(panel.loss_legend.boundingRect())
    assert legend.width() > 20 and legend.height() > 5
    points = _points_in_scene(panel.loss_plot, panel.val_curve) + \
        _points_in_scene(panel.loss_plot, panel.train_curve)
    assert points and not any(legend.contains(p) for p in points)
    assert not legend.intersects(panel.loss_plot.getViewBox().sceneBoundingRect())


def test_decision_map_resolves_memorisation_and_fits_the_data(panel, history, qtbot):
    """no_regularization memorises its noisy moons (100 % train accuracy): the map's class in
    every training point's pixel must be the model's own prediction at that point, and the map
    (and the view) must span the data plus a small margin, not −5…5."""
    import torch

    from regsim import Trainer
    from regsim.presets import load_preset
    from regsim.trainer import GRID_MARGIN

    trainer = Trainer(load_preset("no_regularization"), "cpu")
    for _ in range(40):
        trainer.step(250)
        if trainer.evaluate()[2] >= 1.0:
            break
    assert trainer.evaluate()[2] == 1.0
    snap = trainer.snapshot()
    d = snap.data
    with torch.no_grad():
        trainer.model.eval()
        pred = trainer.model(torch.as_tensor(d.x_train)).argmax(1).numpy()
    gx, gy = d.grid_x, d.grid_y
    col = np.clip(np.round((d.x_train[:, 0] - gx[0]) / (gx[1] - gx[0])).astype(int), 0, len(gx) - 1)
    row = np.clip(np.round((d.x_train[:, 1] - gy[0]) / (gy[1] - gy[0])).astype(int), 0, len(gy) - 1)
    map_class = (d.grid_prob[row, col] > 0.5).astype(int)
    np.testing.assert_array_equal(map_class, pred)
    np.testing.assert_array_equal(pred, d.y_train)  # memorised: the map shows every label
    pts = np.concatenate([d.x_train, d.x_val])
    lo, hi = pts.min(0), pts.max(0)
    margin = (GRID_MARGIN + 0.02) * (hi - lo)
    assert gx[0] >= lo[0] - margin[0] and gx[-1] <= hi[0] + margin[0]
    assert gy[0] >= lo[1] - margin[1] and gy[-1] <= hi[1] + margin[1]
    assert gx[0] < lo[0] and gx[-1] > hi[0] and gy[0] < lo[1] and gy[-1] > hi[1]
    feed(panel, history, [snap])
    show_on_screen(panel, qtbot, 1366, 768)
    qtbot.wait(50)
    (vx0, vx1), (vy0, vy1) = panel.data_plot.getViewBox().viewRange()
    slack = 2 * margin + 0.05 * (hi - lo)
    assert vx0 >= lo[0] - slack[0] and vx1 <= hi[0] + slack[0]
    assert vy0 >= lo[1] - slack[1] and vy1 <= hi[1] + slack[1]


def _ranges(plot):
    return plot.getViewBox().viewRange()


def test_empty_state_and_single_point_ranges(panel, history, qtbot):
    """Before data and after a reset: steps 0…500, loss and accuracy 0…1 and a hint; one point
    never gives a degenerate range (was step −0.4…0.4, accuracy 0.140–0.148)."""
    show_on_screen(panel, qtbot, 1366, 768)
    panel.redraw()
    qtbot.wait(20)

    def assert_empty():
        (x0, x1), (y0, y1) = _ranges(panel.loss_plot)
        assert x0 <= 0 <= 10 and 450 <= x1 <= 600 and y0 <= 0.0 and 0.9 <= y1 <= 1.2
        (_, _), (a0, a1) = _ranges(panel.acc_plot)
        assert a0 <= 0.0 and a1 >= 1.0
        assert panel.loss_plot._regsim_hint.isVisible()
        assert "Space" in panel.loss_plot._regsim_hint.toPlainText()

    assert_empty()
    snap = dataclasses.replace(make_snapshot(step=0), train_acc=0.144, val_acc=0.146)
    feed(panel, history, [snap])
    qtbot.wait(20)
    (x0, x1), (y0, y1) = _ranges(panel.loss_plot)
    assert x1 - x0 >= 49 and x0 > -50 and y1 - y0 >= 0.019
    (_, _), (a0, a1) = _ranges(panel.acc_plot)
    assert a1 - a0 >= 0.099 and a0 >= -0.03 and a1 <= 1.03
    assert not panel.loss_plot._regsim_hint.isVisible()
    feed(panel, history, [make_snapshot(step=s) for s in range(100, 3000, 100)])
    qtbot.wait(20)
    assert _ranges(panel.loss_plot)[0][1] > 2500  # auto-range again with data
    panel.reset()
    history.clear()
    panel.redraw()
    qtbot.wait(20)
    assert_empty()
