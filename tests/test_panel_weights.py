"""WeightsPanel: histograms, percentile bands and norms must hold what the run says."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySide6.QtCore import QPointF
from qtimage import feed, n_points, show_on_screen, viewbox_mode_color
from qtimage import to_rgba as to_array
from synthetic import make_snapshot

from regsim.snapshot import History
from ui.panels.weights import BANDS, MAX_LAYERS, MEDIAN, WeightsPanel
from ui.theme import SCREEN, SLIDE


def two_layers(snap):
    """The same snapshot from a network with one weight matrix fewer."""
    return dataclasses.replace(
        snap, layer_names=("fc1", "out"), layer_sizes=(2, 64, 2),
        weight_hist=snap.weight_hist[::2], weight_hist_edges=snap.weight_hist_edges[::2],
        weight_norms=snap.weight_norms[::2], weight_abs_max=snap.weight_abs_max[::2])


@pytest.fixture
def history() -> History:
    return History()


@pytest.fixture
def panel(qtbot, history):
    p = WeightsPanel(history)
    qtbot.addWidget(p)
    yield p
    p.cleanup()






def test_histograms_hold_the_snapshot_counts(panel, history):
    snap = make_snapshot(step=500)
    panel.density.setChecked(False)
    panel.fixed_axis.setChecked(False)  # the adaptive axis: ±max|w| per snapshot
    feed(panel, history, [snap])
    for i in range(len(snap.layer_names)):
        item = panel.hist_items[i]
        assert item.isVisible() and item.opts["stepMode"] == "center"
        np.testing.assert_array_equal(item.xData, snap.weight_hist_edges[i])
        np.testing.assert_array_equal(item.yData, snap.weight_hist[i])
    assert not any(item.isVisible() for item in panel.hist_items[len(snap.layer_names):])
    assert panel.hist_plot.getAxis("left").labelText == "count"


def test_density_histograms_have_unit_area(panel, history):
    snap = make_snapshot(step=500)
    panel.fixed_axis.setChecked(False)
    feed(panel, history, [snap])
    assert panel.density.isChecked()  # the default: small layers stay visible beside big ones
    for i in range(len(snap.layer_names)):
        item = panel.hist_items[i]
        area = np.sum(item.yData * np.diff(item.xData))
        assert area == pytest.approx(1.0)
        counts = np.asarray(snap.weight_hist[i], dtype=float)
        np.testing.assert_allclose(item.yData / item.yData.max(), counts / counts.max())
    assert panel.hist_plot.getAxis("left").labelText == "density"


def test_legends_and_selector_name_the_layers(panel, history):
    snap = make_snapshot(step=100)
    feed(panel, history, [snap])
    assert [label.text for _, label in panel.hist_legend.items] == list(snap.layer_names)
    norm_names = [label.text for _, label in panel.norm_legend.items]
    assert norm_names == [*snap.layer_names, "total"]
    assert [panel.layer_box.itemText(i) for i in range(panel.layer_box.count())] == \
        list(snap.layer_names)
    pens = {panel.hist_items[i].opts["pen"].color().name() for i in range(3)}
    assert len(pens) == 3  # distinct colours


def test_percentile_bands_follow_the_selected_layer(panel, history):
    feed(panel, history, [make_snapshot(step=s, weight_decay=0.5) for s in range(0, 2000, 50)])
    steps, bands = history.percentiles()
    for layer in (0, 2, 1):
        panel.layer_box.setCurrentIndex(layer)  # redraws through the signal
        for (lo, hi), (i, j) in zip(panel.band_edges, BANDS, strict=True):
            np.testing.assert_array_equal(lo.xData, steps)
            np.testing.assert_array_equal(lo.yData, bands[:, layer, i])
            np.testing.assert_array_equal(hi.yData, bands[:, layer, j])
        np.testing.assert_array_equal(panel.median_curve.yData, bands[:, layer, MEDIAN])
        assert panel.snapshot.layer_names[layer] in panel.band_plot.titleLabel.text
        assert not any(f.path().isEmpty() for f in panel.band_fills)
    # The outer band contains the inner ones at every step.
    widths = [hi.yData - lo.yData for lo, hi in panel.band_edges]
    for outer, inner in zip(widths, widths[1:], strict=False):
        assert np.all(outer >= inner - 1e-12)


def test_norm_curves_hold_the_history(panel, history):
    feed(panel, history, [make_snapshot(step=s) for s in range(0, 1500, 30)])
    steps, norms = history.series("step"), history.layer_norm_series()
    for i in range(norms.shape[1]):
        np.testing.assert_array_equal(panel.norm_items[i].xData, steps)
        np.testing.assert_array_equal(panel.norm_items[i].yData, norms[:, i])
    np.testing.assert_array_equal(panel.total_norm.yData, history.series("weight_norm"))


def test_readout_and_tooltips_explain_the_decay(panel, history):
    snap = make_snapshot(step=100, weight_decay=0.05)
    feed(panel, history, [snap])
    text = panel.readout.text()
    assert "λ = 0.05" in text and "decoupled" in text
    assert f"{1 - snap.lr * 0.05:.6f}" in text  # the per-step shrink factor (1 − ηλ)
    for i, name in enumerate(snap.layer_names):
        assert name in text
        assert f"{snap.weight_norms[i]:.3f}" in text and f"{snap.weight_abs_max[i]:.3f}" in text
    tips = panel.readout.toolTip() + panel.norm_widget.toolTip() + panel.band_widget.toolTip()
    assert "θ ← θ − η·λ·θ" in tips and "(1 − ηλ)" in tips
    assert "λθ" in tips and "σ² = 1/(Nλ)" in tips  # the averaged loss regsim trains (prior.py)
    l2 = dataclasses.replace(snap, hparams=snap.hparams.replace(decay_mode="l2"))
    feed(panel, history, [l2])
    assert "l2" in panel.readout.text() and "+ λθ" in panel.readout.text()


def test_empty_history_reset_and_layer_change(panel, history):
    panel.redraw()  # no snapshot, no history
    assert panel.layer_box.count() == 0
    panel.ingest(make_snapshot(step=0))
    panel.redraw()  # a snapshot the history has not seen yet
    assert n_points(panel.hist_items[0]) == 65 and n_points(panel.total_norm) == 0
    feed(panel, history, [make_snapshot(step=s) for s in range(0, 300, 100)])
    panel.reset()
    assert panel.snapshot is None and panel.layer_box.count() == 0
    for item in panel.hist_items + panel.norm_items + [panel.total_norm, panel.median_curve]:
        assert n_points(item) == 0
    assert "waiting" in panel.readout.text()
    # A new run with a smaller network: the step goes back, the history starts over.
    feed(panel, history, [two_layers(make_snapshot(step=s)) for s in range(0, 300, 100)])
    assert panel.layer_box.count() == 2
    assert [label.text for _, label in panel.hist_legend.items] == ["fc1", "out"]
    assert sum(item.isVisible() for item in panel.hist_items) == 2
    assert len(panel.hist_items) == MAX_LAYERS
    assert panel.median_curve.yData.shape == (3,)


def test_grab_is_not_blank(panel, history, qtbot):
    feed(panel, history, [make_snapshot(step=s) for s in range(0, 3000, 30)])
    panel.resize(1920, 1080)
    panel.show()
    qtbot.waitExposed(panel)
    qtbot.wait(30)
    pixels = to_array(panel.grab().toImage())
    assert pixels[..., :3].astype(float).std() > 15
    for widget in (panel.hist_widget, panel.band_widget, panel.norm_widget):
        vb = widget.getPlotItem().getViewBox()
        rect = widget.mapFromScene(vb.sceneBoundingRect()).boundingRect()
        tl = widget.mapTo(panel, rect.topLeft())
        area = pixels[tl.y() + 5: tl.y() + rect.height() - 5, tl.x() + 5: tl.x() + rect.width() - 5]
        assert area[..., :3].astype(float).std() > 5, widget


def test_slide_theme_makes_plot_backgrounds_white(panel, history, qtbot):
    feed(panel, history, [make_snapshot(step=s) for s in range(0, 3000, 30)])
    panel.resize(1920, 1080)
    panel.show()
    qtbot.waitExposed(panel)
    qtbot.wait(30)
    dark = (0x1e, 0x1f, 0x24)
    before = to_array(panel.grab().toImage())
    assert viewbox_mode_color(panel, panel.norm_widget, before) == dark
    panel.apply_theme(SLIDE)
    qtbot.wait(30)
    after = to_array(panel.grab().toImage())
    for widget in (panel.hist_widget, panel.band_widget, panel.norm_widget):
        assert viewbox_mode_color(panel, widget, after) == (255, 255, 255)
    assert panel.norm_items[0].opts["pen"].widthF() == SLIDE.line_width
    assert panel.norm_legend.items[0][1].opts["size"] == f"{SLIDE.font_pt}pt"
    assert f"{SLIDE.font_pt}pt" in panel.readout.styleSheet()
    panel.apply_theme(SCREEN)
    qtbot.wait(30)
    assert viewbox_mode_color(panel, panel.norm_widget, to_array(panel.grab().toImage())) == dark


def _spread(item) -> float:
    """Standard deviation of the weights a drawn histogram describes (bin centres, counts)."""
    e, c = np.asarray(item.xData), np.asarray(item.yData)
    mid = (e[:-1] + e[1:]) / 2
    mean = np.sum(c * mid) / np.sum(c)
    return float(np.sqrt(np.sum(c * (mid - mean) ** 2) / np.sum(c)))


def test_fixed_axis_shows_the_histogram_compressing(panel, history, qtbot):
    """Raising λ mid-run: on the fixed axis (the default) the x range stays and the drawn shape gets
    narrower; on the adaptive axis the range re-fits to ±max|w| and the shape looks as wide."""
    assert panel.fixed_axis.isChecked()
    show_on_screen(panel, qtbot, 1366, 768)
    before = make_snapshot(step=1000, weight_decay=0.0)
    feed(panel, history, [before])
    x0 = panel.hist_plot.getViewBox().viewRange()[0]
    np.testing.assert_array_equal(panel.hist_items[1].xData, before.weight_hist_fixed_edges[1])
    wide = _spread(panel.hist_items[1])
    after = make_snapshot(step=1100, weight_decay=10.0)  # weights ~ 11× smaller
    feed(panel, history, [after])
    np.testing.assert_array_equal(panel.hist_items[1].xData, after.weight_hist_fixed_edges[1])
    assert panel.hist_plot.getViewBox().viewRange()[0] == pytest.approx(x0)
    assert _spread(panel.hist_items[1]) < wide / 5
    panel.fixed_axis.setChecked(False)
    qtbot.wait(20)
    x_fit = panel.hist_plot.getViewBox().viewRange()[0]
    assert x_fit[1] - x_fit[0] < (x0[1] - x0[0]) / 3  # re-fitted to the small weights


def test_change_markers_on_norm_and_band_plots(panel, history):
    feed(panel, history, [make_snapshot(step=s, events=[(s, "λ 0.001 → 0.0512345")] if s == 500 else [])
                          for s in range(0, 1000, 50)])
    for markers in (panel.norm_markers, panel.band_markers):
        assert [step for step, _ in markers.shown] == [500]
        assert markers.shown[0][1] == "λ 0.001 → 0.0512"
        assert sum(line.isVisible() for line in markers.lines) == 1
    panel.reset()
    assert not any(line.isVisible() for line in panel.norm_markers.lines)


def test_norm_legend_covers_no_data(panel, history, qtbot):
    """The total ‖W‖ is the top curve and its newest points sit at the top right, where the legend
    used to be: the legend must be outside the view box."""
    snaps = [make_snapshot(step=s, weight_decay=0.0) for s in range(0, 1500, 30)]
    snaps = [dataclasses.replace(s, weight_norms=s.weight_norms * (1 + s.step / 300)) for s in snaps]
    feed(panel, history, snaps)
    show_on_screen(panel, qtbot, 1366, 768)
    qtbot.wait(50)
    vb = panel.norm_plot.getViewBox()
    for legend in (panel.norm_legend, panel.hist_legend):
        rect = legend.mapRectToScene(legend.boundingRect())
        assert rect.width() > 20
        assert not rect.intersects(legend.parentItem().getViewBox().sceneBoundingRect())
    x, y = panel.total_norm.getData()
    pts = [vb.mapViewToScene(QPointF(a, b)) for a, b in zip(x, y, strict=True)]
    rect = panel.norm_legend.mapRectToScene(panel.norm_legend.boundingRect())
    assert not any(rect.contains(p) for p in pts)


def test_locked_histograms_match_numpy():
    """Engine side: counts over the range locked at the start, checked against numpy.histogram;
    the range stays put while decay shrinks the weights."""
    from regsim import Trainer
    from regsim.hparams import HParams
    from regsim.trainer import HIST_BINS

    trainer = Trainer(HParams(dataset="moons", hidden=(32, 32), train_size=100, val_size=50), "cpu")
    trainer.step(100)
    first = trainer.snapshot()  # the lock: max|w| so far (it only widens if a weight grows past)
    amax_first = first.weight_abs_max
    trainer.update(weight_decay=5.0, lr=0.01)
    trainer.step(300)
    snap = trainer.snapshot()
    assert np.all(snap.weight_abs_max < amax_first)  # decay shrank every layer
    weights = [lin.weight.detach().numpy().ravel() for lin in trainer.model.weight_layers()]
    for i, w in enumerate(weights):
        edges = snap.weight_hist_fixed_edges[i]
        np.testing.assert_array_equal(edges, first.weight_hist_fixed_edges[i])  # locked
        r = edges[-1]
        counts, np_edges = np.histogram(w.astype(np.float64), bins=HIST_BINS, range=(-r, r))
        np.testing.assert_allclose(edges, np_edges)
        np.testing.assert_array_equal(snap.weight_hist_fixed[i], counts)
        assert np.abs(w).max() < r / 2  # the weights really shrank on the locked axis
    trainer.reset()
    assert trainer.snapshot().weight_hist_fixed_edges[0][-1] == pytest.approx(
        float(np.abs(trainer.model.weight_layers()[0].weight.detach().numpy()).max()))


def test_empty_state_has_sensible_ranges(panel, history, qtbot):
    show_on_screen(panel, qtbot, 1366, 768)
    panel.redraw()
    qtbot.wait(20)
    (x0, x1), (y0, y1) = panel.norm_plot.getViewBox().viewRange()
    assert x0 <= 0 and 450 <= x1 <= 600 and y0 <= 0 and 0.9 <= y1 <= 1.2
    assert panel.norm_plot._regsim_hint.isVisible()
    (hx0, hx1), _ = panel.hist_plot.getViewBox().viewRange()
    assert hx0 == pytest.approx(-1.04, abs=0.05) and hx1 == pytest.approx(1.04, abs=0.05)
    feed(panel, history, [make_snapshot(step=0)])
    qtbot.wait(20)
    (x0, x1), (y0, y1) = panel.norm_plot.getViewBox().viewRange()
    assert x1 - x0 >= 49 and y1 - y0 >= 0.019
    assert not panel.norm_plot._regsim_hint.isVisible()
    panel.reset()
    history.clear()
    panel.redraw()
    qtbot.wait(20)
    assert panel.norm_plot._regsim_hint.isVisible()
