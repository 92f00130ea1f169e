"""Chapter navigation: a row of chapters over the tabs of the chapter's panels.

With 12–16 panels one tab row overflows and Ctrl+1..9 run out, so the panels are grouped by
chapter (ui.panels.registry.CHAPTERS). Every panel keeps one tab in a single QTabWidget, in
registry order; the tabs of the other chapters are only hidden. So a tab index is a panel for
good (`tabs.setCurrentIndex(i)` reaches any panel and brings its chapter along), and code that
works on the QTabWidget (the exporters lift a panel out of its tab and put it back) sees an
ordinary tab widget.

Keys, chosen for a lecturer who moves between the panels of one chapter often and between
chapters rarely:
    Ctrl+1..9                the chapter's 1st..9th panel
    Alt+1..9                 the 1st..9th chapter (its panel last shown)
    Ctrl+PgDn / Ctrl+Tab     the next panel, into the next chapter after a chapter's last one
    Ctrl+PgUp / Ctrl+Shift+Tab  the previous panel
    Ctrl+Shift+PgDn / PgUp   the next / previous chapter
Chapters without a panel yet (Transformers) are not shown: a lecturer should never land on an
empty page in front of an audience.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QLabel, QTabBar, QTabWidget, QVBoxLayout, QWidget

from ui.panels.registry import CHAPTERS, PanelSpec


class ChapterNav(QWidget):
    """The chapter bar and the panel tabs under it. `tabs` holds one tab per spec, in order."""

    chapter_changed = Signal(str)

    def __init__(self, specs: Sequence[PanelSpec], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.specs = tuple(specs)
        self.chapters = tuple(c for c in CHAPTERS if any(s.chapter == c for s in self.specs))
        # Navigation order: chapter by chapter, registry order inside a chapter.
        self.order = tuple(sorted(range(len(self.specs)),
                                  key=lambda i: (CHAPTERS.index(self.specs[i].chapter), i)))
        self.chapter_bar = QTabBar()
        self.chapter_bar.setObjectName("chapter_bar")
        self.chapter_bar.setExpanding(False)
        self.chapter_bar.setDrawBase(False)
        # Keys go to the window's shortcuts (Alt+n): a focused QTabBar handles Ctrl+PgUp/PgDn
        # itself, moving the chapter instead of the panel.
        self.chapter_bar.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for n, chapter in enumerate(self.chapters):
            self.chapter_bar.addTab(chapter)
            titles = ", ".join(self.specs[i].title for i in self.in_chapter(chapter))
            key = f" (Alt+{n + 1})" if n < 9 else ""
            self.chapter_bar.setTabToolTip(n, f"{chapter}: {titles}{key}")
        font = self.chapter_bar.font()
        font.setBold(True)
        self.chapter_bar.setFont(font)
        self.tabs = QTabWidget()
        for spec in self.specs:
            placeholder = QLabel("Loading…")
            placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.tabs.addTab(placeholder, spec.title)
        self._chapter = self.specs[0].chapter if self.specs else ""
        self._last: dict[str, int] = {}  # chapter → the tab last shown in it (this session)
        for i in range(len(self.specs)):
            self._dress(i)
        # Connected before anyone else: the chapter follows the tab before others hear of it.
        self.tabs.currentChanged.connect(self._tab_changed)
        self.chapter_bar.currentChanged.connect(self._chapter_clicked)
        if self.specs:
            self._show_chapter(self.specs[0].chapter)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.chapter_bar)
        lay.addWidget(self.tabs, 1)

    # ------------------------------------------------------------------------------- queries
    def in_chapter(self, chapter: str) -> list[int]:
        """The tab indices of `chapter`'s panels, in the order shown."""
        return [i for i in self.order if self.specs[i].chapter == chapter]

    @property
    def chapter(self) -> str:
        """The chapter shown."""
        return self._chapter

    # ------------------------------------------------------------------------------- moves
    def select_chapter(self, chapter: str | int) -> None:
        """Show `chapter` (a name or its position in the bar) at the panel last shown in it."""
        if isinstance(chapter, int):
            if not 0 <= chapter < len(self.chapters):
                return
            chapter = self.chapters[chapter]
        tabs = self.in_chapter(chapter)
        if tabs:
            self.tabs.setCurrentIndex(self._last.get(chapter, tabs[0]))

    def select_in_chapter(self, n: int) -> None:
        """The chapter's `n`-th panel (0-based); nothing if it has fewer."""
        tabs = self.in_chapter(self._chapter)
        if 0 <= n < len(tabs):
            self.tabs.setCurrentIndex(tabs[n])

    def step_panel(self, delta: int) -> None:
        """The next (+1) or previous (−1) panel in navigation order, across chapters, wrapping."""
        if not self.order:
            return
        pos = self.order.index(self.tabs.currentIndex()) if self.tabs.currentIndex() in self.order else 0
        self.tabs.setCurrentIndex(self.order[(pos + delta) % len(self.order)])

    def step_chapter(self, delta: int) -> None:
        if self.chapters:
            pos = self.chapters.index(self._chapter) if self._chapter in self.chapters else 0
            self.select_chapter((pos + delta) % len(self.chapters))

    def set_widget(self, index: int, widget: QWidget) -> None:
        """Put `widget` in tab `index` in place of its placeholder (lazy panel construction),
        keeping the current tab, the tab's tooltip and visibility, without signals."""
        current = self.tabs.currentIndex()
        blocked = self.tabs.blockSignals(True)
        try:
            placeholder = self.tabs.widget(index)
            self.tabs.removeTab(index)
            self.tabs.insertTab(index, widget, self.specs[index].title)
            self._dress(index)
            self.tabs.setCurrentIndex(current)
            placeholder.deleteLater()
        finally:
            self.tabs.blockSignals(blocked)

    def install_shortcuts(self, window: QWidget) -> list[QShortcut]:
        """The keys of the module docstring, window-wide. Returns the Ctrl+1..9 shortcuts."""
        numbered = []
        for i in range(9):
            sc = QShortcut(QKeySequence(f"Ctrl+{i + 1}"), window)
            sc.activated.connect(lambda i=i: self.select_in_chapter(i))
            numbered.append(sc)
            sc = QShortcut(QKeySequence(f"Alt+{i + 1}"), window)
            sc.activated.connect(lambda i=i: self.select_chapter(i))
        for keys, slot in ((("Ctrl+PgDown", "Ctrl+Tab"), lambda: self.step_panel(1)),
                           (("Ctrl+PgUp", "Ctrl+Shift+Tab", "Ctrl+Shift+Backtab"),
                            lambda: self.step_panel(-1)),
                           (("Ctrl+Shift+PgDown",), lambda: self.step_chapter(1)),
                           (("Ctrl+Shift+PgUp",), lambda: self.step_chapter(-1))):
            for key in keys:
                sc = QShortcut(QKeySequence(key), window)
                sc.activated.connect(slot)
        return numbered

    # ------------------------------------------------------------------------------- internals
    def _dress(self, index: int) -> None:
        """Tooltip and visibility of tab `index` (lost when a tab is re-inserted)."""
        spec = self.specs[index]
        tabs = self.in_chapter(spec.chapter)
        n = tabs.index(index)
        key = f" (Ctrl+{n + 1})" if n < 9 else ""
        self.tabs.setTabToolTip(index, f"{spec.tooltip}{key}" if spec.tooltip else key.strip())
        self.tabs.setTabVisible(index, spec.chapter == self._chapter)

    def _tab_changed(self, index: int) -> None:
        if not 0 <= index < len(self.specs):
            return
        chapter = self.specs[index].chapter
        self._last[chapter] = index
        if chapter != self._chapter:
            self._show_chapter(chapter)

    def _show_chapter(self, chapter: str) -> None:
        """Show `chapter`'s tabs and hide the others', and mark it in the chapter bar.

        The current tab (already one of `chapter`'s) is shown first: while the current tab is
        hidden, Qt makes any tab that is shown current (measured on Qt 6.11), and hiding a tab
        that is not current moves nothing; so no other panel becomes current or gets built."""
        self._chapter = chapter
        current = self.tabs.currentIndex()
        mine = self.in_chapter(chapter)
        for i in sorted(mine, key=lambda i: i != current):
            self.tabs.setTabVisible(i, True)
        for i, spec in enumerate(self.specs):
            if spec.chapter != chapter:
                self.tabs.setTabVisible(i, False)
        blocked = self.chapter_bar.blockSignals(True)
        try:
            self.chapter_bar.setCurrentIndex(self.chapters.index(chapter))
        finally:
            self.chapter_bar.blockSignals(blocked)
        self.chapter_changed.emit(chapter)

    def _chapter_clicked(self, position: int) -> None:
        self.select_chapter(position)
