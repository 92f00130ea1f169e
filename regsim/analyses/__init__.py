"""On-demand analyses of a live run: one contract (base.py), one explicit registry, one runner.

    import regsim
    regsim.list_analyses()                       # ["landscape"]
    res = regsim.analyze(trainer, "landscape", resolution=31, span=0.5)

`ANALYSES` maps a name to its `AnalysisSpec` (Request, Result, compute, title, description), built
from `TABLE`, one row per analysis written out by hand, not discovered: adding an analysis is one
module plus one row here. The engine runs the same specs as background jobs (regsim.analyses.jobs).
Importing this package does not import torch.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Protocol

from . import (
    calibration,
    coadaptation,
    ensemble,
    flat_weights,
    hessian,
    hessian_plane,
    landscape,
    mc_dropout,
    sweep,
)
from .base import AnalysisSpec, Progress, RunView, drain

__all__ = ["ANALYSES", "AnalysisSpec", "Progress", "RunView", "analyze", "list_analyses", "spec"]

# One row per analysis: (module, its Request class, its Result class, title, description). The
# registry name is the module's name and `compute` its function: adding an analysis is one module
# plus one row here.
TABLE: tuple[tuple[ModuleType, str, str, str, str], ...] = (
    (landscape, "LandscapeRequest", "LandscapeResult", "Loss surface",
     "The loss (and the decay term) on a filter-normalized 2-D slice around the current weights, "
     "with the recent path projected onto it (Li et al. 2018)."),
    (ensemble, "EnsembleRequest", "EnsembleResult", "Ensemble of sub-networks",
     "Every dropout mask of one layer (2ⁿ sub-networks, n ≤ 16; else sampled) and their arithmetic "
     "mean, normalized geometric mean and the weight-scaled network."),
    (mc_dropout, "MCRequest", "MCResult", "MC dropout",
     "Dropout kept on at inference, T passes (Gal & Ghahramani 2016): mean and spread for "
     "regression, predictive entropy and mutual information for classification."),
    (calibration, "CalibrationRequest", "CalibrationResult", "Calibration",
     "Reliability diagrams (uniform and equal-mass bins), ECE and MCE of the weight-scaled network "
     "and of MC dropout, side by side."),
    (hessian, "HessianRequest", "HessianResult", "Hessian eigen-directions",
     "Top-k eigenvalues and eigenvectors of the training loss's Hessian by Lanczos on Hessian-vector "
     "products (train or eval mode), a Hutchinson trace and optionally the spectral density by "
     "stochastic Lanczos quadrature."),
    (flat_weights, "FlatWeightsRequest", "FlatWeightsResult", "Flat weights",
     "The run's parameters as one vector, with the L2 coefficient α its optimizer's fixed points "
     "obey (for the Hessian panel's selective shrinkage)."),
    (sweep, "SweepRequest", "SweepResult", "lr × λ sweep",
     "A grid of short fresh runs of the run's settings per (decay variant, lr, λ, seed): final "
     "validation error, its spread over seeds, the best λ per lr (L&H 2019 Fig. 2)."),
    (hessian_plane, "HessianPlaneRequest", "HessianPlaneResult", "Hessian plane",
     "The loss on the plane of the top two Hessian eigenvectors around the current weights, with "
     "the decay's pull and the origin's projection (Constraint geometry)."),
    (coadaptation, "CoadaptationRequest", "CoadaptationResult", "Co-adaptation",
     "Each hidden unit of a layer removed alone (mask 0, eval mode) and in pairs: the loss increase "
     "ΔL_i and the interaction ΔL_ij − ΔL_i − ΔL_j of every pair."),
)


def registry(rows: tuple[tuple[ModuleType, str, str, str, str], ...]) -> dict[str, AnalysisSpec]:
    """{name: AnalysisSpec} from table rows, in row order (see TABLE)."""
    specs: dict[str, AnalysisSpec] = {}
    for module, request, result, title, description in rows:
        name = module.__name__.rpartition(".")[2]
        specs[name] = AnalysisSpec(name=name, title=title, description=description,
                                   Request=getattr(module, request), Result=getattr(module, result),
                                   compute=module.compute)
    return specs


ANALYSES: dict[str, AnalysisSpec] = registry(TABLE)


class _HasView(Protocol):
    def view(self) -> RunView: ...


def spec(name: str) -> AnalysisSpec:
    """The registered analysis `name`; ValueError listing the known names otherwise."""
    found = ANALYSES.get(name) if isinstance(name, str) else None
    if found is None:
        raise ValueError(f"analysis = {name!r} is not known; choose one of: {', '.join(ANALYSES)}")
    return found


def list_analyses() -> list[str]:
    """The names `analyze` accepts, in registry order."""
    return list(ANALYSES)


def analyze(trainer: _HasView, name: str, **params: Any) -> Any:
    """Run analysis `name` on `trainer`'s current state now and return its Result (synchronous,
    for scripts and notebooks; the engine runs the same computation as a background job).

    `params` are the analysis's Request fields; a bad one raises ValueError naming it. The run is
    read through `trainer.view()`, a copy: the trainer is left exactly as it was."""
    s = spec(name)
    request = s.request(params)
    return drain(s.compute(trainer.view(), request))

