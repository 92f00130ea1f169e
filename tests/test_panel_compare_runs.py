"""Compare mode in the panels, fed from a real Comparison: each panel given two runs draws each run's
own numbers (checked against the runs' snapshots, histories and analysis results computed here), and
with one run draws what it drew before.

Weights: every run's histogram, bands and readout row; Dropout: every run's mask; Loss surface: one
map per run from run-addressed jobs; Bayesian view: every run's histogram and its own prior; MC
dropout: the selected run, with each run's result kept; Constraint geometry: says it is no run."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from PySide6.QtCore import Qt

from regsim import Comparison, HParams, analyze
from regsim.analyses.jobs import JobEvent
from regsim.snapshot import History
from ui.panels.constraint import ConstraintPanel
from ui.panels.dropout import DropoutPanel
from ui.panels.loss_surface import LossSurfacePanel
from ui.panels.mc_dropout import MCDropoutPanel
from ui.panels.prior import PriorPanel
from ui.panels.weights import WeightsPanel
from ui.run_colors import run_color

SMALL = HParams(dataset="moons", hidden=(16, 16), train_size=100, val_size=50, batch_size=16, seed=3)


@pytest.fixture(scope="module")
def lockstep():
    """A (p = 0.5, λ = 0) and B (p = 0, λ = 0.3) after 100 lockstep steps: the Comparison (for
    analyses on its runs) and each run's History, a snapshot every 10 steps, as the window keeps."""
    cmp = Comparison({"A": SMALL.replace(dropout=0.5, weight_decay=0.0),
                      "B": SMALL.replace(dropout=0.0, weight_decay=0.3)}, device="cpu")
    hists = {name: History() for name in cmp.trainers}
    for _ in range(10):
        cmp.step(10)
        for name, snap in cmp.snapshots().items():
            hists[name].add(snap)
    return cmp, hists


@pytest.fixture(scope="module")
def two_runs(lockstep):
    """Every run's snapshot at step 100."""
    return lockstep[0].snapshots()


def show_runs(panel, snaps, selected="A", hists=None):
    """What RunsController.tell_panels and the window do each tick (`hists`: each run's History;
    default one holding only its snapshot)."""
    if hists is None:
        hists = {}
        for name, snap in snaps.items():
            hists[name] = History()
            hists[name].add(snap)
    hists = {n: hists[n] for n in snaps}
    panel.history = hists[selected]
    panel.set_runs([(n, hists[n], slot) for slot, n in enumerate(snaps)], selected, [])
    if hasattr(panel, "set_run_snapshots"):  # as RunsController.tell_panels: only panels with it
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


# ------------------------------------------------------------------------------------ Loss surface
def requests_of(panel):
    sent = []
    panel.request.connect(lambda name, payload: sent.append((name, payload)))
    return sent


def result_event(job_id, run, result):
    return JobEvent(job_id, run, "landscape", "result", result.total, result.total, result)


def test_loss_surface_shows_each_runs_own_surface_side_by_side(qtbot, lockstep, two_runs):
    cmp, _hists = lockstep
    panel = LossSurfacePanel(History())
    qtbot.addWidget(panel)
    sent = requests_of(panel)
    show_runs(panel, two_runs)
    assert panel.comparing and panel.view.isHidden() and not panel.run_view.isHidden()
    panel.resolution_spin.setValue(11)
    qtbot.mouseClick(panel.compute_button, Qt.MouseButton.LeftButton)
    first = [p for n, p in sent if n == "analyze"]
    assert [p["run"] for p in first] == ["A", "B"]  # one job per run, addressed to it
    assert len({p["id"] for p in first}) == 2 and all(p["analysis"] == "landscape" for p in first)
    assert first[0]["params"] == {"resolution": 11, "span": 1.0}
    # A newer request for each run supersedes that run's older one: late events of it are dropped.
    qtbot.mouseClick(panel.compute_button, Qt.MouseButton.LeftButton)
    second = [p for n, p in sent if n == "analyze"][2:]
    assert [p["run"] for p in second] == ["A", "B"]
    results = {n: analyze(cmp.trainers[n], "landscape", resolution=11, preview=0, points=64)
               for n in ("A", "B")}
    panel.on_job(result_event(first[0]["id"], "A", results["B"]))  # superseded: ignored
    assert panel.run_results == {}
    for p in second:
        panel.on_job(result_event(p["id"], p["run"], results[p["run"]]))
    assert set(panel.run_results) == {"A", "B"} and not panel.cancel_button.isVisibleTo(panel)
    panel.redraw()
    # Each map is its own run's grid: log₁₀ of its data loss plus its own decay term (A: λ = 0, no
    # term; B: λ = 0.3), on one colour scale for both.
    assert results["A"].penalty is None and results["B"].penalty is not None
    expected = {"A": np.log10(results["A"].loss),
                "B": np.log10(results["B"].loss + results["B"].penalty)}
    lo = min(float(v.min()) for v in expected.values())
    hi = max(float(v.max()) for v in expected.values())
    for slot, name in enumerate(("A", "B")):
        image = panel.run_images[slot]
        np.testing.assert_allclose(image.image, expected[name], rtol=1e-12)
        np.testing.assert_allclose(image.levels, (lo, hi))
        x, y = panel.run_paths[slot].getData()
        np.testing.assert_allclose(np.stack([x, y], 1), results[name].path)
        assert panel.run_paths[slot].opts["pen"].color().name() == run_color(slot, "screen")
        title = panel.run_plots[slot].titleLabel.text
        assert f"<b>{name}</b>" in title and run_color(slot, "screen") in title
        assert f"step {results[name].step}" in title
    assert "λ 0.3" in panel.run_plots[1].titleLabel.text and "λ 0" in panel.run_plots[0].titleLabel.text
    assert not np.array_equal(panel.run_images[0].image, panel.run_images[1].image)
    assert panel.run_view.ci.items.keys() >= {panel.run_plots[0], panel.run_plots[1]}
    assert panel.run_plots[2] not in panel.run_view.ci.items  # two runs, two maps
    # Back to one run: the single-run view, and its request exactly as before (no run named).
    show_runs(panel, {"A": two_runs["A"]})
    assert not panel.comparing and panel.run_view.isHidden() and not panel.view.isHidden()
    sent.clear()
    qtbot.mouseClick(panel.compute_button, Qt.MouseButton.LeftButton)
    (name, payload), = [s for s in sent if s[0] == "analyze"]
    assert set(payload) == {"id", "analysis", "params"}
    panel.on_job(result_event(payload["id"], "", results["A"]))
    np.testing.assert_allclose(panel.image.image, expected["A"], rtol=1e-12)
    panel.cleanup()


def test_loss_surface_keeps_each_runs_map_across_a_selection_and_drops_a_reset_runs(
        qtbot, lockstep, two_runs):
    cmp, _ = lockstep
    panel = LossSurfacePanel(History())
    qtbot.addWidget(panel)
    sent = requests_of(panel)
    show_runs(panel, two_runs)
    qtbot.mouseClick(panel.compute_button, Qt.MouseButton.LeftButton)
    r = analyze(cmp.trainers["B"], "landscape", resolution=5, preview=0, points=32)
    for p in [p for n, p in sent if n == "analyze"]:
        panel.on_job(result_event(p["id"], p["run"], r))
    panel.reset()  # what the window does to every panel when another run is selected
    show_runs(panel, two_runs, selected="B")
    assert set(panel.run_results) == {"A", "B"}
    # A restarted (its step went back): its map goes, B's stays.
    restarted = dict(two_runs, A=dataclasses.replace(two_runs["A"], step=0))
    panel.set_run_snapshots(restarted)
    assert set(panel.run_results) == {"B"}
    panel.cleanup()


# ------------------------------------------------------------------------------------------ Weights
def test_weights_bands_and_readout_per_run(qtbot, lockstep, two_runs):
    _cmp, hists = lockstep
    panel = WeightsPanel(History())
    qtbot.addWidget(panel)
    show_runs(panel, two_runs, hists=hists)
    panel.layer_box.setCurrentIndex(1)  # fc2
    assert not any(fill.isVisible() for fill in panel.band_fills)  # the layer bands give way
    widths = {}
    for slot, name in enumerate(("A", "B")):
        parts = panel.run_bands[slot]
        assert all(item.isVisible() for item in parts.values())
        steps, bands = hists[name].percentiles()  # (T,), (T, L, 9)
        own = bands[:, 1, :]
        for key, k in (("min", 0), ("lo", 2), ("median", 4), ("hi", 6), ("max", 8)):
            x, y = parts[key].getData()
            np.testing.assert_array_equal(x, steps)
            np.testing.assert_array_equal(y, own[:, k], err_msg=f"{name} {key}")
        assert parts["median"].opts["pen"].color().name() == run_color(slot, "screen")
        widths[name] = own[-1, 6] - own[-1, 2]
    assert not any(panel.run_bands[2][k].isVisible() for k in panel.run_bands[2])
    assert widths["B"] != widths["A"]  # two runs' bands, not one run's drawn twice
    text = panel.readout.text()
    for slot, name in enumerate(("A", "B")):
        snap = two_runs[name]
        assert f"<b>{name}</b>" in text and run_color(slot, "screen") in text
        assert f"{float(snap.weight_norms[1]):.3f}" in text
        assert f"{float(snap.weight_abs_max[1]):.3f}" in text
        assert f"{math.sqrt(float(np.sum(np.square(snap.weight_norms)))):.3f}" in text
    assert ">0.3 (decoupled)<" in text and ">0 (decoupled)<" in text and "‖W‖ fc2" in text
    # One run: the nested layer bands and the single-run readout, as before.
    show_runs(panel, {"A": two_runs["A"]}, hists=hists)
    assert all(fill.isVisible() for fill in panel.band_fills)
    assert not any(item.isVisible() for parts in panel.run_bands for item in parts.values())
    steps, bands = hists["A"].percentiles()
    np.testing.assert_array_equal(panel.median_curve.getData()[1], bands[:, 1, 4])
    assert panel.readout.text() == panel._readout_html(two_runs["A"])
    assert "<th align='left'>layer</th>" in panel.readout.text()
    panel.cleanup()


# ------------------------------------------------------------------------------------ Bayesian view
def test_prior_overlays_each_runs_histogram_and_its_own_prior(qtbot, two_runs):
    # Two finite priors (L2 mode: the optimizer minimizes L̄ + λ/2‖w‖²): A with λ = 0.01
    # (σ = 1/√(100·0.01) = 1), B with λ = 0.3 (σ = 0.183).
    def l2(snap, lam):
        return dataclasses.replace(snap, hparams=snap.hparams.replace(weight_decay=lam,
                                                                      decay_mode="l2"))

    snaps = {"A": l2(two_runs["A"], 0.01), "B": l2(two_runs["B"], 0.3)}
    panel = PriorPanel(History())
    qtbot.addWidget(panel)
    show_runs(panel, snaps, selected="B")
    assert panel.comparing and not panel.hist.isVisible() and not panel.curve.isVisible()
    for slot, (name, lam) in enumerate((("A", 0.01), ("B", 0.3))):
        snap = snaps[name]
        counts = np.asarray(snap.weight_hist[0], np.float64)
        edges = np.asarray(snap.weight_hist_edges[0], np.float64)
        hist = panel.run_hists[slot]
        np.testing.assert_allclose(hist.xData, edges)
        np.testing.assert_allclose(hist.yData, counts / (counts.sum() * np.diff(edges)))
        sigma = 1 / math.sqrt(snap.hparams.train_size * lam)
        x, y = panel.run_priors[slot].getData()
        np.testing.assert_allclose(y, np.exp(-x ** 2 / (2 * sigma ** 2)) / (sigma * math.sqrt(2 * math.pi)))
        assert panel.run_priors[slot].opts["pen"].color().name() == run_color(slot, "screen")
        assert panel.run_priors[slot].opts["pen"].style() == Qt.PenStyle.DashLine
    assert panel.run_hists[1].opts["fillLevel"] == 0 and panel.run_hists[0].opts["fillLevel"] is None
    lines = panel.readout.text().split("<br>")
    a_line = "<b>A</b> ▆ fc1 ┄ prior</span>: σ = 1/√(Nλ) = 1/√(100 · 0.01) = 1 "
    assert f"color:{run_color(0, 'screen')}'>" + a_line in lines[0]
    assert "<b>B</b> ▆ fc1 ┄ prior</span>: σ = 1/√(Nλ) = 1/√(100 · 0.3) = 0.1826" in lines[1]
    # λ = 0 on A: a flat prior; AdamW on B (the fixture's): no prior on this loss. Neither is
    # drawn, and the readout says why for each.
    show_runs(panel, two_runs)
    assert all(len(c.getData()[1] if c.getData()[1] is not None else []) == 0
               for c in panel.run_priors[:2])
    lines = panel.readout.text().split("<br>")
    assert "<b>A</b> ▆ fc1</span>: λ = 0: a flat prior" in lines[0]
    assert "<b>B</b> ▆ fc1</span>: no σ: AdamW's decay is no term of a loss" in lines[1]
    # One run: the single histogram and prior as before.
    show_runs(panel, {"B": two_runs["B"]}, selected="B")
    assert not panel.comparing and panel.hist.isVisible()
    assert not any(h.isVisible() for h in panel.run_hists) and "<br>" not in panel.readout.text()
    panel.cleanup()


# -------------------------------------------------------------------------------------- MC dropout
def test_mc_dropout_shows_the_selected_run_and_keeps_each_runs_result(qtbot, lockstep, two_runs):
    cmp, _ = lockstep
    panel = MCDropoutPanel(History())
    qtbot.addWidget(panel)
    sent = requests_of(panel)
    show_runs(panel, two_runs, selected="A")
    panel.t_spin.setValue(5)
    qtbot.mouseClick(panel.compute_button, Qt.MouseButton.LeftButton)
    (_n, payload), = sent
    assert payload["run"] == "A" and payload["params"] == {"T": 5}
    title = panel.view.getPlotItem().titleLabel.text
    assert "run A" in title and run_color(0, "screen") in title and "p 0.5" in title
    r = analyze(cmp.trainers["A"], "mc_dropout", T=5)
    panel.on_job(JobEvent(payload["id"], "A", "mc_dropout", "result", 5, 5, r))
    panel.redraw()
    img = panel.image.image
    np.testing.assert_allclose(img, r.entropy.reshape(r.grid_shape))
    # Select B: the panel shows B (no result yet), then A's result again when A is selected.
    panel.reset()
    show_runs(panel, two_runs, selected="B")
    assert panel.result is None and "run B" in panel.view.getPlotItem().titleLabel.text
    assert run_color(1, "screen") in panel.view.getPlotItem().titleLabel.text
    panel.reset()
    show_runs(panel, two_runs, selected="A")
    assert panel.result is r
    # One run: the request names no run, the title no run, as before.
    show_runs(panel, {"A": two_runs["A"]})
    sent.clear()
    qtbot.mouseClick(panel.compute_button, Qt.MouseButton.LeftButton)
    assert "run" not in sent[0][1]
    panel.redraw()
    assert "run A" not in panel.view.getPlotItem().titleLabel.text
    panel.cleanup()


# ---------------------------------------------------------------------------- Constraint geometry
def test_constraint_panel_says_it_is_a_toy_problem_in_compare_mode(qtbot, two_runs):
    panel = ConstraintPanel(History())
    qtbot.addWidget(panel)
    show_runs(panel, two_runs, selected="B")
    assert not panel.compare_note.isHidden()
    assert "toy 2-D quadratic, not a run" in panel.compare_note.text() and "(B)" in panel.compare_note.text()
    assert panel.lam.value() == panel.lam_to_slider(0.3)  # the selected run's λ
    show_runs(panel, {"A": two_runs["A"]})
    assert panel.compare_note.isHidden()
    panel.cleanup()


def test_comparison_caption_names_every_run_and_what_they_share(two_runs):
    from ui.export.files import caption_for, comparison_caption

    text = comparison_caption(two_runs, "A")
    head, _, shared = text.partition("   ·   ")
    assert head == "A: p 0.5 · λ 0   vs   B: p 0 · λ 0.3"
    assert "moons" in shared and "step 100" in shared
    assert "p = " not in shared and "λ = " not in shared  # those differ: said per run above
    assert caption_for(two_runs["A"]).startswith("moons")  # one run: the caption as before
