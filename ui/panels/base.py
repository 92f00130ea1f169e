"""The contract every panel follows.

The main window owns one `History` and feeds every snapshot to every panel's `ingest` (cheap: keep a
reference, no drawing). It calls `redraw` only on the visible panel, on the GUI's clock (≤ 30 Hz), so a
hidden panel costs nothing. Plot items are created once in `__init__`; `redraw` only calls
`setData` / `setImage`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWidget

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
