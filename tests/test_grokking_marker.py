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
