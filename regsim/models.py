"""The MLP and its inverted dropout.

Inverted dropout (Srivastava et al. 2014, as every modern framework implements it):

    y = m ⊙ h / (1 − p),   m_i ~ Bernoulli(1 − p)

so E[y_i] = (1 − p) · h_i / (1 − p) = h_i, and at test time the layer is the identity. The module keeps
references to its last mask and input, so a view can show which neurons were dropped without any copy
on the training path (copies happen only when a snapshot is taken).

The masks come from the run's own random stream, indexed by (seed, step, site): before each training
forward the trainer calls `MLP.seed_dropout(seed, step)`, and each site reseeds one private
torch.Generator from a hash of the three before it draws its uniforms u (reseeding costs ~1 µs, a
(64, 512) draw ~200 µs, both measured on one CPU thread). So the mask a site draws at a step does
not depend on anything else the process did: not on another run stepping in between (two Trainers
in lockstep used to share the global RNG and drew different masks), not on other sites being off
(p = 0 draws nothing), not on when dropout was switched on. Two runs with the same seed, step, site
shape (B, U) and p draw the same mask; with different p they threshold the same u (m = [u ≥ p]), so
the units kept at the higher p are a subset of those kept at the lower one. A module used outside a
trainer (no seed_dropout call) draws from the global RNG, as torch's own dropout does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_MASK64 = 2**64 - 1


def dropout_seed(seed: int, step: int, site: int) -> int:
    """The generator seed of one site at one step: a splitmix64 hash of (seed, step, site).

    Hashed, not packed, because a CPU generator (mt19937) keeps only the low 32 bits of its seed:
    every input bit must reach them."""
    z = (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9 + site * 0x94D049BB133111EB) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class InvertedDropout(nn.Module):
    """Dropout whose rate `p` may change between steps and whose last mask can be inspected."""

    def __init__(self, p: float = 0.0, site: int = 0, channel: bool = False) -> None:
        super().__init__()
        self.p = float(p)
        self.site = site  # index of this site in the network (input = 0): part of the mask's seed
        # True: one draw per (example, channel) of a (B, C, H, W) input, whole channels zeroed
        # (what nn.Dropout2d does); False: one draw per element (nn.Dropout).
        self.channel = bool(channel)
        self.capture_grads = False  # True: keep dL/dy and dL/dx of each backward (regsim.scratch)
        self.last_p: float | None = None  # the p of the last training forward
        self.last_grad_output: torch.Tensor | None = None  # dL/dy of the last backward, if captured
        self.last_grad_input: torch.Tensor | None = None  # dL/dx (None when x needs no grad)
        self.key: tuple[int, int] | None = None  # (seed, step) of the next draw; None: global RNG
        self._generator: torch.Generator | None = None  # made on first use, on the input's device
        self.last_scaled_mask: torch.Tensor | None = None  # (B, U) float: 0 or 1/(1 − p)
        self.last_input: torch.Tensor | None = None  # (B, U) activations before dropout
        self.last_output: torch.Tensor | None = None  # (B, U) after mask and 1/(1-p) scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, U)
        if not self.training:
            return x  # inverted dropout needs no rescaling at test time
        if not 0.0 <= self.p < 1.0:
            raise ValueError(f"dropout p = {self.p} is out of range; allowed: [0, 1)")
        self.last_p = self.p
        if self.p == 0.0:
            self.last_scaled_mask, self.last_input, self.last_output = None, x.detach(), x.detach()
            if self.capture_grads:
                self._capture(x, x)
            return x
        # One float mask with the 1/(1 − p) scale folded in, built in place from uniform draws
        # (u ≥ p with probability 1 − p): a single multiply forward and backward. Measured on a CPU
        # for a (64, 512) batch: 180 µs, against 480 µs for bernoulli_ (what F.dropout uses) and
        # 280 µs for a bool mask, a multiply and a divide.
        # Channel-wise: one uniform per (example, channel), broadcast over the pixels.
        shape = (*x.shape[:2], *([1] * (x.dim() - 2))) if self.channel else x.shape
        if self.key is None:
            u = torch.rand(shape, dtype=x.dtype, device=x.device)
        else:
            g = self._generator
            if g is None or g.device != x.device:
                g = self._generator = torch.Generator(device=x.device)
            g.manual_seed(dropout_seed(self.key[0], self.key[1], self.site))
            u = torch.empty(shape, dtype=x.dtype, device=x.device).uniform_(generator=g)
        scaled_mask = u.ge_(self.p).mul_(1.0 / (1.0 - self.p))
        y = x * scaled_mask
        self.last_scaled_mask, self.last_input, self.last_output = scaled_mask, x.detach(), y.detach()
        if self.capture_grads:
            self._capture(x, y)
        return y

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Keep the gradients this forward's backward passes through the site (two tensor hooks;
        only while a reader asks for them: regsim.scratch)."""
        self.last_grad_output = self.last_grad_input = None
        if not torch.is_grad_enabled():
            return
        if y.requires_grad:
            y.register_hook(self._keep_grad_output)
        if x.requires_grad:
            x.register_hook(self._keep_grad_input)

    def _keep_grad_output(self, g: torch.Tensor) -> None:
        self.last_grad_output = g.detach()

    def _keep_grad_input(self, g: torch.Tensor) -> None:
        self.last_grad_input = g.detach()

    @property
    def last_mask(self) -> torch.Tensor | None:
        """(B, U) bool, True = kept, for the last training forward pass (None when p = 0)."""
        m = self.last_scaled_mask
        return None if m is None else m != 0

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MLP(nn.Module):
    """Input dropout → [Linear → (LayerNorm) → activation → dropout] × hidden → Linear.

    Layers are named fc1, fc2, …, out; dropout sites are named "input", "fc1", "fc2", … after the
    layer whose output they drop.
    """

    def __init__(self, in_dim: int, hidden: tuple[int, ...], out_dim: int,
                 dropout: tuple[float, ...], input_dropout: float = 0.0,
                 activation: str = "relu", layer_norm: bool = False) -> None:
        super().__init__()
        if len(dropout) != len(hidden):
            raise ValueError("dropout needs one rate per hidden layer")
        self.sizes = (in_dim, *hidden, out_dim)
        self.activation = activation
        self.input_drop = InvertedDropout(input_dropout, site=0)
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.drops = nn.ModuleList()
        for i, width in enumerate(hidden):
            self.linears.append(nn.Linear(self.sizes[i], width))
            self.norms.append(nn.LayerNorm(width) if layer_norm else nn.Identity())
            self.drops.append(InvertedDropout(dropout[i], site=i + 1))
        self.out = nn.Linear(self.sizes[-2], out_dim)
        self.layer_names = tuple(f"fc{i + 1}" for i in range(len(hidden))) + ("out",)
        self.dropout_sites = ("input",) + self.layer_names[:-1]

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) if self.activation == "relu" else torch.tanh(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in) -> (B, out)
        h = self.input_drop(x)
        for lin, norm, drop in zip(self.linears, self.norms, self.drops):
            h = drop(self._act(norm(lin(h))))
        return self.out(h)

    def weight_layers(self) -> list[nn.Linear]:
        """The Linear layers, input to output (the matrices histograms and norms describe)."""
        return [*self.linears, self.out]

    def dropout_modules(self) -> list[InvertedDropout]:
        return [self.input_drop, *self.drops]

    def seed_dropout(self, seed: int, step: int) -> None:
        """Draw the next training forward's masks from the (seed, step) stream (see the module
        docstring): the trainer calls this before every step."""
        key = (int(seed), int(step))
        for d in self.dropout_modules():
            d.key = key

    def set_dropout(self, input_p: float, hidden_p: tuple[float, ...], channel: bool = False) -> None:
        """The rates from the next forward on. `channel` concerns conv nets (ConvNet): a vector
        has no channels, so an MLP ignores it."""
        self.input_drop.p = float(input_p)
        for d, p in zip(self.drops, hidden_p):
            d.p = float(p)

    def forward_batched(self, h: torch.Tensor, weights: list[torch.Tensor],
                        biases: list[torch.Tensor],
                        out: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Eval-mode forward of G perturbed copies of this network at once, from the first layer's
        output on.

        h: (G, N, H1), the first Linear's output for each copy (the caller has it cheaply: that
        layer is linear in its parameters). weights[i]: (G, out, in) and biases[i]: (G, out)
        replace the parameters of every later Linear; LayerNorm parameters are shared. Returns
        (G, C, N): classes second, the layout F.cross_entropy takes for K-dimensional input. With
        C = 2 the last matmul and the loss each ran 3–4× faster in that layout than as (G·N, C).
        One batched matmul per layer instead of G small ones is what makes a 51×51 loss surface
        take a fraction of a second. `out`, if given, holds a buffer per later layer to write
        into, (G, N, out_i) for hidden layers and (G, C, N) for the last (a caller looping over
        chunks reuses them).
        """
        last = len(weights) - 1
        for i in range(len(weights)):
            h = self.norms[i](h)
            h = h.relu_() if self.activation == "relu" else h.tanh_()
            dest = None if out is None else out[i]
            if i < last:
                h = torch.baddbmm(biases[i][:, None, :], h, weights[i].transpose(1, 2),
                                  out=dest)  # (G, N, out_i)
            else:
                h = torch.baddbmm(biases[i][:, :, None], weights[i], h.transpose(1, 2),
                                  out=dest)  # (G, C, N)
        return h


class ConvNet(nn.Module):
    """A small conv net for the 8×8 digits: input dropout → [3×3 Conv → activation → dropout] ×
    len(channels) → Linear → classes.

    The seed's table gives conv layers p = 0.1–0.3 "(or entire channels)": with `channel` the
    dropout after each conv draws one mask value per (example, channel) and zeroes whole feature
    maps, y[b, c] = m[b, c]·h[b, c] / (1 − p), as nn.Dropout2d does; otherwise every activation
    gets its own draw (nn.Dropout). Padding 1 keeps the 8×8 maps, so 8 and 16 channels cost
    8·9 + 16·8·9 + 16·64·10 ≈ 11.5 k weights, fewer than the 64-64 MLP.

    Mirrors the MLP's interface for the trainer and the dropout views (sizes, layer_names,
    dropout_sites, weight_layers, dropout_modules, seed_dropout, set_dropout); the analyses that
    walk an MLP's Linear layers (ensemble, MC dropout, loss surface) do not apply to it.
    """

    def __init__(self, in_dim: int, channels: tuple[int, ...], out_dim: int,
                 dropout: tuple[float, ...], input_dropout: float = 0.0,
                 activation: str = "relu", channel: bool = False, side: int = 8) -> None:
        super().__init__()
        if in_dim != side * side:
            raise ValueError(f"ConvNet takes {side}×{side} images ({side * side} features), not {in_dim}")
        if len(dropout) != len(channels):
            raise ValueError("dropout needs one rate per conv layer")
        self.side = side
        self.sizes = (in_dim, *channels, out_dim)  # channels for the conv layers
        self.activation = activation
        self.input_drop = InvertedDropout(input_dropout, site=0)  # element-wise on the pixels
        self.convs = nn.ModuleList()
        self.drops = nn.ModuleList()
        c_in = 1
        for i, c in enumerate(channels):
            self.convs.append(nn.Conv2d(c_in, c, kernel_size=3, padding=1))
            self.drops.append(InvertedDropout(dropout[i], site=i + 1, channel=channel))
            c_in = c
        self.out = nn.Linear(c_in * side * side, out_dim)
        self.layer_names = tuple(f"conv{i + 1}" for i in range(len(channels))) + ("out",)
        self.dropout_sites = ("input",) + self.layer_names[:-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 64) -> (B, classes)
        h = self.input_drop(x).reshape(-1, 1, self.side, self.side)  # (B, 1, 8, 8)
        for conv, drop in zip(self.convs, self.drops):
            a = conv(h)  # (B, C, 8, 8)
            h = drop(torch.relu(a) if self.activation == "relu" else torch.tanh(a))
        return self.out(h.flatten(1))

    def __getattr__(self, name: str):
        # The MLP-only parts the ensemble / MC dropout / calibration analyses walk: a clear
        # message instead of "'ConvNet' object has no attribute 'linears'".
        if name in ("linears", "norms", "forward_batched"):
            raise AttributeError(f"this analysis walks an MLP's Linear layers ({name}); the conv net "
                                 "has none: use architecture = 'mlp' for it")
        return super().__getattr__(name)

    def weight_layers(self) -> list[nn.Module]:
        """The conv and Linear layers, input to output (their .weight are what histograms show)."""
        return [*self.convs, self.out]

    def dropout_modules(self) -> list[InvertedDropout]:
        return [self.input_drop, *self.drops]

    def seed_dropout(self, seed: int, step: int) -> None:
        key = (int(seed), int(step))
        for d in self.dropout_modules():
            d.key = key

    def set_dropout(self, input_p: float, hidden_p: tuple[float, ...], channel: bool = False) -> None:
        self.input_drop.p = float(input_p)
        for d, p in zip(self.drops, hidden_p):
            d.p = float(p)
            d.channel = bool(channel)


# ------------------------------------------------------------ token MLPs (modular data)
# MLPs on the two tokens (a, b) of the modular-arithmetic task (regsim/modular.py).
#
# Two ways to feed a pair to an MLP, the same function class:
#
# - `OneHotMLP` ("mlp" on modular data): x = [onehot(a), onehot(b)] ∈ {0, 1}^(2p), then the usual MLP
#   (input dropout then drops whole tokens: x̃ = m ⊙ x / (1 − p)).
# - `EmbedMLP` ("embed_mlp"): h₁ = relu(E_a[a] + E_b[b] + b₁), …, logits = W_out·h + b_out. Since
#   W₁·[onehot(a), onehot(b)] = W₁[:, a] + W₁[:, p + b], the two are the same network with
#   E = W₁ᵀ, but the gather reads 2 rows of E per example instead of multiplying a (B, 2p) mostly-zero
#   matrix: measured 1.5× faster per full-batch step (issue 13's note). E_a and E_b are one (2p, H)
#   table, rows 0..p−1 for a and p..2p−1 for b, so the embedding counts as one weight matrix (it is
#   decayed like one, as in Power et al. 2022: decay on the embeddings is what drives grokking).
#
# Both take int64 tokens (B, 2). They also accept an already encoded float input (B, 2p) (OneHotMLP:
# the one-hot vectors; EmbedMLP: the same, through the matmul path), which is what the trainer's
# inference view feeds back from the first dropout site.


class OneHotMLP(MLP):
    """The MLP of regsim.models on [onehot(a), onehot(b)] (2p inputs)."""

    def __init__(self, modulus: int, hidden: tuple[int, ...], dropout: tuple[float, ...],
                 input_dropout: float = 0.0, activation: str = "relu", layer_norm: bool = False) -> None:
        super().__init__(2 * modulus, hidden, modulus, dropout, input_dropout, activation, layer_norm)
        self.modulus = modulus

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 2) int tokens → (B, 2p) float one-hot; a float input is taken as already encoded."""
        if x.is_floating_point():
            return x
        p = self.modulus
        return torch.cat([F.one_hot(x[:, 0], p), F.one_hot(x[:, 1], p)], 1).to(self.out.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 2) -> (B, p)
        return super().forward(self.encode(x))


class EmbedMLP(nn.Module):
    """relu(E[a] + E[p + b] + b₁) → [Linear → relu] × (len(hidden) − 1) → Linear → p logits.

    Dropout sites: "input" sees the tokens themselves and must stay at p = 0 (HParams refuses
    input_dropout for embed_mlp: a token id cannot be scaled by 1/(1 − p)); "fc1", "fc2", … drop
    the hidden activations as in the MLP. Layers: "embed" (the (2p, H) table, with b₁), "fc2", …, "out".
    """

    def __init__(self, modulus: int, hidden: tuple[int, ...], dropout: tuple[float, ...],
                 activation: str = "relu") -> None:
        super().__init__()
        if len(dropout) != len(hidden):
            raise ValueError("dropout needs one rate per hidden layer")
        p = self.modulus = modulus
        self.activation = activation
        self.sizes = (2 * p, *hidden, p)
        self.embed = nn.Embedding(2 * p, hidden[0])  # rows 0..p−1: E_a, rows p..2p−1: E_b
        # The init of nn.Linear(2p, H), whose weight this table is (transposed): U(±1/√(2p)).
        bound = 1.0 / (2 * p) ** 0.5
        nn.init.uniform_(self.embed.weight, -bound, bound)
        self.bias = nn.Parameter(torch.empty(hidden[0]).uniform_(-bound, bound))  # b₁ (no_decay)
        self.input_drop = InvertedDropout(0.0, site=0)
        self.hidden_linears = nn.ModuleList(nn.Linear(hidden[i], hidden[i + 1])
                                            for i in range(len(hidden) - 1))
        self.drops = nn.ModuleList(InvertedDropout(dropout[i], site=i + 1) for i in range(len(hidden)))
        self.out = nn.Linear(hidden[-1], p)
        self.register_buffer("offset", torch.tensor([0, p]), persistent=False)
        self.layer_names = ("embed", *(f"fc{i + 2}" for i in range(len(hidden) - 1)), "out")
        self.dropout_sites = ("input", *(f"fc{i + 1}" for i in range(len(hidden))))

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) if self.activation == "relu" else torch.tanh(x)

    def first(self, x: torch.Tensor) -> torch.Tensor:
        """E_a[a] + E_b[b] + b₁, (B, H): two gathered rows (or x @ E for an encoded float x)."""
        if x.is_floating_point():
            return torch.addmm(self.bias, x, self.embed.weight)
        rows = F.embedding(x + self.offset, self.embed.weight)  # (B, 2, H)
        return rows.sum(1) + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 2) -> (B, p)
        x = self.input_drop(x)  # p = 0: records the tokens for the dropout views
        h = self.drops[0](self._act(self.first(x)))
        for lin, drop in zip(self.hidden_linears, self.drops[1:]):
            h = drop(self._act(lin(h)))
        return self.out(h)

    def __getattr__(self, name: str):
        if name in ("linears", "norms", "forward_batched"):
            raise AttributeError(f"this analysis walks an MLP's Linear layers ({name}); the "
                                 "embedding MLP starts with a gather: use architecture = 'mlp' "
                                 "(one-hot inputs) for it")
        return super().__getattr__(name)

    def weight_layers(self) -> list[nn.Module]:
        """The embedding table, the hidden Linears and the output (their .weight: norms, histograms)."""
        return [self.embed, *self.hidden_linears, self.out]

    def dropout_modules(self) -> list[InvertedDropout]:
        return [self.input_drop, *self.drops]

    def seed_dropout(self, seed: int, step: int) -> None:
        key = (int(seed), int(step))
        for d in self.dropout_modules():
            d.key = key

    def set_dropout(self, input_p: float, hidden_p: tuple[float, ...], channel: bool = False) -> None:
        for d, p in zip(self.drops, hidden_p):
            d.p = float(p)


def build_model(h, in_dim: int, out_dim: int) -> nn.Module:
    """The network `h` (a regsim.hparams.HParams) describes: an MLP, or the digits ConvNet."""
    if getattr(h, "dataset", "") == "modular":  # int tokens (a, b): see OneHotMLP, EmbedMLP
        if h.architecture == "embed_mlp":
            return EmbedMLP(h.modulus, h.hidden, h.hidden_dropout(), h.activation)
        return OneHotMLP(h.modulus, h.hidden, h.hidden_dropout(), h.input_dropout, h.activation,
                         h.layer_norm)
    if getattr(h, "architecture", "mlp") == "conv":
        return ConvNet(in_dim, h.hidden, out_dim, h.hidden_dropout(), h.input_dropout, h.activation,
                       channel=h.dropout_kind == "channel")
    return MLP(in_dim, h.hidden, out_dim, h.hidden_dropout(), h.input_dropout, h.activation,
               h.layer_norm)
