"""The "grokked at step N" label on the accuracy plot is drawn from the first redraw that places
the marker (a slide export redraws once): pyqtgraph's InfLineLabel.setFormat only re-texts a label
that is visible, and the marker used to be shown after its label was set — the slide drew the dotted
line with no text."""

from __future__ import annotations

import dataclasses

import numpy as np
from synthetic import make_snapshot

from regsim.snapshot import History
from ui.panels.grokking import GROK_THRESHOLD, GrokkingPanel

STEPS = (10, 50, 100, 200, 300, 400, 500, 600, 700)
VAL = (0.01, 0.01, 0.02, 0.1, 0.5, 0.9, 0.96, 0.98, 0.99)  # first ≥ 0.95 at step 500


def test_the_marker_label_says_the_step_on_the_first_redraw(qtbot) -> None:
    history = History()
    panel = GrokkingPanel(history)
    qtbot.addWidget(panel)
    for step, va in zip(STEPS, VAL):
        snap = dataclasses.replace(make_snapshot(step, dataset="modular"), eval_step=step,
                                   train_acc=1.0, val_acc=va)
        history.add(snap)
        panel.ingest(snap)
    panel.redraw()  # once, as ui/export does before it renders
    expected = next(s for s, v in zip(STEPS, VAL) if v >= GROK_THRESHOLD)
    marker = panel.items[0].marker
    assert marker.isVisible() and np.isclose(marker.value(), np.log10(expected))
    assert marker.label.isVisible()
    assert marker.label.toPlainText() == f"grokked at step {expected}"
    panel.cleanup()


def test_the_marker_label_takes_the_themes_font(qtbot) -> None:
    from ui.theme import SCREEN, SLIDE

    panel = GrokkingPanel(History())
    qtbot.addWidget(panel)
    for theme in (SLIDE, SCREEN):
        panel.apply_theme(theme)
        assert all(it.marker.label.textItem.font().pointSize() == theme.font_pt for it in panel.items)
    panel.cleanup()


def test_log_step_axis_labels_only_1_2_5(qtbot) -> None:
    """The minor ticks 3, 4, 6, 7, 8, 9 of each decade stay unlabelled: pyqtgraph labelled them all
    and "5·10¹ 6·10¹ 7·10¹ …" ran into each other on screen."""
    import numpy as np

    from ui.panels.grokking import StepAxis

    axis = StepAxis("bottom")
    axis.setLogMode(True)
    steps = [10, 20, 30, 50, 60, 100, 500, 700, 2000, 20000, 100000]
    assert axis.tickStrings(list(np.log10(steps)), 1.0, 1.0) == [
        "10", "20", "", "50", "", "100", "500", "", "2000", "2·10⁴", "10⁵"]


def test_empty_hint_follows_the_first_snapshot_of_a_modular_run(qtbot) -> None:
    """A restored grokking run: the panel draws before any snapshot ("load the preset"), then the
    run's step-0 snapshot arrives with an empty History; the hint must become "press Space"."""
    from ui.panels.grokking import EMPTY_HINT

    panel = GrokkingPanel(History())
    qtbot.addWidget(panel)
    panel.redraw()
    assert panel.acc._regsim_hint.toPlainText() == EMPTY_HINT
    panel.ingest(make_snapshot(0, dataset="modular"))
    panel.redraw()
    assert panel.acc._regsim_hint.toPlainText() == "press Space to train"
    assert not panel.preset_button.isVisible() or not panel.isVisible()
    panel.cleanup()
