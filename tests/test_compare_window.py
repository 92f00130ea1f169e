"""Compare mode in the live window, driven with qtbot: the Compare button, the run selector, the
controls editing only the selected run (read back from the engine's snapshots), overlays, ghosts."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SMALL
from PySide6.QtCore import Qt
from qtimage import image_std, to_rgb

from regsim.runs import load_ghost
from ui.run_colors import run_color

# SMALL and the `window` fixture (a shown window, thread engine, first snapshot in) are conftest's.


def runs_now(w):
    return w.runs.latest.runs if w.runs.latest is not None else {}


def test_compare_duplicates_the_run_and_controls_edit_only_the_selected(qtbot, window) -> None:
    w = window
    bar = w.runs.bar
    w.client.step(15)
    qtbot.waitUntil(lambda: w.latest.step == 15, timeout=30_000)
    assert not bar.rename_btn.isVisible() and bar.compare_btn.text() == "Compare (+B)"
    qtbot.mouseClick(bar.compare_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: list(runs_now(w)) == ["A", "B"] and w.runs.selected == "B",
                    timeout=30_000)
    snaps = runs_now(w)
    assert snaps["B"].step == snaps["A"].step == 15  # a copy at the current step
    assert snaps["B"].train_loss == snaps["A"].train_loss
    assert bar.run_buttons["B"].isChecked() and bar.rename_btn.isVisible()
    # The controls now edit B: a slider change reaches B only.
    w.controls.set_hparams(w.last_good)
    w._live_changed({"weight_decay": 0.05})
    w._flush_updates()
    qtbot.waitUntil(lambda: runs_now(w)["B"].hparams.weight_decay == 0.05, timeout=30_000)
    assert runs_now(w)["A"].hparams.weight_decay == SMALL.weight_decay
    assert "λ" in bar.diff.text() and "0.05" in bar.diff.text()
    assert "share the data, the initial weights" in bar.diff.toolTip()
    # Select A with its button: the controls show A's settings, and edit A.
    qtbot.mouseClick(bar.run_buttons["A"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.runs.selected == "A", timeout=30_000)
    assert w.last_good.weight_decay == SMALL.weight_decay
    assert w.controls._h == runs_now(w)["A"].hparams
    assert w.controls._widgets["weight_decay"].value() == pytest.approx(SMALL.weight_decay)
    w._live_changed({"lr": 0.003})
    w._flush_updates()
    qtbot.waitUntil(lambda: runs_now(w)["A"].hparams.lr == 0.003, timeout=30_000)
    assert runs_now(w)["B"].hparams.lr == SMALL.lr and runs_now(w)["B"].hparams.weight_decay == 0.05
    # Both train in lockstep; each has its own History, the window's is the selected run's.
    w.client.step(20)
    qtbot.waitUntil(lambda: runs_now(w)["A"].step == 35 and runs_now(w)["B"].step == 35,
                    timeout=30_000)
    assert w.history is w.runs.histories["A"]
    assert w.runs.histories["B"].series("step")[-1] == 35


def test_training_panel_overlays_every_run_in_its_colour(qtbot, window) -> None:
    w = window
    w.client.step(10)
    qtbot.waitUntil(lambda: w.latest.step == 10, timeout=30_000)
    w.runs.compare()
    qtbot.waitUntil(lambda: list(runs_now(w)) == ["A", "B"], timeout=30_000)
    w.client.update(run="B", weight_decay=0.5)
    for n in (20, 30, 40):
        w.client.step(10)
        qtbot.waitUntil(lambda n=n: all(s.step == n for s in runs_now(w).values()), timeout=30_000)
    panel = w.panels[0]
    assert panel.key == "training"
    w.nav.tabs.setCurrentIndex(0)
    with qtbot.waitSignal(w.panels_redrawn, timeout=10_000):
        w._mark_dirty()
    assert panel.comparing
    assert not panel.val_curve.isVisible() and not panel.gap_fill.isVisible()
    for i, name in enumerate(["A", "B"]):
        items = panel.run_curves[i]
        assert items.val.isVisible() and items.fill.isVisible()
        x, y = items.val.getData()
        hist = w.runs.histories[name]
        np.testing.assert_array_equal(x, hist.series("step"))
        np.testing.assert_array_equal(y, hist.series("val_loss"))
        assert items.val.opts["pen"].color().name() == run_color(w.runs.slots[name], "screen")
    assert not panel.run_curves[2].val.isVisible()
    labels = [label.text for _, label in panel.loss_legend.items]
    assert labels == ["A", "B"]
    assert "gaps  A" in panel.readout.text() and " B " in panel.readout.text()
    # Rename B and remove it: its curves follow, then go.
    w.runs.rename("B", "decay")
    qtbot.waitUntil(lambda: list(runs_now(w)) == ["A", "decay"], timeout=30_000)
    assert w.runs.slots["decay"] == 1 and len(w.runs.histories["decay"]) > 0
    w.runs.remove("decay")
    qtbot.waitUntil(lambda: list(w.client.run_names) == ["A"], timeout=30_000)
    w.client.step(1)
    qtbot.waitUntil(lambda: list(runs_now(w)) == ["A"], timeout=30_000)
    with qtbot.waitSignal(w.panels_redrawn, timeout=10_000):
        w._mark_dirty()
    assert not panel.comparing and panel.val_curve.isVisible()
    assert [label.text for _, label in panel.loss_legend.items][:2] == ["train", "val"]


def test_ghost_run_saved_and_loaded_as_a_grey_overlay(qtbot, window, tmp_path) -> None:
    w = window
    for n in (10, 20, 30):
        w.client.step(10)
        qtbot.waitUntil(lambda n=n: w.latest.step == n, timeout=30_000)
    path = w.runs.save_ghost(tmp_path / "last-lecture.npz")
    saved = load_ghost(path)
    np.testing.assert_array_equal(saved.series("val_loss"), w.history.series("val_loss"))
    w.reset_run()
    qtbot.waitUntil(lambda: w.latest.step == 0, timeout=30_000)
    w.runs.load_ghost(path)
    w.client.step(5)
    qtbot.waitUntil(lambda: w.latest.step == 5, timeout=30_000)
    panel = w.panels[0]
    w.nav.tabs.setCurrentIndex(0)
    with qtbot.waitSignal(w.panels_redrawn, timeout=10_000):
        w._mark_dirty()
    ghost = panel.ghost_curves[0]
    assert panel.comparing and ghost.val.isVisible()
    x, y = ghost.val.getData()
    np.testing.assert_array_equal(y, saved.series("val_loss"))
    assert ghost.val.opts["pen"].style() == Qt.PenStyle.DashLine
    assert "ghost: A" in [label.text for _, label in panel.loss_legend.items]
    bad = tmp_path / "bad.npz"
    bad.write_text("no")
    with pytest.raises(ValueError, match="not a saved regsim run"):
        w.runs.load_ghost(bad)
    assert len(w.runs.ghosts) == 1


def test_comparison_figure_exports_with_every_run(qtbot, window, tmp_path) -> None:
    from PySide6.QtGui import QImage

    from ui.export.render import export_figure

    w = window
    w.client.step(10)
    qtbot.waitUntil(lambda: w.latest.step == 10, timeout=30_000)
    w.runs.compare()
    qtbot.waitUntil(lambda: list(runs_now(w)) == ["A", "B"], timeout=30_000)
    w.client.update(run="B", weight_decay=0.3, dropout=0.0)
    qtbot.waitUntil(lambda: runs_now(w)["B"].hparams.weight_decay == 0.3, timeout=30_000)
    for n in (40, 70, 100):
        w.client.step(30)
        qtbot.waitUntil(lambda n=n: all(s.step == n for s in runs_now(w).values()), timeout=30_000)
    b = runs_now(w)["B"].hparams
    assert (b.weight_decay, b.dropout) == (0.3, 0.0), "B's settings were overwritten"
    assert runs_now(w)["A"].hparams.weight_decay != 0.3
    panel = w.panels[0]
    w.nav.tabs.setCurrentIndex(0)
    with qtbot.waitSignal(w.panels_redrawn, timeout=10_000):
        w._mark_dirty()
    path = export_figure(panel, tmp_path / "compare.png", size=(1600, 900), theme="slide")
    img = QImage(str(path))
    assert (img.width(), img.height()) == (1600, 900) and image_std(img) > 5
    # Both runs' slide colours are in the figure (the overlay was exported, not a single run).
    # to_rgb copies from a converted image it keeps alive: reading constBits() of the temporary
    # convertToFormat() result read freed memory, which found no B pixels after some test orders
    # although the PNG held 2 609 of them (this test's "order-dependent failure").
    arr = to_rgb(img)
    for slot in (0, 1):
        c = run_color(slot, "slide").lstrip("#")
        rgb = np.array([int(c[i:i + 2], 16) for i in (0, 2, 4)])
        near = (np.abs(arr.astype(int) - rgb).sum(axis=2) < 40).sum()
        assert near > 200, (slot, near)
    assert panel.comparing and panel.theme.name == "screen"  # the live panel is back on screen


def test_controls_follow_a_change_made_elsewhere_to_the_selected_run(qtbot, window) -> None:
    w = window
    w.runs.compare()
    qtbot.waitUntil(lambda: w.runs.selected == "B", timeout=30_000)
    w.client.update(run="B", dropout=0.5)  # not from the controls (a lesson, a script)
    w.client.step(1)
    qtbot.waitUntil(lambda: runs_now(w)["B"].hparams.dropout == 0.5, timeout=30_000)
    assert w.controls._widgets["dropout"].value() == pytest.approx(0.5)
    w.client.update(run="A", dropout=0.1)  # the other run: the controls stay on B
    w.client.step(1)
    qtbot.waitUntil(lambda: runs_now(w)["A"].hparams.dropout == 0.1, timeout=30_000)
    assert w.controls._widgets["dropout"].value() == pytest.approx(0.5)


def test_weights_panel_shows_the_other_runs_norms_in_their_colours(qtbot, window) -> None:
    w = window
    w.client.step(10)
    qtbot.waitUntil(lambda: w.latest.step == 10, timeout=30_000)
    w.runs.compare()
    qtbot.waitUntil(lambda: w.runs.selected == "B", timeout=30_000)
    w.client.update(run="B", weight_decay=0.5)
    for n in (40, 70):
        w.client.step(30)
        qtbot.waitUntil(lambda n=n: all(s.step == n for s in runs_now(w).values()), timeout=30_000)
    panel = next(p for p in w.panels if p.key == "weights")
    w.nav.tabs.setCurrentIndex(w.panels.index(panel))
    with qtbot.waitSignal(w.panels_redrawn, timeout=10_000):
        w._mark_dirty()
    a = panel.run_totals[0]
    assert a.isVisible() and not panel.run_totals[1].isVisible()
    x, y = a.getData()
    np.testing.assert_array_equal(y, w.runs.histories["A"].series("weight_norm"))
    assert a.opts["pen"].color().name() == run_color(w.runs.slots["A"], "screen")
    assert "total A" in [label.text for _, label in panel.norm_legend.items]
    # λ = 0.5 on B (the selected run, its own total in the panel's usual curve) shrinks ‖W‖.
    _, yb = panel.total_norm.getData()
    assert yb[-1] < y[-1]


def test_weights_and_dropout_panels_show_every_run(qtbot, window) -> None:
    """The window hands the Weights and Dropout panels every run's latest snapshot: the histogram
    overlays each run's chosen layer, the Dropout panel shows each run's mask of the chosen site."""
    w = window
    w.client.step(10)
    qtbot.waitUntil(lambda: w.latest.step == 10, timeout=30_000)
    w.runs.compare()
    qtbot.waitUntil(lambda: list(runs_now(w)) == ["A", "B"], timeout=30_000)
    w.client.update(run="B", weight_decay=0.3, dropout=0.0)
    keys = [p.key for p in w.panels]
    for key in ("weights", "dropout"):
        w.tabs.setCurrentIndex(keys.index(key))
        panel = w.current_panel()
        w.client.step(10)
        need = "masks" if key == "dropout" else "histograms"
        qtbot.waitUntil(lambda panel=panel, need=need: len(runs_now(w)) == 2 and all(
            s.hparams.dropout == (0.0 if n == "B" else SMALL.dropout) and need in s.measured
            and panel._run_snaps.get(n) is s for n, s in runs_now(w).items()), timeout=30_000)
        with qtbot.waitSignal(w.panels_redrawn, timeout=10_000):
            w._mark_dirty()
        snaps = runs_now(w)
        if key == "weights":
            layer = panel.selected_layer()
            shown = [item for item in panel.run_hists if item.isVisible()]
            assert len(shown) == 2
            for item, name in zip(shown, ["A", "B"], strict=True):
                counts = np.asarray(snaps[name].weight_hist_fixed[layer], dtype=np.float64)
                edges = np.asarray(snaps[name].weight_hist_fixed_edges[layer])
                np.testing.assert_allclose(item.yData, counts / np.sum(counts * np.diff(edges)))
                assert item.opts["pen"].color().name() == run_color(w.runs.slots[name], "screen")
        else:
            k = snaps["A"].dropout_sites.index(panel.site_combo.currentText())
            images = [im for plot, im in zip(panel.run_mask_plots, panel.run_mask_images,
                                              strict=True) if plot.isVisible()]
            assert len(images) == 2 and panel.run_mask_view.isVisible()
            np.testing.assert_array_equal(images[0].image, snaps["A"].dropout_masks[k])
            np.testing.assert_array_equal(images[1].image, snaps["B"].dropout_masks[k])
            assert images[1].image.all() and not images[0].image.all()  # B: p = 0


def test_loss_surface_computes_one_job_per_run_through_the_engine(qtbot, window) -> None:
    """Compute (L) in Compare mode: the window forwards each run-addressed request, the engine
    computes each run's own landscape (the same step, a different grid for B's λ), and the panel
    draws each on its own map."""
    w = window
    w.client.step(20)
    qtbot.waitUntil(lambda: w.latest.step == 20, timeout=30_000)
    w.runs.compare()
    qtbot.waitUntil(lambda: list(runs_now(w)) == ["A", "B"], timeout=30_000)
    w.client.update(run="B", weight_decay=0.5, decay_mode="l2")
    w.client.step(20)
    qtbot.waitUntil(lambda: all(s.step == 40 for s in runs_now(w).values())
                    and runs_now(w)["B"].hparams.weight_decay == 0.5, timeout=30_000)
    keys = [p.key for p in w.panels]
    w.tabs.setCurrentIndex(keys.index("landscape"))
    panel = w.current_panel()
    with qtbot.waitSignal(w.panels_redrawn, timeout=10_000):
        w._mark_dirty()
    assert panel.comparing and not panel.run_view.isHidden()
    panel.resolution_spin.setValue(11)
    qtbot.mouseClick(panel.compute_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: {"A", "B"} <= set(panel.run_results) and not panel._run_jobs
                    and not any(r.coarse for r in panel.run_results.values()), timeout=120_000)
    a, b = panel.run_results["A"], panel.run_results["B"]
    assert a.step == b.step == 40 and np.shape(a.loss) == np.shape(b.loss) == (11, 11)
    assert a.penalty is not None and b.penalty is not None
    # B's decay term is its own λ = 0.5 (A's is 1e-3): B's penalty at the centre is the larger.
    assert b.center_penalty > a.center_penalty
    assert not np.array_equal(a.loss, b.loss)
    for slot, r in enumerate((a, b)):
        np.testing.assert_allclose(panel.run_images[slot].image, np.log10(r.loss + r.penalty),
                                   rtol=1e-12)
    assert "done · 2/2 runs" in panel.progress.format()
