"""A p per layer (the seed's table: input 0–0.2, hidden 0.5): each site's mask rate follows its
own p, and the dropout panel's per-layer sliders send it, live, with validation naming the layer."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from qtimage import show_on_screen

from regsim.hparams import HParams
from regsim.snapshot import History
from regsim.trainer import Trainer

RUN = HParams(dataset="moons", hidden=(32, 32, 32), dropout=0.5, input_dropout=0.1,
              layer_dropout=(0.5, 0.2, 0.7), train_size=128, val_size=64, batch_size=64, seed=1)


def mask_rates(t: Trainer, steps: int) -> np.ndarray:
    """Dropped fraction per site over `steps` steps, read from each module's own mask."""
    dropped = np.zeros(len(t.model.dropout_modules()))
    total = np.zeros_like(dropped)
    for _ in range(steps):
        t.step(1)
        for i, d in enumerate(t.model.dropout_modules()):
            m = d.last_mask
            if m is not None:
                dropped[i] += float((~m).sum())
                total[i] += m.numel()
    return dropped / np.maximum(total, 1)


@pytest.mark.parametrize("seed", [1, 2])
def test_each_layers_mask_rate_follows_its_own_p(seed: int) -> None:
    t = Trainer(RUN.replace(seed=seed), device="cpu")
    rates = mask_rates(t, 50)
    # input: 50 × 64 × 2 = 6 400 draws (sd 0.004); hidden: 102 400 each (sd ≤ 0.0016)
    np.testing.assert_allclose(rates, [0.1, 0.5, 0.2, 0.7], atol=0.015)
    t.update(layer_dropout=(0.0, 0.6, 0.3))  # live: from the next step on
    rates = mask_rates(t, 50)
    np.testing.assert_allclose(rates[1:], [0.0, 0.6, 0.3], atol=0.015)
    t.update(layer_dropout=())  # back to the global p everywhere
    np.testing.assert_allclose(mask_rates(t, 50)[1:], [0.5, 0.5, 0.5], atol=0.015)


@pytest.fixture
def panel(qtbot):
    from ui.panels.dropout import DropoutPanel

    p = DropoutPanel(History())
    qtbot.addWidget(p)
    show_on_screen(p, qtbot)
    sent: list = []
    p.request.connect(lambda name, payload: sent.append((name, payload)))
    messages: list = []
    p.status_message.connect(messages.append)
    p.sent, p.messages = sent, messages
    return p


def test_sliders_send_a_p_per_layer_applied_at_the_next_step(qtbot, panel) -> None:
    t = Trainer(RUN.replace(layer_dropout=()), device="cpu")
    t.step(2)
    panel.ingest(t.snapshot())
    panel.redraw()
    shown = [s for s in panel.layer_sliders if s.isVisible()]
    assert [n.text() for n in panel.layer_names if n.isVisible()] == ["input", "fc1", "fc2", "fc3"]
    assert [s.value() for s in shown] == [10, 50, 50, 50]
    assert "0.5, the original paper's default" in shown[1].toolTip()
    assert not panel.global_p_button.isEnabled()  # no override yet
    shown[2].setFocus()
    for _ in range(30):  # fc2 down to 0.2 by keyboard, one 0.01 step a key
        qtbot.keyClick(shown[2], Qt.Key.Key_Left)
    assert panel.sent[-1] == ("update", {"layer_dropout": (0.5, 0.2, 0.5)})
    shown[0].setValue(0)  # input dropout off
    assert panel.sent[-1] == ("update", {"input_dropout": 0.0})
    for _, changes in panel.sent:  # what the window does with them: Trainer.update, live
        t.update(**changes)
    rates = mask_rates(t, 40)
    np.testing.assert_allclose(rates, [0.0, 0.5, 0.2, 0.5], atol=0.02)
    panel.ingest(t.snapshot())
    panel.redraw()
    assert [s.value() for s in shown] == [0, 50, 20, 50] and panel.global_p_button.isEnabled()
    qtbot.mouseClick(panel.global_p_button, Qt.MouseButton.LeftButton)
    assert panel.sent[-1] == ("update", {"layer_dropout": ()})
    t.update(**panel.sent[-1][1])
    t.update(dropout=0.3)  # the global p works again
    np.testing.assert_allclose(mask_rates(t, 40)[1:], [0.3, 0.3, 0.3], atol=0.02)


def test_a_bad_p_names_the_layer_and_the_range_and_sends_nothing(qtbot, panel) -> None:
    t = Trainer(RUN, device="cpu")
    t.step(1)
    panel.ingest(t.snapshot())
    panel.redraw()
    for site, bad in (("fc2", 1.0), ("input", -0.1), ("fc1", float("nan")), ("fc3", "0.5")):
        assert not panel.set_layer_p(site, bad)
        assert panel.layer_message.text().startswith(f"{site}: p = ")
        assert panel.layer_message.text().endswith("is out of range; allowed: [0, 1)")
    assert not panel.set_layer_p("fc9", 0.2)
    assert "no dropout site 'fc9'; sites: input, fc1, fc2, fc3" in panel.messages[-1]
    assert panel.sent == []
    assert panel.set_layer_p("fc3", 0.25) and panel.layer_message.text() == ""
    assert panel.sent == [("update", {"layer_dropout": (0.5, 0.2, 0.25)})]


def test_the_docks_global_p_shows_the_per_layer_override(qtbot) -> None:
    """The dock's p slider is not the engine's rate while layer_dropout overrides it: a note says
    so and lists the layers' rates, and moving the slider sets every layer again."""
    from ui.controls import ControlPanel

    dock = ControlPanel()
    qtbot.addWidget(dock)
    dock.show()
    sent: list[dict] = []
    dock.live_changed.connect(sent.append)
    h = RUN.replace(dropout=0.5, layer_dropout=())
    dock.set_hparams(h)
    assert not dock.layer_p_note.isVisible() and dock.dropout.value() == 0.5
    dock.set_hparams(h.replace(layer_dropout=(0.5, 0.2, 0.7)))
    assert dock.layer_p_note.isVisible()
    assert dock.layer_p_note.text().startswith("per layer: 0.5 · 0.2 · 0.7 — overrides p")
    dock.dropout.setValue(0.3)
    assert sent == [{"dropout": 0.3, "layer_dropout": ()}]
    t = Trainer(h.replace(layer_dropout=(0.5, 0.2, 0.7)), device="cpu")
    t.update(**sent[-1])  # what the window does with it: every hidden layer at 0.3
    np.testing.assert_allclose(mask_rates(t, 40)[1:], [0.3, 0.3, 0.3], atol=0.02)
    dock.set_hparams(t.hparams)
    assert not dock.layer_p_note.isVisible() and dock.dropout.value() == 0.3
    dock.set_hparams(h.replace(layer_dropout=(0.2, 0.2, 0.2)))  # one shared rate: the slider shows it
    assert dock.dropout.value() == 0.2 and dock.layer_p_note.isVisible()
    dock.dropout.setValue(0.4)
    assert sent[-1] == {"dropout": 0.4, "layer_dropout": ()}
