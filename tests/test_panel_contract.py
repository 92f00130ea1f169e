"""The contract every registered panel keeps (ui/panels/base.py), one test per clause over the
registry (ui/panels/registry.py), so a new panel is held to it by adding its line there.

A panel is fed real snapshots of a real (small) run, not synthetic ones: it draws what the
engine sends. Panel-specific behaviour stays in tests/test_panel_<key>.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QCheckBox, QComboBox
from qtimage import show_on_screen, to_rgb
from synthetic import make_snapshot

from regsim import HParams
from regsim.snapshot import PARTS, History
from ui.panels.base import Panel
from ui.panels.registry import CHAPTERS, PANELS, panel_keys, panel_spec
from ui.theme import SCREEN, SLIDE

SPECS = [pytest.param(spec, id=spec.key) for spec in PANELS]
RUN = HParams(dataset="moons", hidden=(16, 16), dropout=0.3, weight_decay=1e-3, lr=0.01,
              optimizer="adam", train_size=100, val_size=100)


@pytest.fixture(scope="module")
def run():
    """(snapshots, landscapes, bare) of 80 real training steps: a snapshot every 10 steps, the
    loss surface around the last weights (coarse preview, then the grid), and a last snapshot
    measuring only "eval" (what the window asks for while another panel shows)."""
    from regsim.trainer import Trainer

    t = Trainer(RUN, device="cpu")
    snaps = [t.snapshot()]
    for _ in range(8):
        t.step(10)
        snaps.append(t.snapshot())
    landscapes = landscape_of(t)
    t.step(10)
    return snaps, landscapes, t.snapshot(parts={"eval"})


def landscape_of(trainer) -> list:
    """The loss surface of the trainer's current weights, through whichever API this tree has
    (the loss surface is moving onto regsim.analyses)."""
    import regsim

    if hasattr(regsim, "analyze"):
        return [regsim.analyze(trainer, "landscape", resolution=9, preview=3)]
    from regsim.landscape import LandscapeRequest

    return trainer.landscape(LandscapeRequest(resolution=9, preview=3))


def make_panel(spec, qtbot) -> tuple[Panel, History]:
    history = History()
    panel = spec.load()(history)
    qtbot.addWidget(panel)
    show_on_screen(panel, qtbot)
    return panel, history


def feed(panel: Panel, history: History, run) -> None:
    snaps, landscapes, _ = run
    for snap in snaps:
        history.add(snap)
        panel.ingest(snap)
    for result in landscapes:
        panel.on_landscape(result)
    panel.redraw()


def grab(panel: Panel) -> np.ndarray:
    return to_rgb(panel.grab().toImage())


def settled_grab(panel: Panel, qtbot, rounds: int = 6) -> np.ndarray:
    """The panel's pixels once a redraw with no new data changes none (a panel may take a frame
    or two to size its axes to its first data: the Weights panel moves ~74 000 pixels on its
    second frame). A panel still moving after `rounds` redraws jitters on screen: a failure."""
    before = grab(panel)
    for _ in range(rounds):
        qtbot.wait(30)
        panel.redraw()
        now = grab(panel)
        if np.array_equal(now, before):
            return now
        before = now
    moved = np.any(now != before, axis=2).sum()
    raise AssertionError(f"{moved} pixels still change from redraw to redraw with no new data")


def colour_counts(pixels: np.ndarray) -> dict[tuple, int]:
    colours, counts = np.unique(pixels.reshape(-1, 3), axis=0, return_counts=True)
    return {tuple(int(v) for v in c): int(n) for c, n in zip(colours, counts)}


def running_timers(panel: Panel) -> list[QTimer]:
    """Active timers the panel owns: Qt children, and ones it only holds in an attribute."""
    timers = set(panel.findChildren(QTimer))
    timers |= {v for v in vars(panel).values() if isinstance(v, QTimer)}
    return [t for t in timers if t.isActive()]


# ------------------------------------------------------------------------------- the registry
def test_registry_specs_load_and_match_their_classes() -> None:
    keys = panel_keys()
    assert len(set(keys)) == len(keys) == len(PANELS) > 0
    assert len({s.title for s in PANELS}) == len(PANELS)  # two tabs never read the same
    for spec in PANELS:
        assert spec.needs <= PARTS, spec  # the engine rejects any other part
        cls = spec.load()
        assert issubclass(cls, Panel), spec
        assert (cls.key, cls.title) == (spec.key, spec.title), spec
        assert spec.chapter in CHAPTERS, spec
        assert spec.tooltip and "\n" not in spec.tooltip, spec
        assert panel_spec(spec.key) is spec
    with pytest.raises(ValueError, match="unknown panel 'nope'; allowed: " + ", ".join(keys)):
        panel_spec("nope")


# ------------------------------------------------------------------------------- the contract
@pytest.mark.parametrize("spec", SPECS)
def test_renders_non_blank_after_a_real_snapshot(spec, qtbot, run) -> None:
    panel, history = make_panel(spec, qtbot)
    panel.redraw()
    empty = grab(panel)
    feed(panel, history, run)
    full = grab(panel)
    assert full.shape[:2] == (800, 1200)
    assert full.astype(float).std() > 15, "blank"
    # Measured: the fed panels change 8–40 % of their pixels from their empty state.
    changed = np.any(full != empty, axis=2).mean()
    assert changed > 0.03, f"only {changed:.1%} of the pixels changed: the data is not drawn"
    panel.cleanup()


ROUND_TRIP = [pytest.param(spec, id=spec.key) for spec in PANELS]


@pytest.mark.parametrize("spec", ROUND_TRIP)
def test_theme_round_trip_restores_the_pixels(spec, qtbot, run) -> None:
    """Screen → slide → screen, the way the app does it (a slide figure rendered from the live
    panel), leaves the live panel pixel-identical. A bare apply_theme round trip does not: an
    axis keeps the tick-label room the slide fonts needed (pyqtgraph's hysteresis; measured:
    50 000–220 000 pixels moved on the first round trip, none on later ones), which the exporter
    saves and puts back (ui.export.stage._restore_axis_text_space)."""
    from ui.export.render import render_widget

    panel, history = make_panel(spec, qtbot)
    feed(panel, history, run)
    screen = settled_grab(panel, qtbot)
    slide = to_rgb(render_widget(panel, (1200, 800), theme="slide"))
    assert np.any(slide != screen, axis=2).mean() > 0.2
    qtbot.wait(30)
    panel.redraw()
    back = grab(panel)
    assert panel.theme is SCREEN
    diff = np.any(back != screen, axis=2)
    assert not diff.any(), (f"{diff.sum()} pixels differ after screen → slide → screen, in rows "
                            f"{np.flatnonzero(diff.any(axis=1))[[0, -1]]}")
    panel.cleanup()


@pytest.mark.slow
@pytest.mark.parametrize("spec", SPECS)
def test_3000_redraws(spec, qtbot, run) -> None:
    """PySide6 once crashed after some thousands of calls that return None (none_dealloc: each
    dropped a reference to None). 3000 redraws of real and synthetic snapshots of every dataset,
    with each of the panel's check boxes and combo boxes flipped now and then, and a theme switch."""
    panel, history = make_panel(spec, qtbot)
    snaps, landscapes, _ = run
    rng = np.random.default_rng(1)
    datasets = ("moons", "digits", "regression", "xor")
    boxes = panel.findChildren(QCheckBox)
    combos = panel.findChildren(QComboBox)
    for i in range(3000):
        if (i // 500) % 2:
            events = [(i * 10, f"change {i}")] if rng.random() < 0.05 else []
            snap = make_snapshot(step=i * 10, dataset=datasets[(i // 1000) % len(datasets)],
                                 seed=i % 7, events=events)
        else:
            snap = snaps[i % len(snaps)]
        history.add(snap)
        panel.ingest(snap)
        if i % 100 == 0:
            panel.on_landscape(landscapes[-1])
        panel.redraw()
        if i % 250 == 0:
            for box in boxes:
                box.setChecked(not box.isChecked())
            for combo in combos:
                if combo.count():
                    combo.setCurrentIndex((combo.currentIndex() + 1) % combo.count())
            qtbot.wait(1)  # let Qt paint now and then
        if i == 1500:
            panel.apply_theme(SLIDE)
    panel.apply_theme(SCREEN)
    assert grab(panel).astype(float).std() > 15
    panel.cleanup()


@pytest.mark.parametrize("spec", SPECS)
def test_unmeasured_parts_show_the_empty_state_not_old_data(spec, qtbot, run) -> None:
    """A snapshot without the panel's parts (Snapshot.measured) after ones with them: the panel
    looks exactly like one that never saw those parts (same history, same snapshot), so nothing
    stale from the earlier measurements stays on screen."""
    snaps, landscapes, bare = run
    assert bare.measured == {"eval"}
    seen, history = make_panel(spec, qtbot)
    feed(seen, history, run)
    history.add(bare)
    seen.ingest(bare)
    seen.redraw()
    fresh = spec.load()(history)  # the same history: only the snapshots differ
    qtbot.addWidget(fresh)
    show_on_screen(fresh, qtbot)
    fresh.ingest(bare)
    for result in landscapes:
        fresh.on_landscape(result)
    fresh.redraw()
    a, b = settled_grab(seen, qtbot), settled_grab(fresh, qtbot)
    # The same colours, pixel for pixel counted: anything stale (a curve, a mask, a caption) adds
    # pixels of its own. Positions may differ by a few pixels: a plot whose title was removed
    # does not lay out exactly like one never titled (measured on the dropout bars: 8 300 pixels
    # moved, the colour counts identical).
    ca, cb = colour_counts(a), colour_counts(b)
    extra = sum(abs(ca.get(k, 0) - cb.get(k, 0)) for k in set(ca) | set(cb)) // 2
    assert extra == 0, f"{extra} pixels differ from a panel that never saw the parts"
    seen.cleanup()
    fresh.cleanup()


@pytest.mark.parametrize("spec", SPECS)
def test_cleanup_leaves_no_running_timer(spec, qtbot, run) -> None:
    panel, history = make_panel(spec, qtbot)
    feed(panel, history, run)
    for box in panel.findChildren(QCheckBox):  # the auto modes, on: they may start timers
        box.setChecked(True)
    for snap in run[0]:
        panel.ingest(snap)
        panel.redraw()
    qtbot.wait(50)
    panel.cleanup()
    assert running_timers(panel) == []
    qtbot.wait(50)
    assert running_timers(panel) == []  # and nothing starts one again


@pytest.mark.parametrize("spec", SPECS)
def test_export_png_is_the_asked_size_and_not_blank(spec, qtbot, run, tmp_path) -> None:
    from ui.export.render import export_figure

    panel, history = make_panel(spec, qtbot)
    feed(panel, history, run)
    before = grab(panel)
    path = export_figure(panel, tmp_path / f"{spec.key}.png", size=(960, 600), theme="slide")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (960, 600)
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.astype(float).std() > 15
    # The slide theme has white plot backgrounds: the most common colour is white.
    colours, counts = np.unique(pixels.reshape(-1, 3), axis=0, return_counts=True)
    assert tuple(colours[np.argmax(counts)]) == (255, 255, 255)
    assert panel.theme is SCREEN and panel.size().width() == 1200
    assert before.shape == grab(panel).shape
    panel.cleanup()


def test_running_timers_sees_child_and_attribute_timers(qtbot) -> None:
    """The cleanup clause can fail: a timer left running, as a child or only in an attribute."""
    panel, _ = make_panel(PANELS[0], qtbot)
    child = QTimer(panel)
    child.start(1000)
    panel.loose_timer = QTimer()
    panel.loose_timer.start(1000)
    assert set(running_timers(panel)) == {child, panel.loose_timer}
    child.stop()
    panel.loose_timer.stop()
    assert running_timers(panel) == []
    panel.cleanup()
