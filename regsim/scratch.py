"""Dropout from scratch: the NumPy forward and backward of inverted dropout, run on the live batch.

The seed's point is that dropout is a binary mask and a scale, nothing more:

    forward (training):  m ~ Bernoulli(1 − p),  y = m ⊙ x / (1 − p)      so E[y] = x
    backward:            dL/dx = dL/dy ⊙ m / (1 − p)                      the same mask, the same scale
    inference:           y = x                                           the identity

`SOURCE` below is that code as the panel shows it, and it is the code that runs: it is executed
here, once, into `dropout_forward` / `dropout_backward`, and `site_values` feeds it the exact tensors
the run's own dropout module saw on its last training step: its input x, the uniforms u it drew
(regenerated from the run's (seed, step, site) stream, see regsim/models.py), its output y, and the
gradients autograd passed through it (captured by tensor hooks while a reader asks for the
"scratch" snapshot part). Beside them, torch's own `nn.Dropout` on the same x: it draws its mask
m′ from torch's global RNG (seeded here, inside `torch.random.fork_rng`, so the run's RNG is not
touched), and the NumPy code given that m′ reproduces its y and dx. The differences are sent as
numbers (max |Δ| over the whole batch), so the panel shows agreement, it does not assert it.

No torch import at module level: the GUI unpickles `ScratchSite` without torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

ROWS, UNITS = 6, 8  # the part of the batch sent to the panel: examples × units

# The code the panel shows, line for line. Multiplying by a precomputed 1/(1 − p) (rather than
# dividing) is also what the run's module does, so the two agree to the bit in float32.
SOURCE = '''\
def dropout_forward(x, p, train=True, u=None):
    """Inverted dropout: y = m * x / (1 - p)."""
    if not train or p == 0.0:
        return x, None             # eval: the identity
    if u is None:
        u = np.random.rand(*x.shape)  # a draw per unit
    m = (u >= p).astype(x.dtype)   # kept w.p. 1 - p
    scale = 1.0 / (1.0 - p)        # survivors scaled up
    y = x * m * scale              # so that E[y] = x
    return y, m


def dropout_backward(dy, m, p):
    """The same mask, the same scale."""
    if m is None:
        return dy                  # eval: the identity
    scale = 1.0 / (1.0 - p)
    dx = dy * m * scale            # dL/dx = dL/dy * m/(1-p)
    return dx
'''

_namespace: dict[str, Any] = {"np": np}
exec(compile(SOURCE, "<regsim.scratch.SOURCE>", "exec"), _namespace)  # noqa: S102 (our own code)
dropout_forward = _namespace["dropout_forward"]
dropout_backward = _namespace["dropout_backward"]

VARIABLES = ("x", "u", "m", "y", "dy", "dx")  # the arrays a line can show
_WORD = re.compile(r"\b[A-Za-z_]\w*\b")


def line_variables(line: str) -> tuple[str, ...]:
    """The arrays a line of SOURCE computes or reads, in VARIABLES order (comments and the
    docstrings ignored): what clicking that line shows."""
    code = line.split("#", 1)[0]
    if code.strip().startswith(('"""', "def ")):
        code = code.split("(", 1)[1] if code.strip().startswith("def ") else ""
    code = re.sub(r"\b\w+\.(shape|dtype)\b", "", code)  # x.shape: a size, not x's values
    words = set(_WORD.findall(code))
    return tuple(v for v in VARIABLES if v in words)


def source_lines() -> tuple[str, ...]:
    return tuple(SOURCE.splitlines())


def function_of_line(index: int) -> str:
    """"forward" or "backward": which function line `index` (0-based) of SOURCE belongs to."""
    lines = source_lines()
    for i in range(min(index, len(lines) - 1), -1, -1):
        if lines[i].startswith("def dropout_backward"):
            return "backward"
        if lines[i].startswith("def dropout_forward"):
            return "forward"
    return "forward"


@dataclass(frozen=True)
class ScratchSite:
    """One dropout site's last training step, the NumPy code's values and torch's, for the panel.

    Arrays are the first ROWS examples × UNITS units (flattened per example for a conv site),
    the units being the first ones not zero for all those examples (after a ReLU many are: a row
    of zeros shows nothing of the mask), listed in `unit_index`; the max-|Δ| numbers cover the
    whole batch."""

    site: str  # the site's name ("input", "fc1", ...)
    p: float  # its drop rate at that step
    step: int  # the training step these values come from
    batch: int  # examples in the batch
    units: int  # units per example at this site
    unit_index: np.ndarray  # (K,) which units the columns are
    x: np.ndarray  # (R, K) the module's input
    u: np.ndarray  # (R, K) the uniforms it drew (m = [u ≥ p]); zeros when p = 0
    m: np.ndarray  # (R, K) NumPy's mask from u (float 0/1)
    y: np.ndarray  # (R, K) NumPy's y = x·m/(1 − p)
    dy: np.ndarray  # (R, K) the upstream gradient dL/dy autograd passed in; NaN if not captured
    dx: np.ndarray  # (R, K) NumPy's dL/dx = dy·m/(1 − p)
    live_y: np.ndarray  # (R, K) the module's own output
    live_dx: np.ndarray  # (R, K) autograd's dL/dx at the module's input (NaN for the data input)
    torch_m: np.ndarray  # (R, K) nn.Dropout's own mask m′ on the same x
    torch_y: np.ndarray  # (R, K) nn.Dropout(p)(x), train mode
    torch_dx: np.ndarray  # (R, K) its gradient for the same dy
    numpy_torch_y: np.ndarray  # (R, K) the NumPy code with m′: equals torch_y
    torch_eval_y: np.ndarray  # (R, K) nn.Dropout(p).eval()(x): the identity
    diff_live_y: float  # max |NumPy y − module y| over the batch
    diff_live_dx: float  # max |NumPy dx − autograd dx| (NaN when autograd had no dx)
    diff_torch_y: float  # max |NumPy(x, m′) − nn.Dropout(x)|
    diff_torch_dx: float  # max |NumPy backward(dy, m′) − nn.Dropout's dx|
    diff_eval: float  # max |NumPy eval − nn.Dropout.eval()(x)|: both the identity
    mask_equal: bool  # NumPy's m from u equals the module's own mask, everywhere in the batch
    has_grad: bool  # dy was captured (a backward ran while the part was asked for)
    torch_name: str = "nn.Dropout"  # the torch reference: "nn.Dropout", or "nn.Dropout2d" channel-wise


def site_values(module: Any, name: str, step: int, rows: int = ROWS,
                units: int = UNITS) -> ScratchSite | None:
    """The from-scratch replay of `module`'s (a regsim.models.InvertedDropout) last training step.

    None before the module ran in training. `step` is the step whose masks the module drew
    (its key, or the caller's count)."""
    import torch
    from torch import nn

    from .models import dropout_seed

    x_t = module.last_input
    if x_t is None:
        return None
    step = int(module.key[1]) if module.key is not None else int(step)
    p = float(module.p if module.last_p is None else module.last_p)  # the p that drew the mask
    B = x_t.shape[0]
    x = x_t.detach().reshape(B, -1).float().cpu().numpy()  # (B, K)
    live_y = module.last_output.detach().reshape(B, -1).float().cpu().numpy()
    dy_t = getattr(module, "last_grad_output", None)
    dx_t = getattr(module, "last_grad_input", None)
    has_grad = dy_t is not None and dy_t.shape == x_t.shape
    dy = (dy_t.detach().reshape(B, -1).float().cpu().numpy() if has_grad
          else np.full_like(x, np.nan))
    live_dx = (dx_t.detach().reshape(B, -1).float().cpu().numpy()
               if has_grad and dx_t is not None and dx_t.shape == x_t.shape
               else np.full_like(x, np.nan))
    # The uniforms the module drew: the same generator, reseeded from the same key.
    if p > 0.0 and module.key is not None and module.last_scaled_mask is not None:
        g = torch.Generator(device=x_t.device)
        g.manual_seed(dropout_seed(module.key[0], module.key[1], module.site))
        u_t = torch.empty(module.last_scaled_mask.shape, dtype=x_t.dtype,
                          device=x_t.device).uniform_(generator=g)
        u = u_t.reshape(B, -1).float().cpu().numpy() if u_t.numel() == x_t.numel() else None
        if u is None:  # channel-wise: one uniform per (example, channel), broadcast over pixels
            per = x_t[0].numel() // u_t[0].numel()
            u = np.repeat(u_t.reshape(B, -1).float().cpu().numpy(), per, axis=1)
        live_mask = (module.last_scaled_mask != 0).expand_as(x_t).reshape(B, -1).cpu().numpy()
    elif p > 0.0 and module.last_scaled_mask is not None:  # outside a trainer: no stream to replay
        live_mask = (module.last_scaled_mask != 0).expand_as(x_t).reshape(B, -1).cpu().numpy()
        u = np.where(live_mask, 1.0, 0.0).astype(np.float32)  # stands in for u: only u ≥ p matters
    else:
        live_mask = np.ones_like(x, dtype=bool)
        u = np.zeros_like(x)
    y, m = dropout_forward(x, p, True, u)
    m = np.ones_like(x) if m is None else m
    dx = dropout_backward(dy, None if p == 0.0 else m, p)
    # torch's nn.Dropout (nn.Dropout2d for a channel-wise site, on the (B, C, H, W) shape) on the
    # same x: its own mask, from a seeded global RNG we fork and restore.
    channel = bool(getattr(module, "channel", False)) and x_t.dim() == 4
    shape = tuple(x_t.shape) if channel else x.shape
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        seed = dropout_seed(step, 0x5EED, module.site) & (2**63 - 1)
        drop = nn.Dropout2d(p) if channel else nn.Dropout(p)
        xt = torch.as_tensor(x).reshape(shape).clone().requires_grad_(True)
        torch.manual_seed(seed)
        ty = drop(xt)
        torch.manual_seed(seed)  # the same draw on ones reads the mask off exactly
        tm = (drop(torch.ones_like(xt)) != 0).float()
        ty.backward(torch.as_tensor(np.nan_to_num(dy)).reshape(shape))
        tdx = xt.grad.reshape(B, -1).numpy()
        eval_y = drop.eval()(torch.as_tensor(x).reshape(shape)).reshape(B, -1).numpy()
    torch_m = tm.reshape(B, -1).numpy()
    torch_y = ty.detach().reshape(B, -1).numpy()
    np_t_y, _ = dropout_forward(x, p, True, np.where(torch_m > 0, 1.0, 0.0) if p > 0 else u)
    np_t_dx = dropout_backward(np.nan_to_num(dy), torch_m if p > 0 else None, p)
    np_eval, _ = dropout_forward(x, p, False)

    live = np.flatnonzero(np.any(x[:rows] != 0, axis=0))
    rest = np.setdiff1d(np.arange(x.shape[1]), live)
    cols = np.concatenate([live, rest])[:units]  # the first live units, then the others
    cols.sort()

    def cut(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a[:rows][:, cols], dtype=np.float32)

    def maxdiff(a: np.ndarray, b: np.ndarray) -> float:
        d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
        return float(d.max()) if d.size and not np.isnan(d).all() else float("nan")

    return ScratchSite(
        site=name, p=p, step=int(step), batch=int(B), units=int(x.shape[1]), unit_index=cols,
        x=cut(x), u=cut(u), m=cut(m), y=cut(y), dy=cut(dy), dx=cut(dx),
        live_y=cut(live_y), live_dx=cut(live_dx), torch_m=cut(torch_m), torch_y=cut(torch_y),
        torch_dx=cut(tdx), numpy_torch_y=cut(np_t_y), torch_eval_y=cut(eval_y),
        diff_live_y=maxdiff(y, live_y), diff_live_dx=maxdiff(dx, live_dx) if has_grad else float("nan"),
        diff_torch_y=maxdiff(np_t_y, torch_y),
        diff_torch_dx=maxdiff(np_t_dx, tdx) if has_grad else float("nan"),
        diff_eval=maxdiff(np_eval, eval_y), mask_equal=bool(np.array_equal(m != 0, live_mask)),
        has_grad=bool(has_grad), torch_name="nn.Dropout2d" if channel else "nn.Dropout")
