"""The Export menu and toolbar: panel, window, clipboard and GIF, one keystroke each.

Installed by `MainWindow._make_actions` through `install_export_actions(window)`. This module, the
dialogs and `ui.export.files` import no pyqtgraph, so the window can install the menu before any
panel is built; the rendering modules are imported by the first export. The actions are
attributes of the window (`export_panel_action`, `export_window_action`, `copy_action`,
`record_gif_action`) so tests and scripts can trigger them. No failure here may take the app down:
every error becomes a status-bar message plus a non-blocking message box, and training goes on.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox, QProgressDialog, QWidget

from regsim.hparams import HParams
from regsim.snapshot import Snapshot
from ui.export.dialogs import ExportDialog, ExportOptions, GifDialog, GifOptions, read_setting
from ui.export.files import (
    CURRENT,
    DEFAULT_SIZE,
    caption_for,
    comparison_caption,
    default_filename,
    parse_size,
)
from ui.panels.base import Panel

if TYPE_CHECKING:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QMenuBar, QStatusBar, QToolBar

    from ui.export.gif import GifRecorder


class ExportHost(Protocol):
    """What the actions need of the window (`ui.main_window.MainWindow` is the one): named here,
    not imported, because the window imports this module — the dependency points one way."""

    settings: QSettings  # the export dialogs remember their choices in group "export"
    latest: Snapshot | None  # the newest snapshot, for captions and file names
    last_good: HParams  # the settings in force when no snapshot has arrived yet

    def current_panel(self) -> Panel: ...
    def statusBar(self) -> QStatusBar: ...  # noqa: N802  (Qt's name)
    def menuBar(self) -> QMenuBar: ...  # noqa: N802
    def addToolBar(self, title: str) -> QToolBar: ...  # noqa: N802


def install_export_actions(window: ExportHost) -> None:
    """Add the Export menu and toolbar to `window` and expose the actions as its attributes."""
    menu = window.menuBar().addMenu("E&xport")
    toolbar = window.addToolBar("Export")
    toolbar.setObjectName("export_toolbar")  # saveState / restoreState need a name
    specs = (
        ("export_panel_action", "Export panel…", "Ctrl+E",
         "Save the visible panel as a PNG or SVG figure for slides", export_panel),
        ("export_window_action", "Export window…", "Ctrl+Shift+E",
         "Save the whole window (controls and the visible panel) as a figure", export_window),
        ("copy_action", "Copy panel to clipboard", "Ctrl+Shift+C",
         "Copy the visible panel as an image, with the last export settings, to paste into a slide",
         copy_panel),
        ("record_gif_action", "Record GIF…", "",
         "Record the visible panel for a few seconds as an animated GIF (training keeps running)",
         record_gif),
    )
    for attr, text, keys, tip, slot in specs:
        action = QAction(text, window)
        if keys:
            action.setShortcut(QKeySequence(keys))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setToolTip(f"{tip} ({keys})" if keys else tip)
        action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False, slot=slot: slot(window))
        menu.addAction(action)
        toolbar.addAction(action)
        setattr(window, attr, action)
    window.export_menu = menu
    window.export_toolbar = toolbar
    window.gif_recorder = None


# ------------------------------------------------------------------------------------ helpers


def report_error(window: ExportHost, title: str, message: str) -> None:
    """Say what failed in the status bar and in a message box that does not block the event loop."""
    window.statusBar().showMessage(f"{title}: {message}", 15000)
    box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, window)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setWindowModality(Qt.WindowModality.NonModal)
    window.export_message_box = box  # kept, so tests can read it and Python does not collect it
    box.open()


def _source(window: ExportHost) -> Snapshot | HParams | None:
    return window.latest if window.latest is not None else window.last_good


def _label(widget: QWidget) -> str:
    return f"the {widget.title} panel" if isinstance(widget, Panel) else "the window"


def exported_state(window: ExportHost, widget: QWidget) -> Snapshot | HParams | None:
    """The state a figure of `widget` shows: the panel's own newest snapshot (the one its redraw
    renders), or the window's for a window figure."""
    snap = widget.snapshot if isinstance(widget, Panel) else None
    return snap if snap is not None else _source(window)


def figure_caption(window: ExportHost, widget: QWidget, state: Snapshot | HParams | None) -> str:
    """The caption strip's text: in Compare mode (the window's runs, two or more) every run's
    differing settings and what they share (files.comparison_caption); otherwise the run's."""
    latest = getattr(getattr(window, "runs", None), "latest", None)
    runs = getattr(latest, "runs", None)
    if isinstance(runs, dict) and len(runs) > 1:
        return comparison_caption(runs, latest.selected)
    return caption_for(state)


def export_to(window: ExportHost, widget: QWidget, options: ExportOptions) -> Path | None:
    """Write one figure as `options` say; report the outcome. The path, or None on failure.

    The caption and a prefilled file name are taken from the state rendered now, not from the one
    the dialog opened with: training runs on while the dialog is open.
    """
    state = exported_state(window, widget)
    if options.auto_name:
        key = widget.key if isinstance(widget, Panel) else "window"
        options = dataclasses.replace(options, filename=default_filename(key, state, options.format))
    caption = figure_caption(window, widget, state) if options.caption else None
    from ui.export.render import export_figure  # pyqtgraph: not before the first export (start-up)

    QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
    try:
        path = export_figure(widget, options.path, options.format, options.size, options.theme,
                             caption)
    except ValueError as e:
        QApplication.restoreOverrideCursor()
        report_error(window, "Export failed", str(e))
        return None
    except RuntimeError as e:  # a widget deleted under us; never crash the app for a figure
        QApplication.restoreOverrideCursor()
        report_error(window, "Export failed", f"cannot render {_label(widget)}: {e}")
        return None
    QApplication.restoreOverrideCursor()
    w, h = options.size
    window.statusBar().showMessage(f"Exported {_label(widget)} ({w}×{h} {options.format.upper()}) "
                                   f"to {path}", 10000)
    return path


def _run_dialog(window: ExportHost, dialog: QDialog) -> Any:
    """Show `dialog` modally (reachable as window.export_dialog meanwhile, for tests); its
    options() when accepted, else None."""
    window.export_dialog = dialog
    try:
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        return dialog.options()
    finally:
        window.export_dialog = None
        dialog.deleteLater()


def _export_with_dialog(window: ExportHost, widget: QWidget, key: str, title: str) -> Path | None:
    options = _run_dialog(window, ExportDialog(window, window.settings, key, _source(window), title))
    return None if options is None else export_to(window, widget, options)


# ------------------------------------------------------------------------------------ actions


def export_panel(window: ExportHost) -> Path | None:
    """Export panel… (Ctrl+E): the visible panel, through the export dialog."""
    panel = window.current_panel()
    return _export_with_dialog(window, panel, panel.key, f"Export {panel.title} panel")


def export_window(window: ExportHost) -> Path | None:
    """Export window… (Ctrl+Shift+E): the whole window, its visible panel themed."""
    return _export_with_dialog(window, window, "window", "Export window")


def copy_panel(window: ExportHost) -> bool:
    """Copy panel to clipboard (Ctrl+Shift+C), at the size, theme and caption last used to export."""
    panel = window.current_panel()
    s = window.settings
    size_text = read_setting(s, "size", "{}x{}".format(*DEFAULT_SIZE))
    try:
        size = ((read_setting(s, "custom_width", DEFAULT_SIZE[0]),
                 read_setting(s, "custom_height", DEFAULT_SIZE[1]))
                if size_text == "custom" else parse_size(size_text))
        theme = read_setting(s, "theme", "slide")
        caption = (figure_caption(window, panel, exported_state(window, panel))
                   if read_setting(s, "caption", True)
                   else None)
        from ui.export.render import copy_to_clipboard, render_widget  # pyqtgraph: see export_to

        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            image = render_widget(panel, size, theme, caption)
        finally:
            QApplication.restoreOverrideCursor()
        copy_to_clipboard(image)
    except (ValueError, RuntimeError) as e:
        report_error(window, "Copy failed", str(e))
        return False
    theme_text = "as on screen" if theme == CURRENT else f"{theme} theme"
    window.statusBar().showMessage(f"Copied {_label(panel)} ({image.width()}×{image.height()}, "
                                   f"{theme_text}) to the clipboard", 8000)
    return True


def record_gif(window: ExportHost) -> GifRecorder | None:
    """Record GIF…: ask for length and file, then record the visible panel."""
    recorder = window.gif_recorder
    if recorder is not None and recorder.active:
        window.statusBar().showMessage("A GIF is already being recorded", 5000)
        return None
    panel = window.current_panel()
    options = _run_dialog(window, GifDialog(window, window.settings, panel.key, _source(window)))
    return None if options is None else start_gif(window, panel, options)


def start_gif(window: ExportHost, panel: QWidget, options: GifOptions) -> GifRecorder | None:
    """Start a GifRecorder with a cancellable, non-modal progress dialog (the app stays usable, so a
    slider can be moved while recording). The recorder, or None if it could not start."""
    from ui.export.gif import GifRecorder  # pyqtgraph: see export_to

    try:
        recorder = GifRecorder(panel, options.seconds, options.fps, options.path, options.size,
                               options.theme, parent=window)
    except ValueError as e:
        report_error(window, "Cannot record a GIF", str(e))
        return None
    progress = QProgressDialog(f"Recording {options.seconds} s of {_label(panel)}…", "Cancel", 0, 100,
                               window)
    progress.setWindowTitle("Record GIF")
    progress.setWindowModality(Qt.WindowModality.NonModal)
    progress.setAutoClose(False)
    progress.setAutoReset(False)
    progress.setMinimumDuration(0)
    progress.canceled.connect(recorder.cancel)
    window.gif_recorder = recorder
    window.gif_progress = progress

    def on_progress(percent: int, phase: str) -> None:
        text = ("Recording" if phase == "recording" else "Writing the GIF") + f"… {percent}%"
        progress.setLabelText(text)
        progress.setValue(percent)
        window.statusBar().showMessage(text, 2000)

    def close_progress() -> None:
        try:
            progress.canceled.disconnect(recorder.cancel)  # closing emits canceled()
        except (RuntimeError, TypeError):
            pass
        progress.close()
        progress.deleteLater()
        window.gif_progress = None

    def on_finished(path: str) -> None:
        close_progress()
        window.statusBar().showMessage(f"Saved GIF {path}", 10000)

    def on_failed(message: str) -> None:
        close_progress()
        if message == GifRecorder.CANCELLED:
            window.statusBar().showMessage("GIF recording cancelled; nothing written", 5000)
        else:
            report_error(window, "GIF failed", message)

    recorder.progress.connect(on_progress)
    recorder.finished.connect(on_finished)
    recorder.failed.connect(on_failed)
    progress.show()
    recorder.start()
    return recorder
