"""Compare mode in the window: the run bar and the controller that keeps one History per run.

The engine hosts a Comparison (regsim.engine); this module is the window's side of it:

- `RunBar`: "Compare" (duplicate the selected run as B, then C, D), one coloured button per run that
  selects which run the controls edit, Rename… and Remove, the config diff (only the settings that
  differ, with what the runs share in its tooltip), and ghost runs (save the selected run's curves
  to a file, load a saved one as a grey overlay).
- `RunsController`: one History per run, fed from every ("snapshots") tick; the window's `history`
  is always the selected run's, so every panel shows the selected run, and panels that can overlay
  runs (the Training panel's `set_runs`) get all of them, and panels that draw snapshots (Weights
  histograms, Dropout masks: `set_run_snapshots`) every run's latest
  Snapshot. A run keeps its colour slot for its life.

Data still flows one way: the bar sends commands to the engine; what the bar and the panels show
comes from the engine's snapshots and "runs" messages, never from what was asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPushButton,
    QSizePolicy,
    QWidget,
)

from regsim.hparams import SHORT_LABELS, HParams
from regsim.runs import (
    MAX_RUNS,
    Ghost,
    RunSnapshots,
    config_diff,
    load_ghost,
    next_name,
    save_history,
    sharing_text,
)
from regsim.snapshot import History
from ui.run_colors import PALETTES, run_color

MAX_GHOSTS = 3  # ghost runs kept at once (the Training panel draws this many)


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, (list, tuple)):
        return "×".join(str(x) for x in v) if v else "—"
    return str(v)


def diff_html(runs: dict[str, HParams], slots: dict[str, int]) -> str:
    """The config diff as one line of rich text: "λ  A 0 · B 0.1   p  A 0 · B 0.5"."""
    diff = config_diff(runs)
    if not diff:
        return "same settings" if len(runs) > 1 else ""
    parts = []
    for field, values in diff.items():
        label = SHORT_LABELS.get(field, field.replace("_", " "))
        cells = " · ".join(f"<span style='color:{run_color(slots.get(n, 0))}'><b>{n}</b></span> "
                           f"{_value(v)}" for n, v in values.items())
        parts.append(f"<b>{label}</b> {cells}")
    return "&nbsp;&nbsp;&nbsp;".join(parts)


def diff_tooltip(runs: dict[str, HParams]) -> str:
    """What each run shares with the first (regsim.runs.sharing_text), one paragraph per run."""
    names = list(runs)
    if len(names) < 2:
        return ""
    ref = names[0]
    return "\n\n".join(sharing_text(runs[n], runs[ref], n, ref) for n in names[1:])


class RunBar(QWidget):
    """Compare, the run selector, rename/remove, the config diff and ghost runs (one row)."""

    compare_clicked = Signal()
    run_chosen = Signal(str)
    rename_requested = Signal(str, str)  # old, new
    remove_requested = Signal(str)
    save_ghost_clicked = Signal()
    load_ghost_clicked = Signal()
    clear_ghosts_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.compare_btn = QPushButton("Compare")
        self.compare_btn.setToolTip("Duplicate the selected run (weights, optimizer state, step) as a "
                                    "new run that trains in lockstep with it: same data, same "
                                    "batches, same dropout stream. Then change one setting.")
        self.compare_btn.clicked.connect(self.compare_clicked)
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.run_buttons: dict[str, QPushButton] = {}
        self.rename_btn = QPushButton("Rename…")
        self.rename_btn.clicked.connect(self._ask_rename)
        self.remove_btn = QPushButton("Remove")
        self.remove_btn.setToolTip("Remove the selected run (the others keep training)")
        self.remove_btn.clicked.connect(lambda: self.remove_requested.emit(self.selected))
        self.diff = QLabel()
        self.diff.setTextFormat(self.diff.textFormat().RichText)
        self.diff.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.save_ghost_btn = QPushButton("Save run…")
        self.save_ghost_btn.setToolTip("Save the selected run's curves to a file (.npz, data only), "
                                       "to load later as a ghost")
        self.save_ghost_btn.clicked.connect(self.save_ghost_clicked)
        self.load_ghost_btn = QPushButton("Ghost…")
        self.load_ghost_btn.setToolTip("Load a saved run's curves as a grey, dashed ghost behind "
                                       "the live runs (\"last lecture's run vs today's\")")
        self.load_ghost_btn.clicked.connect(self.load_ghost_clicked)
        self.clear_ghosts_btn = QPushButton("No ghosts")
        self.clear_ghosts_btn.clicked.connect(self.clear_ghosts_clicked)
        self.runs_layout = QHBoxLayout()
        self.runs_layout.setSpacing(2)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.compare_btn)
        lay.addLayout(self.runs_layout)
        lay.addWidget(self.rename_btn)
        lay.addWidget(self.remove_btn)
        lay.addWidget(self.diff, 1)
        lay.addWidget(self.save_ghost_btn)
        lay.addWidget(self.load_ghost_btn)
        lay.addWidget(self.clear_ghosts_btn)
        self.selected = "A"
        self.set_runs({"A": HParams()}, "A", {"A": 0}, 0)

    def set_runs(self, runs: dict[str, HParams], selected: str, slots: dict[str, int],
                 ghosts: int) -> None:
        """Show these runs (the engine's), `selected` checked; cheap when nothing changed."""
        self.selected = selected
        names = list(runs)
        if names != list(self.run_buttons):
            for b in self.run_buttons.values():
                self.group.removeButton(b)
                b.deleteLater()
            self.run_buttons = {}
            for name in names:
                b = QPushButton(name)
                b.setCheckable(True)
                b.setToolTip(f"Run {name}: the controls edit the selected run")
                b.clicked.connect(lambda _c=False, n=name: self.run_chosen.emit(n))
                self.group.addButton(b)
                self.runs_layout.addWidget(b)
                self.run_buttons[name] = b
        for name, b in self.run_buttons.items():
            c = run_color(slots.get(name, 0))
            b.setStyleSheet(f"QPushButton {{ border: 2px solid {c}; border-radius: 4px; "
                            f"padding: 2px 8px; }} QPushButton:checked {{ background: {c}; "
                            "color: black; font-weight: bold; }")
            b.setChecked(name == selected)
        several = len(names) > 1
        for b in self.run_buttons.values():
            b.setVisible(several)
        self.rename_btn.setVisible(several)
        self.remove_btn.setVisible(several)
        self.compare_btn.setEnabled(len(names) < MAX_RUNS)
        self.compare_btn.setText(f"Compare (+{next_name(names)})" if len(names) < MAX_RUNS
                                 else "Compare (4 runs)")
        self.diff.setText(diff_html(runs, slots) if several else "")
        self.diff.setToolTip(diff_tooltip(runs))
        self.clear_ghosts_btn.setVisible(ghosts > 0)

    def _ask_rename(self) -> None:
        new, ok = QInputDialog.getText(self, "Rename run", f"New name for run {self.selected}:",
                                       text=self.selected)
        if ok and new.strip() and new.strip() != self.selected:
            self.rename_requested.emit(self.selected, new.strip())


class RunsController(QObject):
    """The window's runs: one History per run, the selection, colours, ghosts, and the bar."""

    changed = Signal()  # the run set, the selection or the ghosts changed (panels were told)

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.histories: dict[str, History] = {"A": window.history}
        self.slots: dict[str, int] = {"A": 0}
        self.hparams: dict[str, HParams] = {}
        self.latest: RunSnapshots | None = None
        self.selected = "A"
        self.ghosts: list[Ghost] = []
        self.bar = RunBar()
        self.bar.compare_clicked.connect(self.compare)
        self.bar.run_chosen.connect(self.select)
        self.bar.rename_requested.connect(self.rename)
        self.bar.remove_requested.connect(self.remove)
        self.bar.save_ghost_clicked.connect(self.save_ghost_dialog)
        self.bar.load_ghost_clicked.connect(self.load_ghost_dialog)
        self.bar.clear_ghosts_clicked.connect(self.clear_ghosts)
        window.client.snapshots.connect(self.on_snapshots)

    @property
    def names(self) -> list[str]:
        return list(self.histories)

    # ------------------------------------------------------------------------------- commands
    def compare(self) -> None:
        """Duplicate the selected run as the next free name (B, C, D) and select it."""
        names = self.window.client.run_names
        if len(names) >= MAX_RUNS:
            self.window.on_invalid(f"a comparison holds at most {MAX_RUNS} runs "
                                   f"(now: {', '.join(names)})")
            return
        self.window._flush_updates()  # the duplicate copies the settings as they are now
        name = next_name(names)
        self.window.client.add_run(name, source=self.window.client.selected)
        self.window.client.select_run(name)

    def select(self, name: str) -> None:
        self.window._flush_updates()  # a pending slider change belongs to the run it was made on
        self.window.client.select_run(name)

    def rename(self, old: str, new: str) -> None:
        self.window.client.rename_run(old, new)

    def remove(self, name: str) -> None:
        self.window._flush_updates()
        self.window.client.remove_run(name)

    # ------------------------------------------------------------------------------- ghosts
    def save_ghost(self, path: str | Path) -> Path:
        h = self.hparams.get(self.selected)
        return save_history(path, self.histories[self.selected], self.selected, h)

    def load_ghost(self, path: str | Path) -> Ghost:
        ghost = load_ghost(path)
        self.ghosts = (self.ghosts + [ghost])[-MAX_GHOSTS:]
        self.tell_panels()
        self.window._mark_dirty()
        return ghost

    def clear_ghosts(self) -> None:
        self.ghosts = []
        self.tell_panels()
        self.window._mark_dirty()

    def save_ghost_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.window, "Save run",
                                              str(Path.home() / f"run-{self.selected}.npz"),
                                              "regsim runs (*.npz)")
        if path:
            try:
                saved = self.save_ghost(path)
                self.window.statusBar().showMessage(f"Saved run {self.selected} to {saved}", 5000)
            except ValueError as e:  # regsim.files names the file and the reason
                self.window.on_invalid(str(e))

    def load_ghost_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Load a ghost run", str(Path.home()),
                                              "regsim runs (*.npz)")
        if path:
            try:
                ghost = self.load_ghost(path)
                self.window.statusBar().showMessage(f"Ghost {ghost.name!r} loaded", 5000)
            except ValueError as e:
                self.window.on_invalid(str(e))

    # ------------------------------------------------------------------------------- engine out
    def on_snapshots(self, runs: RunSnapshots) -> None:
        """Every run's snapshot of one tick: into its History (the window then handles the
        selected run's snapshot as it always did, without adding it again)."""
        self.latest = runs
        self._sync_names(list(runs.runs))
        before = self.hparams.get(runs.selected)
        for name, snap in runs.runs.items():
            self.histories[name].add(snap)
            self.hparams[name] = snap.hparams
        if runs.selected != self.selected:
            self._switch_to(runs.selected)
        else:
            self._follow_outside_change(before, runs.current.hparams)
        for name, snap in runs.runs.items():
            if name != runs.selected and snap.status == "diverged" and snap.events:
                self.window.statusBar().showMessage(f"Run {name}: {snap.message}", 10000)
        self.tell_panels()
        self.bar.set_runs(self.hparams_in_order(), self.selected, self.slots, len(self.ghosts))

    def hparams_in_order(self) -> dict[str, HParams]:
        return {n: self.hparams[n] for n in self.histories if n in self.hparams}

    def _sync_names(self, names: list[str]) -> None:
        """Follow the engine's run set: a rename keeps the History and the colour; a removed run's
        slot is freed; a new run gets the first free slot and a fresh History."""
        old = list(self.histories)
        if names == old:
            return
        renamed = {}
        if len(names) == len(old):
            gone = [n for n in old if n not in names]
            new = [n for n in names if n not in old]
            if len(gone) == 1 and len(new) == 1 and old.index(gone[0]) == names.index(new[0]):
                renamed = {new[0]: gone[0]}
        histories, slots = {}, {}
        for name in names:
            src = renamed.get(name, name)
            if src in self.histories:
                histories[name], slots[name] = self.histories[src], self.slots[src]
        free = [i for i in range(len(PALETTES["screen"])) if i not in slots.values()]
        for name in names:
            if name not in histories:
                histories[name], slots[name] = History(), free.pop(0) if free else 0
        self.hparams = {n: self.hparams[renamed.get(n, n)] for n in names
                        if renamed.get(n, n) in self.hparams}
        back = {v: k for k, v in renamed.items()}
        self.selected = back.get(self.selected, self.selected)
        self.histories, self.slots = histories, slots
        if self.selected not in histories:
            self._switch_to(names[0])
        else:
            self.window.history = histories[self.selected]

    def _switch_to(self, name: str) -> None:
        """The controls now edit run `name`: panels show its History; the controls its settings."""
        self.selected = name
        self.window.history = self.histories[name]
        for p in self.window._built_panels():
            p.history = self.window.history
            p.reset()  # forget the other run's drawing (the next ingest brings this run's)
        h = self.hparams.get(name)
        if h is not None:
            self.window.last_good = h
            self.window.controls.set_hparams(h)
        self.window.banner.hide()  # a banner was about the run selected before
        self.changed.emit()

    def _follow_outside_change(self, before: HParams | None, now: HParams) -> None:
        """The controls show the selected run's true settings when they changed by a command that
        did not come from them (a lesson, the diverged banner, a script). Only a change between two
        snapshots counts: an echo of an older slider value arriving late does not move the slider
        back (its settings equal the previous snapshot's)."""
        w = self.window
        if before is None or now == before or now == w.last_good or w._pending \
                or w._coalesce.isActive():
            return
        w.last_good = now
        w.controls.set_hparams(now)

    def tell_panels(self) -> None:
        runs = [(n, h, self.slots[n]) for n, h in self.histories.items()]
        ghosts = [(g.name, g) for g in self.ghosts]
        snaps = dict(self.latest.runs) if self.latest is not None else {}
        for p in self.window._built_panels():
            set_snaps = getattr(p, "set_run_snapshots", None)  # panels that draw runs' snapshots
            if set_snaps is not None:
                set_snaps(snaps)
            set_runs = getattr(p, "set_runs", None)
            if set_runs is not None:
                set_runs(runs, self.selected, ghosts)

    def clear(self) -> None:
        """Every run's curves start over (a reset restarts all runs at step 0)."""
        for h in self.histories.values():
            h.clear()
