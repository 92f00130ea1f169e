"""The ensemble panel with real results of the analysis: what it draws is the result's arrays."""

from __future__ import annotations

import numpy as np
import pytest
from qtimage import show_on_screen

import regsim
from regsim import HParams, Trainer
from regsim.analyses.jobs import JobEvent
from regsim.snapshot import History
from ui.panels.ensemble import TILES, EnsemblePanel


def panel_for(hidden, qtbot, steps=150, **extra):
    t = Trainer(HParams(dataset="moons", hidden=hidden, dropout=0.5, train_size=100, val_size=100,
                        lr=0.01), device="cpu")
    t.step(steps)
    panel = EnsemblePanel(History())
    qtbot.addWidget(panel)
    show_on_screen(panel, qtbot)
    snap = t.snapshot()
    panel.ingest(snap)
    panel.redraw()
    return t, panel


def compute(t, panel, qtbot, **override):
    with qtbot.waitSignal(panel.request) as sent:
        panel.compute_button.click()
    kind, args = sent.args
    assert kind == "analyze" and args["analysis"] == "ensemble"
    res = regsim.analyze(t, "ensemble", **(args["params"] | override))
    panel.on_job(JobEvent("other", "", "ensemble", "result", result=res))  # not ours: ignored
    assert panel.result is None
    panel.on_job(JobEvent(args["id"], "", "ensemble", "result", result=res))
    panel.redraw()
    return args, res


def test_seed_case_draws_the_results_arrays_and_says_exact(qtbot) -> None:
    t, panel = panel_for((4,), qtbot)
    args, r = compute(t, panel, qtbot)
    assert args["params"]["points"] == "grid" and args["params"]["site"] == "fc1"
    assert r.n_masks == 16 and r.linear
    g = r.grid_shape
    for i in range(TILES):  # every tile is its sub-network's map
        np.testing.assert_array_equal(panel.tile_images[i].image, r.page_probs[i][:, 1].reshape(g))
    for img, arr in zip(panel.map_images[:3], (r.arithmetic, r.geometric, r.weight_scaled)):
        np.testing.assert_array_equal(img.image, arr[:, 1].reshape(g))
    np.testing.assert_allclose(panel.map_images[3].image, (r.geometric - r.weight_scaled)[:, 1].reshape(g))
    x, y = panel.scatter_a.getData()
    np.testing.assert_array_equal(x, r.weight_scaled.reshape(-1))
    np.testing.assert_array_equal(y, r.arithmetic.reshape(-1))
    centers, mass, _ = panel.accuracy_histogram(r)
    assert abs(mass.sum() - 1) < 1e-9
    assert abs(np.dot(centers, mass) - r.mean_sub_accuracy) < 1e-9  # one bar per accuracy value
    assert panel.acc_lines["A"].value() == r.accuracy_arithmetic
    assert "G = W exactly" in panel.verdict_label.text() and "all 16" in panel.status_label.text()
    panel.diff_combo.setCurrentIndex(1)  # A − W: visibly non-zero
    panel.redraw()
    assert np.abs(panel.map_images[3].image).max() > 0.01
    panel.cleanup()


def test_deeper_site_says_approximate_and_pages_turn_locally(qtbot) -> None:
    t, panel = panel_for((8, 8), qtbot)
    panel.site_combo.setCurrentIndex(1)  # fc1, before ReLU + fc2
    assert panel.site_combo.currentData() == "fc1"
    args, r = compute(t, panel, qtbot)
    assert not r.linear and "G ≈ W only" in panel.verdict_label.text()
    assert r.n_masks == 256 and len(r.page_index) == 256  # one block of pages
    sent = []
    panel.request.connect(lambda k, a: sent.append(k))
    panel.turn_page(1)
    assert sent == [] and panel.page_label.text() == "page 2 / 16"
    g = r.grid_shape
    np.testing.assert_array_equal(panel.tile_images[0].image, r.page_probs[16][:, 1].reshape(g))
    panel.cleanup()


def test_cancel_and_sampled_wide_layer(qtbot) -> None:
    t, panel = panel_for((20,), qtbot, steps=30)
    panel.units_spin.setValue(0)  # all 20 units: more than 16, sampled
    with qtbot.waitSignal(panel.request):
        panel.compute_button.click()
    job = panel._job_id
    assert panel.cancel_button.isVisibleTo(panel)
    with qtbot.waitSignal(panel.request) as sent:
        panel.cancel_button.click()
    assert sent.args == ["cancel", {"id": job}]
    res = regsim.analyze(t, "ensemble", **panel.params() | {"samples": 256})
    panel.on_job(JobEvent(job, "", "ensemble", "result", result=res))  # late: ignored
    assert panel.result is None and "cancelled" in panel.status_label.text()
    args, r = compute(t, panel, qtbot, samples=256)
    assert not r.exact and "sampled K = 256" in panel.status_label.text()
    assert "sampled" in panel.verdict_label.text()
    panel.cleanup()


def test_tile_titles_stay_centred_after_turning_pages(qtbot) -> None:
    """A title of another width ('#15 · 0.87' after '#0 · 0.5') in a cell that keeps its size is
    centred again over its plot (it kept the old text's offset: seen in a real window)."""
    t, panel = panel_for((8,), qtbot)
    compute(t, panel, qtbot)

    def offsets() -> list[float]:
        out = []
        for plot in panel.tiles:
            label = plot.titleLabel
            text = label.mapRectToParent(label.item.mapRectToParent(label.item.boundingRect()))
            out.append(abs(text.center().x() - label.geometry().center().x()))
        return out

    for _ in range(5):
        panel.turn_page(1)
        panel.redraw()
        qtbot.wait(10)
        assert max(offsets()) < 1.5, offsets()
    panel.cleanup()


def test_accuracy_axis_has_few_labels_and_the_empty_state_gets_automatic_ticks_back(qtbot) -> None:
    t, panel = panel_for((8,), qtbot)
    _, r = compute(t, panel, qtbot)
    axis = panel.acc_plot.getAxis("bottom")
    lo, hi = panel.acc_plot.viewRange()[0]
    major = axis._tickSpacing[0][0]
    assert (hi - lo) / major <= 4  # ≤ 4 labels: five ran into each other on a slide
    panel.reset()
    panel.redraw()
    assert axis._tickSpacing is None
    panel.cleanup()


def test_conv_net_says_the_refusal_instead_of_blank_tiles(qtbot) -> None:
    from regsim import load_preset
    from regsim.analyses.base import NotApplicable

    conv = Trainer(load_preset("conv_dropout2d"), device="cpu")
    conv.step(5)
    panel = EnsemblePanel(History())
    qtbot.addWidget(panel)
    show_on_screen(panel, qtbot)
    sent = []
    panel.request.connect(lambda kind, args: sent.append(kind))
    panel.auto_check.setChecked(True)  # auto must not ask (and fail) at every snapshot
    panel.ingest(conv.snapshot())
    panel.redraw()
    assert panel.refusal_label.isVisible() and not panel.view.isVisible()
    text = panel.refusal_label.text()
    assert "conv net" in text and "architecture = 'mlp'" in text
    assert "analyze" not in sent and "see below" in panel.status_label.text()
    # the analysis refuses the same run, by name (what a job would have said)
    with pytest.raises(NotApplicable, match="conv net"):
        regsim.analyze(conv, "ensemble")
    # back on an MLP: the tiles return, and a job's failure is said in the refusal's place
    t, _ = panel_for((8,), qtbot, steps=5)
    panel.auto_check.setChecked(False)
    panel.reset()
    panel.ingest(t.snapshot())
    panel.redraw()
    assert panel.view.isVisible() and not panel.refusal_label.isVisible()
    panel.compute_button.click()
    panel.on_job(JobEvent(panel._job_id, "", "ensemble", "failed", message="site = 'fc9' is not a site"))
    panel.redraw()
    assert panel.refusal_label.isVisible() and "fc9" in panel.refusal_label.text()
