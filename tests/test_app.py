"""The live app, driven as a user would: qtbot presses, drags, switches tabs and closes it."""

from __future__ import annotations

import math
import os
import threading

import numpy as np
import psutil
import pytest
from conftest import SMALL, make_window
from PySide6.QtCore import Qt
from qtimage import image_std

from regsim import HParams
from ui.main_window import MainWindow

# The window fixtures (settings, window) and make_window live in conftest.py, shared with
# test_compare_window.py; SMALL and make_window stay importable from here for the other window tests.


def wait_step_beyond(qtbot, w, step, timeout=30_000):
    qtbot.waitUntil(lambda: w.latest is not None and w.latest.step > step, timeout=timeout)


def test_slider_change_reaches_engine_next_snapshot(qtbot, window) -> None:
    window.toggle_run()
    wait_step_beyond(qtbot, window, 5)
    before = window.latest.step
    slider = window.controls.weight_decay
    slider.slider.setValue(slider.values.index(1.0))  # λ = 1
    qtbot.waitUntil(lambda: window.latest.hparams.weight_decay == 1.0, timeout=10_000)
    assert window.latest.step > before
    events = [t for _, t in window.history.events]
    assert any(t.startswith("λ 0.001 → 1") for t in events)
    assert "λ 0.001 → 1" in window.statusBar().currentMessage() or window.history.events
    # p from its labelled slider; masks are measured while the dropout panel shows
    window.tabs.setCurrentIndex([s.key for s in window.nav.specs].index("dropout"))
    qtbot.waitUntil(lambda: "masks" in window.latest.measured, timeout=10_000)
    window.controls.dropout.setValue(0.7)
    qtbot.waitUntil(lambda: window.latest.hparams.dropout == 0.7, timeout=10_000)
    kept = window.latest.dropout_masks[1].mean()
    qtbot.waitUntil(lambda: abs(window.latest.dropout_masks[1].mean() - 0.3) < 0.12, timeout=10_000)
    assert kept >= 0


def test_optimizer_switch_mid_run(qtbot, window) -> None:
    window.toggle_run()
    wait_step_beyond(qtbot, window, 10)
    combo = window.controls.optimizer
    combo.setCurrentIndex(combo.findData("momentum"))
    qtbot.waitUntil(lambda: window.latest.hparams.optimizer == "momentum", timeout=10_000)
    s = window.latest.step
    wait_step_beyond(qtbot, window, s + 20)
    assert math.isfinite(window.latest.train_loss)
    mode = window.controls.decay_mode
    mode.setCurrentIndex(mode.findData("l2"))
    qtbot.waitUntil(lambda: window.latest.hparams.decay_mode == "l2", timeout=10_000)


def test_pause_resume_step_reset(qtbot, window) -> None:
    qtbot.keyClick(window, Qt.Key.Key_Space)  # run
    assert window.running
    wait_step_beyond(qtbot, window, 10)
    qtbot.keyClick(window, Qt.Key.Key_Space)  # pause
    qtbot.waitUntil(lambda: window.latest.status == "paused", timeout=10_000)
    paused_at = window.latest.step
    qtbot.wait(300)
    assert window.latest.step == paused_at
    qtbot.keyClick(window, Qt.Key.Key_N)  # one step
    qtbot.waitUntil(lambda: window.latest.step == paused_at + 1, timeout=10_000)
    qtbot.keyClick(window, Qt.Key.Key_R)  # reset
    qtbot.waitUntil(lambda: window.latest.step == 0, timeout=10_000)
    assert len(window.history) <= 1
    window.controls.run_btn.click()  # the button works too
    wait_step_beyond(qtbot, window, 3)
    assert window.controls.run_btn.text() == "Pause"


def test_tab_shortcuts(qtbot, window) -> None:
    """Alt+n opens the n-th chapter, Ctrl+k its k-th panel (tests/test_navigation.py has the rest)."""
    for i in range(window.tabs.count()):
        chapter = window.nav.chapters.index(window.nav.specs[i].chapter)
        qtbot.keyClick(window, Qt.Key(Qt.Key.Key_1 + chapter), Qt.KeyboardModifier.AltModifier)
        k = window.nav.in_chapter(window.nav.chapter).index(i)
        qtbot.keyClick(window, Qt.Key(Qt.Key.Key_1 + k), Qt.KeyboardModifier.ControlModifier)
        assert window.tabs.currentIndex() == i


def test_each_panel_renders_content(qtbot, window) -> None:
    window.toggle_run()
    wait_step_beyond(qtbot, window, 60)
    window.toggle_run()
    qtbot.waitUntil(lambda: window.latest.status == "paused", timeout=10_000)
    for i, panel in enumerate(window.panels):
        window.tabs.setCurrentIndex(i)
        if panel.key == "landscape":
            window.client.analyze("landscape", {"resolution": 15, "preview": 5})
            qtbot.waitUntil(lambda p=panel: getattr(p, "result", None) is not None
                            and not p.result.coarse, timeout=30_000)
        window._mark_dirty()
        with qtbot.waitSignal(window.panels_redrawn, timeout=5_000):
            pass
        std = image_std(panel.grab().toImage())
        assert std > 20, f"{panel.key} looks blank (pixel std {std:.1f})"


def test_one_frame_per_snapshot_and_bursts_merge(qtbot, window) -> None:
    """Snapshots arriving a frame apart are each drawn (30 Hz in, 30 fps out); a burst that
    arrives within one turn of the event loop is drawn once, with the newest data."""
    from synthetic import make_snapshot

    from ui.main_window import MIN_FRAME_MS

    frames: list[int] = []
    window.panels_redrawn.connect(lambda: frames.append(window.latest.step))
    qtbot.wait(100)  # let the frame the engine's first snapshot asked for go by
    frames.clear()
    spaced = list(range(1000, 1010))
    for step in spaced:
        window.on_snapshot(make_snapshot(step=step, status="paused"))
        qtbot.waitUntil(lambda s=step: bool(frames) and frames[-1] == s, timeout=5_000)
    assert frames == spaced  # each drawn once, none skipped
    frames.clear()
    for step in range(2000, 2006):  # six at once, as after a stall
        window.on_snapshot(make_snapshot(step=step, status="paused"))
    qtbot.waitUntil(lambda: bool(frames), timeout=5_000)
    qtbot.wait(MIN_FRAME_MS * 5)  # room for any (wrong) extra frame
    assert frames == [2005]


def test_process_engine_is_watched_not_polled(qtbot, settings) -> None:
    """A child engine's pipe wakes the GUI (QSocketNotifier); only a thread's queue is polled."""
    w = make_window(qtbot, settings, mode="process")
    try:
        assert len(w.client._notifiers) == 2 and not w.client._timer.isActive()
        step = w.latest.step
        w.step_once()
        wait_step_beyond(qtbot, w, step, timeout=10_000)
    finally:
        w.close()
    assert not w.client._notifiers


def test_process_engine_is_polled_where_pipes_cannot_be_watched(qtbot, settings,
                                                                monkeypatch) -> None:
    """On Windows the queue's pipe and the sentinel are handles, not sockets: poll instead."""
    import ui.engine_client

    monkeypatch.setattr(ui.engine_client, "WATCH_PIPES", False)
    w = make_window(qtbot, settings, mode="process")
    try:
        assert not w.client._notifiers and w.client._timer.isActive()
        step = w.latest.step
        w.step_once()
        wait_step_beyond(qtbot, w, step, timeout=10_000)
    finally:
        w.close()


def test_slider_storm_ends_with_last_value(qtbot, window) -> None:
    window.toggle_run()
    wait_step_beyond(qtbot, window, 5)
    slider = window.controls.dropout
    rng = np.random.default_rng(0)
    values = np.round(rng.uniform(0, 0.9, 10_000), 2)
    for i, v in enumerate(values):
        slider.setValue(float(v))
        if i % 500 == 0:
            qtbot.wait(1)  # let the event loop breathe as a real drag would
    last = float(slider.value())
    qtbot.waitUntil(lambda: window.latest.hparams.dropout == pytest.approx(last), timeout=15_000)
    s = window.latest.step
    wait_step_beyond(qtbot, window, s + 5)
    assert window.client.alive


def test_invalid_input_is_rejected_with_message(qtbot, window) -> None:
    good = window.last_good
    window.controls.hidden.setText("abc")
    window.controls.hidden.editingFinished.emit()
    assert "hidden" in window.statusBar().currentMessage()
    assert window.controls.hidden.text() == ",".join(map(str, good.hidden))
    window._live_changed({"lr": -1.0})
    window._flush_updates()
    assert "lr = -1.0 is out of range" in window.statusBar().currentMessage()
    window.client.update(dropout=1.0)  # bypassing the GUI check: the engine says no too
    qtbot.waitUntil(lambda: "dropout = 1.0" in window.statusBar().currentMessage(), timeout=10_000)
    assert window.client.alive and window.latest.hparams.dropout == good.dropout


def test_rebuild_field_starts_new_run(qtbot, window) -> None:
    window.toggle_run()
    wait_step_beyond(qtbot, window, 20)
    window.controls.dataset.setCurrentText("digits")
    qtbot.waitUntil(lambda: window.latest.hparams.dataset == "digits", timeout=20_000)
    assert window.latest.step == 0 and window.latest.data.kind == "images"


def test_divergence_banner(qtbot, window) -> None:
    window.reset_run(HParams(dataset="digits", train_size=200, hidden=(32, 32),
                             optimizer="momentum", lr=1000.0))
    qtbot.waitUntil(lambda: window.latest.hparams.lr == 1000.0, timeout=10_000)
    window.toggle_run()
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=20_000)
    assert "diverged" in window.banner.label.text() and "Lower lr" in window.banner.label.text()
    assert not window.running
    window.banner.action.click()  # lower lr ×10 and resume
    qtbot.waitUntil(lambda: window.latest.hparams.lr == 100.0, timeout=10_000)


def test_settings_persist(qtbot, settings) -> None:
    w = make_window(qtbot, settings)
    w.controls.weight_decay.setValue(0.01)
    w.controls.weight_decay.valueChanged.emit(0.01)
    qtbot.waitUntil(lambda: w.latest.hparams.weight_decay == 0.01, timeout=10_000)
    w.tabs.setCurrentIndex(2)
    w.close()
    w2 = MainWindow(None, engine_mode="thread", device="cpu", settings=settings, restore=True)
    qtbot.addWidget(w2)
    assert w2.last_good.weight_decay == 0.01 and w2.tabs.currentIndex() == 2
    assert w2.controls.weight_decay.value() == 0.01
    w2.shutdown()


def _engine_children() -> list[psutil.Process]:
    """Live child processes, except multiprocessing's resource tracker (it belongs to this test
    process, lives as long as it does and exits with it)."""
    out = []
    for c in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if c.status() == psutil.STATUS_ZOMBIE or "resource_tracker" in " ".join(c.cmdline()):
                continue
        except psutil.NoSuchProcess:
            continue
        out.append(c)
    return out


@pytest.mark.slow
def test_process_engine_close_while_running_leaves_nothing(qtbot, settings) -> None:
    w = make_window(qtbot, settings, mode="process")
    assert len(_engine_children()) >= 1
    w.toggle_run()
    wait_step_beyond(qtbot, w, 20, timeout=60_000)
    import time

    t0 = time.monotonic()
    w.close()
    assert time.monotonic() - t0 <= 2.5
    qtbot.waitUntil(lambda: not _engine_children(), timeout=3_000)


@pytest.mark.slow
def test_process_engine_death_is_reported_and_restartable(qtbot, settings) -> None:
    w = make_window(qtbot, settings, mode="process")
    w.client._worker.kill()
    qtbot.waitUntil(lambda: w.banner.isVisible(), timeout=10_000)
    assert "engine" in w.banner.label.text()
    w.latest = None
    w.banner.action.click()  # restart
    qtbot.waitUntil(lambda: w.latest is not None, timeout=60_000)
    w.close()
    qtbot.waitUntil(lambda: not _engine_children(), timeout=3_000)


def test_thread_engine_close_leaves_no_thread(qtbot, settings) -> None:
    w = make_window(qtbot, settings, mode="thread")
    w.toggle_run()
    wait_step_beyond(qtbot, w, 5)
    w.close()
    assert not any(t.name == "regsim-engine" and t.is_alive() for t in threading.enumerate())


@pytest.mark.slow
def test_engine_exits_when_the_app_is_killed(tmp_path) -> None:
    """Even a SIGKILLed window (no chance to clean up) leaves no orphan engine behind."""
    import subprocess
    import sys
    import time

    code = (
        "import os, sys, time\n"
        "os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        "from PySide6.QtCore import QCoreApplication\n"
        "from regsim import HParams\n"
        "from ui.engine_client import EngineClient\n"
        "app = QCoreApplication([])\n"
        "c = EngineClient(mode='process', device='cpu')\n"
        "c.start(HParams(dataset='moons', hidden=(8,)))\n"
        "c.run()\n"
        "while c._out.get(timeout=120)[0] != 'snapshot':\n"
        "    pass\n"
        "print(c._worker.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        child = psutil.Process(int(proc.stdout.readline()))
        time.sleep(1)  # it is training now: its first snapshot has arrived
        assert child.is_running()
        proc.kill()
        proc.wait(5)
        gone, alive = psutil.wait_procs([child], timeout=10)
        assert not alive, "the engine outlived its parent"
    finally:
        if proc.poll() is None:
            proc.kill()


# ----------------------------------------------------------------------------- lifecycle (issue 8)


@pytest.mark.slow
def test_close_kills_an_engine_that_does_not_answer(qtbot, settings) -> None:
    """A hung engine (here: stopped with SIGSTOP, so it can neither read "stop" nor die of SIGTERM)
    must not hold the window's close: close() gives up waiting and kills it."""
    import signal

    w = make_window(qtbot, settings, mode="process")
    child = psutil.Process(w.client._worker.pid)
    os.kill(child.pid, signal.SIGSTOP)
    try:
        w.close()
        gone, alive = psutil.wait_procs([child], timeout=5)
        assert not alive, "close() left a hung engine running"
        assert not _engine_children()
    finally:
        if child.is_running():
            child.kill()


@pytest.mark.slow
def test_engine_process_exits_by_itself_on_stop(qtbot, settings) -> None:
    """A healthy engine ends on "stop" with exit code 0 (it exits without the interpreter's
    teardown, but after flushing "stopped"), so close() never needs to terminate it."""
    w = make_window(qtbot, settings, mode="process")
    w.toggle_run()
    wait_step_beyond(qtbot, w, 5, timeout=60_000)
    worker = w.client._worker
    stopped = []
    w.client.stopped.connect(lambda: stopped.append(True))
    w.client.send("stop")
    qtbot.waitUntil(lambda: not worker.is_alive(), timeout=10_000)
    assert worker.exitcode == 0  # not -15 / -9: it was not terminated
    qtbot.waitUntil(lambda: bool(stopped), timeout=5_000)
    w.close()


def test_close_hides_first_and_saves_settings_once(qtbot, settings) -> None:
    """The window is off screen before the engine is stopped, and the settings written on close
    are the shown window's (a hidden window's geometry is not saved over them)."""
    w = make_window(qtbot, settings)
    seen = []
    original = w.client.close

    def close_spy(*a, **k):
        seen.append(w.isVisible())
        return original(*a, **k)

    w.client.close = close_spy
    w.resize(1234, 800)
    qtbot.wait(50)
    w.close()
    assert seen and seen[0] is False, "the engine was stopped while the window was still shown"
    assert settings.value("geometry") is not None
    w.shutdown()  # a second call changes nothing and does not fail


def _engine_with_exit_marker(commands, out, hparams, marker) -> None:  # runs in a child process
    import atexit
    from pathlib import Path

    from regsim.engine import engine_main

    atexit.register(lambda: Path(marker).write_text("interpreter teardown ran"))
    engine_main(commands, out, hparams, "cpu", 30.0, 1, os.getppid())


@pytest.mark.slow
def test_engine_process_skips_interpreter_teardown(tmp_path) -> None:
    """After "stop" the engine's process ends at once (os._exit after flushing its queue): the
    interpreter's teardown (torch's and every module's finalizers) took most of the close time.
    An atexit hook in the child shows whether teardown ran; "stopped" must still arrive."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    commands, out = ctx.Queue(), ctx.Queue()
    marker = tmp_path / "teardown.txt"
    proc = ctx.Process(target=_engine_with_exit_marker,
                       args=(commands, out, SMALL.to_dict(), str(marker)), daemon=True)
    proc.start()
    try:
        kinds = [out.get(timeout=120)[0]]
        commands.put(("stop", None))
        while kinds[-1] != "stopped":
            kinds.append(out.get(timeout=30)[0])
        proc.join(30)
        assert proc.exitcode == 0
        assert "ready" in kinds and kinds[-1] == "stopped"
        assert not marker.exists(), "the engine ran the interpreter's teardown on stop"
    finally:
        if proc.is_alive():
            proc.kill()


def test_weight_bands_cover_training_done_on_another_tab(qtbot, window) -> None:
    """The Weights panel's percentile bands over time are the History's: trained while the
    Training tab is open, then switched to Weights, the bands start at the run's start, not at the
    switch (the window measures histograms for every panel)."""
    assert window.tabs.currentIndex() == 0  # Training
    window.toggle_run()
    wait_step_beyond(qtbot, window, 200)
    window.toggle_run()
    qtbot.waitUntil(lambda: window.latest.status == "paused", timeout=30_000)
    steps, bands = window.history.percentiles()
    assert len(steps) >= 3 and steps[0] <= 50 and bands.shape[1] == len(window.latest.layer_names)
    assert "histograms" in window.latest.measured
