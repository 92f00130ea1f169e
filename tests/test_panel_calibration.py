"""The calibration panel with real results: bars, gaps and histograms are the result's bins."""

from __future__ import annotations

import numpy as np
from qtimage import show_on_screen

import regsim
from regsim import HParams, Trainer
from regsim.analyses.jobs import JobEvent
from regsim.snapshot import History
from ui.panels.calibration import CalibrationPanel


def test_bars_are_the_bins_and_binning_toggles_without_recompute(qtbot) -> None:
    t = Trainer(HParams(dataset="moons", hidden=(32,), dropout=0.5, train_size=100, val_size=200,
                        lr=0.01), device="cpu")
    t.step(150)
    panel = CalibrationPanel(History())
    qtbot.addWidget(panel)
    show_on_screen(panel, qtbot)
    panel.ingest(t.snapshot())
    panel.redraw()
    with qtbot.waitSignal(panel.request) as sent:
        panel.compute_button.click()
    kind, args = sent.args
    assert kind == "analyze" and args["params"] == {"T": 50, "bins": 10, "points": "val"}
    r = regsim.analyze(t, "calibration", **args["params"])
    panel.on_job(JobEvent(args["id"], "", "calibration", "result", result=r))
    panel.redraw()
    for combo_index, attr in ((0, "uniform"), (1, "equal_mass")):
        panel.binning_combo.setCurrentIndex(combo_index)
        panel.redraw()
        for i, rel in enumerate((r.deterministic, r.mc)):
            b = getattr(rel, attr)
            full = b.count > 0
            np.testing.assert_array_equal(panel.acc_bars[i].opts["height"], b.accuracy[full])
            np.testing.assert_array_equal(panel.acc_bars[i].opts["x0"], b.edges[:-1][full])
            np.testing.assert_array_equal(panel.count_bars[i].opts["height"], b.count)
            gap = panel.gap_bars[i].opts["y1"] - panel.gap_bars[i].opts["y0"]
            np.testing.assert_allclose(gap, np.abs(b.accuracy - b.confidence)[full])
            # ECE recomputed from what is drawn: the counts and the gaps
            assert abs(np.sum(b.count[full] / b.count.sum() * gap) - b.ece) < 1e-12
            assert f"ECE {b.ece:.3f}" in panel.rel_plots[i].titleLabel.text


def test_t_change_asks_again_after_a_pause(qtbot) -> None:
    t = Trainer(HParams(dataset="moons", hidden=(16,), dropout=0.3), device="cpu")
    t.step(20)
    panel = CalibrationPanel(History())
    qtbot.addWidget(panel)
    panel.ingest(t.snapshot())
    panel.t_slider.setValue(80)  # no result yet: nothing asked
    assert not panel._t_timer.isActive()
    with qtbot.waitSignal(panel.request):
        panel.compute_button.click()
    r = regsim.analyze(t, "calibration", **panel.params())
    panel.on_job(JobEvent(panel._job_id, "", "calibration", "result", result=r))
    assert r.T == 80
    sent = []
    panel.request.connect(lambda k, a: sent.append((k, a)))
    for v in (90, 100, 120):  # a drag: one request once it rests
        panel.t_slider.setValue(v)
    qtbot.waitUntil(lambda: len(sent) == 1, timeout=2000)
    assert sent[0][0] == "analyze" and sent[0][1]["params"]["T"] == 120
    panel.cleanup()
    assert not panel._t_timer.isActive()
