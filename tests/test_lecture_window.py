"""Issue 8 (lecture-proof): the window, the control dock and the run state, driven as a user would.

Each test reproduces one thing that broke in a lecture run-through: a long message that widened the
window, a saved layout that stayed broken, a Run button that lied, fields that kept rejected text,
Space typed into a field, stale preset names, missing controls for the presets' settings.
"""

from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication
from test_app import SMALL, make_window

from regsim import HParams
from regsim.presets import load_preset
from ui.app import build_app
from ui.controls import CUSTOM, NICE_MANTISSAS, P_STEP
from ui.main_window import MainWindow

LONG = ("Training diverged (the loss exploded to 3.1e+04) at step 12,345. Restored the last good "
        "weights from step 12,000 (train loss 0.31). Lower lr (now 1), e.g. to 0.1, then resume (lr·λ ≥ 1 "
        "also makes each decay step overshoot zero). ") * 2


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "regsim.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, settings):
    w = make_window(qtbot, settings)
    yield w
    w.shutdown()


def settle(qtbot, ms=50):
    QApplication.processEvents()
    qtbot.wait(ms)


# ------------------------------------------------------------------ 1. a long message, a broken layout
def test_divergence_message_never_widens_the_window(qtbot, window) -> None:
    window.build_panels()
    width, dock = window.width(), window.dock.width()
    diverged = dataclasses.replace(window.latest, status="diverged", message=LONG, step=12_345)
    for i in range(len(window.panels)):  # every panel shows the snapshot in turn
        window.tabs.setCurrentIndex(i)
        window.on_snapshot(diverged)
        window.redraw()
        settle(qtbot)
        assert window.width() == width, f"tab {i}: the window grew to {window.width()} px"
        assert window.dock.width() >= dock - 2
    assert window.banner.isVisible()
    right = window.banner.action.mapTo(window, window.banner.action.rect().topRight()).x()
    assert right <= window.width(), "the banner's button is off the window"


def test_saved_broken_layout_is_repaired_on_load(qtbot, settings) -> None:
    w = make_window(qtbot, settings, size=None)
    screen = w.screen().availableGeometry()
    w.resize(screen.width() + 500, screen.height() + 300)  # what one long message did
    w.resizeDocks([w.dock], [20], Qt.Orientation.Horizontal)
    settle(qtbot)
    w.shutdown()  # saves geometry and dock state
    w2 = make_window(qtbot, settings, restore=True, size=None)
    try:
        qtbot.waitUntil(lambda: w2.frameGeometry().width() <= screen.width(), timeout=5_000)
        settle(qtbot, 100)
        assert w2.frameGeometry().height() <= screen.height()
        assert screen.contains(w2.frameGeometry().topLeft())
        assert w2.dock.width() >= w2.dock_scroll.minimumWidth()
    finally:
        w2.shutdown()


def test_dock_never_collapses_in_a_small_window(qtbot, window) -> None:
    window.build_panels()
    for size in ((1366, 768), (1024, 640), (900, 600)):
        window.resize(*size)
        settle(qtbot)
        assert window.dock.width() >= window.controls.minimumWidth(), size
        if size[0] >= 1024:  # the panels give way: the window takes the size it was given
            assert window.width() == size[0], f"asked for {size}, got {window.width()}"
    window.resize(1366, 768)
    settle(qtbot)
    assert window.width() == 1366 and window.centralWidget().width() >= 900


# ------------------------------------------------------------------ 2. one source of truth: the engine
def run_button_matches_engine(w) -> bool:
    return w.controls.run_btn.text() == ("Pause" if w.latest.status == "running" else "Run")


def test_run_button_always_shows_the_engines_state(qtbot, window) -> None:
    for _ in range(3):
        window.toggle_run()
        qtbot.waitUntil(lambda: window.latest.status == "running", timeout=10_000)
        settle(qtbot)
        assert run_button_matches_engine(window)
        window.toggle_run()
        qtbot.waitUntil(lambda: window.latest.status == "paused", timeout=10_000)
        settle(qtbot)
        assert run_button_matches_engine(window)


def test_lower_lr_and_resume_leaves_the_ui_telling_the_truth(qtbot, window) -> None:
    """The engine answers the lr update with a snapshot that still says "diverged" (it is paused
    until the run command that follows): that snapshot brought the old banner back and set the
    button to Run while the engine trained."""
    window.reset_run(HParams(dataset="digits", train_size=200, hidden=(32, 32),
                             optimizer="momentum", lr=1000.0))
    qtbot.waitUntil(lambda: window.latest.hparams.lr == 1000.0, timeout=10_000)
    window.toggle_run()
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=20_000)
    assert window.controls.run_btn.text() == "Run"
    assert "Lower lr to 100 " in window.banner.action.text() + " "
    window.banner.action.click()  # lr 100 diverges again: a new banner, for the new lr
    qtbot.waitUntil(lambda: window.latest.hparams.lr == 100.0, timeout=10_000)
    qtbot.waitUntil(lambda: window.banner.isVisible() and window.latest.status == "diverged",
                    timeout=20_000)
    settle(qtbot, 200)
    assert "Lower lr to 10 " in window.banner.action.text() + " "
    assert run_button_matches_engine(window)
    window._lower_lr_and_resume(0.01)  # what the button does, with an lr that trains
    qtbot.waitUntil(lambda: window.latest.hparams.lr == 0.01, timeout=10_000)
    start = window.latest.step
    for _ in range(20):  # over many snapshots: no banner, and the button says Pause
        settle(qtbot, 30)
        assert run_button_matches_engine(window)
        assert not window.banner.isVisible()
    assert window.latest.status == "running" and window.latest.step > start
    assert window.controls.run_btn.text() == "Pause"


def test_engine_ready_hint_goes_once_training_runs(qtbot, window) -> None:
    assert window.statusBar().currentMessage() != "Starting the engine…"  # the engine is ready
    window.on_ready({"device": "CPU"})
    assert "press Space" in window.statusBar().currentMessage()
    window.toggle_run()
    qtbot.waitUntil(lambda: window.latest.status == "running", timeout=10_000)
    settle(qtbot)
    assert "press Space" not in window.statusBar().currentMessage()


# ------------------------------------------------------------------ 10–12. controls
def test_drop_rate_slider_snaps_and_sends_once_per_value(qtbot, window) -> None:
    sent = []
    window.controls.live_changed.connect(lambda c: sent.append(c))
    for v in (0.69, 0.71, 0.72, 0.73):  # one drag across 0.70–0.73
        window.controls.dropout.setValue(v)
    assert [c["dropout"] for c in sent if "dropout" in c] == [0.7, 0.75]
    assert abs(window.controls.dropout.value() - 0.75) < 1e-9
    qtbot.waitUntil(lambda: window.latest.hparams.dropout == 0.75, timeout=10_000)
    assert P_STEP == 0.05


def test_log_sliders_stop_on_round_numbers(qtbot, window) -> None:
    lr = window.controls.lr
    seen = set()
    for pos in range(lr.slider.minimum(), lr.slider.maximum() + 1):
        lr.slider.setValue(pos)
        seen.add(lr.value())
    assert 1e-3 in seen and 3e-3 in seen and 0.01 in seen and 1.0 in seen
    for v in seen:
        mantissa = float(f"{v:e}".split("e")[0])
        assert mantissa in NICE_MANTISSAS, v
    wd = window.controls.weight_decay
    wd.slider.setValue(wd.slider.minimum())
    assert wd.value() == 0.0


def test_rejected_hidden_text_is_replaced_by_the_networks(qtbot, window) -> None:
    field = window.controls.hidden
    for bad in ("abc", "0"):
        field.setFocus()
        field.selectAll()
        qtbot.keyClicks(field, bad)
        qtbot.keyClick(field, Qt.Key.Key_Return)
        assert "hidden" in window.statusBar().currentMessage()
        assert field.text() == "16,16", f"{bad!r} stayed in the field"
    assert window.latest.hparams.hidden == (16, 16)


def test_batch_size_is_sent_when_typing_ends_and_out_of_range_is_named(qtbot, window) -> None:
    box = window.controls.batch_size
    sent = []
    window.controls.live_changed.connect(lambda c: sent.append(c))
    box.setFocus()
    box.selectAll()
    qtbot.keyClicks(box, "999999")
    assert sent == [], f"sent while typing: {sent}"
    qtbot.keyClick(box, Qt.Key.Key_Return)
    window._flush_updates()
    message = window.statusBar().currentMessage()
    assert "batch_size = 999999" in message and "[1, 100]" in message, message
    assert box.value() == 32 and window.latest.hparams.batch_size == 32
    box.selectAll()
    qtbot.keyClicks(box, "64")
    qtbot.keyClick(box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.latest.hparams.batch_size == 64, timeout=10_000)


def test_space_runs_from_a_number_field_but_types_in_the_text_field(qtbot, window) -> None:
    window.activateWindow()
    box = window.controls.batch_size
    box.setFocus()
    qtbot.waitUntil(box.hasFocus, timeout=2_000)
    before = box.text()
    qtbot.keyClick(box, Qt.Key.Key_Space)
    assert window.running, "Space in a number field did not start training"
    assert box.text() == before
    qtbot.waitUntil(lambda: window.latest.status == "running", timeout=10_000)
    window.toggle_run()
    qtbot.waitUntil(lambda: window.latest.status == "paused", timeout=10_000)
    field = window.controls.hidden
    field.setFocus()
    field.setCursorPosition(len(field.text()))
    qtbot.keyClick(field, Qt.Key.Key_Space)
    assert field.text().endswith(" ") and not window.running


def test_run_controls_are_visible_in_a_short_window(qtbot, window) -> None:
    window.resize(1366, 600)
    settle(qtbot)
    btn = window.controls.run_btn
    top_left = btn.mapTo(window.dock_scroll.viewport(), btn.rect().topLeft())
    assert 0 <= top_left.y() and top_left.y() + btn.height() <= window.dock_scroll.viewport().height()


def test_preset_picker_names_the_preset_only_while_it_matches(qtbot, window) -> None:
    combo = window.controls.preset
    window.load_preset_by_name("adamw")
    qtbot.waitUntil(lambda: window.latest.hparams == load_preset("adamw"), timeout=10_000)
    assert combo.currentText() == "adamw"
    window.controls.weight_decay.valueChanged.emit(0.5)  # a live change: no longer the preset
    window._flush_updates()
    assert combo.currentText() == CUSTOM
    window.load_preset_by_name("adamw")
    assert combo.currentText() == "adamw"
    window.controls.dataset.setCurrentText("spiral")  # a rebuild: no longer the preset either
    qtbot.waitUntil(lambda: window.latest.hparams.dataset == "spiral", timeout=10_000)
    assert combo.currentText() == CUSTOM


def test_llama_preset_shows_every_setting_and_each_is_live(qtbot, window) -> None:
    h = load_preset("llama_recipe")
    window.load_preset_by_name("llama_recipe")
    qtbot.waitUntil(lambda: window.latest.hparams == h, timeout=20_000)
    c = window.controls
    shown = {"betas": (c.beta1.value(), c.beta2.value()), "grad_clip": c.grad_clip.value(),
             "warmup_steps": c.warmup_steps.value(), "total_steps": c.total_steps.value(),
             "min_lr_ratio": c.min_lr_ratio.value(), "label_smoothing": c.label_smoothing.value(),
             "momentum": c.momentum.value(), "schedule": c.schedule.currentData()}
    for name, value in shown.items():
        assert value == pytest.approx(getattr(h, name)) if not isinstance(value, str) \
            else value == getattr(h, name), name
    assert c.beta2.isEnabled() and not c.momentum.isEnabled()  # Adam: μ unused, greyed
    c.beta2.setValue(0.98)
    c.grad_clip.setValue(0.5)
    c.warmup_steps.setValue(50)
    c.label_smoothing.setValue(0.1)
    qtbot.waitUntil(lambda: window.latest.hparams.betas == (0.9, 0.98)
                    and window.latest.hparams.grad_clip == 0.5
                    and window.latest.hparams.warmup_steps == 50
                    and window.latest.hparams.label_smoothing == 0.1, timeout=10_000)
    assert window.latest.step == 0 or window.latest.hparams.dataset == "digits"  # no new run


def test_starting_message_goes_when_run_was_pressed_before_the_engine_was_ready(qtbot, settings) -> None:
    build_app()
    w = MainWindow(SMALL, engine_mode="thread", device="cpu", settings=settings, restore=False)
    qtbot.addWidget(w)
    w.show()
    w.start_engine()
    w.toggle_run()  # Space at once, as a lecturer does
    try:
        qtbot.waitUntil(lambda: w.latest is not None and w.latest.status == "running", timeout=60_000)
        settle(qtbot)
        assert w.statusBar().currentMessage() not in ("Starting the engine…",) \
            and "press Space" not in w.statusBar().currentMessage()
        assert w.controls.run_btn.text() == "Pause"
    finally:
        w.shutdown()


def test_history_keeps_the_curves_when_a_divergence_winds_the_run_back() -> None:
    """A restore sets the step back (to the checkpoint); the old History took that for a reset and
    wiped every curve off the Training panel while the banner explained the divergence."""
    from synthetic import make_snapshot

    from regsim.snapshot import History

    h = History()
    for step in range(0, 1000, 100):
        h.add(make_snapshot(step=step))
    h.add(dataclasses.replace(make_snapshot(step=650), status="diverged", message="restored"))
    steps = list(h.series("step"))
    assert steps == [0, 100, 200, 300, 400, 500, 600, 650]
    h.add(make_snapshot(step=0))  # a real reset still starts over
    assert list(h.series("step")) == [0]
