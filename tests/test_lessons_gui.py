"""Lessons in the window (ui/lessons.py): the menu starts a lesson's runs in the real engine, opens its
panel, and the strip's verdict on the live runs agrees with regsim.lessons judging them itself."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QSettings, Qt
from test_app import make_window

from regsim.lessons import list_lessons, load_lesson, run_lesson
from ui.panels.registry import PANELS

BUDGET = 60
# A claim that holds by a wide margin: Adam at lr 0.05 fits 50 moons in 60 steps, at lr 1e-6 it
# does not move (train loss stays ≈ ln 2 ≈ 0.69).
TINY = {"id": "tiny", "title": "Tiny: a working lr beats a frozen one", "explanation": "x " * 200,
        "panel": "weights",
        "base": {"dataset": "moons", "hidden": [8], "train_size": 50, "val_size": 50,
                 "optimizer": "adam", "batch_size": 25},
        "runs": {"A": {"lr": 0.05}, "B": {"lr": 1e-6}}, "steps": BUDGET,
        "claim": [{"metric": "train_loss", "compare": "A < B"}]}


@pytest.fixture
def window(qtbot, tmp_path):
    w = make_window(qtbot, QSettings(str(tmp_path / "regsim.ini"), QSettings.Format.IniFormat))
    yield w
    w.shutdown()


def tiny_lesson(tmp_path, compare: str):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({**TINY, "claim": [{"metric": "train_loss", "compare": compare}]}))
    return load_lesson(path)


def test_menu_lists_lessons_and_starts_one(qtbot, window) -> None:
    ctl = window.lessons
    qtbot.keyClick(window, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)  # Ctrl+L: the menu
    qtbot.waitUntil(ctl.menu.isVisible, timeout=5_000)
    ctl.menu.hide()
    titles = [a.text() for a in ctl.menu.actions() if a.data()]
    assert titles == list(list_lessons().values())
    lesson = load_lesson("sgd_l2_is_sgdw")
    act = next(a for a in ctl.menu.actions() if a.data() == "sgd_l2_is_sgdw")
    act.trigger()
    names = list(lesson.runs)
    qtbot.waitUntil(lambda: window.runs.latest is not None
                    and list(window.runs.latest.runs) == names, timeout=60_000)
    snaps = window.runs.latest.runs
    assert all(snaps[n].hparams == lesson.runs[n] for n in names)  # base + each run's changes
    assert all(s.step == 0 for s in snaps.values())
    assert PANELS[window.tabs.currentIndex()].key == lesson.panel == "weights"
    assert ctl.strip.isVisible() and lesson.title in ctl.strip.title.text()
    # weight_diff cannot be judged from snapshots: named, sent to the CLI, not given a verdict.
    assert "python main.py lesson sgd_l2_is_sgdw" in ctl.strip.status.text()
    assert "|sgd_l2 - sgd_decoupled| < 1e-4" in ctl.strip.status.text()
    ctl.strip.close_btn.click()
    assert not ctl.strip.isVisible() and ctl.lesson is None
    assert list(window.client.run_names) == names  # the runs stay


@pytest.mark.parametrize("compare, holds", [("A < B", True), ("B < A", False)])
def test_verdict_at_the_budget(qtbot, window, tmp_path, compare, holds) -> None:
    lesson = tiny_lesson(tmp_path, compare)
    ctl = window.lessons
    ctl.start(lesson)
    qtbot.waitUntil(lambda: ctl._armed, timeout=30_000)
    assert ctl.strip.explanation.text().endswith("…")  # long text cut; whole in the tooltip
    assert len(ctl.strip.explanation.toolTip()) > len(ctl.strip.explanation.text())
    # Short of the claim's step: "so far", no verdict yet.
    window.client.step(20)
    qtbot.waitUntil(lambda: ctl.result is not None and "train_loss@20" in ctl.result.values,
                    timeout=60_000)
    assert not ctl.result.due and ctl.strip.kind == "pending"
    assert ctl.strip.status.text().startswith("✓ so far at step 20" if holds else "… not yet at step 20")
    assert f"(judged at step {BUDGET})" in ctl.strip.status.text()
    window.toggle_run()
    qtbot.waitUntil(lambda: ctl.result is not None and ctl.result.due, timeout=60_000)
    # The engine stopped exactly at the budget, every run, and says so.
    qtbot.waitUntil(lambda: all(s.status == "paused" for s in window.runs.latest.runs.values()),
                    timeout=30_000)
    assert {s.step for s in window.runs.latest.runs.values()} == {BUDGET}
    assert ctl.result.holds is holds
    text = ctl.strip.status.text()
    assert text.startswith(f"✓ holds at step {BUDGET}" if holds else f"✗ fails at step {BUDGET}")
    assert ctl.strip.kind == ("holds" if holds else "fails")
    # Independently: regsim.lessons trains the same runs itself and judges them the same way,
    # with the same values (same seeds, same data, same minibatches: deterministic on CPU).
    ref = run_lesson(lesson)
    assert ref.holds is holds
    live = ctl.result.values[f"train_loss@{BUDGET}"]
    for name, value in ref.values[f"train_loss@{BUDGET}"].items():
        assert live[name] == pytest.approx(value, rel=1e-4)
    # Pressing Run at the budget pauses again at once: the runs stay where the claim was judged.
    window.toggle_run()
    qtbot.wait(300)
    qtbot.waitUntil(lambda: not window.engine_running, timeout=30_000)
    assert {s.step for s in window.runs.latest.runs.values()} == {BUDGET}
    # Unticking "stop at" lets them train on; the verdict stays the one at the budget.
    ctl.strip.stop_box.setChecked(False)
    window.toggle_run()
    qtbot.waitUntil(lambda: window.runs.latest.current.step > BUDGET + 20, timeout=60_000)
    window.toggle_run()
    qtbot.waitUntil(lambda: not window.engine_running, timeout=30_000)
    assert ctl.judge().holds is holds


def test_engine_restart_ends_the_lesson(qtbot, window, tmp_path) -> None:
    """A restarted engine holds one fresh run, not the lesson's: the strip goes instead of judging
    a run set that is no longer there."""
    ctl = window.lessons
    ctl.start(tiny_lesson(tmp_path, "A < B"))
    qtbot.waitUntil(lambda: ctl._armed, timeout=30_000)
    assert ctl.strip.isVisible()
    window.client.close()
    window._restart_engine()
    qtbot.waitUntil(lambda: ctl.lesson is None, timeout=60_000)
    assert not ctl.strip.isVisible()
    qtbot.waitUntil(lambda: window.client.run_names == ["A"], timeout=30_000)


def test_verdict_is_read_at_the_claims_step_when_the_runs_train_past_it(qtbot, window, tmp_path) -> None:
    """"Stop at step N" off: the runs train on past the budget, yet the verdict is read on values
    measured AT step N (the engine lands on it and measures there), equal to regsim.lessons'
    own run, not on the last point the History happened to keep before N."""
    lesson = tiny_lesson(tmp_path, "A < B")
    ctl = window.lessons
    ctl.strip.stop_box.setChecked(False)
    ctl.start(lesson)
    qtbot.waitUntil(lambda: ctl._armed, timeout=30_000)
    window.toggle_run()
    qtbot.waitUntil(lambda: window.runs.latest.current.step > 3 * BUDGET, timeout=60_000)
    window.toggle_run()
    qtbot.waitUntil(lambda: not window.engine_running, timeout=30_000)
    result = ctl.judge()
    assert result.due and result.measured and result.holds
    assert ctl.strip.status.text().startswith(f"✓ holds at step {BUDGET}")
    ref = run_lesson(lesson)
    live = result.values[f"train_loss@{BUDGET}"]
    for name, value in ref.values[f"train_loss@{BUDGET}"].items():
        assert live[name] == pytest.approx(value, rel=1e-4)
