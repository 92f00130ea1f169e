"""Where a figure goes and what it is called: sizes, formats, folders, file names and captions, all
checked before anything is rendered. (The files themselves are written by `regsim.files`.)

No Qt here: the command line validates its arguments with these before it builds a window.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from regsim.hparams import HParams
from regsim.snapshot import Snapshot

MIN_SIDE, MAX_SIDE = 64, 8192  # pixels, per side, for every figure
DEFAULT_SIZE = (1920, 1080)  # a Full HD slide
FORMATS = ("png", "svg")
CURRENT = "current"  # theme name meaning "as on screen": keep whatever theme each panel shows now
# A slide: the frames are laid out like a PNG export (1280×720 is that figure at 2/3 scale, text
# ~20 px); 5 s at 10 fps is ~46 MB of frames in memory. 800×450 gave ~6 px text.
GIF_SIZE, GIF_FPS = (1280, 720), 10
GIF_MAX_SECONDS, GIF_MAX_FPS = 60.0, 30
GIF_MAX_BYTES = 600 * 2**20  # frames are kept in memory (1 byte per pixel) until written

OPTIMIZER_SLUGS = {("adam", "decoupled"): "adamw", ("adam", "l2"): "adam-l2",
                   ("momentum", "decoupled"): "sgdw", ("momentum", "l2"): "sgd-momentum",
                   ("sgd", "decoupled"): "sgd", ("sgd", "l2"): "sgd",
                   ("adam", "decoupled_paper"): "adamw-paper", ("momentum", "decoupled_paper"): "sgdw-paper",
                   ("sgd", "decoupled_paper"): "sgdw-paper"}
OPTIMIZER_NAMES = {("adam", "decoupled"): "AdamW", ("adam", "l2"): "Adam+L2",
                   ("momentum", "decoupled"): "SGDW", ("momentum", "l2"): "SGD+momentum",
                   ("sgd", "decoupled"): "SGD", ("sgd", "l2"): "SGD",
                   ("adam", "decoupled_paper"): "AdamW (paper: η_t·λ)",
                   ("momentum", "decoupled_paper"): "SGDW (paper: η_t·λ)",
                   ("sgd", "decoupled_paper"): "SGDW (paper: η_t·λ)"}


# ------------------------------------------------------------------------------------ validation


def check_size(size: Any) -> tuple[int, int]:
    """(width, height) as ints, each in [MIN_SIDE, MAX_SIDE]; otherwise a ValueError naming the side."""
    try:
        width, height = size
    except (TypeError, ValueError):
        raise ValueError(f"size {size!r} is not (width, height)") from None
    out = []
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{name} = {value!r} is not a whole number of pixels; "
                             f"allowed: [{MIN_SIDE}, {MAX_SIDE}]")
        if not MIN_SIDE <= value <= MAX_SIDE:
            raise ValueError(f"{name} = {value!r} is out of range; allowed: [{MIN_SIDE}, {MAX_SIDE}] "
                             "pixels")
        out.append(int(value))
    return out[0], out[1]


def parse_size(text: str) -> tuple[int, int]:
    """'1920x1080' (also '1920×1080', '1920X1080', '1920,1080') → (1920, 1080), range-checked."""
    m = re.fullmatch(r"\s*(\d+)\s*[x×X,*]\s*(\d+)\s*", str(text))
    if not m:
        raise ValueError(f"size {text!r} is not WIDTHxHEIGHT (for example 1920x1080); width and "
                         f"height must each be in [{MIN_SIDE}, {MAX_SIDE}]")
    return check_size((int(m.group(1)), int(m.group(2))))



def check_format(fmt: str) -> str:
    """'png' / 'svg' (case and a leading dot ignored); anything else is a ValueError listing both."""
    key = str(fmt).strip().lower().lstrip(".")
    if key not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    return key


def check_folder(folder: str | os.PathLike, probe: bool = True) -> Path:
    """The folder as a Path if it exists, is a folder and accepts new files (probed for real when
    `probe`: permission bits do not tell the whole story, e.g. for root or on a read-only mount)."""
    folder = Path(folder)
    if not folder.exists():
        raise ValueError(f"folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"folder {str(folder)!r} is not writable")
    if probe:
        try:
            fd, tmp = tempfile.mkstemp(prefix=".regsim-probe.", dir=folder)
        except OSError as e:
            raise ValueError(f"folder {str(folder)!r} is not writable: {e.strerror or e}") from None
        os.close(fd)
        os.unlink(tmp)
    return folder


def check_target(path: str | os.PathLike, ext: str) -> Path:
    """A file path with the right extension in an existing folder (checked before any rendering)."""
    path = Path(path)
    if path.suffix.lower() != f".{ext}":
        raise ValueError(f"file name {path.name!r} must end in .{ext}")
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a folder, not a file name")
    check_folder(path.parent, probe=False)
    return path


# ------------------------------------------------------------------------------------ names, captions


def compact_number(value: float) -> str:
    """0.01 → '1e-2', 0.0025 → '2.5e-3', 0.5 → '5e-1', 1 → '1', 0 → '0': short and sortable-ish."""
    value = float(value)
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    mantissa, exponent = f"{value:.3e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    exp = int(exponent)
    return mantissa if exp == 0 else f"{mantissa}e{exp}"


def _hparams_and_step(source: Snapshot | HParams | None) -> tuple[HParams, int | None]:
    if isinstance(source, Snapshot):
        return source.hparams, source.step
    if isinstance(source, HParams):
        return source, None
    return HParams(), None


def default_filename(panel_key: str, snapshot: Snapshot | HParams | None, ext: str) -> str:
    """`weights_p0.5_wd1e-2_adamw_step3120.png`: what, with which settings, when.

    A folder of exported figures then sorts by panel and reads as a record of the experiment; the
    optimizer slug tells AdamW (decoupled) from Adam with L2, which look alike in a caption-less plot.
    """
    hp, step = _hparams_and_step(snapshot)
    key = re.sub(r"[^A-Za-z0-9_-]+", "-", str(panel_key)).strip("-") or "figure"
    rates = hp.hidden_dropout()
    p = f"{rates[0]:g}" if len(set(rates)) <= 1 and rates else "-".join(f"{r:g}" for r in rates)
    p = p or f"{hp.dropout:g}"
    opt = OPTIMIZER_SLUGS.get((hp.optimizer, hp.decay_mode), hp.optimizer)
    ext = str(ext).strip().lower().lstrip(".")
    return f"{key}_p{p}_wd{compact_number(hp.weight_decay)}_{opt}_step{step or 0}.{ext}"


def comparison_caption(snapshots: dict[str, Snapshot], selected: str) -> str:
    """The caption of a Compare-mode figure: what each run sets differently ("A: p 0.2 · λ 0.001
    vs B: p 0.5 · λ 0.05"), then what they share (the selected run's caption without the settings
    that differ), so a comparison slide names every run it shows, not only the selected one."""
    from regsim.runs import config_diff
    from ui.run_colors import run_settings_text

    runs = {n: s.hparams for n, s in snapshots.items()}
    diff = config_diff(runs)
    per_run = run_settings_text(runs)
    head = "   vs   ".join(f"{n}: {t}" if t else n for n, t in per_run.items())
    differs = set(diff)
    drop = {"p": {"dropout", "hidden_dropout", "input_dropout"} & differs,
            "λ": {"weight_decay", "decay_mode"} & differs,
            "opt": {"optimizer", "decay_mode"} & differs, "lr": {"lr"} & differs,
            "data": {"dataset"} & differs}
    parts = caption_for(snapshots.get(selected) or next(iter(snapshots.values()))).split("   ·   ")
    shared = [part for part in parts
              if not (part.startswith("p = ") and drop["p"]) and not (part.startswith("λ = ") and drop["λ"])
              and not (part.startswith("lr = ") and drop["lr"])
              and not (part in OPTIMIZER_NAMES.values() and drop["opt"])
              and not (part == parts[0] and drop["data"])]
    return "   ·   ".join([head] + shared)


def caption_for(snapshot: Snapshot | HParams | None) -> str:
    """The caption strip under a figure: dataset, p, λ, decay mode, optimizer, lr and step.

    A slide shown weeks later must say which settings produced the curves; the strip carries them in
    the figure itself, so it survives being copied out of the deck.
    """
    hp, step = _hparams_and_step(snapshot)
    rates = hp.hidden_dropout()
    p = f"{rates[0]:g}" if len(set(rates)) <= 1 and rates else ", ".join(f"{r:g}" for r in rates)
    parts = [hp.dataset, f"p = {p or f'{hp.dropout:g}'}"]
    if hp.input_dropout:
        parts[-1] += f" (input {hp.input_dropout:g})"
    parts += [f"λ = {hp.weight_decay:g} ({hp.decay_mode})",
              OPTIMIZER_NAMES.get((hp.optimizer, hp.decay_mode), hp.optimizer),
              f"lr = {hp.lr:g}"]
    if step is not None:
        parts.append(f"step {step:,}")
    return "   ·   ".join(parts)

