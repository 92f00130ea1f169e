"""Lessons in the window: the Lessons menu, and a strip above the panels with the lesson's claim and
whether it holds on the live runs.

A lesson (regsim/lessons.py, resources/lessons/*.json) is a comparison preset plus a claim.
Choosing one replaces the engine's runs by the lesson's (("reset", {"runs": ...}), every run at
step 0, each run's HParams = base + its changes), opens the lesson's panel and shows the strip:
title, explanation (two lines; "More" shows it whole, the tooltip always has it), the claim as
written and its live verdict, judged on the runs' Histories every few snapshots:

    "✓ so far at step 400 (judged at step 1000): …"   until every run reaches the claim's step
    "✓ holds at step 1000: …"  or  "✗ fails at step 1000: …"   once it is due

"Stop at step N" (on by default) asks the engine to pause exactly at the lesson's budget
(("stop_at", N)), so the claim is judged where the lesson says, not a chunk later. Stopped or not,
the engine also lands on and measures every run fresh at each at_step (("measure_at", [N, ...])),
and the controller keeps those values: a verdict is read on values measured AT step N, never on the
last point before it (on a big net the 2 % measuring budget spaces points hundreds of steps apart,
and a verdict "at step 1000" read at step 0 was shown). With no value at N (the strip was opened
after the runs passed it) the verdict says "not measured at step N" instead of ✓/✗. A weight_diff
condition needs the runs' weights, which snapshots do not carry: the strip says it is judged by
`python main.py lesson NAME` instead of giving a wrong answer. Closing the strip leaves the runs as
they are (and lets them train past the budget).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from regsim.lesson_metrics import ANALYSIS_METRICS
from regsim.lessons import (
    SERIES,
    ClaimResult,
    Lesson,
    RunTrace,
    evaluate_claim,
    list_lessons,
    load_lesson,
)
from regsim.runs import RunSnapshots
from ui.panels.registry import PANELS

SHORTCUT = "Ctrl+L"  # opens the Lessons menu (Ctrl+O/S/E/1..9 are taken; L was free)
JUDGE_EVERY = 5  # snapshot messages between verdicts while training (~6 per second at 30 Hz)
SHORT_CHARS = 220  # the explanation shown before "More"
UNJUDGED = ("weight_diff",  # metrics snapshots/Histories cannot provide (they need the weights)
            *ANALYSIS_METRICS)  # or an analysis of the network (main.py lesson measures them)
COLORS = {"holds": "#1e6b34", "fails": "#8a1f1f", "pending": "#444444"}


def short_text(text: str, limit: int = SHORT_CHARS) -> str:
    """`text` cut at a word boundary to at most `limit` characters, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + " …"


def pretty(compare: str) -> str:
    """A claim's comparison as the verdicts write it: "B < 0.7 * A" → "B < 0.7 × A", ≤, ≥, −."""
    for a, b in (("<=", "≤"), (">=", "≥"), ("*", "×"), (" - ", " − ")):
        compare = compare.replace(a, b)
    return compare


def judgeable(lesson: Lesson) -> tuple[Lesson | None, list[str]]:
    """(the lesson with only the conditions live runs can judge, or None if none are left; the
    compare texts of the conditions left out)."""
    kept = tuple(c for c in lesson.claim if c.metric not in UNJUDGED)
    left_out = [f"{c.metric} {c.compare}" for c in lesson.claim if c.metric in UNJUDGED]
    return (dataclasses.replace(lesson, claim=kept) if kept else None), left_out


class LessonStrip(QFrame):
    """The active lesson: what it shows, what it claims, and the claim's live verdict."""

    closed = Signal()
    stop_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lesson_strip")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel()
        self.title.setStyleSheet("font-weight: bold;")
        self.explanation = QLabel()
        self.explanation.setWordWrap(True)
        self.explanation.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.more_btn = QPushButton("More")
        self.more_btn.setCheckable(True)
        self.more_btn.toggled.connect(self._show_more)
        self.claim = QLabel()
        self.claim.setWordWrap(True)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setObjectName("lesson_status")
        self.stop_box = QCheckBox()
        self.stop_box.setChecked(True)
        self.stop_box.toggled.connect(self.stop_toggled)
        self.close_btn = QPushButton("Close lesson")
        self.close_btn.setToolTip("Remove this strip; the runs stay as they are")
        self.close_btn.clicked.connect(self.closed)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.stop_box)
        top.addWidget(self.close_btn)
        grid = QGridLayout()
        grid.addWidget(self.explanation, 0, 0)
        grid.addWidget(self.more_btn, 0, 1, Qt.AlignmentFlag.AlignTop)
        grid.setColumnStretch(0, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.addLayout(top)
        lay.addLayout(grid)
        lay.addWidget(self.claim)
        lay.addWidget(self.status)
        self._full = ""
        self.hide()

    def set_lesson(self, lesson: Lesson, left_out: list[str], live: bool = True) -> None:
        """Show `lesson`; `left_out`: its conditions only the CLI can judge; `live`: whether any
        condition is left to judge on the live runs."""
        self.title.setText(f"Lesson: {lesson.title}")
        self._full = lesson.explanation
        self.explanation.setToolTip(f"<p>{lesson.explanation}</p>")
        self.more_btn.setChecked(False)
        self.more_btn.setVisible(len(lesson.explanation) > SHORT_CHARS)
        self._show_more(False)
        conds = "; ".join(f"{c.metric}: {pretty(c.compare)} at step {c.at_step}" for c in lesson.claim)
        self.claim.setText(f"Claim: {conds}")
        self.claim.setToolTip(f"<p>{lesson.notes}</p>" if lesson.notes else "")
        self.stop_box.setText(f"Stop at step {lesson.steps:,}")
        self.stop_box.setToolTip("Pause the runs exactly at the lesson's step budget, where its claim "
                                 "is judged (off: they train on)")
        self.left_out = left_out
        self.live = live
        self.show_result(None, lesson)

    def show_result(self, result: ClaimResult | None, lesson: Lesson) -> None:
        """The verdict line: ✓/✗/so far, coloured; conditions that need weights named apart."""
        if result is None:
            text = "… waiting for the runs' first measurements" if self.live else ""
            kind = "pending"
        else:
            text = result.text
            kind = ("pending" if not result.due or not result.measured
                    else "holds" if result.holds else "fails")
        if self.left_out:
            text += (f"{' · ' if text else ''}{', '.join(self.left_out)}: "
                     f"needs the runs' weights, judged by `python main.py lesson {lesson.id}`")
        self.status.setText(text)
        self.status.setStyleSheet(f"color: white; background: {COLORS[kind]}; padding: 3px; "
                                  "border-radius: 3px;")
        self.kind = kind

    def _show_more(self, on: bool) -> None:
        self.explanation.setText(self._full if on else short_text(self._full))
        self.more_btn.setText("Less" if on else "More")


class LessonsController(QObject):
    """The window's lessons: the menu, the active lesson, its strip and its live verdict."""

    def __init__(self, window: Any, directory: Path | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.directory = directory
        self.lesson: Lesson | None = None
        self.judged_lesson: Lesson | None = None  # the conditions live runs can judge
        self.result: ClaimResult | None = None
        self._armed = False  # the engine has confirmed the lesson's run set
        self._count = 0
        self.exact: dict[str, dict[int, dict[str, float]]] = {}  # run → at_step → SERIES values
        self.strip = LessonStrip()
        self.strip.closed.connect(self.close_lesson)
        self.strip.stop_toggled.connect(self._send_stop_at)
        self.menu = QMenu("&Lessons", window)
        self.menu.aboutToShow.connect(self._fill_menu)
        window.menuBar().addMenu(self.menu)
        self.menu_action = QAction("Lessons…", window)
        self.menu_action.setShortcut(QKeySequence(SHORTCUT))
        self.menu_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.menu_action.triggered.connect(self.popup_menu)
        window.addAction(self.menu_action)
        self._fill_menu()
        window.client.snapshots.connect(self.on_snapshots)
        window.client.runs_changed.connect(self._on_runs)
        # A restarted engine (after it died) holds one fresh run, not the lesson's: the lesson ends.
        window.client.ready.connect(lambda _info: self.close_lesson())

    # ------------------------------------------------------------------------------- menu
    def _fill_menu(self) -> None:
        self.menu.clear()
        lessons = list_lessons(self.directory)
        for name, title in lessons.items():
            act = self.menu.addAction(title or name)
            act.setData(name)
            act.setToolTip(name)
            act.triggered.connect(lambda _checked=False, n=name: self.choose(n))
        if not lessons:
            self.menu.addAction("(no lessons found)").setEnabled(False)
        self.menu.addSeparator()
        close = self.menu.addAction("Close lesson")
        close.setEnabled(self.lesson is not None)
        close.triggered.connect(self.close_lesson)

    def popup_menu(self) -> None:
        """Ctrl+L: the Lessons menu, under its title in the menu bar."""
        bar = self.window.menuBar()
        rect = bar.actionGeometry(self.menu.menuAction())
        self.menu.popup(bar.mapToGlobal(rect.bottomLeft()))

    def choose(self, name: str) -> None:
        """Start the lesson `name` (an id in the lesson directory, or a file path)."""
        path: str | Path = name
        if self.directory is not None and not str(name).endswith(".json"):
            path = self.directory / f"{name}.json"
        try:
            lesson = load_lesson(path)
        except ValueError as e:
            self.window.on_invalid(str(e))
            return
        self.start(lesson)

    # ------------------------------------------------------------------------------- lesson
    def start(self, lesson: Lesson) -> None:
        """Replace the runs by the lesson's (all at step 0, paused), open its panel, show the strip."""
        w = self.window
        w._flush_updates()  # a pending slider change belongs to the old runs
        self.lesson = lesson
        self.judged_lesson, left_out = judgeable(lesson)
        self.result = None
        self._armed = False
        self._count = 0
        self.exact = {}
        w._intent = False
        w.banner.hide()
        w.runs.clear()
        w._last_landscape = None
        for p in w._built_panels():
            p.reset()
        runs = lesson.hparams()
        first = next(iter(runs.values()))
        w.last_good = first
        w.controls.set_hparams(first)
        w.client.reset_runs(runs)
        self._send_stop_at(self.strip.stop_box.isChecked())
        w.client.send("measure_at", sorted({c.at_step for c in lesson.claim}))
        keys = [s.key for s in PANELS]
        if lesson.panel in keys:
            w.tabs.setCurrentIndex(keys.index(lesson.panel))
        self.strip.set_lesson(lesson, left_out, self.judged_lesson is not None)
        self.strip.show()
        w._sync_run_state()
        w.statusBar().showMessage(f"Lesson {lesson.id!r}: {len(runs)} runs at step 0 — press Space "
                                  "to run", 8000)

    def close_lesson(self) -> None:
        """Remove the strip; the runs stay as they are, and may train past the budget."""
        if self.lesson is None:
            return
        self.lesson = self.judged_lesson = self.result = None
        self._armed = False
        self.window.client.send("stop_at", None)
        self.window.client.send("measure_at", [])
        self.exact = {}
        self.strip.hide()

    def _send_stop_at(self, on: bool) -> None:
        if self.lesson is not None:
            self.window.client.send("stop_at", self.lesson.steps if on else None)

    # ------------------------------------------------------------------------------- verdict
    def _on_runs(self, info: dict) -> None:
        """The engine's run set changed: once it is the lesson's, snapshots are the lesson's runs
        (snapshots of the old runs still in flight before it must not be judged)."""
        if self.lesson is not None and not self._armed and list(info.get("runs", [])) == list(
                self.lesson.runs):
            self._armed = True
            self.window.runs.clear()  # drop what old runs' snapshots left in flight

    def on_snapshots(self, runs: RunSnapshots) -> None:
        """Judge the claim every JUDGE_EVERY messages, and on every message of paused runs (the
        one at the budget among them)."""
        if self.lesson is None or not self._armed:
            return
        self._count += 1
        self._record(runs)
        paused = all(s.status != "running" for s in runs.runs.values())
        at_budget = self.strip.stop_box.isChecked() and all(
            s.step >= self.lesson.steps for s in runs.runs.values())
        if paused and at_budget and self.window._intent:
            # The engine paused at the budget (or refused to run past it): the window must not
            # wait for a "running" that will not come (its next Space would send pause).
            self.window._intent = None
            self.window.statusBar().showMessage(
                f"Lesson budget reached (step {self.lesson.steps:,}): untick "
                f"“{self.strip.stop_box.text()}” to train on", 8000)
        if paused or self._count % JUDGE_EVERY == 0:
            self.judge()

    def _record(self, runs: RunSnapshots) -> None:
        """Keep each run's values measured exactly at an at_step (the History may thin them out)."""
        assert self.lesson is not None
        at = {c.at_step for c in self.lesson.claim}
        for name, snap in runs.runs.items():
            if snap.eval_step in at and "eval" in snap.measured:
                trace = RunTrace.from_snapshot(snap)
                self.exact.setdefault(name, {})[int(snap.eval_step)] = {
                    k: float(trace.series[k][0]) for k in SERIES}

    def judge(self) -> ClaimResult | None:
        """The claim's verdict on the live runs' Histories (every point they measured) with the
        values recorded at the at_steps, judged on values measured AT each at_step (exact)."""
        if self.lesson is None:
            return None
        if self.judged_lesson is None:  # only weight conditions: nothing to judge live
            return None
        traces = {n: RunTrace.from_history(h).with_points(self.exact.get(n, {}))
                  for n, h in self.window.runs.histories.items() if len(h)}
        result = evaluate_claim(self.judged_lesson, traces, exact=True)
        self.result = result
        self.strip.show_result(result, self.lesson)
        return result


def install_lessons(window: Any, directory: Path | None = None) -> LessonsController:
    """The Lessons menu (Ctrl+L) and the lesson strip, placed just above the panels."""
    ctl = LessonsController(window, directory)
    lay = window.centralWidget().layout()
    lay.insertWidget(max(0, lay.indexOf(window.nav)), ctl.strip)
    return ctl
