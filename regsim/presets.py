"""Presets: named HParams stored as JSON data in resources/presets/ (never code).

A preset file is {"description": "...", "hparams": {field: value, ...}}. Unknown keys and values of
the wrong type fail with a message naming them, through the same checks as `HParams`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .files import atomic_write_text, read_bundled_json
from .hparams import HParams

PRESET_DIR = Path(__file__).resolve().parent.parent / "resources" / "presets"


def list_presets(directory: Path | None = None) -> dict[str, str]:
    """{name: description} of every preset, sorted by name."""
    directory = directory or PRESET_DIR
    out = {}
    for path in sorted(directory.glob("*.json")):
        try:
            out[path.stem] = str(json.loads(path.read_text("utf-8")).get("description", ""))
        except (OSError, ValueError, AttributeError):
            out[path.stem] = "(unreadable)"
    return out


def parse_preset(data: Any, source: str = "preset") -> HParams:
    """HParams from a preset's parsed JSON; errors name the source and the offending key."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object with an 'hparams' object")
    extra = sorted(set(data) - {"description", "hparams", "name"})
    if extra:
        raise ValueError(f"{source}: unknown top-level key {extra[0]!r}; allowed: description, "
                         "hparams, name")
    hp = data.get("hparams", {})
    if not isinstance(hp, dict):
        raise ValueError(f"{source}: 'hparams' must be a JSON object")
    try:
        return HParams.from_dict(hp)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None


def load_preset(name_or_path: str | Path) -> HParams:
    """Load a bundled preset by name, or any preset file by path."""
    data, path = read_bundled_json(name_or_path, PRESET_DIR, "preset", list_presets)
    return parse_preset(data, f"preset {path.stem!r}")


def save_preset(hparams: HParams, path: Path, description: str = "") -> None:
    """Write a preset whole or not at all (`regsim.files`); a ValueError names the file and why."""
    text = json.dumps({"description": description, "hparams": hparams.to_dict()}, indent=2)
    atomic_write_text(path, text + "\n")
