"""The no_decay panel driven with qtbot against a live Trainer: a toggle reaches the trainer as a
setting, and the listed groups are the optimizer's param_groups before and after it."""

from __future__ import annotations

import pytest
from qtimage import show_on_screen

from regsim import HParams, Trainer
from regsim.optim import KIND_KEY, LAMBDA_KEY
from regsim.snapshot import History
from ui.panels.no_decay import LESSON, NoDecayPanel

H = HParams(dataset="moons", hidden=(8, 4), train_size=64, val_size=64, batch_size=16, lr=0.01,
            optimizer="adam", decay_mode="decoupled", weight_decay=0.5, layer_norm=True, seed=1)


@pytest.fixture
def live(qtbot):
    t = Trainer(H, device="cpu")
    history = History()
    panel = NoDecayPanel(history)
    qtbot.addWidget(panel)
    show_on_screen(panel, qtbot)
    sent: list = []

    def feed():
        snap = t.snapshot(parts=["param_groups"])
        history.add(snap)
        panel.ingest(snap)
        panel.redraw()
        return snap

    def on_request(kind, payload):  # what the window does: a live update to the engine
        sent.append((kind, payload))
        if kind == "update":
            t.update(**payload)

    panel.request.connect(on_request)
    yield t, panel, feed, sent
    panel.cleanup()


def _rows(panel) -> list[tuple[str, ...]]:
    tb = panel.table
    return [tuple(tb.item(r, c).text() for c in range(tb.columnCount())) for r in range(tb.rowCount())]


def test_the_listed_groups_are_the_optimizers(live) -> None:
    t, panel, feed, _ = live
    feed()
    names = {id(p): n for n, p in t.model.named_parameters()}
    listed = {row[1]: row for row in _rows(panel)}
    assert len(listed) == sum(len(g["params"]) for g in t.optimizer.param_groups) == 10
    for g in t.optimizer.param_groups:
        for p in g["params"]:
            shown = names[id(p)].replace("linears.", "fc").replace("norms.", "ln")
            shown = shown[:2] + str(int(shown[2]) + 1) + shown[3:] if shown[2:3].isdigit() else shown
            group, _, _, shape, count, lam = listed[shown]
            assert group == g["name"] and lam == f"{g[LAMBDA_KEY]:g}"
            assert shape == "×".join(str(s) for s in p.shape) and count == f"{p.numel():,}"
    assert listed["ln1.weight"][0] == "no_decay" and listed["fc1.bias"][0] == "no_decay"
    assert panel.bias_box.isChecked() and panel.norm_box.isChecked()
    assert "decay</b>: 3 tensors" in panel.summary_label.text()


def test_a_toggle_reaches_the_trainer_and_the_groups_change(live) -> None:
    t, panel, feed, sent = live
    feed()
    t.step(2)
    panel.norm_box.setChecked(False)  # norm γ, β are decayed from now on
    assert sent[-1] == ("update", {"no_decay_kinds": "biases"})
    t.step(1)  # applied at the next step
    feed()
    by_kind = {g[KIND_KEY]: g for g in t.optimizer.param_groups}
    assert by_kind["norm"][LAMBDA_KEY] == 0.5 and by_kind["norm"]["name"] == "decay"
    listed = {row[1]: row for row in _rows(panel)}
    assert listed["ln1.weight"][0] == "decay" and listed["ln1.weight"][5] == "0.5"
    assert listed["fc1.bias"][0] == "no_decay" and listed["fc1.bias"][5] == "0"
    assert not panel.norm_box.isChecked() and panel.bias_box.isChecked()
    assert "decay</b>: 7 tensors" in panel.summary_label.text()
    panel.bias_box.setChecked(False)
    assert sent[-1] == ("update", {"no_decay_kinds": "none"})
    t.step(1)
    feed()
    assert {row[0] for row in _rows(panel)} == {"decay"}


def test_a_toggle_turns_decay_all_off(live) -> None:
    t, panel, feed, sent = live
    t.update(decay_norms_and_biases=True)
    feed()
    assert not panel.bias_box.isChecked() and "is on (dock)" in panel.summary_label.text()
    panel.bias_box.setChecked(True)
    assert sent[-1] == ("update", {"no_decay_kinds": "biases", "decay_norms_and_biases": False})


def test_the_lesson_button_asks_for_the_lesson(live, qtbot) -> None:
    _, panel, feed, sent = live
    feed()
    panel.lesson_button.click()
    assert sent[-1] == ("lesson", {"name": LESSON})
    from pathlib import Path

    from regsim.lessons import load_lesson

    lesson = load_lesson(Path(__file__).parent.parent / "resources" / "lessons" / f"{LESSON}.json")
    assert {h.decay_norms_and_biases for h in lesson.runs.values()} == {False, True}


def test_the_embedding_toggle_is_decay_embeddings_on_a_net_with_tables(qtbot) -> None:
    """Greyed for the MLP (no nn.Embedding); on the embedding MLP (modular data) it is live: checked
    = the table in no_decay = decay_embeddings off, and a click reaches the optimizer's group."""
    h = HParams(dataset="modular", modulus=11, architecture="embed_mlp", hidden=(16,), batch_size=16,
                optimizer="adam", decay_mode="decoupled", weight_decay=0.5, seed=0)
    t = Trainer(h, device="cpu")
    panel = NoDecayPanel(History())
    qtbot.addWidget(panel)
    sent: list = []

    def on_request(kind, payload):
        sent.append((kind, payload))
        if kind == "update":
            t.update(**payload)

    panel.request.connect(on_request)

    def feed() -> None:
        panel.ingest(t.snapshot(parts=["param_groups"]))
        panel.redraw()

    feed()
    assert panel.embed_box.isEnabled() and not panel.embed_box.isChecked()  # nanoGPT: decayed
    panel.embed_box.setChecked(True)
    assert sent[-1] == ("update", {"decay_embeddings": False})
    t.step(1)
    feed()
    emb = next(g for g in t.optimizer.param_groups if g[KIND_KEY] == "embedding")
    assert emb["name"] == "no_decay" and emb[LAMBDA_KEY] == 0.0 and emb["weight_decay"] == 0.0
    assert panel.embed_box.isChecked()
    assert {row[1]: row for row in _rows(panel)}["embed.weight"][0] == "no_decay"
    panel.cleanup()


def test_the_embedding_toggle_is_greyed_without_tables(live) -> None:
    _, panel, feed, _ = live
    feed()
    assert not panel.embed_box.isEnabled() and not panel.embed_box.isChecked()
