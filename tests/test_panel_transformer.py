"""The Dropout sites panel (ui/panels/transformer_sites.py), driven with qtbot on snapshots of a real
(small) transformer run: what it draws is what the engine's site view holds, its sliders send the
site rates the trainer then applies in place, train vs eval switches the picture, and a non-
transformer run gets the empty state that names the preset."""

from __future__ import annotations

import numpy as np
import pytest
from qtimage import show_on_screen, to_rgb

from regsim import HParams
from regsim.snapshot import History
from ui.panels.transformer_sites import PRESET, SITES, TransformerSitesPanel

RUN = dict(dataset="modular", modulus=11, train_fraction=0.5, architecture="transformer",
           n_layer=2, n_head=2, n_embd=16, attn_dropout=0.5, resid_dropout=0.3, embd_dropout=0.2,
           ffn_dropout=0.4, batch_size=16, lr=3e-3, weight_decay=0.1)


@pytest.fixture(scope="module")
def trainer():
    from regsim.trainer import Trainer

    t = Trainer(HParams(**RUN), device="cpu")
    t.step(3)
    return t


@pytest.fixture
def panel(qtbot):
    p = TransformerSitesPanel(History())
    qtbot.addWidget(p)
    show_on_screen(p, qtbot)
    yield p
    p.cleanup()


def test_draws_the_engines_attention_and_marks_the_dropped_connections(panel, trainer) -> None:
    snap = trainer.snapshot(parts={"transformer"})
    view = snap.transformer
    assert view is not None and view.attention.shape == (2, 2, 4)  # (L, H, T): the answer's row
    panel.ingest(snap)
    panel.redraw()
    L, H, T = view.attention.shape
    shown = panel.attn_image.image
    assert np.allclose(shown, view.attention.reshape(L * H, T))
    crosses = np.stack(panel.dropped.getData(), 1) if len(panel.dropped.getData()[0]) else np.zeros((0, 2))
    dropped = np.argwhere(~view.attention_kept.reshape(L * H, T))
    assert sorted(map(tuple, (crosses[:, ::-1] - 0.5).astype(int))) == sorted(map(tuple, dropped))
    # the residual-stream image: one row per (site, layer) at the answer position, 0 where dropped
    rows = [view.masks["embd"][0][-1], *[m[-1] for m in view.masks["resid"]],
            *[m[-1] for m in view.masks["ffn"]]]
    assert np.array_equal(panel.mask_image.image == 2, np.stack(rows))
    assert (panel.mask_image.image == 0).any()  # p = 0.2 … 0.4 on 16 channels: something dropped
    train_pixels = to_rgb(panel.grab().toImage())
    panel.mode_combo.setCurrentIndex(1)  # eval: the eval forward's weights, nothing crossed out
    assert np.allclose(panel.attn_image.image, view.attention_eval.reshape(L * H, T))
    assert len(panel.dropped.getData()[0]) == 0 and (panel.mask_image.image == 2).all()
    assert np.any(to_rgb(panel.grab().toImage()) != train_pixels)


def test_sliders_send_site_rates_the_trainer_applies_in_place(panel, trainer, qtbot) -> None:
    panel.ingest(trainer.snapshot(parts={"transformer"}))
    panel.redraw()
    assert [panel.sliders[s].value() for s in SITES] == [4, 10, 6, 8]  # the run's p / 0.05
    sent: list[tuple[str, dict]] = []
    panel.request.connect(lambda name, payload: sent.append((name, payload)))
    panel.sliders["attn"].setValue(3)
    assert sent == [("update", {"attn_dropout": 0.15})]
    modules = trainer.model.site_modules()["attn"]
    trainer.update(**sent[0][1])
    trainer.step(1)
    assert trainer.model.site_modules()["attn"] == modules  # the same modules, edited in place
    assert [d.p for d in modules] == [0.15, 0.15] and trainer.hparams.attn_dropout == 0.15
    snap = trainer.snapshot(parts={"transformer"})
    assert snap.transformer.rates[SITES.index("attn")] == 0.15
    trainer.update(attn_dropout=0.5)  # back for the other tests
    trainer.step(1)


def test_non_transformer_run_names_the_preset(panel, qtbot) -> None:
    from regsim.trainer import Trainer

    t = Trainer(HParams(dataset="moons", hidden=(8,), train_size=32, val_size=32), device="cpu")
    t.step(1)
    snap = t.snapshot(parts={"transformer"})
    assert snap.transformer is None
    panel.ingest(snap)
    panel.redraw()
    assert PRESET in panel.empty_text.toPlainText() and panel.empty_text.isVisible()
    sent: list = []
    panel.request.connect(lambda name, payload: sent.append((name, payload)))
    assert not panel.set_site("attn", 0.1)
    assert "not a transformer" in panel.status_label.text() and sent == []
    panel.preset_button.click()
    assert sent == [("preset", {"name": PRESET})]


def test_recipe_panel_draws_each_runs_schedule_step_and_clip_events(qtbot) -> None:
    from regsim.recipe import lr_curve
    from regsim.trainer import Trainer
    from ui.panels.recipe import RecipePanel

    base = HParams(dataset="moons", hidden=(8,), train_size=32, val_size=32, batch_size=8, lr=0.1,
                   optimizer="sgd")
    runs = {"LLaMA": base.replace(schedule="warmup_cosine", warmup_steps=5, total_steps=60,
                                  grad_clip=0.05),
            "original": base.replace(label_smoothing=0.1)}
    panel = RecipePanel(History())
    qtbot.addWidget(panel)
    show_on_screen(panel, qtbot)
    panel.redraw()
    empty = to_rgb(panel.grab().toImage())
    histories, snaps = {}, {}
    for name, h in runs.items():
        t = Trainer(h, device="cpu")
        histories[name] = History()
        for _ in range(4):
            t.step(5)
            snaps[name] = t.snapshot()
            histories[name].add(snaps[name])
    panel.set_runs([(n, histories[n], i) for i, n in enumerate(runs)], "LLaMA")
    panel.set_run_snapshots(snaps)
    panel.redraw()
    for i, name in enumerate(runs):
        x, y = panel.lr_curves[i].getData()
        assert np.allclose(y, lr_curve(runs[name], x))
        assert np.array_equal(x, np.round(x)) and y.max() <= runs[name].lr  # whole steps: no overshoot
        dot = panel.lr_now[i].getData()
        assert dot[0][0] == 20 and dot[1][0] == pytest.approx(lr_curve(runs[name], np.array([20]))[0])
    clips = snaps["LLaMA"].clip_events
    assert 0 < clips <= 20 and f"{clips} of 20 steps" in panel.table.text()
    assert "label smoothing" in panel.table.text() and panel.now_line.value() == 20
    assert np.any(to_rgb(panel.grab().toImage()) != empty, axis=2).mean() > 0.03
    sent: list = []
    panel.request.connect(lambda name, payload: sent.append((name, payload)))
    panel.load_button.click()
    assert sent == [("runs", {"presets": {"LLaMA": "transformer_llama",
                                          "original": "transformer_original"}})]
    panel.cleanup()
