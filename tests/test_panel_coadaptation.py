"""The co-adaptation panel driven as a user would: its empty states, a real result drawn, Compare mode."""

from __future__ import annotations

import dataclasses

import numpy as np
from qtimage import show_on_screen

import regsim
from regsim import HParams, Trainer
from regsim.analyses.jobs import JobEvent
from regsim.snapshot import History
from ui.panels.coadaptation import CoadaptationPanel

RUN = HParams(dataset="moons", hidden=(12, 10), dropout=0.3, train_size=80, val_size=80, lr=0.02,
              optimizer="adam")


def make(qtbot) -> CoadaptationPanel:
    panel = CoadaptationPanel(History())
    qtbot.addWidget(panel)
    show_on_screen(panel, qtbot)
    return panel


def asked(qtbot, panel: CoadaptationPanel) -> list[tuple[str, dict]]:
    sent: list[tuple[str, dict]] = []
    panel.request.connect(lambda kind, args: sent.append((kind, args)))
    panel.compute_button.click()
    return [s for s in sent if s[0] == "analyze"]


def test_empty_states_say_what_to_do(qtbot) -> None:
    panel = make(qtbot)
    panel.redraw()
    assert "Press Space" in panel.hints["single"].textItem.toPlainText()
    t = Trainer(RUN, device="cpu")
    t.step(5)
    panel.ingest(t.snapshot())
    panel.redraw()
    assert "Press A (Compute)" in panel.hints["single"].textItem.toPlainText()
    # the site combo lists the hidden layers only, the last preselected; the matrix preview has its size
    assert [panel.site_combo.itemData(i) for i in range(panel.site_combo.count())] == ["fc1", "fc2"]
    assert panel.site_combo.currentData() == "fc2"
    assert panel.matrix_image.image.shape == (10, 10)
    assert "45 pairs" in panel.matrix_plot.titleLabel.text and panel.zero_button.isVisibleTo(panel)
    # the conv net: the refusal, said in the plot, no matrix preview
    conv = Trainer(HParams(dataset="digits", architecture="conv", hidden=(4, 4), train_size=60,
                           dropout=0.2), device="cpu")
    panel.ingest(conv.snapshot())
    panel.redraw()
    text = panel.hints["single"].textItem.toPlainText()
    assert "MLP" in text and "conv" in text and panel.matrix_image.image is None


def test_a_real_result_is_drawn_as_computed(qtbot) -> None:
    t = Trainer(RUN, device="cpu")
    t.step(100)
    panel = make(qtbot)
    panel.ingest(t.snapshot())
    panel.redraw()
    panel.site_combo.setCurrentIndex(0)
    jobs = asked(qtbot, panel)
    assert len(jobs) == 1 and "run" not in jobs[0][1]
    assert jobs[0][1]["params"] == {"site": "fc1", "points": "val", "pairs": 2048}
    r = regsim.analyze(t, "coadaptation", **jobs[0][1]["params"])
    panel.on_job(JobEvent(jobs[0][1]["id"], "", "coadaptation", "progress", done=3, total=r.n_units + 66))
    assert panel.cancel_button.isVisibleTo(panel)
    panel.on_job(JobEvent(jobs[0][1]["id"], "", "coadaptation", "result", result=r))
    panel.redraw()
    assert not panel.cancel_button.isVisibleTo(panel)
    x, y = panel.single_curves[0].getData()
    live = ~r.dead
    np.testing.assert_array_equal(y, np.sort(r.single[live])[::-1])
    _, yp = panel.pair_curves[0].getData()
    keep = live[r.pair_i] & live[r.pair_j]
    a = np.sort(np.abs(r.interaction[keep]))[::-1]
    np.testing.assert_allclose(10 ** np.asarray(yp) if panel.pair_plot.ctrl.logYCheck.isChecked() else yp,
                               a[a > 0], rtol=1e-9)
    # the matrix: symmetric, I_ij at the units' ranks by ΔL
    m = panel.matrix_image.image
    rank = np.argsort(np.argsort(-r.single, kind="stable"), kind="stable")
    k = 5
    assert m[rank[r.pair_i[k]], rank[r.pair_j[k]]] == m[rank[r.pair_j[k]], rank[r.pair_i[k]]] == \
        r.interaction[k]
    assert f"{r.median_single:.2g}" in panel.single_plot.titleLabel.text
    assert "add the p = 0 run" in panel.pair_plot.titleLabel.text
    assert not panel.hints["single"].isVisible()
    # a failure (e.g. a refusal) replaces the result and is said in the plot
    jobs = asked(qtbot, panel)
    panel.on_job(JobEvent(jobs[0][1]["id"], "", "coadaptation", "failed", message="nope, because x"))
    panel.redraw()
    assert "nope, because x" in panel.hints["single"].textItem.toPlainText()


def test_compare_mode_asks_every_run_and_overlays_them(qtbot) -> None:
    t_drop = Trainer(RUN, device="cpu")
    t_zero = Trainer(dataclasses.replace(RUN, dropout=0.0), device="cpu")
    for t in (t_drop, t_zero):
        t.step(150)
    panel = make(qtbot)
    sent: list[tuple[str, dict]] = []
    panel.request.connect(lambda kind, args: sent.append((kind, args)))
    panel.ingest(t_drop.snapshot())
    panel.zero_button.click()
    assert sent[-1] == ("add_run", {"changes": {"dropout": 0.0, "layer_dropout": (), "input_dropout": 0.0}})
    # HParams accepts the changes the button sends (the window applies them with .replace)
    assert RUN.replace(**sent[-1][1]["changes"]).hidden_dropout() == (0.0, 0.0)
    panel.set_runs([("A", None, 0), ("B", None, 1)], "A")
    panel.set_run_snapshots({"A": t_drop.snapshot(), "B": t_zero.snapshot()})
    assert not panel.zero_button.isVisibleTo(panel)  # the comparison exists now
    jobs = asked(qtbot, panel)
    assert sorted(j[1]["run"] for j in jobs) == ["A", "B"]
    by_run = {"A": t_drop, "B": t_zero}
    results = {}
    for _, args in jobs:
        results[args["run"]] = regsim.analyze(by_run[args["run"]], "coadaptation", **args["params"])
        assert panel.cancel_button.isVisibleTo(panel)
        panel.on_job(JobEvent(args["id"], args["run"], "coadaptation", "result", result=results[args["run"]]))
    panel.redraw()
    assert not panel.cancel_button.isVisibleTo(panel)
    title = panel.pair_plot.titleLabel.text
    assert "A: p = 0.3" in title and "B: p = 0" in title and "ratio A/B" in title
    for k, run in enumerate(("A", "B")):  # the selected run first, each in its colour slot
        _, y = panel.single_curves[k].getData()
        r = results[run]
        np.testing.assert_array_equal(y, np.sort(r.single[~r.dead])[::-1])
    # the real effect on this small run: dropout's pairs interact less
    assert results["A"].mean_abs_interaction < results["B"].mean_abs_interaction
    # selecting run B (the window resets every panel): the results stay, B's matrix is shown
    panel.reset()
    panel.set_runs([("A", None, 0), ("B", None, 1)], "B")
    panel.ingest(t_zero.snapshot())
    panel.redraw()
    assert set(panel.results) == {"A", "B"} and panel.matrix_plot.titleLabel.text.startswith("B: I_ij")
    # a run that starts over loses its result
    panel.set_run_snapshots({"A": t_drop.snapshot(), "B": Trainer(RUN, device="cpu").snapshot()})
    assert set(panel.results) == {"A"}
    # leaving Compare mode forgets the per-run results
    panel.set_runs([("A", None, 0)], "A")
    panel.redraw()
    assert panel.results == {} and "Press A (Compute)" in panel.hints["single"].textItem.toPlainText()
