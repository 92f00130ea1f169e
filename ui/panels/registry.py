"""Every panel of the app, in one place: the window's navigation, the export CLI and the panel
contract test all read this registry, so adding a panel is one module plus one line here.

A spec names its module and class instead of importing them: building the window must not import
every panel (and pyqtgraph with them) before the window is on screen.

`needs` says which heavy snapshot parts the panel draws (see `regsim.snapshot.PARTS`), so the
engine measures only what the visible panels need.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ui.panels.base import Panel

# The chapters of the window, in navigation order (issue 9: 12–16 panels will not fit one tab row).
CHAPTERS = ("Training", "Dropout", "Weight decay", "Optimizers", "Transformers")


@dataclass(frozen=True)
class PanelSpec:
    key: str  # short name: file names, `--panels training,weights`, QSettings
    title: str  # tab text
    chapter: str  # one of CHAPTERS
    module: str  # the panel's module, imported on first use
    cls_name: str  # the Panel subclass in that module
    needs: frozenset[str] = frozenset()  # heavy snapshot parts it draws (regsim.snapshot.PARTS)
    tooltip: str = ""  # one line shown on the tab: what the panel shows

    def load(self) -> type[Panel]:
        """The panel class (imports its module)."""
        return getattr(importlib.import_module(self.module), self.cls_name)


PANELS: tuple[PanelSpec, ...] = (
    PanelSpec("training", "Training", "Training", "ui.panels.training", "TrainingPanel",
              frozenset({"eval", "data"}),
              "Train and validation loss and accuracy, the gap between them, and the model's view "
              "of the data"),
    PanelSpec("weights", "Weights", "Weight decay", "ui.panels.weights", "WeightsPanel",
              frozenset({"eval", "histograms"}),
              "Weight histograms per layer, their norms and percentile bands over time"),
    PanelSpec("constraint", "Constraint geometry", "Weight decay", "ui.panels.constraint",
              "ConstraintPanel", frozenset(),
              "Weight decay on a 2-D quadratic: the optimum w_λ = (H + λI)⁻¹Hw*, its path as λ grows, "
              "GD + L2 and AdamW converging"),
    PanelSpec("prior", "Bayesian view", "Weight decay", "ui.panels.prior", "PriorPanel",
              frozenset({"histograms"}),
              "Weight decay as the Gaussian prior N(0, 1/(Nλ)) over a layer's live weight histogram"),
    PanelSpec("hessian", "Hessian eigen-directions", "Weight decay", "ui.panels.hessian", "HessianPanel",
              frozenset(), "Top-k Hessian eigenvalues by Lanczos (train vs eval mode), SLQ density, and "
              "decay's shrink λᵢ/(λᵢ+α) per eigen-direction against two runs"),
    PanelSpec("compression", "Compression over time", "Weight decay", "ui.panels.compression",
              "CompressionPanel", frozenset({"histograms"}),
              "The weight histogram on a fixed axis replayed over the run, with the shrink (1 − ηλ) "
              "per step, the half-life and ‖W‖"),
    PanelSpec("dropout", "Dropout masks", "Dropout", "ui.panels.dropout", "DropoutPanel",
              frozenset({"masks"}),
              "The masks dropout drew on the last minibatch and what they do to one example"),
    PanelSpec("scratch", "Dropout from scratch", "Dropout", "ui.panels.scratch", "ScratchPanel",
              frozenset({"scratch"}), "The NumPy forward and backward of inverted dropout; click a "
              "line for its values on the live batch, beside the run's module and nn.Dropout"),
    PanelSpec("uncertainty", "MC dropout", "Dropout", "ui.panels.mc_dropout", "MCDropoutPanel",
              frozenset({"data"}), "Dropout kept on at inference: mean and σ bands, entropy and "
              "mutual information maps, the most and least certain digits"),
    PanelSpec("ensemble", "Sub-network ensemble", "Dropout", "ui.panels.ensemble", "EnsemblePanel",
              frozenset({"data"}), "All 2ⁿ dropout masks of one layer: arithmetic vs geometric mean vs "
              "the weight-scaled net, and single sub-networks' accuracy against the ensemble's"),
    PanelSpec("calibration", "Calibration", "Dropout", "ui.panels.calibration", "CalibrationPanel",
              frozenset(), "Reliability diagrams, ECE and MCE of the weight-scaled net and of MC "
              "dropout side by side, uniform or equal-mass bins"),
    PanelSpec("coadaptation", "Co-adaptation", "Dropout", "ui.panels.coadaptation", "CoadaptationPanel",
              frozenset(), "Hidden units removed one at a time and in pairs: the loss increase and the "
              "pair interaction ΔL_ij − ΔL_i − ΔL_j, with vs without dropout"),
    PanelSpec("landscape", "Loss surface", "Optimizers", "ui.panels.loss_surface",
              "LossSurfacePanel", frozenset({"eval"}),
              "The loss around the current weights on a 2-D plane, with the optimizer's path"),
    PanelSpec("update_code", "Update rule as code", "Optimizers", "ui.panels.update_code",
              "UpdateCodePanel", frozenset({"update_code", "param_groups"}),
              "Adam+L2 and AdamW (or SGD+L2 and SGDW) as ten lines of code, with the values of every "
              "line for a parameter you pick in the live model"),
    PanelSpec("no_decay", "Decay groups", "Optimizers", "ui.panels.no_decay", "NoDecayPanel",
              frozenset({"param_groups"}), "The decay / no_decay parameter groups live: which tensors, "
              "how many parameters, each group's λ; toggle which kinds are decayed"),
    PanelSpec("race", "The race", "Optimizers", "ui.panels.race", "RacePanel", frozenset({"optstate"}),
              "Adam+L2, AdamW, SGD+L2 and SGDW raced on a 2-D loss, then the decay each weight of the "
              "live Adam+L2 and AdamW runs receives"),
    PanelSpec("sweep", "lr × λ sweep", "Optimizers", "ui.panels.sweep", "SweepPanel", frozenset(),
              "Final val error over an lr × λ grid of short runs per decay variant (L&H Fig. 2): the "
              "best λ per lr, the 10 best cells, the spread over seeds"),
    PanelSpec("grokking", "Grokking", "Transformers", "ui.panels.grokking", "GrokkingPanel",
              frozenset({"eval"}), "a ∘ b mod p: train accuracy at 100 % long before val jumps; "
              "the weight norm and the \"grokked at step N\" marker, λ beside λ = 0"),
    PanelSpec("transformer_sites", "Dropout sites", "Transformers", "ui.panels.transformer_sites",
              "TransformerSitesPanel", frozenset({"transformer"}),
              "The transformer block with its four dropout sites (embd, attn, resid, ffn), their live "
              "p, this batch's attention with the dropped connections and the residual-stream masks"),
    PanelSpec("recipe", "The recipe", "Transformers", "ui.panels.recipe", "RecipePanel",
              frozenset({"eval"}), "The LLaMA recipe against the original Transformer's in lockstep: "
              "the lr schedule with the current step, accuracy, clip events"),
)


def panel_spec(key: str) -> PanelSpec:
    """The spec with `key`; a ValueError naming the allowed keys otherwise."""
    for spec in PANELS:
        if spec.key == key:
            return spec
    raise ValueError(f"unknown panel {key!r}; allowed: {', '.join(s.key for s in PANELS)}")


def panel_keys() -> tuple[str, ...]:
    return tuple(s.key for s in PANELS)
