"""The Compression panel driven as a user would: empty state, scrub, Play (button and P), Compare
mode overlays in lockstep, the "add λ = 0 run" request, and the readout's numbers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from PySide6.QtCore import Qt

from regsim.snapshot import History
from tests.qtimage import feed, show_on_screen, to_rgb
from tests.synthetic import make_snapshot
from ui.panels.compression import CompressionPanel
from ui.run_colors import run_color


def snaps(weight_decay: float = 1.0, steps=range(0, 1001, 50)):
    return [make_snapshot(step=s, weight_decay=weight_decay) for s in steps]


@pytest.fixture
def panel(qtbot):
    history = History()
    p = CompressionPanel(history)
    qtbot.addWidget(p)
    show_on_screen(p, qtbot)
    yield p
    p.cleanup()


def drawn(panel) -> np.ndarray:
    return np.asarray(panel.hists[0].yData, dtype=np.float64)


def fractions(snap, layer=1) -> np.ndarray:  # fc2: the panel's default, the largest layer
    c = np.asarray(snap.weight_hist_fixed[layer], dtype=np.float64)
    return c / c.sum()


def test_empty_state_before_training(panel):
    panel.redraw()
    assert panel.frame_label.text() == "no frames yet"
    assert not panel.slider.isEnabled()
    assert "press Space" in panel.readout.text()
    assert panel.hist_plot._regsim_hint.isVisible()
    panel.play_btn.click()  # nothing to play: it stays off
    assert not panel.timer.isActive() and not panel.play_btn.isChecked()


def test_scrub_changes_the_drawn_frame(panel, qtbot):
    ss = snaps()
    feed(panel, panel.history, ss)
    ring = panel.history.frames
    assert len(ring) == len(ss)
    assert panel.layer_box.currentText() == "fc2"  # 4096 weights, against fc1's and out's 128
    # Live: the newest frame, exactly the snapshot's fixed-axis histogram.
    np.testing.assert_allclose(drawn(panel), fractions(ss[-1]))
    assert "(live)" in panel.frame_label.text()
    live_pixels = to_rgb(panel.hist_widget.grab().toImage())
    panel.slider.setValue(0)
    np.testing.assert_allclose(drawn(panel), fractions(ss[0]))
    assert panel.frame_label.text().startswith("step 0 ")
    first_pixels = to_rgb(panel.hist_widget.grab().toImage())
    assert np.any(first_pixels != live_pixels, axis=2).mean() > 0.01
    # The axis is fixed: scrubbing does not move it.
    xr = panel.hist_plot.getViewBox().viewRange()[0]
    panel.slider.setValue(10)
    np.testing.assert_allclose(drawn(panel), fractions(ss[10]))
    assert panel.hist_plot.getViewBox().viewRange()[0] == xr
    # A frame in the middle stays put while training goes on; the right end follows training.
    feed(panel, panel.history, [make_snapshot(step=1050, weight_decay=1.0)])
    np.testing.assert_allclose(drawn(panel), fractions(ss[10]))
    panel.slider.setValue(panel.slider.maximum())
    feed(panel, panel.history, [make_snapshot(step=1100, weight_decay=1.0)])
    assert panel.frame_label.text().startswith("step 1,100")


def test_play_walks_to_the_end_and_the_shortcut_toggles(panel, qtbot):
    ss = snaps()
    feed(panel, panel.history, ss)
    panel.play_btn.click()
    assert panel.timer.isActive() and panel.play_btn.text() == "Pause"
    np.testing.assert_allclose(drawn(panel), fractions(ss[0]))  # from the start
    seen = []
    for _ in range(len(ss) + 2):
        panel._tick()
        seen.append(panel.frame_index())
    assert seen[0] > 0 and seen == sorted(seen)
    assert not panel.timer.isActive() and panel.play_btn.text() == "Play"  # stopped at the end
    np.testing.assert_allclose(drawn(panel), fractions(ss[-1]))
    panel.setFocus()
    qtbot.keyClick(panel, Qt.Key.Key_P)
    assert panel.timer.isActive()
    qtbot.keyClick(panel, Qt.Key.Key_P)
    assert not panel.timer.isActive()


def test_compare_overlays_each_run_in_lockstep(panel, qtbot):
    ha, hb = panel.history, History()
    a = snaps(1.0)
    b = snaps(0.0, steps=range(0, 801, 50))  # B is behind (a fresh run catching up)
    for s in a:
        ha.add(s)
    for s in b:
        hb.add(s)
    panel.ingest(a[-1])
    panel.set_runs([("A", ha, 0), ("B", hb, 1)], "A")
    panel.redraw()
    assert panel.add_zero_btn.isHidden()  # a λ = 0 run is there already
    panel.slider.setValue(4)  # A at step 200: B's frame at step 200 too
    assert panel.hists[1].isVisible()
    np.testing.assert_allclose(drawn(panel), fractions(a[4]))
    np.testing.assert_allclose(np.asarray(panel.hists[1].yData), fractions(b[4]))
    assert panel.hists[0].opts["pen"].color().name() == run_color(0, "screen")
    assert panel.hists[1].opts["pen"].color().name() == run_color(1, "screen")
    panel.slider.setValue(panel.slider.maximum())  # A at 1000: B's last frame (800)
    np.testing.assert_allclose(np.asarray(panel.hists[1].yData), fractions(b[-1]))
    assert len(panel.norms[1].xData) == len(b)
    text = panel.readout.text()
    assert "<b>A</b>" in text and "<b>B</b>" in text
    # Back to one run: one histogram.
    panel.set_runs([("A", ha, 0)], "A")
    panel.redraw()
    assert not panel.hists[1].isVisible()


def test_add_zero_run_requests_a_fresh_lambda_0_run(panel, qtbot):
    feed(panel, panel.history, snaps(1.0))
    assert not panel.add_zero_btn.isHidden()
    with qtbot.waitSignal(panel.request) as sig:
        panel.add_zero_btn.click()
    assert sig.args == ["add_run", {"changes": {"weight_decay": 0.0}}]


def test_readout_factor_half_life_and_norm(panel):
    ss = snaps(1.0)  # AdamW, lr 0.01, λ = 1: f = 0.99
    feed(panel, panel.history, ss)
    text = panel.readout.text()
    assert "1 − lr·λ = 0.990000" in text
    assert f"{math.log(2) / -math.log(0.99):,.0f} steps" in text  # 69
    assert f"{float(np.sqrt(np.sum(np.square(ss[-1].weight_norms)))):.3f}" in text
    assert f"×{0.99 ** 1000:.3f}" in text  # decay alone over 1000 steps
    # Adam + L2: no single factor, and the panel says why.
    hp = ss[0].hparams.replace(decay_mode="l2")
    l2 = [dataclasses.replace(s, hparams=hp) for s in snaps(1.0, steps=range(1100, 1301, 100))]
    panel.reset()
    panel.history.clear()
    feed(panel, panel.history, l2)
    assert "no single factor" in panel.readout.text() and "√v̂" in panel.readout.text()
    assert panel.predicted.xData is None or len(panel.predicted.xData) == 0


def test_add_zero_run_button_adds_a_lockstep_run_in_the_window(qtbot, window):
    """Through the real window and a thread engine: the button adds a fresh λ = 0 run with the
    selected run's other settings, which catches up to its step, and the panel overlays both."""
    from ui.panels.registry import panel_keys

    w = window
    w.tabs.setCurrentIndex(panel_keys().index("compression"))
    w.client.step(20)
    qtbot.waitUntil(lambda: w.latest.step == 20, timeout=30_000)
    panel = w.current_panel()
    w.redraw()
    assert w.latest.hparams.weight_decay > 0 and not panel.add_zero_btn.isHidden()
    qtbot.mouseClick(panel.add_zero_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.runs.latest is not None and len(w.runs.latest.runs) == 2,
                    timeout=30_000)
    runs = w.runs.latest.runs
    new = [n for n in runs if n != "A"][0]
    assert runs[new].hparams == runs["A"].hparams.replace(weight_decay=0.0)
    assert w.runs.selected == "A"  # the controls still edit the run the user was on
    w.client.step(20)
    qtbot.waitUntil(lambda: all(s.step == 40 for s in w.runs.latest.runs.values()), timeout=30_000)
    w.redraw()
    assert panel.hists[1].isVisible() and panel.add_zero_btn.isHidden()
