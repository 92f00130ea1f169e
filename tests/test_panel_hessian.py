"""The Hessian panel with real job results: the bars are the result's eigenvalues, train and eval are
asked one after the other, the mode toggle asks again, and Compare mode's shrinkage is the
projection of the two runs' weights onto the no-decay run's eigenvectors (recomputed here with torch
from the trainers' own parameters)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from qtimage import show_on_screen, to_rgb

import regsim
from regsim import HParams, Trainer
from regsim.analyses.jobs import JobEvent
from regsim.snapshot import History
from ui.panels.hessian import HessianPanel

SMALL = HParams(dataset="moons", hidden=(8, 8), train_size=64, dropout=0.3, seed=3, lr=0.01)


def make_panel(qtbot) -> tuple[HessianPanel, list]:
    panel = HessianPanel(History())
    qtbot.addWidget(panel)
    show_on_screen(panel, qtbot)
    sent: list = []
    panel.request.connect(lambda kind, args: sent.append((kind, dict(args))))
    return panel, sent


def answer(panel: HessianPanel, sent: list, trainers: dict[str, Trainer]) -> list[dict]:
    """Play the engine: run each "analyze" the panel sends on the named trainer (regsim.analyze, the
    same computation the job runner drains) and send back progress and the result, until the panel
    asks for nothing more. Returns the requests answered."""
    answered = []
    while any(kind == "analyze" for kind, _ in sent):
        i = next(j for j, (kind, _) in enumerate(sent) if kind == "analyze")
        _, args = sent.pop(i)
        answered.append(args)
        run = args.get("run", "")
        r = regsim.analyze(trainers[run], args["analysis"], **args["params"])
        panel.on_job(JobEvent(args["id"], run, args["analysis"], "started"))
        panel.on_job(JobEvent(args["id"], run, args["analysis"], "progress", 3, 10))
        panel.on_job(JobEvent(args["id"], run, args["analysis"], "result", 10, 10, result=r))
    return answered


def test_train_and_eval_results_are_drawn_and_the_toggle_asks_again(qtbot) -> None:
    t = Trainer(SMALL, device="cpu")
    t.step(80)
    panel, sent = make_panel(qtbot)
    panel.ingest(t.snapshot())
    panel.redraw()
    empty = to_rgb(panel.grab().toImage())
    panel.k_spin.setValue(4)
    panel.compute_button.click()
    # One job at a time (the runner would supersede a run's older job of the same analysis).
    assert [k for k, _ in sent] == ["analyze"]
    asked = answer(panel, sent, {"": t})
    assert [(a["analysis"], a["params"]["mode"], a["params"]["k"]) for a in asked] == [
        ("hessian", "eval", 4), ("hessian", "train", 4)]
    panel.redraw()
    ev, tr = panel.results["eval"], panel.results["train"]
    np.testing.assert_array_equal(panel.eval_bars.opts["height"], ev.eigenvalues)
    np.testing.assert_array_equal(panel.train_bars.opts["height"], tr.eigenvalues)
    assert len(ev.eigenvalues) == 4 and not np.allclose(ev.eigenvalues, tr.eigenvalues, rtol=1e-3)
    rel = np.max(np.abs(tr.eigenvalues - ev.eigenvalues) / np.abs(ev.eigenvalues))
    assert f"up to {100 * rel:.1f} %" in panel.bars_plot.titleLabel.text
    assert f"tr H ≈ {ev.trace:.3g}" in panel.bars_plot.titleLabel.text and not panel.cancel_button.isVisible()
    full = to_rgb(panel.grab().toImage())
    assert np.any(full != empty, axis=2).mean() > 0.03
    # The toggle asks again, for eval mode only.
    panel.mode_combo.setCurrentIndex(1)
    assert [a["params"]["mode"] for a in answer(panel, sent, {"": t})] == ["eval"]
    panel.redraw()
    assert set(panel.results) == {"eval"} and len(panel.train_bars.opts["height"]) == 0
    # Without Compare mode the shrinkage plot says what it needs.
    assert "λ = 0" in panel.hints["shrink"].toPlainText() and "λ > 0" in panel.hints["shrink"].toPlainText()
    panel.cleanup()


def test_no_dropout_asks_one_mode(qtbot) -> None:
    """Without dropout the train-mode loss is the eval-mode loss: "train & eval" asks once."""
    t = Trainer(dataclasses.replace(SMALL, dropout=0.0), device="cpu")
    t.step(10)
    panel, sent = make_panel(qtbot)
    panel.ingest(t.snapshot())
    panel.compute_button.click()
    assert [a["params"]["mode"] for a in answer(panel, sent, {"": t})] == ["eval"]
    assert "train mode = eval mode" in panel.status_label.text()
    panel.cleanup()


def test_density_failure_and_cancel(qtbot) -> None:
    t = Trainer(SMALL, device="cpu")
    t.step(30)
    panel, sent = make_panel(qtbot)
    panel.ingest(t.snapshot())
    panel.mode_combo.setCurrentIndex(1)
    panel.density_check.setChecked(True)
    panel.compute_button.click()
    answer(panel, sent, {"": t})
    panel.redraw()
    r = panel.results["eval"]
    np.testing.assert_array_equal(panel.density_curve.xData, r.density_grid)
    assert r.density_nodes.shape[0] == 10 and not panel.hints["density"].isVisible()
    # A failure names its field in the status line; nothing stays pending.
    panel.k_spin.setValue(3)
    panel.compute_button.click()
    _, args = sent.pop()
    msg = "Hessian eigen-directions failed: ValueError: k = 3: this network has P = 1,000,000 …"
    panel.on_job(JobEvent(args["id"], "", "hessian", "failed", message=msg))
    assert panel.status_label.text() == f"failed: {msg}" and not panel.cancel_button.isVisible()
    # Cancel sends the job's id; its late result is ignored.
    panel.compute_button.click()
    _, args = sent.pop()
    assert panel.cancel_button.isVisible()
    panel.cancel_button.click()
    assert sent.pop() == ("cancel", {"id": args["id"]})
    late = regsim.analyze(t, "hessian", **args["params"])
    panel.on_job(JobEvent(args["id"], "", "hessian", "result", result=late))
    assert panel.results == {} and panel.status_label.text() == "cancelled"
    # cleanup() cancels a job in flight.
    panel.compute_button.click()
    _, args = sent.pop()
    panel.cleanup()
    assert sent.pop() == ("cancel", {"id": args["id"]})


def test_compare_mode_shrinkage_is_the_projection_of_both_runs(qtbot) -> None:
    base = dataclasses.replace(SMALL, dropout=0.0, decay_mode="l2", decay_norms_and_biases=True,
                               optimizer="sgd", lr=0.1)
    cmp = regsim.Comparison({"A": base, "B": dataclasses.replace(base, weight_decay=0.05)}, device="cpu")
    cmp.step(100)
    panel, sent = make_panel(qtbot)
    snaps = cmp.snapshots()
    panel.ingest(snaps["B"])
    panel.set_runs([("A", None, 0), ("B", None, 1)], "B")
    panel.set_run_snapshots(snaps)
    panel.redraw()
    assert "press H" in panel.hints["shrink"].toPlainText()
    assert panel.shrink_pair() == ("A", "B")
    panel.mode_combo.setCurrentIndex(1)
    panel.k_spin.setValue(5)
    panel.compute_button.click()
    asked = answer(panel, sent, dict(cmp.trainers))
    assert [(a["analysis"], a.get("run")) for a in asked] == [
        ("hessian", "A"), ("flat_weights", "A"), ("flat_weights", "B")]
    panel.redraw()
    s = panel.shrink
    h = panel.results["eval"]
    Q = torch.from_numpy(h.eigenvectors).double()
    wa, wb = (torch.cat([p.detach().reshape(-1) for p in cmp.trainers[n].model.parameters()]).double()
              for n in "AB")
    np.testing.assert_allclose(s.measured, ((Q @ wb) / (Q @ wa)).numpy(), rtol=1e-9)
    np.testing.assert_allclose(s.predicted, h.eigenvalues / (h.eigenvalues + 0.05), rtol=1e-12)
    assert s.alpha == pytest.approx(0.05)
    np.testing.assert_allclose(panel.pred_bars.opts["height"], s.predicted)
    np.testing.assert_allclose(panel.meas_points.yData, s.measured[np.isfinite(s.measured)])
    assert "α = 0.05" in panel.shrink_plot.titleLabel.text and not panel.hints["shrink"].isVisible()
    assert "eigenvalues of run A at step 100" in panel.bars_plot.titleLabel.text
    # AdamW as the decay run: no single α, so no prediction is drawn (measured only).
    cmp.trainers["B"].update(optimizer="adam", decay_mode="decoupled", lr=0.01)
    cmp.step(5)
    panel.set_run_snapshots(cmp.snapshots())
    panel.compute_button.click()
    answer(panel, sent, dict(cmp.trainers))
    panel.redraw()
    assert np.isnan(panel.shrink.alpha) and np.all(np.isnan(panel.shrink.predicted))
    assert len(panel.pred_bars.opts["height"]) == 0 and len(panel.meas_bars.opts["height"]) == 5
    assert "AdamW: no single α" in panel.shrink_plot.titleLabel.text
    assert "AdamW: no single α" in panel.status_label.text() and "nan" not in panel.status_label.text()
    # Leaving Compare mode drops the shrinkage and the empty state says what to add.
    panel.set_runs([("A", None, 0)], "A")
    panel.redraw()
    assert panel.shrink is None and "add a run with λ = 0" in panel.hints["shrink"].toPlainText()
    panel.cleanup()
