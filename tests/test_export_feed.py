"""`python main.py export` draws the trained run: the curves and frames are in the exported PNGs.

Since Compare mode the window keeps one History per run, filled from the run-addressed
("snapshots") message; the export fed only `window.on_snapshot`, so every History stayed empty and
the figures of a trained run read "press Space to train". These tests open the written PNGs and
look for the run's colour inside the plots. The panels whose analysis runs on demand (Compute) get
it computed for the figure (ui.export.cli.compute_panel_analyses) instead of showing "press Compute".
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ui.app import headless_window
from ui.export.cli import run_export
from ui.theme import SLIDE

W, H = 960, 540


def saturated(pixels: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Share of strongly coloured pixels (curves, fills: not the white, grey or black of the
    background, grid and text) in the box (x0, y0, x1, y1), given as fractions of the figure."""
    x0, y0, x1, y1 = (int(round(f * n)) for f, n in zip(box, (W, H, W, H), strict=True))
    region = pixels[y0:y1, x0:x1].astype(int)
    chroma = region.max(axis=2) - region.min(axis=2)
    return float((chroma > 60).mean())


def near(pixels: np.ndarray, hex_colour: str, box) -> int:
    x0, y0, x1, y1 = (int(round(f * n)) for f, n in zip(box, (W, H, W, H), strict=True))
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels[y0:y1, x0:x1].astype(int) - rgb).max(axis=2) < 40).sum())


@pytest.mark.slow  # ~35 s on the loaded 2-core machine: the window builds every panel
def test_exported_figures_draw_the_trained_run(tmp_path, capsys):
    out = tmp_path / "figs"
    argv = ["--preset", "moons_dropout", "--steps", "30", "--out", str(out), "--device", "cpu",
            "--panels", "training,weights,compression,calibration", "--size", f"{W}x{H}", "--no-caption"]
    assert run_export(argv, headless_window) == 0, capsys.readouterr().err
    # The on-demand analysis ran for its figure (the panel's own Compute request, run here).
    assert "calibration: result in" in capsys.readouterr().out
    figs = {p.name.split("_")[0]: np.asarray(Image.open(p).convert("RGB")) for p in out.glob("*.png")}
    assert set(figs) == {"training", "weights", "compression", "calibration"}
    # Training: the loss plot (left, under the legend) holds the train curve and the shaded gap;
    # an empty History left only grid lines and the "press Space to train" hint there (0.0 %).
    loss_box = (0.08, 0.2, 0.58, 0.5)
    assert near(figs["training"], SLIDE.train, loss_box) > 100  # 250 at 30 steps; 0 before the fix
    assert saturated(figs["training"], loss_box) > 0.008  # 1.7 % at 30 steps
    # Weights: the norm curves (right, top) come from the History too.
    assert saturated(figs["weights"], (0.62, 0.15, 0.98, 0.5)) > 0.005
    # Compression: the frames are in the History; the histogram plot is filled.
    assert near(figs["compression"], SLIDE.train, (0.06, 0.1, 0.6, 0.85)) > 300
