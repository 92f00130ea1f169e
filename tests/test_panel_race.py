"""The Race panel (ui/panels/race.py), its numpy race (regsim/race_np.py) and the "optstate" part
(regsim/optstate.py), each against an independent computation: the torch race through the readable
rules (regsim.race, itself checked against torch.optim), a hand computation from torch.optim.Adam's
state, and numpy histograms of that hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication
from qtimage import show_on_screen

from regsim import HParams, optstate, race, race_np
from regsim.presets import load_preset
from regsim.snapshot import History
from regsim.trainer import Trainer

CASES = [("quadratic", dict(lr=0.03, lam=0.2, start=(-1.5, 2.0))),
         ("rosenbrock", dict(lr=1e-3, lam=0.5, start=(-1.2, 1.0)))]


# ------------------------------------------------------------------------------ the numpy race
@pytest.mark.parametrize("loss,kw", CASES)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_numpy_race_equals_the_torch_rules(loss: str, kw: dict, momentum: float) -> None:
    want = race.race(loss, steps=150, momentum=momentum, betas=(0.8, 0.99), **kw)
    got = race_np.race(race_np.RaceSettings(loss=loss, steps=150, momentum=momentum, betas=(0.8, 0.99),
                                            **kw))
    assert set(got) == set(want)
    for name, w in want.items():
        g = got[name]
        for field in ("path", "loss", "decay", "rate"):
            np.testing.assert_allclose(getattr(g, field), getattr(w, field), atol=1e-9, rtol=0,
                                       err_msg=f"{name} {field}")
        assert g.diverged_at == -1


@pytest.mark.parametrize("loss,kw", CASES)
def test_sgd_l2_and_sgdw_coincide_and_the_paper_joins_at_lr_lam(loss: str, kw: dict) -> None:
    s = race_np.RaceSettings(loss=loss, steps=400, **kw)
    r = race_np.race(s)
    np.testing.assert_allclose(r["SGDW"].path, r["SGD+L2"].path, atol=1e-9, rtol=0)
    np.testing.assert_allclose(r["SGDW (paper)"].path, r["SGD+L2"].path, atol=1e-9, rtol=0)
    # an explicit paper λ equal to lr·λ is the same; any other leaves them (the test can fail)
    same = race_np.race(race_np.RaceSettings(loss=loss, steps=400, paper_lam=kw["lr"] * kw["lam"], **kw))
    np.testing.assert_allclose(same["SGDW (paper)"].path, r["SGD+L2"].path, atol=1e-9, rtol=0)
    other = race_np.race(race_np.RaceSettings(loss=loss, steps=400, paper_lam=3 * kw["lr"] * kw["lam"], **kw))
    assert np.abs(other["SGDW (paper)"].path - r["SGD+L2"].path).max() > 1e-3
    # with momentum SGD+L2 carries λθ in its buffer: the two part
    mom = race_np.race(race_np.RaceSettings(loss=loss, steps=400, momentum=0.9, **kw))
    assert np.abs(mom["SGDW"].path - mom["SGD+L2"].path).max() > 1e-3


def test_a_divergence_is_marked_and_bad_settings_name_the_field() -> None:
    r = race_np.race(race_np.RaceSettings(loss="rosenbrock", lr=0.05, lam=0.0, steps=100))
    assert r["SGD+L2"].diverged_at > 0 and np.isnan(r["SGD+L2"].path[-1]).all()
    assert r["AdamW"].diverged_at == -1  # Adam's steps are bounded by lr
    for kw, text in ((dict(lr=0), r"lr = 0 is out of range; allowed: \(0, 10\]"),
                     (dict(lam=-1), r"λ = -1 is out of range"), (dict(betas=(0.9, 1.0)), "β₂ = 1.0"),
                     (dict(steps=2.5), "steps = 2.5"), (dict(start=(0, math.inf)), "start"),
                     (dict(loss="bowl"), "loss = 'bowl'")):
        with pytest.raises(ValueError, match=text):
            race_np.RaceSettings(**kw)


# ------------------------------------------------------------------------------- the optstate part
def trained(preset: str, steps: int = 30, **changes) -> Trainer:
    h = load_preset(preset).replace(hidden=(32, 32), train_size=200, **changes)
    t = Trainer(h, device="cpu")
    t.step(steps)
    return t


def hand_decay(t: Trainer) -> tuple[np.ndarray, np.ndarray]:
    """(effective decay, √v̂) of every weight-matrix element, by hand from torch.optim.Adam's state."""
    opt = t.optimizer
    assert isinstance(opt, torch.optim.Adam)
    decays, roots = [], []
    for lay in t.model.weight_layers():
        w = lay.weight
        group = next(g for g in opt.param_groups if any(p is w for p in g["params"]))
        st = opt.state[w]
        step = float(st["step"])
        v_hat = st["exp_avg_sq"].double().numpy() / (1 - group["betas"][1] ** step)
        root = np.sqrt(v_hat)
        lr, wd = group["lr"], group["weight_decay"]
        d = (np.full_like(root, lr * wd) if group["decoupled_weight_decay"]
             else lr * wd / (root + group["eps"]))
        decays.append(d.ravel())
        roots.append(root.ravel())
    return np.concatenate(decays), np.concatenate(roots)


@pytest.mark.parametrize("preset,mode", [("adam_l2", "l2"), ("adamw", "decoupled"),
                                         ("adamw", "decoupled_paper")])
def test_effective_decay_equals_the_hand_computation(preset: str, mode: str) -> None:
    t = trained(preset, decay_mode=mode)
    want, roots = hand_decay(t)
    got = torch.cat([optstate.effective_decay(t.optimizer, lay.weight)[0].reshape(-1).double()
                     for lay in t.model.weight_layers()]).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
    o = t.snapshot(parts={"optstate"}).opt_state
    assert o.rule == {"l2": "Adam+L2", "decoupled": "AdamW", "decoupled_paper": "AdamW (paper)"}[mode]
    # the histogram counts the hand values on the part's edges (ends clamped)
    idx = np.clip(np.floor((np.log10(np.maximum(want, optstate.FLOOR)) - o.edges[0])
                           / (o.edges[1] - o.edges[0])), 0, len(o.edges) - 2).astype(int)
    np.testing.assert_array_equal(o.counts, np.bincount(idx, minlength=len(o.edges) - 1))
    assert o.mean == pytest.approx(want.mean(), rel=1e-6)
    k = len(roots) // 10
    low, high = np.sort(roots)[[k - 1, -k]]
    ratio = want[roots >= high].mean() / want[roots <= low].mean()
    assert o.decile_ratio == pytest.approx(ratio, rel=1e-4)
    if mode == "l2":  # large gradients, less decay: by orders of magnitude, and perfectly ranked
        assert o.decile_ratio < 0.05 and o.corr < -0.99 and not o.uniform
    else:
        lam = t.hparams.weight_decay
        rate = t.optimizer.param_groups[0]["lr"] * (lam if mode == "decoupled" else lam / t.hparams.lr)
        np.testing.assert_allclose(want, rate, rtol=1e-6)
        assert o.decile_ratio == pytest.approx(1.0) and o.corr == 0.0 and o.uniform


def test_optstate_before_a_step_and_only_when_asked() -> None:
    t = Trainer(load_preset("adam_l2").replace(hidden=(8,), train_size=100), device="cpu")
    o = t.snapshot(parts={"optstate"}).opt_state
    assert o.note.startswith("no optimizer step yet") and o.counts.sum() == 0
    t.step(2)
    snap = t.snapshot(parts={"eval"})
    assert snap.opt_state is None and "optstate" not in snap.measured


# ------------------------------------------------------------------------------- the panel
@pytest.fixture
def panel(qtbot):
    from ui.panels.race import RacePanel

    p = RacePanel(History())
    qtbot.addWidget(p)
    show_on_screen(p, qtbot)
    yield p
    p.cleanup()


def torch_race(s: race_np.RaceSettings) -> dict:
    return race.race(s.loss, s.start, s.lr, s.lam, s.betas, s.momentum, s.steps)


def test_panel_trajectories_equal_regsim_race(panel) -> None:
    s = panel.settings
    want = torch_race(s)
    for name in ("Adam+L2", "AdamW", "SGD+L2", "SGDW", "SGDW (paper)"):
        np.testing.assert_allclose(panel.result[name].path, want[name].path, atol=1e-9, rtol=0)
        np.testing.assert_allclose(panel.result[name].rate, want[name].rate, atol=1e-9, rtol=0)
    assert "lie on top of each other" in panel.message.text()
    panel.replay()
    assert panel._timer.isActive() and panel.shown < s.steps
    while panel._timer.isActive():
        panel._tick()
    x, y = panel.paths["SGDW"].getData()  # what is drawn is the race, once the replay has ended
    np.testing.assert_allclose(np.c_[x, y], want["SGDW"].path, atol=1e-9)


def test_changing_lr_reruns_and_bad_input_names_the_field(panel, qtbot) -> None:
    edit = panel.fields["lr"]
    edit.setText("0.02")
    edit.editingFinished.emit()
    assert panel.settings.lr == 0.02
    np.testing.assert_allclose(panel.result["Adam+L2"].path, torch_race(panel.settings)["Adam+L2"].path,
                               atol=1e-9)
    assert panel._timer.isActive()  # on screen: the new race replays
    before = panel.result
    with qtbot.waitSignal(panel.status_message) as sig:
        edit.setText("fast")
        edit.editingFinished.emit()
    assert "lr = 'fast' is not a number; allowed: (0, 10]" in sig.args[0]
    assert panel.result is before
    panel.fields["b2"].setText("1")
    panel.fields["b2"].editingFinished.emit()
    edit.setText("0.02")
    edit.editingFinished.emit()
    assert "β₂ = 1.0 is out of range; allowed: [0, 1)" in panel.message.text()


def drag(widget, start: QPoint, end: QPoint, steps: int = 6) -> None:
    """A real left-button drag on a widget: press, moves with the button held, release."""
    def send(kind, pos, buttons):
        ev = QMouseEvent(kind, QPointF(pos), QPointF(widget.mapToGlobal(pos)), Qt.MouseButton.LeftButton,
                         buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(widget, ev)

    send(QMouseEvent.Type.MouseButtonPress, start, Qt.MouseButton.LeftButton)
    for i in range(1, steps + 1):
        p = start + (end - start) * i / steps
        send(QMouseEvent.Type.MouseMove, p, Qt.MouseButton.LeftButton)
    send(QMouseEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)


def test_dragging_the_start_reruns_the_race(panel, qtbot) -> None:
    vb = panel.contour_plot.getViewBox()
    view = panel.race_view
    to_widget = lambda x, y: view.mapFromScene(vb.mapViewToScene(QPointF(x, y)))  # noqa: E731
    start = panel.settings.start
    drag(view.viewport(), to_widget(*start), to_widget(0.0, -0.5))
    qtbot.wait(20)
    s = panel.settings
    assert s.start != start
    assert s.start == pytest.approx((0.0, -0.5), abs=0.1)
    np.testing.assert_allclose(panel.result["AdamW"].path[0], s.start)
    np.testing.assert_allclose(panel.result["AdamW"].path, torch_race(s)["AdamW"].path, atol=1e-9)
    panel.loss_combo.setCurrentIndex(1)  # Rosenbrock: its own start, lr, steps
    assert panel.settings.loss == "rosenbrock" and panel.settings.start == (-1.2, 1.0)


def test_compare_mode_draws_one_histogram_per_run(panel) -> None:
    runs = {"Adam+L2": trained("adam_l2"), "AdamW": trained("adamw")}
    snaps, rows = {}, []
    for slot, (name, t) in enumerate(runs.items()):
        h = History()
        snaps[name] = t.snapshot()
        h.add(snaps[name])
        rows.append((name, h, slot))
    panel.set_runs(rows, "Adam+L2")
    panel.set_run_snapshots(snaps)
    panel.redraw()
    for item, name in zip(panel.hists, runs):
        o = snaps[name].opt_state
        edges, counts = panel.histogram_of(name)
        np.testing.assert_array_equal(counts, o.counts)
        x, y = item.getData()
        np.testing.assert_allclose(y, o.counts / o.counts.sum())
        assert item.isVisible()
    assert not panel.hists[2].isVisible()
    want, _ = hand_decay(runs["AdamW"])  # AdamW: one bin, at log₁₀(lr·λ)
    _, counts = panel.histogram_of("AdamW")
    assert (counts > 0).sum() == 1
    assert edges[np.argmax(counts)] <= math.log10(want[0]) < edges[np.argmax(counts) + 1]
    text = panel.readout.text()
    assert "Adam+L2" in text and "top-√v̂ decile gets" in text and "uniform" in text
    assert panel.hint.toPlainText() == ""  # the comparison is set up: no hint
    panel.set_runs(rows[:1], "Adam+L2")  # one run alone: the hint asks for the comparison
    panel.ingest(snaps["AdamW"])
    panel.redraw()
    assert "Compare Adam+L2 vs AdamW" in panel.hint.toPlainText()


def test_the_setup_button_asks_for_both_presets(panel, qtbot) -> None:
    with qtbot.waitSignal(panel.request) as sig:
        panel.setup_button.click()
    name, payload = sig.args
    assert name == "compare"
    hs = {run: load_preset(p) for run, p in payload["runs"].items()}
    assert {h.decay_mode for h in hs.values()} == {"l2", "decoupled"}
    assert len({h.replace(decay_mode="l2") for h in hs.values()}) == 1  # nothing else differs
    assert isinstance(next(iter(hs.values())), HParams)


def test_optstate_is_measured_within_the_snapshot_budget_while_running() -> None:
    t = trained("adam_l2", steps=3)
    cache = optstate.OptStateCache()
    first = cache.get(t.model, t.optimizer, 3, running=True, max_overhead=0.02)
    t.step(1)
    # running, and the budget not yet covered: the previous measurement is reused
    assert cache.get(t.model, t.optimizer, 4, running=True, max_overhead=1e-12) is first
    fresh = cache.get(t.model, t.optimizer, 4, running=False, max_overhead=1e-12)  # paused: fresh
    assert fresh is not first and fresh.step == 4
    want, _ = hand_decay(t)
    assert fresh.mean == pytest.approx(want.mean(), rel=1e-6)
