"""DropoutPanel: masks drawn as they are, fractions measured, train vs inference behaviour."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from qtimage import show_on_screen, viewbox_pixel
from qtimage import to_rgb as to_array
from synthetic import make_snapshot

from regsim.snapshot import History
from ui.panels.dropout import (
    INFERENCE_NOTE,
    MAX_DRAWN_NEURONS,
    OFF_NOTE,
    DropoutPanel,
    StableScale,
    nice_ceil,
)
from ui.theme import SCREEN, SLIDE


@pytest.fixture
def panel(qtbot):
    p = DropoutPanel(History())
    qtbot.addWidget(p)
    return p


def designed_snapshot(step: int = 100):
    """A snapshot whose masks and activations are chosen, so every expectation is exact."""
    snap = make_snapshot(step)
    rng = np.random.default_rng(7)
    masks = (np.ones((32, 2), bool),  # input: p = 0, nothing dropped
             rng.random((32, 64)) > 0.3,  # fc1
             rng.random((32, 64)) > 0.5)  # fc2
    first = np.zeros(64, bool)
    first[::3] = True  # the first example keeps units 0, 3, 6, ...
    masks[1][0] = first
    pre = tuple(np.abs(rng.normal(size=u)) + 0.1 for u in (2, 64, 64))
    post = (pre[0].copy(), pre[1] * masks[1][0] / 0.7, pre[2] * masks[2][0] / 0.5)
    return dataclasses.replace(snap, dropout_rates=(0.0, 0.3, 0.5), dropout_masks=masks,
                               activation_pre=pre, activation_post=post)


def layer_slice(snap, layer: int) -> slice:
    shown = [min(s, MAX_DRAWN_NEURONS) for s in snap.layer_sizes]
    start = sum(shown[:layer])
    return slice(start, start + shown[layer])


def test_mask_images_equal_the_masks(panel):
    snap = designed_snapshot()
    panel.ingest(snap)
    panel.redraw()
    for image, mask in zip(panel.mask_images, snap.dropout_masks, strict=False):
        assert image.image is not None
        assert image.image.shape == mask.shape  # rows = examples, cols = units
        np.testing.assert_array_equal(image.image.astype(bool), mask)


def test_fraction_dropped_label_matches_the_mask(panel):
    snap = designed_snapshot()
    panel.ingest(snap)
    panel.redraw()
    assert len(panel.mask_captions) == 3
    for caption, site, rate, mask in zip(panel.mask_captions, snap.dropout_sites,
                                         snap.dropout_rates, snap.dropout_masks, strict=True):
        dropped = np.count_nonzero(~mask) / mask.size  # independent of mask.mean()
        assert caption == f"{site}: dropped {100 * dropped:.1f}% (p = {rate:g})"
    assert panel.mask_captions[0] == "input: dropped 0.0% (p = 0)"


def test_train_mode_greys_the_first_examples_dropped_neurons(panel):
    snap = designed_snapshot()
    panel.ingest(snap)
    panel.redraw()
    assert panel.mode == "train"
    active = panel.neuron_active()
    assert active.size == sum(min(s, MAX_DRAWN_NEURONS) for s in snap.layer_sizes)
    fc1 = layer_slice(snap, 1)
    np.testing.assert_array_equal(active[fc1], snap.dropout_masks[1][0][:MAX_DRAWN_NEURONS])
    np.testing.assert_array_equal(active[layer_slice(snap, 2)],
                                  snap.dropout_masks[2][0][:MAX_DRAWN_NEURONS])
    assert active[layer_slice(snap, 0)].all() and active[layer_slice(snap, 3)].all()
    brushes = [b.color().rgba() for b in panel.neurons.data["brush"]]
    kept = {brushes[i] for i in range(fc1.start, fc1.stop) if active[i]}
    dropped = {brushes[i] for i in range(fc1.start, fc1.stop) if not active[i]}
    assert kept and dropped and not kept & dropped
    # An edge is faded exactly when one of its ends is dropped.
    x_off, _ = panel.edges_off.getData()
    x_on, _ = panel.edges_on.getData()
    shown = [min(s, MAX_DRAWN_NEURONS) for s in snap.layer_sizes]
    layers = [active[layer_slice(snap, k)] for k in range(len(shown))]
    live = sum(int(layers[k].sum() * layers[k + 1].sum()) for k in range(len(shown) - 1))
    total = sum(shown[k] * shown[k + 1] for k in range(len(shown) - 1))
    assert len(x_on) == 2 * live
    assert len(x_off) == 2 * (total - live)


def test_bars_show_pre_and_post_in_training(panel):
    snap = designed_snapshot()
    panel.ingest(snap)
    panel.redraw()
    assert panel.site_combo.currentText() == "fc1"  # the first site that drops something
    np.testing.assert_allclose(panel.bar_pre.opts["height"], snap.activation_pre[1])
    np.testing.assert_allclose(panel.bar_post.opts["height"], snap.activation_post[1])
    dropped_x, _ = panel.bar_dropped.getData()
    assert len(dropped_x) == int((~snap.dropout_masks[1][0]).sum())


def test_inference_makes_every_neuron_active_and_post_equal_pre(panel, qtbot):
    snap = designed_snapshot()
    panel.ingest(snap)
    panel.resize(1000, 700)
    panel.show()
    panel.redraw()
    assert not panel.neuron_active().all()
    qtbot.mouseClick(panel.inference_button, Qt.MouseButton.LeftButton)
    assert panel.mode == "inference"
    assert panel.neuron_active().all()
    brushes = panel.neurons.data["brush"]
    fc1 = layer_slice(snap, 1)
    assert len({b.color().rgba() for b in brushes[fc1]}) == 1
    assert brushes[fc1.start].color() == QColor(panel.theme.train)
    faded_x = panel.edges_off.getData()[0]
    assert faded_x is None or len(faded_x) == 0
    np.testing.assert_allclose(panel.bar_post.opts["height"], snap.activation_pre[1])
    np.testing.assert_allclose(panel.bar_pre.opts["height"], snap.activation_pre[1])
    assert len(panel.bar_dropped.getData()[0]) == 0
    qtbot.mouseClick(panel.train_button, Qt.MouseButton.LeftButton)
    np.testing.assert_allclose(panel.bar_post.opts["height"], snap.activation_post[1])
    assert not panel.neuron_active().all()


def test_choosing_another_site_changes_the_bars(panel):
    snap = designed_snapshot()
    panel.ingest(snap)
    panel.redraw()
    panel.site_combo.setCurrentIndex(2)
    np.testing.assert_allclose(panel.bar_post.opts["height"], snap.activation_post[2])


def test_no_dropout_snapshot(panel):
    snap = make_snapshot(50)
    masks = tuple(np.ones_like(m) for m in snap.dropout_masks)
    snap = dataclasses.replace(snap, dropout_rates=(0.0, 0.0, 0.0), dropout_masks=masks,
                               activation_post=snap.activation_pre)
    panel.ingest(snap)
    panel.redraw()
    assert "dropout is off (p = 0)" in panel.status_label.text()
    assert panel.neuron_active().all()
    # Said in words, not shown as all-kept grids with no explanation (issue 8, item 13).
    assert panel.mask_note.text() == OFF_NOTE
    assert all(img.image is None for img in panel.mask_images[:3])
    assert panel.mask_view.isHidden()  # no blank grid area under the note
    assert panel._grid.rowStretch(3) == 0
    assert panel.site_combo.currentText() == "fc1"  # a hidden layer, not the input, by default
    assert panel.mask_captions == [f"{s}: p = 0, dropout is off" for s in snap.dropout_sites]
    assert "p = 0 here: no mask, y = h" in panel.explain_label.text()
    assert "nothing dropped" in panel.net_plot.titleLabel.text  # not "the sub-network of a mask"
    panel.set_mode("inference")
    assert not panel.mask_view.isHidden()  # inference: the all-kept grids are the point


def test_site_with_zero_units_and_varying_layer_sizes(panel, qtbot):
    panel.resize(1200, 800)
    panel.show()
    small = make_snapshot(10)
    small = dataclasses.replace(
        small, layer_sizes=(2, 0, 5, 2), dropout_masks=(small.dropout_masks[0],
                                                        np.ones((32, 0), bool),
                                                        np.zeros((32, 5), bool)),
        activation_pre=(np.ones(2), np.zeros(0), np.ones(5)),
        activation_post=(np.ones(2), np.zeros(0), np.zeros(5)))
    panel.ingest(small)
    panel.redraw()
    assert "0 units" in panel.mask_captions[1]
    assert panel.mask_images[1].image is None
    assert panel.neuron_active().size == 2 + 0 + 5 + 2
    assert not panel.neuron_active()[2:7].any()  # fc2's first example drops all 5
    panel.site_combo.setCurrentIndex(1)  # the empty site: no bars, no crash
    assert len(panel.bar_post.opts["height"]) == 0

    hidden = (40,) * 8  # the most layers HParams allows: nine dropout sites
    sizes = (2, *hidden, 2)
    names = tuple(f"fc{i + 1}" for i in range(8)) + ("out",)
    sites = ("input",) + names[:8]
    big = dataclasses.replace(
        make_snapshot(20), layer_sizes=sizes, layer_names=names, dropout_sites=sites,
        dropout_rates=(0.1,) + (0.5,) * 8,
        dropout_masks=tuple(np.ones((16, u), bool) for u in (2, *hidden)),
        activation_pre=tuple(np.ones(u) for u in (2, *hidden)),
        activation_post=tuple(np.ones(u) for u in (2, *hidden)))
    panel.ingest(big)
    panel.redraw()
    assert len(panel.mask_captions) == 9
    assert sum(p in panel.mask_view.ci.items for p in panel.mask_plots) == 9
    assert panel.neuron_active().size == 2 + 8 * MAX_DRAWN_NEURONS + 2
    assert [panel.site_combo.itemText(i) for i in range(9)] == list(sites)

    panel.ingest(designed_snapshot(30))  # and back to three sites
    panel.redraw()
    assert sum(p in panel.mask_view.ci.items for p in panel.mask_plots) == 3
    img = to_array(panel.grab().toImage())
    assert img.std() > 10


def test_slide_theme_has_white_plot_background(panel, qtbot):
    panel.ingest(designed_snapshot())
    show_on_screen(panel, qtbot)
    panel.redraw()
    x, y = viewbox_pixel(panel, panel.net_view, panel.net_plot)
    dark = to_array(panel.grab().toImage())[y, x]
    np.testing.assert_array_equal(dark, QColor(SCREEN.background).getRgb()[:3])
    panel.apply_theme(SLIDE)
    # The slide's larger type re-lays the panel out (the per-layer p row grows): let the layout
    # settle as a shown window would before painting, then find the view box again.
    qtbot.wait(1)
    x, y = viewbox_pixel(panel, panel.net_view, panel.net_plot)
    img = to_array(panel.grab().toImage())
    np.testing.assert_array_equal(img[y, x], (255, 255, 255))
    assert panel.net_plot.getAxis("bottom").style["tickFont"].pointSize() == SLIDE.font_pt
    assert panel.mask_images[1].image is not None  # the redraw after restyling kept the data


def test_reset_forgets_the_run(panel):
    panel.ingest(designed_snapshot())
    panel.redraw()
    panel.reset()
    assert panel.snapshot is None
    assert panel.neuron_active().size == 0
    assert all(img.image is None for img in panel.mask_images)
    panel.redraw()  # nothing to draw, no crash


# ----------------------------------------------------------------- issue 8: items 9, 4 and 13


def scaled_snapshot(step: int, factor: float):
    """designed_snapshot's activations times `factor` (a new example's size, frame to frame)."""
    snap = designed_snapshot(step)
    rng = np.random.default_rng(step)
    pre = tuple(a * factor * rng.uniform(0.8, 1.0, a.shape) for a in snap.activation_pre)
    post = tuple(p * m[0] / (1 - r) for p, m, r in zip(pre, snap.dropout_masks,
                                                      snap.dropout_rates, strict=True))
    return dataclasses.replace(snap, activation_pre=pre, activation_post=post)


def bar_pixels(panel, colour) -> int:
    """Pixels of `colour` in the bar chart's view box, as painted."""
    img = to_array(panel.bar_view.grab().toImage())
    rect = panel.bar_view.mapFromScene(panel.bar_plot.getViewBox().sceneBoundingRect())
    r = rect.boundingRect()
    ratio = img.shape[1] / panel.bar_view.width()
    box = img[int(r.top() * ratio):int(r.bottom() * ratio), int(r.left() * ratio):
              int(r.right() * ratio)]
    return int(np.all(box == QColor(colour).getRgb()[:3], axis=-1).sum())


def test_bar_scale_is_stable_contains_every_bar_and_has_zero_at_zero(panel, qtbot):
    """30 Hz of new examples: the axis must not jump every frame, every bar must be inside it
    (no empty frames), and ticks, zero line and bars must agree (issue 8, item 9)."""
    show_on_screen(panel, qtbot)
    rng = np.random.default_rng(3)
    ranges = []
    for k in range(60):
        snap = scaled_snapshot(100 + k, float(rng.uniform(0.6, 1.0)))
        panel.ingest(snap)
        panel.redraw()
        assert bar_pixels(panel, panel.theme.train) > 50, f"frame {k} shows no bars"
        lo, hi = panel.bar_plot.getViewBox().viewRange()[1]
        heights = np.concatenate([panel.bar_pre.opts["height"], panel.bar_post.opts["height"]])
        assert lo <= 0 <= heights.min() and heights.max() <= hi
        assert -0.1 * hi < lo  # all activations ≥ 0: zero sits at the bottom, not at "−1"
        axis = panel.bar_plot.getAxis("left")
        np.testing.assert_allclose(axis.range, (lo, hi))  # the ticks are those of this range
        ticks = [v for _spacing, values in axis.tickValues(lo, hi, axis.height())
                 for v in values]
        assert any(abs(v) < 1e-9 for v in ticks)  # a "0" tick, at 0
        assert panel.bar_zero.value() == 0 and panel.bar_zero.isVisible()
        ranges.append((round(lo, 9), round(hi, 9)))
    assert len(set(ranges)) <= 2, f"the scale changed {len(set(ranges)) - 1} times in 60 frames"


def test_bar_scale_grows_at_once_and_shrinks_slowly():
    scale = StableScale()
    assert scale.update(0.0, 1.7) == (0.0, 2.0)  # headroom to a round limit
    assert scale.update(0.0, 3.1)[1] == 4.0  # grows at once
    for _ in range(StableScale.SHRINK_AFTER - 1):
        assert scale.update(0.0, 0.5)[1] == 4.0  # a lull does not shrink it yet
    assert scale.update(0.0, 0.5)[1] == 0.6  # ~1 s of much smaller data: shrink
    assert scale.update(-0.3, 0.2) == (-0.4, 0.6)  # negative activations (tanh, inputs)
    assert scale.update(0.0, 0.0) == (-0.4, 0.6)
    fresh = StableScale()
    assert fresh.update(0.0, 0.0) == (0.0, 1.0)  # all zero: a unit range
    assert [nice_ceil(v) for v in (0.011, 0.1, 2.2, 7, 8.5)] == [0.015, 0.1, 3.0, 8.0, 10.0]


def test_inference_shows_what_inference_computes(panel, qtbot):
    snap = designed_snapshot()
    inference = tuple(a[: a.size] * 0.5 + 0.05 for a in snap.activation_pre)  # not the train h
    snap = dataclasses.replace(snap, activation_inference=inference)
    show_on_screen(panel, qtbot)
    panel.ingest(snap)
    panel.redraw()
    qtbot.mouseClick(panel.inference_button, Qt.MouseButton.LeftButton)
    np.testing.assert_allclose(panel.bar_pre.opts["height"], inference[1])
    np.testing.assert_allclose(panel.bar_post.opts["height"], inference[1])
    # No mask at inference: every unit of every example kept, nothing rescaled.
    for image, mask in zip(panel.mask_images, snap.dropout_masks, strict=False):
        assert image.image.shape == mask.shape and image.image.all()
    assert panel.mask_captions[1] == "fc1: no mask, all 64 units kept"
    assert panel.mask_note.text() == INFERENCE_NOTE
    explain = panel.explain_label.text()
    assert "no mask" in explain and "nothing is rescaled" in explain and "Bernoulli" not in explain
    assert "inference, no mask" in panel.bar_legend.items[0][1].text
    assert "(training only)" in panel.status_label.text()
    qtbot.mouseClick(panel.train_button, Qt.MouseButton.LeftButton)
    np.testing.assert_array_equal(panel.mask_images[1].image.astype(bool), snap.dropout_masks[1])
    assert panel.mask_note.text().startswith("Masks of the current batch")


def test_regression_says_1_unit_not_1_units(panel):
    snap = make_snapshot(40, dataset="regression")
    panel.ingest(snap)
    panel.redraw()
    ticks = [label for _x, label in panel.net_plot.getAxis("bottom")._tickLevels[0]]
    assert "1 unit" in ticks[0].splitlines() and "1 unit" in ticks[-1].splitlines()
    assert not any("1 units" in t for t in ticks)
    assert "32 examples × 1 unit<" in panel.mask_plots[0].titleLabel.text
    assert not any("1 units" in c for c in panel.mask_captions)
    panel.set_mode("inference")
    assert panel.mask_captions[0] == "input: no mask, its 1 unit kept"
    panel.set_mode("train")
    panel.site_combo.setCurrentIndex(0)  # the single input unit: whole-number ticks only
    assert panel.bar_plot.getAxis("bottom")._tickLevels == [[(0.0, "0")], []]


def test_empty_states_say_why_instead_of_drawing_a_made_up_range(panel, qtbot):
    show_on_screen(panel, qtbot)
    assert panel.bar_empty.isVisible() and "waiting" in panel.bar_empty.toPlainText()
    assert not panel.bar_plot.getAxis("left").isVisible()  # no "−0.4…0.4" nonsense axis
    assert panel.net_plot.getAxis("bottom")._tickLevels == [[], []]  # no "0.2…0.8" either
    assert not panel.bar_legend.isVisible()  # a legend for no bars says nothing
    sites = ("input", "fc1", "fc2")
    fresh = dataclasses.replace(
        make_snapshot(0), step=0, dropout_masks=tuple(np.ones((0, 0), bool) for _ in sites),
        activation_pre=tuple(np.zeros(0) for _ in sites),
        activation_post=tuple(np.zeros(0) for _ in sites))
    panel.ingest(fresh)
    panel.redraw()
    assert "No training step yet" in panel.bar_empty.toPlainText()
    assert panel.mask_captions == [f"{s}: no training step yet" for s in sites]
    assert "first training step" in panel.mask_note.text()
    panel.ingest(designed_snapshot())
    panel.redraw()
    assert not panel.bar_empty.isVisible() and panel.bar_plot.getAxis("left").isVisible()
    panel.reset()
    assert panel.bar_empty.isVisible() and len(panel.bar_post.opts["height"]) == 0


def test_bar_legend_covers_no_bar(panel, qtbot):
    """Guard (issue 8, item 4): the legend has its own row above the plot, in both modes."""
    show_on_screen(panel, qtbot, 1000, 640)  # the panel's size in a 1366×768 window
    panel.ingest(designed_snapshot())
    panel.redraw()
    for mode in ("train", "inference"):
        panel.set_mode(mode)
        qtbot.wait(20)
        legend = panel.bar_legend.sceneBoundingRect()
        view = panel.bar_plot.getViewBox().sceneBoundingRect()
        assert not legend.intersects(view)
        shown = panel.bar_view.mapToScene(panel.bar_view.viewport().rect()).boundingRect()
        assert shown.contains(legend) and shown.contains(view)  # neither is clipped
        assert panel.bar_view.geometry().right() <= panel.width()
