"""What the app remembers between sessions (light: QtCore only, so ui.app can read it before the
window module and pyqtgraph are imported)."""

from __future__ import annotations

import json

from PySide6.QtCore import QSettings

from regsim.hparams import HParams

DEFAULT_PRESET = "moons_dropout"  # what a first launch trains


def saved_hparams(settings: QSettings) -> HParams | None:
    """The settings of the last session, or None when absent or damaged (then a preset is used)."""
    raw = settings.value("hparams", "")
    if not raw:
        return None
    try:
        return HParams.from_dict(json.loads(str(raw)))
    except (ValueError, TypeError):
        return None
