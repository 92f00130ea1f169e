"""The contract every panel follows.

The main window owns one `History` and feeds every snapshot to every panel's `ingest` (cheap: keep a
reference, no drawing). It calls `redraw` only on the visible panel, on the GUI's clock (≤ 30 Hz), so a
hidden panel costs nothing. Plot items are created once in `__init__`; `redraw` only calls
`setData` / `setImage`.

`JobPanel` (below) is the contract of the panels whose content is an analysis the engine computes on
request (Compute → a background job): one job lifecycle for all of them.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QSizePolicy, QWidget

from regsim.analyses.landscape import LandscapeResult
from regsim.snapshot import History, Snapshot
from ui.theme import SCREEN, Theme

if TYPE_CHECKING:
    from regsim.analyses.jobs import JobEvent


class Panel(QWidget):
    key = "panel"  # short name used in file names and on the CLI (`--panels training,weights`)
    title = "Panel"  # tab text

    # Emitted with a dict of engine-command arguments when a panel needs the engine to compute
    # something (the loss surface asks for a landscape this way). The main window forwards it.
    request = Signal(str, dict)
    # Emitted with a short human message for the status bar.
    status_message = Signal(str)

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self.theme: Theme = SCREEN
        self.snapshot: Snapshot | None = None

    def ingest(self, snap: Snapshot) -> None:
        """Remember the newest snapshot. Called for every snapshot, visible or not: keep it cheap."""
        self.snapshot = snap

    def redraw(self) -> None:
        """Push the newest state into the plot items. Only called while the panel is visible."""

    def data_key(self) -> tuple:
        """What the history- and measurement-based plots depend on. Between heavy measurements
        (see Snapshot.eval_step) snapshots reuse them, so a panel can skip redrawing plots whose
        key is unchanged: most live frames then only touch labels and masks."""
        snap = self.snapshot
        return (len(self.history), self.history.events_revision,
                self.history.series("step")[-1] if len(self.history) else None,
                None if snap is None else (snap.eval_step, snap.step if snap.eval_step < 0 else -1,
                                           snap.status, snap.hparams, snap.measured),
                self.theme.name, id(self.theme))

    def measure_parts(self) -> frozenset[str]:
        """Snapshot parts this panel wants now beyond its registry `needs` (e.g. the scratch panel's
        "scratch:fc1": one site's replay, not every site's). Emit request("measure", {}) when it
        changes; the window then asks the engine for it."""
        return frozenset()

    def on_landscape(self, result: LandscapeResult) -> None:
        """A landscape computed by the engine (only the loss-surface panel cares)."""

    def on_job(self, event: JobEvent) -> None:
        """An analysis job's event (regsim.analyses.jobs): progress, a partial or final result, a
        failure, a cancellation. Panels that ask for analyses pick out their own."""

    def reset(self) -> None:
        """A new run starts: forget run-specific state."""
        self.snapshot = None

    def apply_theme(self, theme: Theme) -> None:
        """Restyle every plot for `theme` (background, pens, fonts) and redraw.

        Subclasses call this first; it sets antialiasing on every data item the panel has.
        """
        self.theme = theme
        set_antialias(self, theme.antialias)

    def cleanup(self) -> None:
        """Stop timers and release resources; called once when the window closes."""


_JOB_IDS = itertools.count(1)  # one counter for every panel: ids are unique in the window
BAR_MAX = 100_000  # a QProgressBar holds an int: larger totals are scaled down to about this


class JobPanel(Panel):
    """A panel whose content is an analysis the engine computes on request (Compute → a background job).

    Modelled on superqt's GeneratorWorker and Orange3's ConcurrentWidgetMixin: the panel starts a job,
    the engine's runner (regsim.analyses.jobs) answers with `JobEvent`s — started, progress, partial,
    then exactly one of result, failed, cancelled — and the panel only says how to draw them. The
    rules, in one place instead of once per panel:

    - One job per panel at a time. A newer request cancels the older: the panel sends ("cancel",
      {"id": old}) before ("analyze", {...}) and forgets the old id, so a stale event of it (a result
      already on its way) is ignored. Events are matched by (id, analysis): a panel never takes
      another panel's job.
    - The Cancel button (Esc) is visible exactly while a job is in flight; the progress bar's range,
      value and text come from one (done, total) pair, scaled to fit the bar's int.
    - Failed and cancelled end the job: the bar says so, the status line gets the message (a failure
      also goes to the window's status bar), nothing stays pending.

    The window speaks to every panel through `request` ("analyze" / "cancel" payloads, see
    ui/main_window.py `_panel_request`) and `on_job`; the slide export (ui/export/cli.py
    `compute_panel_analyses`) clicks `compute_button` and feeds `on_job` the result itself. A panel
    supplies: `analysis` (the registry name), `params()` (the Request fields its controls ask
    for; ValueError names a bad field and nothing is sent), `job_result` (and `job_partial`) to draw,
    and its idle / failed / cancelled texts.

    Subclasses call `build_job_controls` and `make_status_label` in `__init__`.
    """

    analysis = ""  # the registry name it asks for (regsim.analyses.ANALYSES), e.g. "calibration"
    job_unit = ""  # the analysis's progress unit, for "12 / 50 passes"
    idle_text = ""  # the status line before a result (and after a reset)

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(history, parent)
        self._job_id: str | None = None  # the job in flight (or the last one asked)
        self._job_analysis = self.analysis  # the analysis that job computes
        self._pending = False  # a job is in flight: until its result, failure or cancellation
        self.compute_button: QPushButton | None = None
        self.cancel_button: QPushButton | None = None
        self.progress: QProgressBar | None = None
        self.status_label: QLabel | None = None

    # ------------------------------------------------------------------------------- controls
    def build_job_controls(self, text: str, key: str, tip: str, *, cancel: bool = True,
                           cancel_tip: str = "", progress: bool = True, progress_width: int = 200) -> None:
        """The Compute button ("Compute (B)", shortcut B), and optionally the Cancel button (Esc,
        shown only while a job is in flight) and the progress bar; neither of these two is drawn
        on a slide (export_hidden)."""
        self.compute_button = QPushButton(f"{text} ({key})")
        self.compute_button.setShortcut(QKeySequence(key))
        self.compute_button.setToolTip(tip)
        self.compute_button.clicked.connect(lambda: self.request_job())
        if cancel:
            self.cancel_button = QPushButton("Cancel (Esc)")
            self.cancel_button.setShortcut(QKeySequence(Qt.Key.Key_Escape))
            self.cancel_button.setProperty("export_hidden", True)
            if cancel_tip:
                self.cancel_button.setToolTip(cancel_tip)
            self.cancel_button.clicked.connect(lambda: self.cancel_job())
            self.cancel_button.setVisible(False)
        if progress:
            self.progress = QProgressBar()
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("idle")
            self.progress.setTextVisible(True)
            self.progress.setMaximumWidth(progress_width)
            self.progress.setProperty("export_hidden", True)

    def make_status_label(self, wrap: bool = True) -> QLabel:
        """The status line (`idle_text` at first). It gives way instead of widening the panel: a
        long note or slide fonts wrap (or elide) it."""
        self.status_label = QLabel(self.idle_text)
        self.status_label.setWordWrap(wrap)
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        return self.status_label

    # ------------------------------------------------------------------------------ lifecycle
    @property
    def job_pending(self) -> bool:
        """A job is in flight (until its result, failure or cancellation)."""
        return self._pending

    def params(self) -> dict:
        """The Request fields the controls ask for; ValueError (naming the field) if one is bad."""
        return {}

    def request_job(self) -> str | None:
        """Compute: ask for `analysis` with the controls' parameters (a job in flight is cancelled
        first). A bad field is said in the status line and nothing is sent. Returns the job's id."""
        try:
            params = self.params()
        except ValueError as e:
            self.job_not_started(str(e))
            return None
        job_id = self.start_job(self.analysis, params, run=self.job_run())
        self.job_started(params)
        return job_id

    def start_job(self, analysis: str, params: dict, run: str = "") -> str:
        """Send one "analyze" (after a "cancel" of the job in flight, whose late events are then
        ignored); `run` addresses a Compare-mode run ("": the selected one)."""
        if self._pending and self._job_id is not None:
            self.request.emit("cancel", {"id": self._job_id})
        self._job_id = f"{analysis}-{next(_JOB_IDS)}"
        self._job_analysis = analysis
        self._set_pending(True)
        payload = {"id": self._job_id, "analysis": analysis, "params": params}
        if run:
            payload["run"] = run
        self.request.emit("analyze", payload)
        return self._job_id

    def cancel_job(self) -> None:
        """Cancel (the button, Esc): the engine drops the job, its late events are ignored, what
        is on screen stays."""
        if not self._pending or self._job_id is None:
            return
        self.request.emit("cancel", {"id": self._job_id})
        self._job_id = None
        self._set_pending(False)
        self._show_progress(0, 1, "cancelled")
        self.status_label.setText(self.job_cancelled_text())

    def forget_job(self, cancel: bool = True) -> None:
        """A new run (reset): the job in flight analyses weights that are gone. Cancel it (the
        engine also drops a reset run's jobs; a second cancel is a no-op there), ignore its late
        events, and go back to idle."""
        if cancel and self._pending and self._job_id is not None:
            self.request.emit("cancel", {"id": self._job_id})
        self._job_id = None
        self._set_pending(False)
        self._show_progress(0, 1, "idle")
        if self.status_label is not None:
            self.status_label.setText(self.idle_text)

    def on_job(self, event: JobEvent) -> None:
        """Route the events of this panel's job in flight to the hooks; anything else (another
        panel's job, a superseded or cancelled one) is ignored."""
        if self._job_id is None or event.id != self._job_id or event.analysis != self._job_analysis:
            return
        if event.kind == "progress":
            if event.total:
                self.job_progress(event.done, event.total)
        elif event.kind == "partial":
            if event.result is not None:
                self.job_partial(event)
        elif event.kind == "result":
            self._set_pending(False)
            self.job_result(event)
        elif event.kind in ("failed", "cancelled"):
            self._set_pending(False)
            self.job_failed(event)

    # ---------------------------------------------------------------------------------- hooks
    def job_run(self) -> str:
        """The run a Compute asks about ("": the selected run)."""
        return ""

    def job_started(self, params: dict) -> None:
        """The request is sent: say so."""
        self._show_progress(0, 1, "computing…")
        self.status_label.setText("computing…")

    def job_not_started(self, message: str) -> None:
        """A control holds a bad value: name it (the status line and the window's status bar)."""
        self.status_label.setText(f"not started: {message}")
        self.status_message.emit(message)

    def job_progress_text(self, done: int, total: int) -> str:
        return f"{done} / {total} {self.job_unit}".rstrip()

    def job_progress(self, done: int, total: int) -> None:
        self._show_progress(done, total, self.job_progress_text(done, total))

    def job_partial(self, event: JobEvent) -> None:
        """A partial result worth showing (the sweep's finished cells); most analyses send none."""

    def job_result(self, event: JobEvent) -> None:
        """The job's Result (`event.result`): keep it and draw it."""
        raise NotImplementedError

    def job_failed(self, event: JobEvent) -> None:
        """Failed or cancelled (by the engine: superseded, the run reset): say which, and why."""
        self._show_progress(0, 1, event.kind)
        self.status_label.setText(f"{event.kind}: {event.message}" if event.message else event.kind)
        if event.kind == "failed":
            self.status_message.emit(event.message)

    def job_cancelled_text(self) -> str:
        """The status line after Cancel."""
        return "cancelled"

    # ------------------------------------------------------------------------------ internals
    def _set_pending(self, on: bool) -> None:
        self._pending = on
        if self.cancel_button is not None:
            self.cancel_button.setVisible(on)

    def _show_progress(self, done: int, total: int, text: str) -> None:
        """The one place the bar is set: range, value and text from the same numbers."""
        if self.progress is None:
            return
        total = max(1, int(total))
        scale = max(1, total // BAR_MAX)
        self.progress.setRange(0, total // scale)
        self.progress.setValue(min(max(int(done), 0), total) // scale)
        self.progress.setFormat(text)


def set_antialias(widget: QWidget, on: bool) -> None:
    """Antialiasing on or off for every curve and scatter under `widget` (plot items read
    opts['antialias'] when they paint)."""
    import pyqtgraph as pg  # here: importing the contract must not pull in pyqtgraph
    for view in widget.findChildren(pg.GraphicsView):
        for item in view.scene().items():
            opts = getattr(item, "opts", None)
            if isinstance(opts, dict) and "antialias" in opts and opts["antialias"] != on:
                opts["antialias"] = on
                if isinstance(item, pg.PlotDataItem):
                    item.updateItems()
                else:
                    item.update()
