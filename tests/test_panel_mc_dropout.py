"""The MC dropout panel with real results of the analysis (the contract test feeds snapshots only)."""

from __future__ import annotations

import numpy as np
import pytest
from qtimage import show_on_screen, to_rgb

import regsim
from regsim import HParams, Trainer
from regsim.analyses.jobs import JobEvent
from regsim.snapshot import History
from ui.panels.mc_dropout import MCDropoutPanel


def panel_for(h: HParams, qtbot, steps: int = 100, **params):
    t = Trainer(h, device="cpu")
    t.step(steps)
    history = History()
    panel = MCDropoutPanel(history)
    qtbot.addWidget(panel)
    show_on_screen(panel, qtbot)
    snap = t.snapshot()
    history.add(snap)
    panel.ingest(snap)
    panel.redraw()
    before = to_rgb(panel.grab().toImage())
    with qtbot.waitSignal(panel.request) as sent:
        panel.compute_button.click()
    kind, args = sent.args
    assert kind == "analyze" and args["analysis"] == "mc_dropout" and args["params"] == {"T": 50}
    result = regsim.analyze(t, "mc_dropout", **(args["params"] | params))
    panel.on_job(JobEvent("other", "", "mc_dropout", "result", result=result))  # not ours: ignored
    assert panel.result is None
    panel.on_job(JobEvent(args["id"], "", "mc_dropout", "result", result=result))
    panel.redraw()
    after = to_rgb(panel.grab().toImage())
    assert np.any(after != before, axis=2).mean() > 0.01  # the result is drawn
    return panel, result


def test_regression_bands_are_the_results_mean_and_std(qtbot) -> None:
    panel, r = panel_for(HParams(dataset="regression", hidden=(32, 32), dropout=0.2), qtbot)
    x, y = panel.mean_curve.getData()
    np.testing.assert_allclose(x, r.x[:, 0])
    np.testing.assert_allclose(y, r.mean)
    np.testing.assert_allclose(panel.hi2.getData()[1] - panel.lo2.getData()[1], 4 * r.std, rtol=1e-5,
                               atol=1e-6)
    assert "T = 50" in panel.status_label.text()
    panel.cleanup()


@pytest.mark.parametrize("which", [0, 1])
def test_two_d_map_is_entropy_or_mutual_information(qtbot, which: int) -> None:
    panel, r = panel_for(HParams(dataset="moons", hidden=(16, 16), dropout=0.3), qtbot, resolution=21)
    panel.map_combo.setCurrentIndex(which)
    panel.redraw()
    shown = panel.image.image
    expected = (r.entropy if which == 0 else r.mutual_info).reshape(21, 21)
    np.testing.assert_allclose(shown, expected)
    panel.cleanup()


def test_digits_mosaic_shows_most_then_least_certain(qtbot) -> None:
    panel, r = panel_for(HParams(dataset="digits", hidden=(32,), dropout=0.3, lr=0.01), qtbot)
    img = panel.image.image[::-1]  # drawn bottom-up
    np.testing.assert_allclose(img[:8, :8], r.x[r.most_certain[0]].reshape(8, 8))
    np.testing.assert_allclose(img[9:17, :8], r.x[r.least_certain[0]].reshape(8, 8))
    failed = JobEvent(panel._job_id, "", "mc_dropout", "failed", message="MC dropout failed: boom")
    panel.on_job(failed)
    assert "boom" in panel.status_label.text()
    panel.cleanup()
