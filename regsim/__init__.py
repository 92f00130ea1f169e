"""regsim: watch dropout and weight decay work on real training. The core; it never imports Qt.

`HParams`, `load_preset` and `list_presets` are light. `Trainer` and `Comparison` (runs side by side
in lockstep) pull in torch, so they are loaded on first use: the GUI process can import `regsim` for
its data types without paying for torch.
`analyze(trainer, name, **params)` and `list_analyses()` (regsim.analyses) are loaded on first use
too; importing them does not import torch (an analysis imports it when it computes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .hparams import HParams
from .presets import list_presets, load_preset

if TYPE_CHECKING:
    from .analyses import analyze, list_analyses
    from .comparison import Comparison
    from .trainer import Trainer

__all__ = ["Comparison", "HParams", "Trainer", "analyze", "list_analyses", "load_preset",
           "list_presets"]


def __getattr__(name: str) -> Any:
    if name == "Trainer":
        from .trainer import Trainer

        return Trainer
    if name == "Comparison":
        from .comparison import Comparison

        return Comparison
    if name in ("analyze", "list_analyses"):
        from . import analyses

        return getattr(analyses, name)
    raise AttributeError(f"module 'regsim' has no attribute {name!r}")
