"""Compare mode in the snapshot panels: the Weights histogram overlays every run's histogram of the
chosen layer, the Dropout panel shows every run's mask side by side. Fed from a real Comparison."""

from __future__ import annotations

import numpy as np
import pytest

from regsim import Comparison, HParams
from regsim.snapshot import History
from ui.panels.dropout import DropoutPanel
from ui.panels.weights import WeightsPanel
from ui.run_colors import run_color

SMALL = HParams(dataset="moons", hidden=(16, 16), train_size=100, val_size=50, batch_size=16, seed=3)


@pytest.fixture(scope="module")
def two_runs():
    """A (p = 0.5, λ = 0) and B (p = 0, λ = 0.3) after 100 lockstep steps: every run's snapshot."""
    cmp = Comparison({"A": SMALL.replace(dropout=0.5, weight_decay=0.0),
                      "B": SMALL.replace(dropout=0.0, weight_decay=0.3)}, device="cpu")
    cmp.step(100)
    return cmp.snapshots()


def show_runs(panel, snaps, selected="A"):
    """What RunsController.tell_panels and the window do each tick."""
    hists = {}
    for name, snap in snaps.items():
        hists[name] = History()
        hists[name].add(snap)
    panel.history = hists[selected]
    panel.set_runs([(n, hists[n], slot) for slot, n in enumerate(snaps)], selected, [])
    panel.set_run_snapshots(snaps)
    panel.ingest(snaps[selected])
    panel.redraw()


def density(counts, edges):
    counts = np.asarray(counts, dtype=np.float64)
    return counts / np.sum(counts * np.diff(edges))


def test_weights_histogram_overlays_every_runs_histogram(qtbot, two_runs):
    panel = WeightsPanel(History())
    qtbot.addWidget(panel)
    show_runs(panel, two_runs)
    panel.layer_box.setCurrentIndex(1)  # fc2
    drawn = [item for item in panel.run_hists if item.isVisible()]
    assert len(drawn) == 2
    for item, (slot, (_name, snap)) in zip(drawn, enumerate(two_runs.items()), strict=True):
        edges = snap.weight_hist_fixed_edges[1]
        np.testing.assert_allclose(item.xData, edges)
        np.testing.assert_allclose(item.yData, density(snap.weight_hist_fixed[1], edges))
        assert item.opts["pen"].color().name() == run_color(slot, panel.theme.name)
        assert item.opts["fillLevel"] == (0 if slot == 0 else None)  # A, the selected, filled
    a, b = (item.yData for item in drawn)
    assert not np.array_equal(a, b)  # two different runs, not one drawn twice
    # Runs instead of layers: the layer colours (B's orange is fc2's) would read as runs.
    assert not any(item.isVisible() for item in panel.hist_items)
    assert [label.text for _sample, label in panel.hist_legend.items] == ["A fc2", "B fc2"]
    # Back to one run: the layers as before, the run curves and their legend entries gone.
    show_runs(panel, {"A": two_runs["A"]})
    assert not any(item.isVisible() for item in panel.run_hists)
    assert [label.text for _s, label in panel.hist_legend.items] == ["fc1", "fc2", "out"]
    assert all(item.isVisible() for item in panel.hist_items[:3])
    edges = two_runs["A"].weight_hist_fixed_edges[0]
    np.testing.assert_allclose(panel.hist_items[0].yData,
                               density(two_runs["A"].weight_hist_fixed[0], edges))
    panel.cleanup()


def test_dropout_panel_shows_every_runs_mask_side_by_side(qtbot, two_runs):
    panel = DropoutPanel(History())
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    assert panel.run_mask_view.isHidden()  # one run, or none: the panel as before
    show_runs(panel, two_runs)
    assert panel.run_mask_view.isVisible()
    site = panel.site_combo.currentText()
    assert site == "fc1"  # the first hidden site that drops something (A's p = 0.5)
    k = two_runs["A"].dropout_sites.index(site)
    shown = [(plot, image) for plot, image in zip(panel.run_mask_plots, panel.run_mask_images,
                                                   strict=True) if plot.isVisible()]
    assert len(shown) == 2
    for (_plot, image), (name, snap) in zip(shown, two_runs.items(), strict=True):
        np.testing.assert_array_equal(image.image, snap.dropout_masks[k].astype(np.uint8), name)
    a, b = (image.image for _p, image in shown)
    assert b.all()  # B has p = 0: every unit kept
    assert 0.3 < 1 - a.mean() < 0.7  # A drops about half (p = 0.5)
    assert panel.run_mask_captions[0].startswith(f"A {site}: p = 0.5, dropped")
    assert panel.run_mask_captions[1] == f"B {site}: p = 0, dropped 0.0%"
    title = panel.run_mask_plots[1].titleLabel.text
    assert run_color(1, panel.theme.name) in title and "<b>B</b>" in title
    # Another site: the run masks follow it.
    panel.site_combo.setCurrentIndex(two_runs["A"].dropout_sites.index("fc2"))
    k2 = two_runs["A"].dropout_sites.index("fc2")
    np.testing.assert_array_equal(shown[0][1].image, two_runs["A"].dropout_masks[k2].astype(np.uint8))
    # Back to one run: hidden again.
    show_runs(panel, {"A": two_runs["A"]})
    assert panel.run_mask_view.isHidden() and panel.run_mask_captions == []
    panel.cleanup()
