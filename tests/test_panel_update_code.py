"""The update-code panel driven with qtbot against a live Trainer: a pick reaches the engine side,
and what the panel shows is the snapshot part's values, which tests/test_update_code.py holds to
torch.optim."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from qtimage import show_on_screen

from regsim import HParams, Trainer
from regsim.snapshot import History
from ui.panels.update_code import UpdateCodePanel, fmt, parse_index

H = HParams(dataset="moons", hidden=(8,), train_size=64, val_size=64, batch_size=16, lr=0.02,
            optimizer="adam", decay_mode="l2", weight_decay=0.3, seed=1)
PARTS = ["update_code", "param_groups"]


@pytest.fixture
def live(qtbot):
    t = Trainer(H, device="cpu")
    history = History()
    panel = UpdateCodePanel(history)
    qtbot.addWidget(panel)
    show_on_screen(panel, qtbot)

    def feed():
        snap = t.snapshot(parts=PARTS)
        history.add(snap)
        panel.ingest(snap)
        panel.redraw()
        return snap

    def on_request(kind, payload):  # what the window and the engine do with the panel's request
        assert kind == "explain"
        t.pick_parameter(payload["param"], payload["index"])

    panel.request.connect(on_request)
    yield t, panel, feed
    panel.cleanup()


def test_empty_state_then_the_first_steps_values(live) -> None:
    t, panel, feed = live
    feed()
    assert "No training step yet" in panel.status_label.text()
    assert panel.code.toPlainText() == ""
    t.step(3)
    snap = feed()
    v = snap.update_code
    init = Trainer(H, device="cpu").model.linears[0].weight.detach()  # picked at the first snapshot
    biggest = int(init.abs().argmax())  # the default: the largest |θᵢ| then
    assert v.param == "fc1.weight" and v.index == biggest and v.rule.rule == "Adam+L2"
    assert "step 3, the step the run just took" in panel.status_label.text()
    text = panel.code.toPlainText()
    assert f"m = {fmt(dict(v.rule.values[4])['m'])}" in text and "<- L2" in text
    assert "<- DECOUPLED" in panel.other_code.toPlainText()  # AdamW beside it
    assert panel.code.marked == 2  # `g = g + l2` (the docstring line is not shown)


def test_picking_a_parameter_shows_its_values(live, qtbot) -> None:
    t, panel, feed = live
    t.step(2)
    feed()
    assert panel.set_pick("out.weight", "1, 5")  # row 1, column 5 of the 2×8 matrix = flat 13
    assert t.explain_pick == ("out.weight", 13)
    t.step(1)
    v = feed().update_code
    assert (v.param, v.index, v.recorded) == ("out.weight", 13, True)
    live_value = float(t.model.out.weight.detach()[1, 5])
    assert v.rule.theta_new == pytest.approx(live_value, abs=1e-7)
    assert f"θ_new = {fmt(live_value)}" in panel.code.toPlainText()
    assert "out.weight[1, 5]" in panel.status_label.text()
    assert f"λθ = {fmt(v.l2_before)}" in panel.summary_label.text()
    # a click on a line of the counterpart's code selects it and shows its full values
    rect = panel.other_code.line_rect(6)
    qtbot.mouseClick(panel.other_code.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert panel.selected == (1, 6)
    decay = dict(v.counterpart.values[7])["decay"]  # source line 7 = shown line 6
    assert "decay = lr * lam * theta" in panel.detail_label.text()
    assert f"decay = {decay:.6g}" in panel.detail_label.text()


def test_a_bad_index_is_named_with_its_range_and_not_sent(live, qtbot) -> None:
    t, panel, feed = live
    t.step(1)
    feed()
    with qtbot.assertNotEmitted(panel.request):
        assert not panel.set_pick("fc1.weight", "16")
    assert panel.pick_label.text() == ("index: 16 is out of range for fc1.weight (8×2, 16 elements); "
                                       "allowed: 0 … 15, or [0, 7], [0, 1] per dimension")
    assert not panel.set_pick("fc1.weight", "3, 2")
    said = panel.pick_label.text()
    assert "dimension 1 = 2 is out of range" in said and "[0, 1]" in said
    assert not panel.set_pick("fc1.weight", "x")
    assert "not a whole number" in panel.pick_label.text()
    default = ("fc1.weight", int(t.model.linears[0].weight.detach().abs().argmax()))
    assert t.explain_pick == default  # unchanged by the rejected picks


def test_parse_index_is_row_major() -> None:
    from regsim.update_code import TensorInfo

    info = TensorInfo("w", (3, 4), 12, "weight")
    assert [parse_index(s, info) for s in ("7", "1, 3", "[2,0]")] == [7, 7, 8]
