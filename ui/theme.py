"""Colours, line widths and fonts for the screen and for slides.

Panels build their plots from a `Theme` and re-style themselves in `Panel.apply_theme`, so an export in
the slide theme (white background, dark text, thick lines, large fonts) is the same live panel restyled,
not a second drawing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Theme:
    name: str  # "screen" or "slide"
    background: str  # plot background colour
    foreground: str  # axes, text
    line_width: float  # width of data curves in pixels
    font_pt: int  # axis label / tick font size
    title_pt: int  # plot title font size
    train: str  # colour of training curves / points
    val: str  # colour of validation curves / points
    accent: str  # markers, highlights, the optimizer path
    gap: tuple[int, int, int, int]  # RGBA fill of the generalization gap
    grid_alpha: float  # 0..1 opacity of grid lines
    colormap: str  # pyqtgraph colormap name for images and surfaces
    antialias: bool  # smooth lines: crisp on slides, but ~3× the paint cost of a live frame


SCREEN = Theme(name="screen", background="#1e1f24", foreground="#d8d8d8", line_width=2.0, font_pt=10,
               title_pt=12, train="#4e9ee8", val="#f0883e", accent="#e8d44e",
               gap=(240, 136, 62, 60), grid_alpha=0.15, colormap="viridis",
               antialias=False)

SLIDE = Theme(name="slide", background="#ffffff", foreground="#111111", line_width=4.0, font_pt=22,
              title_pt=26, train="#1f5fbf", val="#d9480f", accent="#b8860b",
              gap=(217, 72, 15, 50), grid_alpha=0.25, colormap="viridis",
              antialias=True)

THEMES = {"screen": SCREEN, "slide": SLIDE}
