"""The optimizer read as code: every line's value for one picked parameter, and the live param_groups.

Two snapshot parts (regsim.snapshot.PARTS), measured only while a panel draws them:

- "update_code" (UpdateCodeView): the update rule the run follows (regsim.rules: Adam+L2, AdamW,
  the paper's AdamW, SGD+L2, SGDW, …) with the value on each of its lines for one element θᵢ of one
  parameter tensor, and the same step of its counterpart (L2 ↔ decoupled) from the same state:
      Adam+L2:  g ← g + λθ;  m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;  θ ← θ − lr·m̂/(√v̂ + ε)
      AdamW:    m, v of g alone;  θ ← θ − lr·λ·θ − lr·m̂/(√v̂ + ε)
  The L2 term is shown before (λθ) and after Adam's division (λθ/(√v̂ + ε)): the division is why
  "parameters with large gradients get less decay" (Loshchilov & Hutter 2019, §2).
  The values are those of the step the run actually took: `record` runs rules.explain on the live
  optimizer state just before `optimizer.step()` (on the last step of each Trainer.step call, for the
  picked tensor only), so θ_new on screen is the weight the model then holds. Picking another tensor
  while paused shows the *next* step predicted from the live state with the last batch's gradient,
  labelled as such, until a step is taken.
- "param_groups" (GroupView): the optimizer's param_groups as they are now: each group's role (decay /
  no_decay), kind, λ, torch coefficient, and its tensors' names, shapes and sizes.

The dataclasses hold numpy and plain numbers (the snapshot module imports them without torch);
torch is imported inside the measuring functions.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

COUNTERPART = {"l2": "decoupled", "decoupled": "l2", "decoupled_paper": "l2"}  # decay mode → the
# mode of the rule shown beside it (Adam+L2 ↔ AdamW, SGD+L2 ↔ SGDW)
_ASSIGN = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s")


@dataclass(frozen=True)
class TensorInfo:
    """One parameter tensor as the panels list it."""

    name: str  # "fc1.weight", "ln1.bias", "out.bias" (regsim.optim.named_kinds)
    shape: tuple[int, ...]
    numel: int
    kind: str  # regsim.optim.KINDS: "weight", "bias", "norm", "embedding"


@dataclass(frozen=True)
class GroupView:
    """One torch param_group, live."""

    name: str  # "decay" or "no_decay"
    kind: str  # the kind of tensor it holds
    lam: float  # λ the user set (after normalization): 0 in a no_decay group
    coef: float  # torch's coefficient: lr_t·coef is the decay per step (decoupled modes)
    mode: str  # the decay mode
    lr: float  # the group's learning rate at the last step
    tensors: tuple[TensorInfo, ...]

    @property
    def numel(self) -> int:
        return sum(t.numel for t in self.tensors)


@dataclass(frozen=True)
class RuleValues:
    """One rule's code and, per line of it, (label, value) pairs for the picked element."""

    rule: str  # regsim.rules.RULES key: "Adam+L2", "AdamW", …
    source: tuple[str, ...]  # rules.source(rule) line by line
    marked: int  # the line that makes it L2 or decoupled (0-based)
    values: tuple[tuple[tuple[str, float], ...], ...]  # per line: what it computes, at index i
    theta_new: float
    effective_decay: float  # the fraction of θᵢ its decay takes this step: lr·λ/(√v̂ᵢ + ε) for
    # Adam+L2, lr·λ for AdamW, SGD+L2 and SGDW, η_t·λ for the paper's variants


@dataclass(frozen=True)
class UpdateCodeView:
    """Every line's value for element `index` of tensor `param`, at optimizer step `step`."""

    param: str
    index: int  # flat (row-major) index into the tensor
    shape: tuple[int, ...]
    step: int  # the optimizer step the values belong to (1-based: t of Adam's bias correction)
    recorded: bool  # True: the step the run took; False: the next one, predicted from the live state
    rule: RuleValues  # the rule the run follows
    counterpart: RuleValues  # its counterpart from the same θ, g and state
    theta_live: float  # θᵢ in the live model now
    l2_before: float  # λθ as it joins the gradient (NaN for a decoupled rule)
    l2_after: float  # Adam+L2: λθ/(√v̂ + ε); SGD+L2: λθ (NaN for a decoupled rule)
    decoupled: float  # the decoupled decay term subtracted from θ (NaN for an L2 rule)
    effective_decay: float  # the fraction of θᵢ this step takes away: lr·λ/(√v̂ᵢ + ε) for Adam+L2
    tensors: tuple[TensorInfo, ...]  # every pickable tensor (the panel validates picks with it)


def check_pick(model: Any, param: str, index: int) -> Any:
    """The parameter named `param`, or a ValueError naming the field and its allowed range."""
    from .optim import named_kinds

    found = {n: p for n, p, _ in named_kinds(model)}
    if param not in found:
        raise ValueError(f"parameter = {param!r} is not in this model; allowed: {', '.join(found)}")
    p = found[param]
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < p.numel():
        shape = "×".join(str(s) for s in p.shape)
        raise ValueError(f"index = {index!r} is out of range for {param} ({shape}, {p.numel()} "
                         f"elements); allowed: [0, {p.numel() - 1}]")
    return p


def tensor_infos(model: Any) -> tuple[TensorInfo, ...]:
    from .optim import named_kinds

    return tuple(TensorInfo(n, tuple(p.shape), p.numel(), k) for n, p, k in named_kinds(model))


def group_views(model: Any, optimizer: Any) -> tuple[GroupView, ...]:
    """The param_groups as they are now (names, λ, coefficients, tensors): part "param_groups"."""
    from .optim import DECAY_KEY, KIND_KEY, LAMBDA_KEY, MODE_KEY, named_kinds

    info = {id(p): TensorInfo(n, tuple(p.shape), p.numel(), k) for n, p, k in named_kinds(model)}
    out = []
    for g in optimizer.param_groups:
        adam = "betas" in g
        coef = float(g.get("weight_decay", 0.0)) if adam else float(
            g.get(DECAY_KEY, 0.0) or g.get("weight_decay", 0.0))
        out.append(GroupView(str(g.get("name", "")), str(g.get(KIND_KEY, "")),
                             float(g.get(LAMBDA_KEY, g.get("weight_decay", 0.0))), coef,
                             str(g.get(MODE_KEY, "l2")), float(g["lr"]),
                             tuple(info[id(p)] for p in g["params"] if id(p) in info)))
    return tuple(out)


@dataclass
class Recorded:
    """What `record` kept of one step (torch tensors; read on the host only in a snapshot)."""

    param: str
    step: int
    explained: Any  # rules.Explained
    before: dict  # the rule's inputs: theta, g, and m, v or buf before the step
    extra: dict  # lr, lam, t, b1, b2, eps, mu, eta_t: the numbers the rule used


def record(model: Any, optimizer: Any, param: str, step: int) -> Recorded | None:
    """The picked tensor's step, just before optimizer.step() (and before the SGD family's
    decoupled decay): rules.explain on the live state. None when the pick no longer fits."""
    try:
        p = check_pick(model, param, 0)
    except ValueError:
        return None
    if p.grad is None:
        return None
    return _explain(p, optimizer, param, step)


def _explain(p: Any, optimizer: Any, param: str, step: int) -> Recorded:
    import torch

    from . import rules
    from .optim import DECAY_KEY, LAMBDA_KEY

    e = rules.explain(p, optimizer)
    group = rules._group_of(optimizer, p)
    state = optimizer.state.get(p, {})
    adam = isinstance(optimizer, torch.optim.Adam)
    lam = float(group.get(LAMBDA_KEY, group.get("weight_decay", 0.0)))
    lr = float(group["lr"])
    coef = float(group["weight_decay"] if adam else group.get(DECAY_KEY, 0.0))
    before = {"theta": p.detach().clone(), "g": e.values["g"]}
    extra: dict = {"lr": lr, "lam": lam, "eta_t": lr * coef / lam if lam else 1.0}
    if adam:
        zeros = torch.zeros_like(p)
        before["m"] = state["exp_avg"].clone() if "exp_avg" in state else zeros
        before["v"] = state["exp_avg_sq"].clone() if "exp_avg_sq" in state else zeros
        b1, b2 = group["betas"]
        extra.update(t=e.values["t"], b1=float(b1), b2=float(b2), eps=float(group.get("eps", rules.EPS)))
    else:
        buf = state.get("momentum_buffer")
        before["buf"] = buf.clone() if buf is not None else torch.zeros_like(p)
        extra["mu"] = float(group.get("momentum", 0.0))
    return Recorded(param, step, e, before, extra)


def view(model: Any, optimizer: Any, pick: tuple[str, int], recorded: Recorded | None,
         step: int) -> UpdateCodeView | None:
    """Part "update_code" for `pick` = (tensor name, flat index): the recorded step when it is of
    that tensor, else the next step predicted from the live state. None before any gradient."""
    param, index = pick
    p = check_pick(model, param, index)
    if recorded is None or recorded.param != param:
        if p.grad is None:
            return None
        recorded, taken = _explain(p, optimizer, param, step + 1), False
    else:
        taken = recorded.step == step  # a later step (paused: none) keeps it the step just taken
    e = recorded.explained
    mode = {"Adam+L2": "l2", "SGD+L2": "l2", "AdamW": "decoupled", "SGDW": "decoupled"}.get(
        e.rule, "decoupled_paper")
    family = "adam" if e.rule.startswith("Adam") else "sgd"
    at = _picker(index)
    own = _rule_values(e.rule, dict(e.values), recorded.before, at, at(e.effective_decay))
    other = _counterpart(family, COUNTERPART[mode], recorded, index)

    def pick_or_nan(t: Any) -> float:
        return float("nan") if t is None else at(t)

    return UpdateCodeView(
        param=param, index=index, shape=tuple(p.shape), step=recorded.step, recorded=taken,
        rule=own, counterpart=other, theta_live=at(p.detach()),
        l2_before=pick_or_nan(e.l2_before), l2_after=pick_or_nan(e.l2_after),
        decoupled=pick_or_nan(e.decoupled), effective_decay=at(e.effective_decay),
        tensors=tensor_infos(model))


def _picker(index: int):
    def at(t: Any) -> float:
        if isinstance(t, (int, float)):
            return float(t)
        return float(t.reshape(-1)[index])
    return at


def _counterpart(family: str, mode: str, rec: Recorded, index: int) -> RuleValues:
    """The counterpart rule's step from the same θ, g and state, on the one element (the rules are
    elementwise, so this is what it would do to θᵢ)."""
    from . import rules

    name = rules.RULE_FOR[family, mode]
    x = rec.extra
    el = {k: v.reshape(-1)[index:index + 1].clone() for k, v in rec.before.items()}
    kw: dict = dict(lr=x["lr"], lam=x["lam"])
    if family == "adam":
        kw.update(m=el["m"], v=el["v"], t=x["t"], b1=x["b1"], b2=x["b2"], eps=x["eps"])
    else:
        kw.update(buf=el["buf"], mu=x["mu"])
    if mode == "decoupled_paper":
        kw["eta_t"] = x["eta_t"]
    _, values = rules.RULES[name](el["theta"], el["g"], **kw)
    values = dict(values)
    if mode == "l2":
        values["g_total"] = values["g"]
    values["g"] = el["g"]
    if family == "adam" and mode == "l2":
        rate = x["lr"] * x["lam"] / (math.sqrt(float(values["v_hat"][0])) + x["eps"])
    else:
        rate = (x["eta_t"] if mode == "decoupled_paper" else x["lr"]) * x["lam"]
    return _rule_values(name, values, el, _picker(0), rate)


def _rule_values(name: str, values: dict, before: dict, at, rate: float) -> RuleValues:
    """Per line of the rule's source: what the line computes, as (label, value) pairs."""
    from . import rules

    src = rules.source(name).splitlines()
    out: list[tuple[tuple[str, float], ...]] = []
    for line in src:
        code = line.split("#")[0]
        if code.lstrip().startswith("def "):
            pairs = [("θ", at(before["theta"])), ("g", at(before["g"]))]
            pairs += [(k, at(before[k])) for k in ("m", "v", "buf") if k in before]
            if "t" in values:
                pairs.append(("t", float(values["t"])))
            out.append(tuple(pairs))
            continue
        m = _ASSIGN.match(code)
        if not m:
            out.append(())
            continue
        var = m.group(1)
        if var == "g" and "g_total" in values:
            pairs = [("g + λθ", at(values["g_total"]))]
        else:
            pairs = [(var, at(values[var]))]
        if var == "step" and name == "Adam+L2":
            v_hat = at(values["v_hat"])
            lam_theta = values["lam"] * at(before["theta"])
            pairs.append(("λθ/(√v̂+ε)", lam_theta / (math.sqrt(v_hat) + values.get("eps", rules.EPS))))
        out.append(tuple(pairs))
    return RuleValues(name, tuple(src), rules.marked_line(name), tuple(out), at(values["theta_new"]),
                      float(rate))
