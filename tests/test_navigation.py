"""Chapter navigation: the chapter bar, the chapter's tabs, the keys, the panel remembered.

The key tests run on a navigator with 14 made-up panels (the 12–16 the issue expects), so Ctrl+1..9
running out and chapters of different lengths are exercised before those panels exist.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ui.app import build_app
from ui.chapters import ChapterNav
from ui.main_window import MainWindow
from ui.panels.registry import CHAPTERS, PANELS, PanelSpec

CTRL, ALT, SHIFT = (Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.AltModifier,
                    Qt.KeyboardModifier.ShiftModifier)

# Registry order deliberately interleaves chapters: navigation must still go chapter by chapter.
FAKE_CHAPTERS = ["Training", "Dropout", "Weight decay", "Optimizers", "Dropout", "Training",
                 "Optimizers", "Dropout", "Weight decay", "Optimizers", "Dropout", "Training",
                 "Weight decay", "Optimizers"]
FAKE = tuple(PanelSpec(f"p{i}", f"Panel {i}", c, "nowhere", "Nothing", tooltip=f"what p{i} shows")
             for i, c in enumerate(FAKE_CHAPTERS))
# Worked out by hand from FAKE_CHAPTERS (Transformers has no panel: not shown).
BY_CHAPTER = {"Training": [0, 5, 11], "Dropout": [1, 4, 7, 10], "Weight decay": [2, 8, 12],
              "Optimizers": [3, 6, 9, 13]}
ORDER = [0, 5, 11, 1, 4, 7, 10, 2, 8, 12, 3, 6, 9, 13]


@pytest.fixture
def nav(qtbot):
    build_app()
    host = QWidget()
    n = ChapterNav(FAKE)
    QVBoxLayout(host).addWidget(n)
    n.install_shortcuts(host)
    qtbot.addWidget(host)
    host.resize(900, 500)
    host.show()
    host.activateWindow()  # window shortcuts need the active window
    qtbot.waitUntil(host.isActiveWindow)
    n.host = host
    return n


def visible(nav: ChapterNav) -> list[int]:
    return [i for i in range(nav.tabs.count()) if nav.tabs.isTabVisible(i)]


def press(qtbot, nav, key, mods) -> None:
    qtbot.keyClick(nav.host, key, mods)


def test_chapter_bar_lists_only_chapters_with_panels(nav) -> None:
    bar = [nav.chapter_bar.tabText(i) for i in range(nav.chapter_bar.count())]
    assert bar == ["Training", "Dropout", "Weight decay", "Optimizers"]
    assert "Transformers" in CHAPTERS and nav.chapter == "Training"
    assert visible(nav) == BY_CHAPTER["Training"] and nav.tabs.currentIndex() == 0


def test_alt_digit_chapters_and_ctrl_digit_panels(qtbot, nav) -> None:
    for n, (chapter, tabs) in enumerate(BY_CHAPTER.items()):
        press(qtbot, nav, Qt.Key(Qt.Key.Key_1 + n), ALT)
        assert nav.chapter == chapter and nav.chapter_bar.currentIndex() == n
        assert sorted(visible(nav)) == sorted(tabs)
        for k, index in enumerate(tabs):
            press(qtbot, nav, Qt.Key(Qt.Key.Key_1 + k), CTRL)
            assert nav.tabs.currentIndex() == index and nav.chapter == chapter
            assert nav.tabs.tabToolTip(index) == f"what p{index} shows (Ctrl+{k + 1})"
        press(qtbot, nav, Qt.Key(Qt.Key.Key_1 + len(tabs)), CTRL)  # no such panel: nothing moves
        assert nav.tabs.currentIndex() == tabs[-1]
    press(qtbot, nav, Qt.Key.Key_5, ALT)  # no 5th chapter shown
    assert nav.chapter == "Optimizers"


def test_page_keys_walk_every_panel_across_chapters(qtbot, nav) -> None:
    seen = [nav.tabs.currentIndex()]
    for _ in range(len(ORDER)):
        press(qtbot, nav, Qt.Key.Key_PageDown, CTRL)
        seen.append(nav.tabs.currentIndex())
        assert nav.chapter == FAKE[seen[-1]].chapter and nav.tabs.isTabVisible(seen[-1])
    assert seen == ORDER + [ORDER[0]]  # chapter by chapter, then wraps
    back = [nav.tabs.currentIndex()]
    for _ in range(len(ORDER)):
        press(qtbot, nav, Qt.Key.Key_PageUp, CTRL)
        back.append(nav.tabs.currentIndex())
    assert back == [ORDER[0]] + ORDER[::-1]
    press(qtbot, nav, Qt.Key.Key_Tab, CTRL)
    assert nav.tabs.currentIndex() == ORDER[1]
    press(qtbot, nav, Qt.Key.Key_Backtab, CTRL | SHIFT)
    assert nav.tabs.currentIndex() == ORDER[0]


def test_chapter_keys_return_to_the_panel_last_shown(qtbot, nav) -> None:
    press(qtbot, nav, Qt.Key.Key_2, ALT)
    press(qtbot, nav, Qt.Key.Key_3, CTRL)  # Dropout's third panel: p7
    press(qtbot, nav, Qt.Key.Key_PageDown, CTRL | SHIFT)
    assert nav.chapter == "Weight decay" and nav.tabs.currentIndex() == 2
    press(qtbot, nav, Qt.Key.Key_PageUp, CTRL | SHIFT)
    assert nav.chapter == "Dropout" and nav.tabs.currentIndex() == 7
    nav.chapter_bar.setCurrentIndex(3)  # a click on "Optimizers"
    assert nav.chapter == "Optimizers" and nav.tabs.currentIndex() == 3
    press(qtbot, nav, Qt.Key.Key_PageDown, CTRL | SHIFT)  # wraps to the first chapter
    assert nav.chapter == "Training"


def test_any_tab_index_brings_its_chapter(nav) -> None:
    nav.tabs.setCurrentIndex(10)  # a hidden tab, as code that knows only tab indices asks
    assert nav.chapter == "Dropout" and nav.tabs.currentWidget() is nav.tabs.widget(10)
    assert sorted(visible(nav)) == BY_CHAPTER["Dropout"] and nav.chapter_bar.currentIndex() == 1


# ------------------------------------------------------------------------------- the real window
@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "regsim.ini"), QSettings.Format.IniFormat)


def bare_window(qtbot, settings, restore=False) -> MainWindow:
    """The window without an engine: navigation needs no training."""
    build_app()
    w = MainWindow(None, engine_mode="thread", device="cpu", settings=settings, restore=restore)
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    w.activateWindow()  # window shortcuts need the active window
    qtbot.waitUntil(w.isActiveWindow)
    return w


def test_window_tabs_come_from_the_registry_and_build_lazily(qtbot, settings) -> None:
    w = bare_window(qtbot, settings)
    try:
        assert w.tabs.count() == len(PANELS)
        for i, spec in enumerate(PANELS):
            assert w.tabs.tabText(i) == spec.title
            assert w.tabs.tabToolTip(i).startswith(spec.tooltip)
            assert w.tabs.isTabVisible(i) == (spec.chapter == PANELS[0].chapter)
        w.current_panel()
        assert [p is not None for p in w._panels] == [i == 0 for i in range(len(PANELS))]
        # The last chapter's first panel: a chapter shortcut opens its chapter at its first tab.
        target = next(i for i, s in enumerate(PANELS) if s.chapter == PANELS[-1].chapter)
        chapter = w.nav.chapters.index(PANELS[target].chapter)
        qtbot.keyClick(w, Qt.Key(Qt.Key.Key_1 + chapter), ALT)
        assert w.tabs.currentIndex() == target and w.current_panel().key == PANELS[target].key
        built = [p is not None for p in w._panels]
        assert built == [i in (0, target) for i in range(len(PANELS))]  # nothing else imported
        assert w.tabs.currentWidget() is w._panels[target]
        assert w.tabs.isTabVisible(target) and w.tabs.tabToolTip(target).startswith(
            PANELS[target].tooltip)
    finally:
        w.shutdown()


def test_last_panel_is_remembered_and_validated(qtbot, settings) -> None:
    w = bare_window(qtbot, settings)
    target = len(PANELS) - 1
    w.tabs.setCurrentIndex(target)
    w.close()
    assert settings.value("panel") == PANELS[target].key
    w2 = bare_window(qtbot, settings, restore=True)
    assert w2.tabs.currentIndex() == target and w2.nav.chapter == PANELS[target].chapter
    assert w2.tabs.isTabVisible(target) and not w2.tabs.isTabVisible(0)
    w2.shutdown()
    for bad in ("no_such_panel", 3, ""):
        settings.setValue("panel", bad)
        w3 = bare_window(qtbot, settings, restore=True)
        assert w3.tabs.currentIndex() == 0 and w3.nav.chapter == PANELS[0].chapter, bad
        w3.shutdown()
