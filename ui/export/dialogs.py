"""The export dialogs: what to write (format, size, theme, caption) and where, remembered between runs.

Choices live in QSettings group "export", so exporting the next figure for the same deck is Enter:
the folder is picked once, the size and theme stay, and only the file name changes — prefilled from
the panel and the live settings (`default_filename`), so successive figures do not overwrite each
other. A bad custom size is refused inside the dialog with a message naming the field, instead of
failing later in the export.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QStandardPaths
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from regsim.hparams import HParams
from regsim.snapshot import Snapshot
from ui.export.files import (
    CURRENT,
    DEFAULT_SIZE,
    GIF_FPS,
    GIF_MAX_FPS,
    GIF_MAX_SECONDS,
    GIF_SIZE,
    MAX_SIDE,
    MIN_SIDE,
    check_folder,
    default_filename,
)

GROUP = "export"
PRESET_SIZES = ((1920, 1080, "1920 × 1080 (Full HD slide)"), (3840, 2160, "3840 × 2160 (4K)"))
GIF_SIZES = ((1280, 720, "1280 × 720 (slide, 2/3 of Full HD)"), (1920, 1080, "1920 × 1080 (Full HD)"),
             (960, 540, "960 × 540"))
FORMAT_ITEMS = (("PNG image", "png"), ("SVG vector drawing", "svg"))
THEME_ITEMS = (("Slide: white background, large type", "slide"), ("As on screen", CURRENT))


def default_folder() -> str:
    """Pictures (or home) until the user picks a folder once."""
    pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
    return pictures if pictures and os.path.isdir(pictures) else str(Path.home())


def read_setting(settings: QSettings, key: str, default: Any) -> Any:
    """A value from group "export", converted to the type of `default` (INI files give strings)."""
    value = settings.value(f"{GROUP}/{key}", default)
    if isinstance(default, bool):
        return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")
    if isinstance(default, int):
        try:
            return int(value)
        except (TypeError, ValueError):
            return default
    return str(value) if value is not None else default


def write_settings(settings: QSettings, values: dict[str, Any]) -> None:
    for key, value in values.items():
        settings.setValue(f"{GROUP}/{key}", value)
    settings.sync()


@dataclass(frozen=True)
class ExportOptions:
    """What the export dialog decided."""

    format: str  # "png" or "svg"
    size: tuple[int, int]
    theme: str  # "slide" or "current" (as on screen)
    caption: bool
    folder: Path
    filename: str
    # The name is the prefilled one: the export renames it after the state it actually renders
    # (training goes on while the dialog is open; a name taken at opening named the wrong step).
    auto_name: bool = False

    @property
    def path(self) -> Path:
        return self.folder / self.filename


@dataclass(frozen=True)
class GifOptions:
    """What the GIF dialog decided."""

    seconds: int
    fps: int
    size: tuple[int, int]
    theme: str
    folder: Path
    filename: str

    @property
    def path(self) -> Path:
        return self.folder / self.filename


def _combo(items: tuple[tuple[str, Any], ...], current: Any, tip: str) -> QComboBox:
    box = QComboBox()
    for text, data in items:
        box.addItem(text, data)
    i = box.findData(current)
    box.setCurrentIndex(max(0, i))
    box.setToolTip(tip)
    return box


class _FileDialogBase(QDialog):
    """Folder (picked once, remembered) + file name + an error line + Save / Cancel."""

    def __init__(self, parent: QWidget | None, settings: QSettings, title: str) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(600)  # the prefilled file names are long; show them whole
        self.settings = settings
        self.form = QFormLayout()
        self.folder_edit = QLineEdit(read_setting(settings, "folder", default_folder()))
        self.folder_edit.setToolTip("The folder the figure goes into. Picked once, then remembered.")
        self.folder_button = QPushButton("Choose…")
        self.folder_button.setToolTip("Pick the output folder")
        self.folder_button.clicked.connect(self.choose_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(self.folder_button)
        self.name_edit = QLineEdit()
        self.name_edit.setToolTip("File name. Prefilled from the panel, p, λ, the optimizer and the "
                                  "step, so figures of one experiment do not overwrite each other.")
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c0392b; font-weight: bold;")
        self.error_label.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self._folder_row = folder_row

    def _finish_layout(self) -> None:
        self.form.addRow("Folder", self._folder_row)
        self.form.addRow("File name", self.name_edit)
        root = QVBoxLayout(self)
        root.addLayout(self.form)
        root.addWidget(self.error_label)
        root.addWidget(self.buttons)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export folder", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def _check_file(self, ext: str) -> str | None:
        try:
            check_folder(self.folder_edit.text().strip() or ".")
        except ValueError as e:
            return f"Folder: {e}"
        name = self.name_edit.text().strip()
        if not name:
            return "File name: empty; type a name such as figure." + ext
        if "/" in name or os.sep in name:
            return f"File name: {name!r} must not contain a folder separator"
        if not name.lower().endswith(f".{ext}"):
            return f"File name: {name!r} must end in .{ext}"
        return None

    def validate(self) -> str | None:
        """The first problem with the current choices, as a message naming the field; None if ok."""
        raise NotImplementedError

    def _save(self) -> None:
        raise NotImplementedError

    def accept(self) -> None:
        """Refuse with the message inside the dialog, or remember the choices and close."""
        error = self.validate()
        if error:
            self.error_label.setText(error)
            self.error_label.show()
            return
        self.error_label.hide()
        self._save()
        super().accept()


class ExportDialog(_FileDialogBase):
    """Format, size, theme, caption, folder and file name of one panel or window figure."""

    def __init__(self, parent: QWidget | None, settings: QSettings, panel_key: str = "panel",
                 snapshot: Snapshot | HParams | None = None, title: str = "Export figure") -> None:
        super().__init__(parent, settings, title)
        self.panel_key = panel_key
        self.snapshot = snapshot
        s = settings
        self.format_box = _combo(FORMAT_ITEMS, read_setting(s, "format", "png"),
                                 "PNG: pixels, pastes anywhere. SVG: vector paths and text, sharp at "
                                 "any zoom and editable in Inkscape or Illustrator.")
        size_items = tuple((text, f"{w}x{h}") for w, h, text in PRESET_SIZES) + (
            ("Custom…", "custom"),)
        self.size_box = _combo(size_items, read_setting(s, "size", "{}x{}".format(*DEFAULT_SIZE)),
                               "Pixel size of the figure. 1920 × 1080 fills a 16:9 slide; 4K for "
                               "large screens and print.")
        self.width_edit = QLineEdit(str(read_setting(s, "custom_width", DEFAULT_SIZE[0])))
        self.height_edit = QLineEdit(str(read_setting(s, "custom_height", DEFAULT_SIZE[1])))
        for edit, name in ((self.width_edit, "Width"), (self.height_edit, "Height")):
            edit.setToolTip(f"{name} in pixels, from {MIN_SIDE} to {MAX_SIDE}")
            edit.setMaximumWidth(90)
        custom_row = QHBoxLayout()
        custom_row.addWidget(QLabel("width"))
        custom_row.addWidget(self.width_edit)
        custom_row.addWidget(QLabel("height"))
        custom_row.addWidget(self.height_edit)
        custom_row.addStretch(1)
        self.theme_box = _combo(THEME_ITEMS, read_setting(s, "theme", "slide"),
                                "Slide: white background, dark text, thick lines and large fonts, "
                                "readable from the back of a room. As on screen: the dark theme.")
        self.caption_check = QCheckBox("Caption strip with the live settings")
        self.caption_check.setChecked(read_setting(s, "caption", True))
        self.caption_check.setToolTip("A strip under the figure: dataset, p, λ and decay mode, "
                                      "optimizer, lr and step, so the slide says what produced it.")
        self.form.addRow("Format", self.format_box)
        self.form.addRow("Size", self.size_box)
        self.form.addRow("Custom size", custom_row)
        self.form.addRow("Theme", self.theme_box)
        self.form.addRow("", self.caption_check)
        self._finish_layout()
        self.name_edit.setText(default_filename(panel_key, snapshot, self.format()))
        self._auto_names = {self.name_edit.text()}
        self.format_box.currentIndexChanged.connect(self._format_changed)
        self.size_box.currentIndexChanged.connect(self._size_changed)
        self._size_changed()

    # ---------------------------------------------------------------------------------- reading
    def format(self) -> str:
        return str(self.format_box.currentData())

    def custom(self) -> bool:
        return self.size_box.currentData() == "custom"

    def set_custom_size(self, width: str | int, height: str | int) -> None:
        """Choose "Custom…" with these values (as typed: validation happens on accept)."""
        self.size_box.setCurrentIndex(self.size_box.findData("custom"))
        self.width_edit.setText(str(width))
        self.height_edit.setText(str(height))

    def _size_value(self, edit: QLineEdit, name: str) -> tuple[int | None, str | None]:
        text = edit.text().strip()
        try:
            value = int(text)
        except ValueError:
            return None, (f"{name}: {text!r} is not a whole number of pixels; allowed: "
                          f"{MIN_SIDE} to {MAX_SIDE}")
        if not MIN_SIDE <= value <= MAX_SIDE:
            return None, f"{name}: {value} is out of range; allowed: {MIN_SIDE} to {MAX_SIDE} pixels"
        return value, None

    def pixel_size(self) -> tuple[int, int]:
        """The chosen pixel size (validate() first for a custom one)."""
        if self.custom():
            w, _ = self._size_value(self.width_edit, "Width")
            h, _ = self._size_value(self.height_edit, "Height")
            return (w or DEFAULT_SIZE[0], h or DEFAULT_SIZE[1])
        w, h = str(self.size_box.currentData()).split("x")
        return int(w), int(h)

    def validate(self) -> str | None:
        if self.custom():
            for edit, name in ((self.width_edit, "Width"), (self.height_edit, "Height")):
                _value, error = self._size_value(edit, name)
                if error:
                    return error
        return self._check_file(self.format())

    def options(self) -> ExportOptions:
        name = self.name_edit.text().strip()
        return ExportOptions(format=self.format(), size=self.pixel_size(),
                             theme=str(self.theme_box.currentData()),
                             caption=self.caption_check.isChecked(),
                             folder=Path(self.folder_edit.text().strip()),
                             filename=name, auto_name=name in self._auto_names)

    # ---------------------------------------------------------------------------------- reacting
    def _format_changed(self) -> None:
        """Keep the file name's extension in step with the format."""
        name = self.name_edit.text().strip()
        stem, ext = os.path.splitext(name)
        if ext.lower().lstrip(".") in ("png", "svg", "") and stem:
            auto = name in self._auto_names
            self.name_edit.setText(f"{stem}.{self.format()}")
            if auto:
                self._auto_names.add(self.name_edit.text())

    def _size_changed(self) -> None:
        on = self.custom()
        self.width_edit.setEnabled(on)
        self.height_edit.setEnabled(on)

    def _save(self) -> None:
        values: dict[str, Any] = {"format": self.format(), "size": self.size_box.currentData(),
                                  "theme": self.theme_box.currentData(),
                                  "caption": self.caption_check.isChecked(),
                                  "folder": self.folder_edit.text().strip()}
        if self.custom():
            values["custom_width"], values["custom_height"] = self.pixel_size()
        write_settings(self.settings, values)


class GifDialog(_FileDialogBase):
    """Length, frame rate, size, theme and file of a GIF recording of the live panel."""

    def __init__(self, parent: QWidget | None, settings: QSettings, panel_key: str = "panel",
                 snapshot: Snapshot | HParams | None = None) -> None:
        super().__init__(parent, settings, "Record GIF")
        s = settings
        self.seconds_spin = QSpinBox()
        self.seconds_spin.setRange(1, int(GIF_MAX_SECONDS))
        self.seconds_spin.setValue(read_setting(s, "gif_seconds", 5))
        self.seconds_spin.setSuffix(" s")
        self.seconds_spin.setToolTip("How long to record. Keep training running (Space) — and move a "
                                     "slider while recording to show its effect.")
        self.fps_spin = QSpinBox()
        self.fps_spin.setRange(1, GIF_MAX_FPS)
        self.fps_spin.setValue(read_setting(s, "gif_fps", GIF_FPS))
        self.fps_spin.setSuffix(" fps")
        self.fps_spin.setToolTip("Frames per second. 10 is smooth enough for training curves and "
                                 "keeps the file small.")
        self.size_box = _combo(tuple((text, f"{w}x{h}") for w, h, text in GIF_SIZES),
                               read_setting(s, "gif_size", "{}x{}".format(*GIF_SIZE)),
                               "Frame size; the panel is scaled into it, aspect kept. GIFs grow fast: "
                               "stay modest.")
        self.theme_box = _combo(THEME_ITEMS, read_setting(s, "gif_theme", "slide"),
                                "Slide: the same white, large-type figure as a PNG export. As on "
                                "screen keeps the dark theme.")
        self.form.addRow("Length", self.seconds_spin)
        self.form.addRow("Frame rate", self.fps_spin)
        self.form.addRow("Size", self.size_box)
        self.form.addRow("Theme", self.theme_box)
        self._finish_layout()
        self.name_edit.setText(default_filename(panel_key, snapshot, "gif"))

    def validate(self) -> str | None:
        return self._check_file("gif")

    def options(self) -> GifOptions:
        w, h = str(self.size_box.currentData()).split("x")
        return GifOptions(seconds=self.seconds_spin.value(), fps=self.fps_spin.value(),
                          size=(int(w), int(h)), theme=str(self.theme_box.currentData()),
                          folder=Path(self.folder_edit.text().strip()),
                          filename=self.name_edit.text().strip())

    def _save(self) -> None:
        write_settings(self.settings, {"gif_seconds": self.seconds_spin.value(),
                                       "gif_fps": self.fps_spin.value(),
                                       "gif_size": self.size_box.currentData(),
                                       "gif_theme": self.theme_box.currentData(),
                                       "folder": self.folder_edit.text().strip()})
