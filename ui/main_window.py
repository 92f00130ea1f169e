"""The main window: control dock, tabbed panels, the engine bridge, shortcuts, settings.

Data flows one way: controls → engine (as messages) → snapshots → history and panels. Every snapshot
is ingested (cheap); only the visible panel redraws, once per new snapshot, on the GUI's clock.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QElapsedTimer, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from regsim.analyses.jobs import JobEvent
from regsim.analyses.landscape import LandscapeResult
from regsim.hparams import HParams
from regsim.memory import TRIM_EVERY_S, release_freed_memory
from regsim.presets import PRESET_DIR, load_preset, save_preset
from regsim.snapshot import History, Snapshot
from ui.chapters import ChapterNav
from ui.controls import ControlPanel
from ui.engine_client import EngineClient
from ui.export.actions import install_export_actions
from ui.lessons import install_lessons
from ui.panels.base import Panel
from ui.panels.registry import PANELS
from ui.runs import RunsController
from ui.session import DEFAULT_PRESET, saved_hparams

# A frame is drawn as soon as a snapshot has arrived (after the queue is drained), but never sooner
# than MIN_FRAME_MS after the previous frame: the frame rate follows the engine's 30 Hz snapshots one
# to one, and bursts (a landscape's progress, a backlog after a stall) are merged instead of queued.
MIN_FRAME_MS = 8
UPDATE_COALESCE_MS = 15  # slider storms are merged into one engine message per this interval
DEFAULT_SIZE = (1400, 900)
ALWAYS_MEASURED = frozenset({"eval", "histograms"})  # what the History records for every panel
MIN_PANEL_WIDTH = 420  # a restored layout leaving the panels narrower than this is repaired
SYMBOLS = {"weight_decay": "λ", "dropout": "p", "input_dropout": "p_in", "lr": "lr"}


class Banner(QFrame):
    """A coloured strip above the panels for events that need the user: divergence, engine death."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.action = QPushButton()
        self.close_btn = QPushButton("Dismiss")
        lay = QHBoxLayout(self)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.action)
        lay.addWidget(self.close_btn)
        self.close_btn.clicked.connect(self.hide)
        self._callback: Any = None
        self.action.clicked.connect(self._act)
        self.hide()

    def show_message(self, text: str, action: str = "", callback: Any = None,
                     color: str = "#7a1f1f") -> None:
        self.setStyleSheet(f"#banner {{ background: {color}; border-radius: 4px; }} "
                           "#banner QLabel { color: white; font-weight: bold; }")
        self.label.setText(text)
        self.action.setText(action)
        self.action.setVisible(bool(action))
        self._callback = callback
        self.show()

    def _act(self) -> None:
        cb = self._callback
        self.hide()
        if cb is not None:
            cb()


class MainWindow(QMainWindow):
    panels_redrawn = Signal()  # for tests and the bench: a frame was drawn

    def __init__(self, hparams: HParams | None = None, engine_mode: str = "process",
                 device: str = "auto", settings: QSettings | None = None,
                 restore: bool = True, client: EngineClient | None = None) -> None:
        super().__init__()
        self.setWindowTitle("regsim — watch dropout and weight decay work")
        self.settings = settings or QSettings("regsim", "regsim")
        self.history = History()
        self.latest: Snapshot | None = None
        self._dirty = False
        self._closed = False  # set by shutdown(): no more frames
        # Run/pause has one source of truth, the engine's snapshot status. `_intent` is only the
        # command sent but not yet confirmed by a snapshot (so two quick presses toggle twice).
        self._intent: bool | None = None
        self._ready_message = ""  # "Engine ready …": cleared once training runs
        self._pending: dict[str, Any] = {}
        self.last_good = hparams

        # --- panels
        # Only the visible panel is built before the window shows; the others follow right after
        # (about 0.25 s of the 1.2 s start-up budget), or at once when something asks for them.
        # Tabs are in registry order (ui.panels.registry.PANELS), one per panel, under a chapter
        # bar that shows one chapter's tabs at a time (ui.chapters).
        self.nav = ChapterNav(PANELS)
        self.tabs = self.nav.tabs
        self._panels: list[Panel | None] = [None] * len(PANELS)
        self._last_landscape: LandscapeResult | None = None
        self._measuring: frozenset[str] | None = None  # the snapshot parts last asked of the engine
        self.tabs.currentChanged.connect(self._tab_changed)
        self.banner = Banner()
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.banner)
        lay.addWidget(self.nav, 1)
        self.setCentralWidget(central)

        # --- controls
        self.controls = ControlPanel()
        scroll = QScrollArea()
        scroll.setWidget(self.controls)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # The dock never collapses below the form's own minimum (at 900 px a 60 px dock was left):
        # the panels give way instead. Vertically it scrolls.
        scroll.setMinimumWidth(self.controls.minimumSizeHint().width()
                               + scroll.verticalScrollBar().sizeHint().width() + 2)
        self.dock_scroll = scroll
        dock = QDockWidget("Controls")
        dock.setObjectName("controls_dock")
        dock.setWidget(scroll)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.dock = dock
        self.controls.live_changed.connect(self._live_changed)
        self.controls.rebuild_requested.connect(self._rebuild)
        self.controls.preset_chosen.connect(self.load_preset_by_name)
        self.controls.load_preset_file.connect(self.open_preset_dialog)
        self.controls.save_preset_file.connect(self.save_preset_dialog)
        self.controls.run_toggled.connect(self.toggle_run)
        self.controls.step_clicked.connect(self.step_once)
        self.controls.reset_clicked.connect(lambda: self.reset_run())

        # --- engine
        # A client may arrive already started (ui.app starts the engine before building the
        # window, so torch loads in the child while the GUI is still being built).
        self.client = client or EngineClient(mode=engine_mode, device=device)
        self.client.setParent(self)
        self.client.snapshot.connect(self.on_snapshot)
        self.client.job.connect(self.on_job)
        self.client.invalid.connect(self.on_invalid)
        self.client.ready.connect(self.on_ready)
        self.client.died.connect(self.on_engine_died)
        # Compare mode (ui/runs.py): one History per run, the run bar above the panels.
        self.runs = RunsController(self)
        lay.insertWidget(1, self.runs.bar)

        self._frame = QTimer(self)  # single-shot: armed by _mark_dirty
        self._frame.setSingleShot(True)
        self._frame.timeout.connect(self.redraw)
        self._last_frame = QElapsedTimer()
        self._last_frame.start()
        self._coalesce = QTimer(self)
        self._coalesce.setSingleShot(True)
        self._coalesce.setInterval(UPDATE_COALESCE_MS)
        self._coalesce.timeout.connect(self._flush_updates)
        # Qt, pyqtgraph and numpy free and re-allocate image and path buffers every frame; glibc keeps
        # the freed pages, which read as a slow RSS creep over a lecture (see regsim.memory).
        self._trim = QTimer(self)
        self._trim.setInterval(int(TRIM_EVERY_S * 1000))
        self._trim.timeout.connect(release_freed_memory)
        self._trim.start()

        self._make_actions()
        if restore:
            self._restore_settings()
        if self.last_good is None:
            self.last_good = saved_hparams(self.settings) or load_preset(DEFAULT_PRESET)
        self.controls.set_hparams(self.last_good)
        self._ready_message = "Starting the engine…"
        self.statusBar().showMessage(self._ready_message)

    # ------------------------------------------------------------------------------- start / stop
    def start_engine(self) -> None:
        """Start training's engine (call after show(), so the window appears first)."""
        if not self.client.alive:
            self.client.start(self.last_good)
        self._mark_dirty()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """Vanish at once, then stop: the lecturer sees the window go the moment they close it,
        while settings are saved and the engine is stopped (≤ 1.3 s) behind it."""
        if not self._closed:
            from PySide6.QtCore import QEventLoop  # local: this method's hunk merges on its own
            from PySide6.QtWidgets import QApplication

            self._save_settings()  # geometry and dock state while still shown, as the user left them
            self.hide()
            QApplication.processEvents(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
        self.shutdown(save=False)
        super().closeEvent(event)

    def shutdown(self, save: bool = True) -> None:
        """Stop the engine and every timer; save settings (once). Safe to call twice."""
        first = not self._closed
        self._closed = True
        self._frame.stop()
        self._coalesce.stop()
        self._trim.stop()
        try:
            if first and save:
                self._save_settings()
        finally:
            self.client.close()
            for p in self._built_panels() if first else ():
                p.cleanup()

    # ------------------------------------------------------------------------------- actions
    def _make_actions(self) -> None:
        menu = self.menuBar().addMenu("&File")
        for text, keys, slot in (("Open preset…", QKeySequence.StandardKey.Open, self.open_preset_dialog),
                                 ("Save preset…", QKeySequence.StandardKey.Save, self.save_preset_dialog),
                                 ("Quit", QKeySequence.StandardKey.Quit, self.close)):
            act = QAction(text, self)
            act.setShortcut(keys)
            act.triggered.connect(slot)
            menu.addAction(act)
        self.file_menu = menu
        run_menu = self.menuBar().addMenu("&Run")
        for text, key, slot in (("Run / pause", "Space", self.toggle_run),
                                ("Step", "N", self.step_once),
                                ("Reset", "R", lambda: self.reset_run())):
            act = QAction(text, self)
            act.setShortcut(QKeySequence(key))
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            act.triggered.connect(lambda _checked=False, slot=slot: slot())
            run_menu.addAction(act)
            self.addAction(act)
        self.tab_shortcuts = self.nav.install_shortcuts(self)  # Ctrl+1..9, Alt+1..9, PgUp/PgDn
        install_export_actions(self)
        self.lessons = install_lessons(self)  # the Lessons menu (Ctrl+L) and the lesson strip

    @property
    def engine_running(self) -> bool:
        """What the engine last reported: training or not (the truth the Run button shows)."""
        return self.latest is not None and self.latest.status == "running"

    @property
    def running(self) -> bool:
        """Whether training is (or has just been asked to be) running."""
        return self._intent if self._intent is not None else self.engine_running

    @running.setter
    def running(self, value: bool) -> None:  # a run command sent elsewhere (ui.app's --run)
        self._intent = bool(value)

    def toggle_run(self) -> None:
        want = not self.running
        self._intent = want
        if want:
            self.banner.hide()
            self.client.run()
        else:
            self.client.pause()
        self._sync_run_state()

    def step_once(self) -> None:
        self._intent = False
        self.client.step(1)
        self._sync_run_state()

    def reset_run(self, hparams: HParams | None = None) -> None:
        self._intent = False
        self.banner.hide()
        self.runs.clear()  # every run restarts at step 0
        self._last_landscape = None
        for p in self._built_panels():
            p.reset()
        if hparams is not None:
            self.last_good = hparams
            self.controls.set_hparams(hparams)
        self.client.reset(hparams or self.last_good)
        self._sync_run_state()

    def _sync_run_state(self) -> None:
        """Show the engine's state: the Run button says Pause only while the engine trains."""
        self.controls.set_running(self.engine_running)

    def load_preset_by_name(self, name: str) -> None:
        try:
            self.reset_run(load_preset(name))
        except ValueError as e:
            self.on_invalid(str(e))
            return
        self.statusBar().showMessage(f"Preset {name!r} loaded", 5000)

    def compare_presets(self, runs: dict[str, str]) -> None:
        """Replace the runs by presets in lockstep ({run name: preset name}), all at step 0, paused
        (the race's "Adam+L2 vs AdamW" and the Recipe panel's "Load both recipes")."""
        try:
            hparams = {name: load_preset(preset) for name, preset in runs.items()}
        except ValueError as e:
            self.on_invalid(str(e))
            return
        self._flush_updates()
        self.runs.clear()  # as a lesson starts its runs (ui.lessons): curves, panels, controls
        for p in self._built_panels():
            p.reset()
        self.last_good = next(iter(hparams.values()))
        self.controls.set_hparams(self.last_good)
        self.client.reset_runs(hparams)
        self._sync_run_state()
        self.statusBar().showMessage(f"Runs at step 0: {', '.join(f'{r} = {n}' for r, n in runs.items())}"
                                     " — press Space to run", 8000)

    def open_preset_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open preset", str(PRESET_DIR), "Presets (*.json)")
        if path:
            try:
                self.reset_run(load_preset(Path(path)))
            except ValueError as e:
                self.on_invalid(str(e))

    def save_preset_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save preset", str(Path.home() / "regsim.json"),
                                              "Presets (*.json)")
        if path:
            try:
                save_preset(self.last_good, Path(path), "saved from regsim")
                self.statusBar().showMessage(f"Saved {path}", 5000)
            except ValueError as e:  # regsim.files names the file and the reason
                self.on_invalid(str(e))

    # ------------------------------------------------------------------------------- controls in
    def _live_changed(self, changes: dict) -> None:
        """Merge slider storms: one engine message per UPDATE_COALESCE_MS, last value wins."""
        self._pending.update(changes)
        if not self._coalesce.isActive():
            self._coalesce.start()

    def _flush_updates(self) -> None:
        changes, self._pending = self._pending, {}
        if not changes:
            return
        try:
            self.last_good = self.last_good.replace(**changes)  # validate here: a message at once
        except ValueError as e:
            self.on_invalid(str(e))
            return
        self.controls.set_hparams(self.last_good)  # the preset name, greyed settings follow
        self.client.update(**changes)

    def _rebuild(self, changes: dict) -> None:
        try:
            new = HParams.from_dict(changes, base=self.last_good)
        except ValueError as e:
            self.on_invalid(str(e))
            return
        if new != self.last_good:
            self.reset_run(new)
            self.statusBar().showMessage(f"New run: {', '.join(f'{k}={v}' for k, v in changes.items())}",
                                         5000)

    def _panel_request(self, name: str, payload: dict) -> None:
        if name == "analyze":
            self.client.analyze(payload["analysis"], payload.get("params"), job_id=payload.get("id"),
                                run=payload.get("run", ""))  # Compare mode: a run-addressed job
        elif name == "cancel":
            self.client.cancel_job(payload["id"])
        elif name == "update":  # a panel's control (the dropout panel's per-layer p): as the dock's
            self._live_changed(payload)
        elif name == "measure":  # the panel's measure_parts() changed (the scratch panel's site)
            self._send_measure()
        elif name == "preset":  # a panel's "load this preset" button (the ensemble's seed net)
            self.load_preset_by_name(payload["name"])
        elif name == "add_run":  # a panel's "add a comparison run" (Compression: λ = 0 beside it)
            self._flush_updates()
            try:
                h = self.last_good.replace(**payload.get("changes", {}))
            except ValueError as e:
                self.on_invalid(str(e))
                return
            self.client.add_run(source=None, hparams=h)  # fresh, in lockstep; catches up
        elif name == "runs":  # a panel's "compare these presets" button (the Recipe panel)
            self.compare_presets(payload["presets"])
        elif name == "explain":  # the update-code panel's parameter (regsim.update_code)
            self.client.send("explain", payload)
        elif name == "lesson":  # a panel's "run the lesson" button
            self.lessons.choose(payload["name"])
        elif name == "compare":  # a panel's "set up this comparison" button (the race's Adam+L2 vs AdamW)
            self.compare_presets(payload["runs"])
        elif name == "control":  # a panel's "add the control run" (grokking: λ = 0)
            self._add_control_run(payload["changes"])

    def _add_control_run(self, changes: dict) -> None:
        """Restart the selected run beside a copy with `changes`, both from step 0 in lockstep
        (the same data, initial weights and batches: `changes` is the only difference)."""
        self._flush_updates()
        try:
            control = self.last_good.replace(**changes)
        except ValueError as e:
            self.on_invalid(str(e))
            return
        from regsim.runs import next_name
        first = self.client.selected or "A"
        self._intent = False
        self.banner.hide()
        self.runs.clear()
        self._last_landscape = None
        for p in self._built_panels():
            p.reset()
        self.client.reset_runs({first: self.last_good, next_name([first]): control})

    # ------------------------------------------------------------------------------- engine out
    def on_ready(self, info: dict) -> None:
        self.controls.device_label.setText(f"device: {info.get('device', '?')}")
        self._measuring = None  # a new engine measures everything until told
        self._send_measure()
        if self.engine_running or self._intent:
            self._clear_ready_message()
            return
        self._ready_message = f"Engine ready on {info.get('device', '?')} — press Space to run"
        self.statusBar().showMessage(self._ready_message)

    def on_snapshot(self, snap: Snapshot) -> None:
        previous = self.latest
        self.latest = snap
        if not self._pending and not self._coalesce.isActive():
            self.last_good = snap.hparams  # (while a slider storm is pending, the newer value wins)
        # (self.history, the selected run's, got `snap` from self.runs.on_snapshots just before)
        for p in self._built_panels():
            p.ingest(snap)
        if self._intent is not None and (snap.status == "running") == self._intent:
            self._intent = None  # the engine has done what was asked
        if snap.status == "running":
            self._clear_ready_message()
        if snap.events:
            step, text = snap.events[-1]
            self.statusBar().showMessage(f"{text} at step {step}", 8000)
        if snap.status == "diverged":
            self._intent = None
            # Only a new divergence raises the banner: snapshots already in flight when the user
            # pressed "resume" still say diverged, and must not bring the old banner back.
            if previous is None or previous.status != "diverged" or previous.message != snap.message:
                self._on_diverged(snap)
        if (previous is None or previous.status != snap.status
                or self.controls.run_btn.text() != ("Pause" if self.engine_running else "Run")):
            self._sync_run_state()
        self._mark_dirty()

    def _clear_ready_message(self) -> None:
        """"Starting the engine…" / "Engine ready … press Space" go once training runs."""
        if self._ready_message and self.statusBar().currentMessage() == self._ready_message:
            self.statusBar().clearMessage()
        self._ready_message = ""

    def _on_diverged(self, snap: Snapshot) -> None:
        lower = float(f"{max(snap.hparams.lr / 10, 1e-6):.3g}")
        self.banner.show_message(snap.message, f"Lower lr to {lower:g} and resume",
                                 lambda: self._lower_lr_and_resume(lower))

    def _lower_lr_and_resume(self, lr: float) -> None:
        self._flush_updates()
        self.client.update(lr=lr)
        self.last_good = self.last_good.replace(lr=lr)
        self.controls.set_hparams(self.last_good)
        self._intent = False  # from the engine's point of view: paused (diverged); now run
        self.toggle_run()

    def on_job(self, event: JobEvent) -> None:
        """An analysis job's event: to every built panel (the loss surface takes its own); the
        newest landscape is kept for panels built later, and a failure is said in the status bar."""
        if event.analysis == "landscape" and event.result is not None:
            self._last_landscape = event.result
        if event.kind == "failed":
            self.statusBar().showMessage(event.message, 10000)
        for p in self._built_panels():
            p.on_job(event)
        self._mark_dirty()

    def on_landscape(self, result: LandscapeResult) -> None:
        self._last_landscape = result
        for p in self._built_panels():
            p.on_landscape(result)
        self._mark_dirty()

    def on_invalid(self, message: str) -> None:
        """A rejected setting: say why, and show the last good settings again."""
        self._ready_message = ""
        self.statusBar().showMessage(f"Rejected: {message}", 10000)
        self.statusBar().setToolTip(message)
        self.controls.set_hparams(self.last_good)

    def on_engine_died(self, message: str) -> None:
        self._intent = None
        if self.latest is not None:  # the engine is gone: nothing trains, whatever it said last
            self.latest = dataclasses.replace(self.latest, status="error", message=message)
        self._sync_run_state()
        self.banner.show_message(f"The training engine stopped: {message}", "Restart engine",
                                 self._restart_engine)

    def _restart_engine(self) -> None:
        self.runs.clear()
        self._last_landscape = None
        for p in self._built_panels():
            p.reset()
        self.client.start(self.last_good)

    # ------------------------------------------------------------------------------- drawing
    def _mark_dirty(self) -> None:
        """Schedule a frame: as soon as control returns to the event loop (so a drained backlog
        draws once), but at least MIN_FRAME_MS after the last one."""
        self._dirty = True
        if not self._frame.isActive() and not self._closed:
            self._frame.start(max(0, MIN_FRAME_MS - self._last_frame.elapsed()))

    def redraw(self) -> None:
        """Draw the visible panel if anything changed since the last frame."""
        if not self._dirty or self._closed:
            return
        self._dirty = False
        self._last_frame.restart()
        self.current_panel().redraw()
        s = self.latest
        if s is not None:
            self.controls.rate_label.setText(f"step {s.step:,} · {s.steps_per_sec:,.0f} steps/s · "
                                             f"{s.status}")
        self.panels_redrawn.emit()

    def current_panel(self) -> Panel:
        return self._panel(self.tabs.currentIndex())

    # ------------------------------------------------------------------------------- panels
    @property
    def panels(self) -> list[Panel]:
        """Every panel, in tab order (built now if not yet)."""
        self._build_all_panels()
        return list(self._panels)  # type: ignore[arg-type]

    def _built_panels(self) -> list[Panel]:
        return [p for p in self._panels if p is not None]

    def build_panels(self) -> None:
        """Build every panel now, the visible one first (ui.app calls this once the window shows;
        otherwise each is built when first needed)."""
        self._build_all_panels()

    def _build_all_panels(self) -> None:
        self._panel(self.tabs.currentIndex())  # the visible one first
        for i in range(len(self._panels)):
            self._panel(i)

    def _panel(self, index: int) -> Panel:
        """The panel of tab `index`, built and put in its tab on first use."""
        index = max(0, min(index, len(self._panels) - 1))
        panel = self._panels[index]
        if panel is not None:
            return panel
        panel = PANELS[index].load()(self.history)
        self._panels[index] = panel
        panel.request.connect(self._panel_request)
        panel.status_message.connect(lambda m: self.statusBar().showMessage(m, 5000))
        if self.latest is not None:
            panel.ingest(self.latest)
        if self._last_landscape is not None:
            panel.on_landscape(self._last_landscape)
        self.runs.tell_panels()  # Compare mode: every run, for panels that overlay them
        self.nav.set_widget(index, panel)
        return panel

    def _tab_changed(self, index: int) -> None:
        self._panel(index)
        self._send_measure()
        self._mark_dirty()

    def measured_parts(self) -> frozenset[str]:
        """The heavy snapshot parts the engine measures for this window: what the visible panel
        draws (its registry `needs`), plus what the History keeps over the whole run whatever
        panel is open: "eval" (the losses in the status line and the curves) and "histograms"
        (the Weights panel's percentile bands over time — measured only while Weights was open,
        a lecturer switching to it after training saw bands start at that moment). Histograms
        cost ~2 ms on moons 64-64 and ~45 ms on digits 64-512-512-10, inside the same 2 % budget."""
        panel = self._panels[self.tabs.currentIndex()]
        extra = panel.measure_parts() if panel is not None else frozenset()
        return PANELS[self.tabs.currentIndex()].needs | ALWAYS_MEASURED | extra

    def _send_measure(self) -> None:
        parts = self.measured_parts()
        if parts != self._measuring and self.client.alive:
            self._measuring = parts
            self.client.send("measure", sorted(parts))

    # ------------------------------------------------------------------------------- settings
    def _restore_settings(self) -> None:
        geo = self.settings.value("geometry")
        if isinstance(geo, QByteArray):
            self.restoreGeometry(geo)
        else:
            self.resize(*DEFAULT_SIZE)
        state = self.settings.value("window_state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        # The panel last shown, by key: a key this version does not know (a panel renamed or
        # removed, a hand-edited file) falls back to the first panel.
        key = self.settings.value("panel", "")
        keys = [s.key for s in PANELS]
        self.tabs.setCurrentIndex(keys.index(key) if isinstance(key, str) and key in keys else 0)
        self._restored = True

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if getattr(self, "_restored", False):
            self._restored = False
            QTimer.singleShot(0, self.repair_layout)

    def repair_layout(self) -> None:
        """Undo a saved layout that would leave the app unusable: a window larger than the screen
        or off it, a squashed control dock or squashed panels (one long message once saved a
        60 px dock, and every later launch opened broken)."""
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        if screen is not None and not self.isMaximized() and not self.isFullScreen():
            frame = self.frameGeometry()
            extra_w, extra_h = frame.width() - self.width(), frame.height() - self.height()
            w = min(self.width(), screen.width() - extra_w)
            h = min(self.height(), screen.height() - extra_h)
            if (w, h) != (self.width(), self.height()):
                self.resize(max(w, self.minimumSizeHint().width()), max(h, 200))
            frame = self.frameGeometry()
            if not screen.contains(frame):
                x = min(max(frame.x(), screen.x()), screen.right() - frame.width() + 1)
                y = min(max(frame.y(), screen.y()), screen.bottom() - frame.height() + 1)
                self.move(max(x, screen.x()), max(y, screen.y()))
        if self.dock.isFloating():
            if screen is not None and not screen.intersects(self.dock.frameGeometry()):
                self.dock.setFloating(False)
            return
        central = self.centralWidget().width()
        want = self.dock_scroll.minimumWidth() + 30
        if self.dock.width() < self.dock_scroll.minimumWidth() or central < MIN_PANEL_WIDTH:
            self.resizeDocks([self.dock], [min(want, max(self.width() // 3, want))],
                             Qt.Orientation.Horizontal)

    def _save_settings(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState())
        self.settings.setValue("panel", PANELS[self.tabs.currentIndex()].key)
        if self.last_good is not None:
            self.settings.setValue("hparams", json.dumps(self.last_good.to_dict()))
        self.settings.sync()

