"""regsim: watch dropout and weight decay work on real training. The core; it never imports Qt.

`HParams`, `load_preset` and `list_presets` are light. `Trainer` and `Comparison` (runs side by side
in lockstep) pull in torch, so they are loaded on first use: the GUI process can import `regsim` for
its data types without paying for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .hparams import HParams
from .presets import list_presets, load_preset

if TYPE_CHECKING:
    from .comparison import Comparison
    from .trainer import Trainer

__all__ = ["Comparison", "HParams", "Trainer", "load_preset", "list_presets"]


def __getattr__(name: str) -> Any:
    if name == "Trainer":
        from .trainer import Trainer

        return Trainer
    if name == "Comparison":
        from .comparison import Comparison

        return Comparison
    raise AttributeError(f"module 'regsim' has no attribute {name!r}")
