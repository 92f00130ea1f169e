"""The "optstate" snapshot part: the decay each weight of the live model receives per step.

The fraction of a weight θ that one optimizer step takes away (its *effective decay*), read from the
optimizer's own state as torch.optim keeps it (η_t = the lr this step ran with, c the torch coefficient
in the param_group, λ the user's; see regsim/optim.py):

- Adam + L2 (torch.optim.Adam, weight_decay = λ): λθ joins the gradient and is divided by √v̂ like it,
  so the fraction is  η_t·λ / (√v̂ + ε),  v̂ = exp_avg_sq / (1 − β₂^step): per element, uneven.
  (The λθ term also sits in m; at a steady state m̂ ≈ g + λθ, so this is the L2 term "after the
  division", the value the Code panel shows as l2_after.)
- AdamW as PyTorch does it (decoupled_weight_decay, weight_decay = λ): η_t·λ, every element alike.
- AdamW as the paper does it (weight_decay = c = λ/lr): η_t·c = η_t/lr·λ, the schedule multiplier
  times λ, again every element alike.
- SGD + L2: η_t·λ (with momentum μ it is carried along and adds up to ~η_t·λ/(1 − μ)); SGD with
  decoupled decay: η_t·c.

Only the weight matrices (model.weight_layers(), what the Weights panel shows) are counted. The part
carries, per run, a histogram of log₁₀(effective decay) on fixed edges (so runs compare bin by bin),
its per-layer medians, and the measured claim "weights with large gradients get less decay":
the mean effective decay of the decile with the largest √v̂ (√v̂ ≥ its k-th largest value, k = n/10)
over that of the decile with the smallest (√v̂ ≤ its k-th smallest): 1 for every decoupled run,
≪ 1 for Adam + L2; and the correlation of log effective decay with log √v̂ (0 where the decay is
uniform). Measured on digits 64-256-256-10 (85 k weights), one thread of a loaded 2-core machine:
~35 ms per measurement (`python main.py bench --only race`), so while a run trains it is measured
within the snapshot budget (OptStateCache), not at every snapshot.

No torch import at module level: the GUI unpickles `OptState` without torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

# log₁₀ effective decay per step: 1e-10 … 10, 8 bins a decade. Adam+L2 reaches past 1 (lr/|θ| where
# a weight's data gradient is 0: then v̂ holds only (λθ)², and λθ/√v̂ ≈ sign θ, Adam's full step).
EDGES = np.linspace(-10.0, 1.0, 89)
FLOOR = 1e-12  # a decay of 0 (λ = 0) is counted at log₁₀ = -12, i.e. below the first bin


@dataclass(frozen=True)
class OptState:
    """One run's effective decay per weight at one step (numpy only)."""

    step: int  # optimizer steps taken
    rule: str  # "Adam+L2", "AdamW", "AdamW (paper)", "SGD+L2", "SGDW", "SGDW (paper)"
    layer_names: tuple[str, ...]  # the weight matrices, input to output
    edges: np.ndarray  # (B + 1,) log₁₀ bin edges (EDGES)
    counts: np.ndarray  # (B,) weights per bin, all layers (values outside the edges go to the ends)
    layer_median: np.ndarray  # (L,) per layer: the median effective decay
    layer_norms: np.ndarray  # (L,) per layer: ‖W‖_F at this step
    mean: float  # mean effective decay over all weights
    decile_ratio: float  # mean decay of the top-√v̂ decile ÷ the bottom decile's (nan: no state yet)
    corr: float  # Pearson correlation of log₁₀ decay with log₁₀ √v̂ (0 when uniform, nan: no state)
    uniform: bool  # every weight gets the same fraction (decoupled, or SGD)
    # The other rule on the same state, for a run shown alone: Adam runs' histogram of η_t·λ/(√v̂ + ε)
    # (what L2 would take from these weights with this v̂; zeros for SGD), and η_t·λ (what PyTorch's
    # decoupled decay would take from every weight), λ the user's (regsim.optim.LAMBDA_KEY).
    counts_l2: np.ndarray | None = None
    decoupled_rate: float = float("nan")
    note: str = ""  # why something is missing ("no optimizer step yet")


def rule_of(group: dict) -> str:
    """The regsim.rules name of the update a param_group follows."""
    from .optim import MODE_KEY

    mode = group.get(MODE_KEY, "l2")
    family = "Adam" if "betas" in group else "SGD"
    if mode == "l2":
        return f"{family}+L2"
    name = "AdamW" if family == "Adam" else "SGDW"
    return f"{name} (paper)" if mode == "decoupled_paper" else name


def effective_decay(optimizer: Any, param: Any) -> tuple[Any, Any]:
    """(effective decay, √v̂) for one parameter tensor, from the optimizer's state; torch tensors of
    the parameter's shape. √v̂ is None for the SGD family (no second moment); before Adam's first
    step v̂ is unknown and both are None."""
    import torch

    from .optim import DECAY_KEY

    group = next((g for g in optimizer.param_groups if any(p is param for p in g["params"])), None)
    if group is None:
        raise ValueError("the parameter is not in this optimizer's param_groups")
    lr = float(group["lr"])
    with torch.no_grad():
        if "betas" in group:
            state = optimizer.state.get(param, {})
            if "exp_avg_sq" not in state:
                return None, None
            t = float(state["step"])
            b2 = float(group["betas"][1])
            root = (state["exp_avg_sq"] / (1 - b2 ** t)).sqrt()  # √v̂
            wd = float(group["weight_decay"])
            if group.get("decoupled_weight_decay", False):
                return torch.full_like(param, lr * wd, dtype=torch.float64), root
            return lr * wd / (root + float(group["eps"])), root
        wd = float(group.get(DECAY_KEY, 0.0)) or float(group["weight_decay"])
        return torch.full_like(param, lr * wd, dtype=torch.float64), None


def measure(model: Any, optimizer: Any, step: int) -> OptState:
    """The part for one run: histogram, per-layer medians and norms, the decile ratio, the
    correlation; one host transfer."""
    import torch

    from .optim import LAMBDA_KEY

    layers = model.weight_layers()
    names = tuple(getattr(model, "layer_names", ())) or tuple(f"layer {i + 1}" for i in range(len(layers)))
    weights = [lay.weight for lay in layers]
    group = next(g for g in optimizer.param_groups if any(p is weights[0] for p in g["params"]))
    rule = rule_of(group)
    pairs = [effective_decay(optimizer, w) for w in weights]
    with torch.no_grad():
        norms = torch.stack([torch.linalg.vector_norm(w) for w in weights]).double().cpu().numpy()
        if any(d is None for d, _ in pairs):
            n = len(EDGES) - 1
            nan = float("nan")
            return OptState(step, rule, names, EDGES.copy(), np.zeros(n), np.full(len(weights), nan),
                            norms, nan, nan, nan, rule != "Adam+L2",
                            note="no optimizer step yet:\nAdam's v̂ is not there")
        decay = torch.cat([d.reshape(-1) for d, _ in pairs]).double()
        logd = decay.clamp_min(FLOOR).log10()
        lo, hi = float(EDGES[0]), float(EDGES[-1])
        width = (hi - lo) / (len(EDGES) - 1)

        def hist(logs: torch.Tensor) -> torch.Tensor:
            idx = ((logs - lo) / width).floor().clamp(0, len(EDGES) - 2).long()
            return torch.bincount(idx, minlength=len(EDGES) - 1).double()

        counts = hist(logd)
        lr, lam = float(group["lr"]), float(group.get(LAMBDA_KEY, group.get("weight_decay", 0.0)))
        medians = torch.stack([d.reshape(-1).double().median() for d, _ in pairs])
        uniform = bool(group.get("decoupled_weight_decay", False)) or "betas" not in group
        if pairs[0][1] is not None:
            root = torch.cat([r.reshape(-1) for _, r in pairs]).double()
            # the deciles by their k-th values, O(n) (an argsort of 85 k values took 37 of 66 ms):
            # "top" = every weight with √v̂ at or above the k-th largest, "bottom" at or below the k-th
            # smallest (ties, e.g. the √v̂ = 0 of weights on always-zero pixels, all join their decile)
            k = max(1, root.numel() // 10)
            low = torch.kthvalue(root, k).values
            high = torch.kthvalue(root, root.numel() - k + 1).values
            ratio = decay[root >= high].mean() / decay[root <= low].mean().clamp_min(1e-300)
            x = root.clamp_min(1e-30).log10()
            x, y = x - x.mean(), logd - logd.mean()
            den = (x.square().sum() * y.square().sum()).sqrt()
            corr = torch.where(den > 0, (x * y).sum() / den.clamp_min(1e-300), torch.zeros((), dtype=x.dtype))
            eps = float(group["eps"])
            counts_l2 = hist((lr * lam / (root + eps)).clamp_min(FLOOR).log10())
        else:
            ratio = corr = torch.full((), float("nan"), dtype=torch.float64)
            counts_l2 = torch.zeros_like(counts)
        tail = torch.stack([decay.mean(), ratio, corr])
        small = torch.cat([counts, counts_l2, medians, tail]).cpu().numpy()  # one host transfer
    nb, nl = len(EDGES) - 1, len(weights)
    return OptState(step, rule, names, EDGES.copy(), small[:nb], small[2 * nb:2 * nb + nl], norms,
                    float(small[-3]), float(small[-2]), float(small[-1]), uniform,
                    counts_l2=small[nb:2 * nb], decoupled_rate=lr * lam)


class OptStateCache:
    """The part within the snapshot budget: while a run trains, it is measured again only when the
    time since the last measurement × `max_overhead` covers that measurement's cost (as the trainer's
    eval/histogram parts are). Measured ~10–35 ms on 85 k weights (a loaded 2-core machine), i.e.
    every ~0.5–1.8 s at a 2 % budget; paused, or without a budget (scripts), it is always fresh."""

    def __init__(self) -> None:
        self.value: OptState | None = None
        self.key: tuple | None = None
        self.cost = 0.0
        self.at = -float("inf")

    def get(self, model: Any, optimizer: Any, step: int, running: bool,
            max_overhead: float | None) -> OptState:
        now = time.perf_counter()
        key = (id(optimizer), step)
        due = (self.value is None or max_overhead is None or not running
               or (now - self.at) * max_overhead >= self.cost)
        if due and key != self.key:
            self.value = measure(model, optimizer, step)
            self.key = key
            self.at = time.perf_counter()
            self.cost = self.at - now
        return self.value
