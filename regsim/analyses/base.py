"""The contract every on-demand analysis follows (modelled on superqt's generator workers).

An analysis is one module under `regsim/analyses/` with
- a frozen `Request`: its settings, validated in `__post_init__` (errors name the field and the
  allowed range, like HParams);
- a frozen `Result`: numpy arrays and plain numbers only, so it pickles across a process boundary
  and the UI can draw it without torch;
- `compute(run: RunView, request) -> Generator[Progress, None, Result]`: a generator that yields
  `Progress` often (every few milliseconds of work) and returns the Result.

Because `compute` is a generator, whoever drives it decides when it runs: `regsim.analyze` drains it
at once (scripts, notebooks); the engine's job runner (regsim.analyses.jobs) advances it in slices of
~15 ms between training chunks, so training and controls never freeze, and cancels it by closing it.

An analysis sees the run only through a `RunView` (`Trainer.view()`): a consistent copy of the
network, the data, the recorded trajectory and the optimizer's settings at one step. It never gets
the Trainer, so no analysis imports it and the trainer imports no analysis. Torch is imported only
where an analysis computes, never at import time: the GUI process unpickles results with
`regsim.analyses` loaded and torch absent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from ..hparams import HParams


class NotApplicable(ValueError):
    """The analysis cannot run on this run's network or task (an MLP-only analysis on the conv net,
    a softmax analysis on a regression): the job runner shows its message as it is, not as a
    failure with an exception's type name, and panels say it instead of an error."""


def require(run: RunView, title: str, mlp: bool = True, classification: bool = False) -> None:
    """Raise NotApplicable naming what `title` needs that this run lacks."""
    arch = getattr(run.hparams, "architecture", "mlp")
    if mlp and arch != "mlp":
        raise NotApplicable(f"{title} is computed on an MLP's Linear layers; this run is the conv net "
                            f"(architecture = {arch!r}). Choose architecture = 'mlp' to use it.")
    if classification and run.task != "classification":
        raise NotApplicable(f"{title} needs a classification run (softmax outputs); this run is a "
                            "regression.")


@dataclass(frozen=True)
class Progress:
    """What an analysis yields: how far it is, and optionally a partial Result worth showing."""

    done: int  # units of work finished (an analysis's own unit, e.g. grid points)
    total: int  # units in all; done == total only once the Result is about to be returned
    partial: Any | None = None  # a Result to show already (e.g. a coarse preview), or None


@dataclass(frozen=True)
class RunView:
    """A read-only view of one run at one step: all an analysis may look at.

    Made by `Trainer.view()` as a copy where training would otherwise change it under a job that runs
    across many training chunks: the network is a deep copy (its weights, its LayerNorm parameters)
    and the optimizer's state is cloned, so a job sees one consistent θ and can never change the
    live model, its optimizer state, its random streams or its step count. The data tensors and the
    trajectory's points are shared (training never writes to them).
    """

    model: torch.nn.Module  # a private copy of the network at `step`, in eval mode
    loss: Callable[..., torch.Tensor]  # loss(out, y, reduction="mean"): the run's task loss
    x_train: torch.Tensor  # (N, D) the training split, on the run's device
    y_train: torch.Tensor  # (N,) classes or (N, 1) regression targets
    x_val: torch.Tensor  # (M, D)
    y_val: torch.Tensor  # (M,) or (M, 1)
    trajectory: tuple[tuple[int, torch.Tensor], ...]  # (step, flat weights (n,)), oldest first
    hparams: HParams  # the settings in force at `step`
    optimizer: str  # the optimizer's family: "adam" (torch.optim.Adam) or "sgd" (torch.optim.SGD)
    # The optimizer's param_groups as plain data, for the decay term: each group's settings
    # (weight_decay, momentum, betas, eps, decoupled_weight_decay, regsim_decoupled_wd, lr, name),
    # "params": the indices of its parameters in model.parameters(), "state": per parameter a
    # dict of cloned state tensors (Adam: exp_avg, exp_avg_sq, step; SGD: momentum_buffer).
    param_groups: tuple[dict, ...]
    step: int  # optimizer steps taken when the view was made
    task: str = "classification"  # "classification" or "regression"


def build_request(name: str, cls: type, params: Mapping[str, Any]) -> Any:
    """`cls(**params)`, with an unknown key named (and the known ones listed) instead of a TypeError.

    The Request's own __post_init__ checks each value's range."""
    if not isinstance(params, Mapping):
        raise ValueError(f"{name} settings must be a mapping of field → value, not {params!r}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"unknown {name} setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
    return cls(**params)


def drain(gen: Generator[Progress, None, Any] | Any) -> Any:
    """Run an analysis generator to the end and return its Result (a plain value passes through)."""
    if not hasattr(gen, "send"):
        return gen
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


@dataclass(frozen=True)
class AnalysisSpec:
    """One entry of the registry (regsim.analyses.ANALYSES)."""

    name: str  # the key commands and `regsim.analyze` use, e.g. "landscape"
    title: str  # a few words for menus and progress text
    description: str  # one sentence: what it computes
    Request: type  # the frozen request dataclass (validated in __post_init__)
    Result: type  # the frozen result dataclass (numpy arrays and plain numbers)
    compute: Callable[[RunView, Any], Generator[Progress, None, Any]]  # see the module docstring

    def request(self, params: Mapping[str, Any] | None = None) -> Any:
        """A validated Request from plain settings; ValueError names the field and its range."""
        return build_request(self.name, self.Request, params or {})
