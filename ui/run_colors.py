"""The colour of each run in Compare mode, per theme (Qt-free: the run bar, panels and exports share it).

A run keeps its colour for its whole life (renames included): the window hands out colour slots as runs
are added (ui/runs.py) and frees a slot when its run is removed. Four slots: a comparison holds at most
four runs (regsim.runs.MAX_RUNS). The screen palette starts with the theme's train blue and val orange,
since a single run's curves are drawn in those.
"""

from __future__ import annotations

PALETTES = {
    "screen": ("#4e9ee8", "#f0883e", "#5cc98a", "#c57be0"),
    "slide": ("#1f5fbf", "#d9480f", "#2b8a3e", "#862e9c"),
}
GHOST = {"screen": "#9a9a9a", "slide": "#7a7a7a"}  # ghost runs: grey, dashed, behind the live runs


def run_color(slot: int, theme_name: str = "screen") -> str:
    """The colour of colour slot `slot` (0–3) in the theme called `theme_name`."""
    palette = PALETTES.get(theme_name, PALETTES["screen"])
    return palette[slot % len(palette)]


def ghost_color(theme_name: str = "screen") -> str:
    return GHOST.get(theme_name, GHOST["screen"])


def run_settings_text(runs: dict) -> dict[str, str]:
    """{run: "λ 0.3 · p 0"}: each run's values of only the settings that differ (regsim.runs
    config_diff), for small-multiple titles and per-run readouts; "" for every run when none differ."""
    from regsim.hparams import SHORT_LABELS  # here: importing the colours must stay cheap
    from regsim.runs import config_diff

    def value(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.3g}"
        if isinstance(v, (list, tuple)):
            return "×".join(str(x) for x in v) if v else "—"
        return str(v)

    diff = config_diff(dict(runs))
    return {name: " · ".join(f"{SHORT_LABELS.get(f, f.replace('_', ' '))} {value(vals[name])}"
                             for f, vals in diff.items()) for name in runs}
