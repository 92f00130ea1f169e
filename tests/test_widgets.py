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


LONG = ("diverged: Training diverged (the loss exploded to 3.1e+04) at step 12,345. Restored the last "
        "good weights from step 12,000. Lower lr (now 1), e.g. to 0.1, then resume (lr·λ ≥ 1 also "
        "makes each decay step overshoot zero).")


def test_live_label_long_text_never_widens_its_window(qtbot) -> None:
    """Issue 8 item 1: one long message grew the window past the screen (a plain label's minimum
    width is its whole text). A LiveLabel elides instead and keeps the full text in its tooltip."""
    build_app()
    box = QWidget()
    qtbot.addWidget(box)
    lay = QHBoxLayout(box)
    label = LiveLabel("step 1")
    label.setToolTip("what the readout means")
    lay.addWidget(label, 1)
    box.resize(500, 60)
    box.show()
    qtbot.waitExposed(box)
    label.setText(LONG)
    lay.activate()
    qtbot.wait(10)
    assert box.minimumSizeHint().width() < 300
    assert box.width() == 500
    assert label.is_elided()
    assert LONG in label.toolTip() and "what the readout means" in label.toolTip()
    img = label.grab().toImage()  # something is drawn (the elided line), not a blank label
    assert len({img.pixel(x, img.height() // 2) for x in range(0, img.width(), 3)}) > 1
    label.setText("step 2")
    assert not label.is_elided() and label.toolTip() == "what the readout means"


def test_plain_label_with_long_text_widens_its_window(qtbot) -> None:
    """The failure LiveLabel prevents (proof the check above can fail)."""
    build_app()
    box = QWidget()
    qtbot.addWidget(box)
    lay = QHBoxLayout(box)
    label = QLabel("step 1")
    lay.addWidget(label, 1)
    box.resize(500, 60)
    box.show()
    label.setText(LONG)
    lay.activate()
    assert box.minimumSizeHint().width() > 500
