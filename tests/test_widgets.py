"""LiveLabel: per-frame text changes must not move the widgets beside it."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from ui.app import build_app
from ui.widgets import LiveLabel


def _neighbour_x_after_texts(qtbot, label_cls, texts: list[str]) -> list[int]:
    build_app()
    box = QWidget()
    qtbot.addWidget(box)
    lay = QHBoxLayout(box)
    label = label_cls("")
    neighbour = QWidget()
    lay.addWidget(label)
    lay.addWidget(neighbour, 1)
    box.resize(600, 80)
    box.show()
    xs = []
    for text in texts:
        label.setText(text)
        lay.activate()
        xs.append(neighbour.geometry().x())
    return xs


TEXTS = ["step 1,000,000 · 150 steps/s", "step 9 · 1 steps/s", "step 12,345 · 99 steps/s"]


def test_plain_label_moves_its_neighbour(qtbot) -> None:
    """The problem LiveLabel solves (and proof the check below can fail)."""
    xs = _neighbour_x_after_texts(qtbot, QLabel, TEXTS)
    assert len(set(xs)) > 1


def test_live_label_keeps_its_neighbour_still(qtbot) -> None:
    xs = _neighbour_x_after_texts(qtbot, LiveLabel, TEXTS)
    assert len(set(xs)) == 1


def test_live_label_grows_for_wider_text_and_resets_on_font_change(qtbot) -> None:
    build_app()
    label = LiveLabel("short")
    qtbot.addWidget(label)
    small = label.sizeHint().width()
    label.setText("a much, much longer line of text")
    wide = label.sizeHint().width()
    assert wide > small
    label.setText("short")
    assert label.sizeHint().width() == wide  # never shrinks while the font is the same
    label.setStyleSheet("font-size: 6pt;")  # a theme change starts over: "short", small again
    assert label.sizeHint().width() < wide
