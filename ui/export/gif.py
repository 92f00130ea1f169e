"""Animated GIFs of a live panel: recorded on the GUI thread's timer as slide figures, written by a
worker thread, atomically, while training goes on."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

from PySide6.QtCore import QObject, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QStackedWidget, QTabWidget, QWidget

from regsim.files import atomic_path
from ui.export.files import (
    GIF_FPS,
    GIF_MAX_BYTES,
    GIF_MAX_FPS,
    GIF_MAX_SECONDS,
    GIF_SIZE,
    check_folder,
    check_size,
    check_target,
)
from ui.export.render import figure_margin, layout_scale, paint_widget
from ui.export.stage import export_mode, laid_out, panels_in, resolve_theme, settle, themed, warm_up_axes
from ui.panels.base import Panel
from ui.theme import SCREEN, Theme

# ------------------------------------------------------------------------------------ GIF


def fit_image(image: QImage, size: tuple[int, int], background: str) -> QImage:
    """`image` scaled into exactly `size`, aspect kept (text undistorted), centred on `background`."""
    w, h = size
    canvas = QImage(w, h, QImage.Format.Format_RGB888)
    canvas.fill(QColor(background))
    scaled = image.scaled(w, h, Qt.AspectRatioMode.KeepAspectRatio,
                          Qt.TransformationMode.SmoothTransformation)
    painter = QPainter(canvas)
    try:
        painter.drawImage((w - scaled.width()) // 2, (h - scaled.height()) // 2, scaled)
    finally:
        painter.end()
    return canvas


def to_pil(image: QImage) -> Any:
    """A Pillow RGB image holding a copy of the QImage's pixels."""
    from PIL import Image

    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    data = bytes(rgb.constBits())
    return Image.frombuffer("RGB", (rgb.width(), rgb.height()), data, "raw", "RGB",
                            rgb.bytesPerLine(), 1).copy()


class _Cancelled(Exception):
    pass


class GifRecorder(QObject):
    """Records a live panel for a few seconds and writes an animated GIF, without blocking the app.

    Frames are grabbed by a QTimer on the GUI thread (widgets may only be painted there), scaled into
    `size` and reduced to a 256-colour palette at once, so memory stays at one byte per pixel. The GIF
    is then written by a worker thread (Pillow), atomically; the GUI thread polls it for progress.
    Exactly one of `finished(path)` / `failed(message)` ends every started recording, including a
    cancelled one (`failed("cancelled")`).

    Each frame lasts 1/fps s. Pillow merges consecutive identical frames into one longer frame, so
    a GIF of a paused run has fewer frames than were grabbed; it plays for the same time.
    """

    progress = Signal(int, str)  # percent of the current phase, phase ("recording" / "writing")
    frame_captured = Signal(int)  # frames grabbed so far
    finished = Signal(str)  # path of the written GIF
    failed = Signal(str)  # why nothing was written

    CANCELLED = "cancelled"

    def __init__(self, widget: QWidget, seconds: float = 5.0, fps: int = GIF_FPS,
                 path: str | os.PathLike = "", size: tuple[int, int] = GIF_SIZE,
                 theme: str | Theme | None = "slide", parent: QObject | None = None) -> None:
        super().__init__(parent)
        seconds = float(seconds)
        if not (math.isfinite(seconds) and 0 < seconds <= GIF_MAX_SECONDS):
            raise ValueError(f"seconds = {seconds:g} is out of range; allowed: (0, {GIF_MAX_SECONDS:g}]")
        if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= GIF_MAX_FPS:
            raise ValueError(f"fps = {fps!r} is out of range; allowed: whole numbers in "
                             f"[1, {GIF_MAX_FPS}]")
        self.size = check_size(size)
        self.theme = resolve_theme(theme)
        self.path = check_target(path, "gif")
        check_folder(self.path.parent)
        self.widget = widget
        self.fps = fps
        self.total_frames = max(1, round(seconds * fps))
        need = self.total_frames * self.size[0] * self.size[1]
        if need > GIF_MAX_BYTES:
            raise ValueError(f"a GIF of {self.total_frames} frames at {self.size[0]}×{self.size[1]} "
                             f"needs about {need / 2**20:.0f} MB of memory (limit "
                             f"{GIF_MAX_BYTES / 2**20:.0f} MB): record fewer seconds, fewer frames "
                             "per second or a smaller size")
        self.state = "idle"  # idle → recording → writing → done | failed | cancelled
        self.frames: list[Any] = []
        self._panels: list[Panel] = []
        self._themes: list[tuple[Panel, Theme]] = []
        self._written = 0
        self._error: str | None = None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(max(1, round(1000 / fps)))
        self._timer.timeout.connect(self._grab)
        self._poll = QTimer(self)
        self._poll.setInterval(50)
        self._poll.timeout.connect(self._check_writer)

    @property
    def active(self) -> bool:
        """True while recording or writing."""
        return self.state in ("recording", "writing")

    def start(self) -> None:
        """Lay the panel out as a slide figure (as `render_widget` does), grab the first frame now
        and the rest on the timer.

        Each frame is the slide figure at the GIF's size: the same layout, theme, margin and hidden
        controls as a PNG export (the old frames were the live panel scaled down, ~6 px text with
        the Train/Inference buttons). Meanwhile the panel's tab shows the frames being recorded;
        the panel goes back, exactly as it was, when the recording ends.
        """
        if self.state != "idle":
            raise RuntimeError("a GifRecorder records once; make a new one")
        self.state = "recording"
        self._panels = panels_in(self.widget)
        w, h = self.size
        self._scale = layout_scale(self.size)
        pad = figure_margin(h) / self._scale
        self._content = QRectF(pad, pad, w / self._scale - 2 * pad, h / self._scale - 2 * pad)
        layout_size = QSize(max(1, round(self._content.width())),
                            max(1, round(self._content.height())))
        self._stack = ExitStack()
        try:
            self._preview = self._preview_tab()
            self._target = self._stack.enter_context(laid_out(self.widget, layout_size))
            self._stack.enter_context(themed(self._panels, self.theme, self._scale))
            self._stack.enter_context(export_mode(self.widget))
            warm_up_axes(self._target)
        except Exception as e:  # any failure must end in `failed`, not a crash
            self._fail(f"cannot prepare the panel: {e}")
            return
        self.progress.emit(0, "recording")
        self._grab()
        if self.state == "recording":
            self._timer.start()

    def _preview_tab(self) -> Callable[[QImage], None] | None:
        """While the panel is on the stage, its tab shows the recorded frames (a label at the same
        index, with the same title); removed again before the panel goes back."""
        from PySide6.QtGui import QPixmap
        from PySide6.QtWidgets import QLabel

        stack = self.widget.parentWidget()
        tabs = stack.parentWidget() if isinstance(stack, QStackedWidget) else None
        if not isinstance(tabs, QTabWidget) or tabs.indexOf(self.widget) < 0:
            return None
        index, title = tabs.indexOf(self.widget), tabs.tabText(tabs.indexOf(self.widget))
        label = QLabel("Recording…")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setMinimumSize(1, 1)
        label.setToolTip("Recording a GIF: this is the figure being recorded")

        def show(image: QImage) -> None:
            pix = QPixmap.fromImage(image).scaled(label.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                                  Qt.TransformationMode.SmoothTransformation)
            label.setPixmap(pix)

        def remove() -> None:
            blocked = tabs.blockSignals(True)
            try:
                i = tabs.indexOf(label)
                if i >= 0:
                    tabs.removeTab(i)
            finally:
                tabs.blockSignals(blocked)
            label.deleteLater()

        def insert() -> None:
            blocked = tabs.blockSignals(True)
            try:
                tabs.insertTab(index, label, title)
                tabs.setCurrentIndex(index)
            finally:
                tabs.blockSignals(blocked)

        self._stack.callback(remove)  # runs after the panel is back: LIFO, so registered first
        self._insert_preview = insert
        return show

    def cancel(self) -> None:
        """Stop now; nothing is written. A no-op once the recording has ended."""
        if self.state == "recording":
            self._timer.stop()
            self._restore_theme()
            self.frames.clear()
            self.state = "cancelled"
            self.failed.emit(self.CANCELLED)
        elif self.state == "writing":
            self._cancel.set()  # the writer stops at its next frame; _check_writer reports it

    def _restore_theme(self) -> None:
        """Put the panel back into its tab, in its own theme, exactly as it was."""
        stack, self._stack = getattr(self, "_stack", None), None
        if stack is None:
            return
        try:
            stack.close()
        except RuntimeError:  # the panel was deleted (window closed): nothing to restore
            pass
        settle()

    def _fail(self, message: str) -> None:
        self._timer.stop()
        self._poll.stop()
        self._restore_theme()
        self.frames.clear()
        self.state = "failed"
        self.failed.emit(message)

    def _grab(self) -> None:
        if self.state != "recording":
            return
        try:
            for p in self._panels:
                p.redraw()
            warm_up_axes(self._target, rounds=1)
            w, h = self.size
            image = QImage(w, h, QImage.Format.Format_RGB32)
            image.setDevicePixelRatio(self._scale)
            background = (self._panels[0].theme if self._panels else SCREEN).background
            image.fill(QColor(background))
            painter = QPainter(image)
            try:
                painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
                painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
                paint_widget(self._target, painter, self._content)
            finally:
                painter.end()
            image.setDevicePixelRatio(1.0)
            if getattr(self, "_insert_preview", None) is not None:
                self._insert_preview()
                self._insert_preview = None
            if self._preview is not None:
                self._preview(image)
            frame = to_pil(image)
            from PIL import Image

            self.frames.append(frame.quantize(256, method=Image.Quantize.FASTOCTREE))
        except (RuntimeError, ValueError, OSError) as e:
            self._fail(f"cannot grab a frame: {e}")
            return
        n = len(self.frames)
        self.frame_captured.emit(n)
        if self.state != "recording":  # a slot cancelled us
            return
        self.progress.emit(min(100, round(100 * n / self.total_frames)), "recording")
        if n >= self.total_frames:
            self._timer.stop()
            self._restore_theme()
            self._write()

    def _write(self) -> None:
        self.state = "writing"
        self.progress.emit(0, "writing")
        frames, duration = list(self.frames), max(20, round(1000 / self.fps))

        def rest() -> Iterator[Any]:
            for i, f in enumerate(frames[1:], start=2):
                if self._cancel.is_set():
                    raise _Cancelled
                self._written = i
                yield f

        def work() -> None:
            try:
                # Pillow writes to a name; a cancel or an error removes it, the old GIF stays.
                with atomic_path(self.path) as tmp:
                    self._written = 1
                    frames[0].save(tmp, format="GIF", save_all=True, append_images=rest(),
                                   duration=duration, loop=0)
            except _Cancelled:
                self._error = self.CANCELLED
            except ValueError as e:
                self._error = str(e)
            except Exception as e:  # reported to the GUI thread as `failed`
                self._error = f"cannot write the GIF: {e}"

        self._thread = threading.Thread(target=work, name="gif-writer", daemon=True)
        self._thread.start()
        self._poll.start()

    def _check_writer(self) -> None:
        thread = self._thread
        if thread is None:
            return
        if thread.is_alive():
            self.progress.emit(min(99, round(100 * self._written / len(self.frames or [0]))), "writing")
            return
        self._poll.stop()
        self._thread = None
        self.frames.clear()
        if self._error is not None:
            self.state = "cancelled" if self._error == self.CANCELLED else "failed"
            self.failed.emit(self._error)
            return
        self.state = "done"
        self.progress.emit(100, "writing")
        self.finished.emit(str(self.path))


