"""A small GPT-style transformer (nanoGPT-small layout) with four separately named dropout sites.

The original Transformer (Vaswani et al. 2017) drops at three places, the reference table adds a
fourth; each is its own live setting here, one InvertedDropout per place and layer:

    embd   x₀ = drop(E_tok[t] + E_pos[i])                          after the embedding + position sum
    attn   A = drop(softmax(QKᵀ/√d + causal mask)) ;  y = A V      attention weights, post-softmax
    resid  x ← x + drop(W_o · attn(LN₁(x)))                        the attention sub-layer's output,
                                                                   before the residual add
    ffn    x ← x + drop(W₂ · gelu(W₁ · LN₂(x)))                    after the FFN's down-projection,
                                                                   before the residual add

Every mask is inverted dropout, y = m ⊙ h / (1 − p), drawn from the run's (seed, step, site) stream
(regsim.models.InvertedDropout), so a site's mask never depends on the other sites' rates.

The workload is modular arithmetic: a row (a, b) becomes the sequence [a, op, b, =] over a vocabulary
of the p residues plus the two symbols, and the logits that matter are the ones at "=" (the answer).
The answer path (`answer_only`, the default) computes only those: every layer but the last runs at all
T positions, the last one's query, FFN and head only at the answer position (its keys and values
still see every position). With the embedding dropout off (always in eval, or p_embd = 0) the first
layer's input depends only on (token, position), so its q, k, v are looked up in a per-token table
c_attn(LN₁(E_tok + E_pos[i])) of shape (T, V, 3C) instead of being computed per row. Measured on one
CPU thread (p = 59, 1 layer, 4 heads, C = 128, half of the 3481 pairs as one batch): a training step
took 20.5 ms instead of 82 ms for the full forward, with the same loss (tests check the logits agree
with the full forward's to 1e-5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .models import InvertedDropout

SITES = ("embd", "attn", "resid", "ffn")  # the four dropout sites, in forward order


class NotForTransformer(AttributeError):
    """An analysis asked the transformer for an MLP's parts: its name is what a failed job shows."""


@dataclass(frozen=True)
class TransformerConfig:
    n_classes: int  # output classes: the p residues (the answer of a ∘ b mod p)
    vocab_size: int = 0  # input tokens: the p residues, then "op" and "="; 0 = n_classes + 2
    block_size: int = 4  # sequence length T: [a, op, b, =]
    n_layer: int = 1  # transformer blocks
    n_head: int = 4  # attention heads per block; n_embd must divide by it
    n_embd: int = 128  # residual stream width C (each head has C / n_head dims)
    embd_dropout: float = 0.0  # p after the token + position embedding sum
    attn_dropout: float = 0.0  # p on the attention weights, post-softmax (individual connections)
    resid_dropout: float = 0.0  # p on the attention sub-layer output, before the residual add
    ffn_dropout: float = 0.0  # p on the FFN output (after the down-projection), before the add
    answer_only: bool = True  # compute the last layer only at the answer position (see above)

    @property
    def vocab(self) -> int:
        return self.vocab_size or self.n_classes + 2


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with dropout on the weights (attn) and the output (resid)."""

    def __init__(self, cfg: TransformerConfig, layer: int) -> None:
        super().__init__()
        if cfg.n_embd % cfg.n_head:
            raise ValueError(f"n_embd = {cfg.n_embd} must divide by n_head = {cfg.n_head}")
        self.n_head, self.n_embd = cfg.n_head, cfg.n_embd
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)  # q, k, v in one matmul
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)  # W_o
        self.attn_drop = InvertedDropout(cfg.attn_dropout, site=1 + 4 * layer)
        self.resid_drop = InvertedDropout(cfg.resid_dropout, site=2 + 4 * layer)
        mask = torch.ones(cfg.block_size, cfg.block_size, dtype=torch.bool).tril()
        self.register_buffer("causal", mask, persistent=False)  # (T, T) True = may attend

    def forward(self, qkv: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """qkv: (B, T, 3C) → (B, T, C), or (B, C) for the answer position only (`last_only`)."""
        B, T, _ = qkv.shape
        C, H = self.n_embd, self.n_head
        q, k, v = qkv.split(C, dim=2)  # each (B, T, C)
        k = k.view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, D)
        v = v.view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, D)
        if last_only:
            q = q[:, -1:]  # (B, 1, C): the last query sees every position, so no mask is needed
        Tq = q.shape[1]
        q = q.reshape(B, Tq, H, C // H).transpose(1, 2)  # (B, H, Tq, D)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // H))  # (B, H, Tq, T)
        if not last_only:
            att = att.masked_fill(~self.causal[:T, :T], float("-inf"))
        att = self.attn_drop(torch.softmax(att, dim=-1))  # (B, H, Tq, T), post-softmax dropout
        y = (att @ v).transpose(1, 2).reshape(B, Tq, C)  # (B, Tq, C)
        y = self.resid_drop(self.c_proj(y))  # the sub-layer output before the residual add
        return y[:, 0] if last_only else y


class FeedForward(nn.Module):
    """W₂ · gelu(W₁ x), 4× expansion, dropout after the down-projection (the ffn site)."""

    def __init__(self, cfg: TransformerConfig, layer: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.ffn_drop = InvertedDropout(cfg.ffn_dropout, site=3 + 4 * layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., C) -> (..., C)
        return self.ffn_drop(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm block (GPT-2): x ← x + attn(LN₁ x); x ← x + ffn(LN₂ x)."""

    def __init__(self, cfg: TransformerConfig, layer: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg, layer)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = FeedForward(cfg, layer)

    def forward(self, x: torch.Tensor, qkv: torch.Tensor | None = None,
                last_only: bool = False) -> torch.Tensor:
        """x: (B, T, C) → (B, T, C), or (B, C) at the answer position (`last_only`). `qkv`, if
        given, is this block's c_attn(LN₁ x) looked up from the per-token table."""
        if qkv is None:
            qkv = self.attn.c_attn(self.ln_1(x))  # (B, T, 3C)
        x = (x[:, -1] if last_only else x) + self.attn(qkv, last_only)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """[a, op, b, =] → logits of the answer over the p residues (B, n_classes).

    Mirrors the MLP's interface for the trainer and the views (sizes, layer_names, dropout_sites,
    weight_layers, dropout_modules, seed_dropout, set_dropout); the analyses that walk an MLP's
    Linear layers (ensemble, MC dropout, calibration, loss surface) do not apply to it and say so.
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.answer_only = cfg.answer_only
        self.wte = nn.Embedding(cfg.vocab, cfg.n_embd)  # token embedding E_tok (V, C)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)  # position embedding E_pos (T, C)
        self.embd_drop = InvertedDropout(cfg.embd_dropout, site=0)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.n_classes, bias=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled by 1/√(2L)
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))
        self.sizes = (cfg.block_size, *([cfg.n_embd] * cfg.n_layer), cfg.n_classes)
        self.layer_names = ("wte", "wpe", *[f"h{i}.{n}" for i in range(cfg.n_layer)
                                            for n in ("qkv", "proj", "fc", "fc_proj")], "head")
        self.dropout_sites = ("embd", *[f"h{i}.{s}" for i in range(cfg.n_layer)
                                        for s in ("attn", "resid", "ffn")])
        self.last_tokens: torch.Tensor | None = None  # (B, T) the last training batch's tokens
        self.last_stream: torch.Tensor | None = None  # (B, C) its residual stream at the answer

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    # ------------------------------------------------------------------------------- forward
    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 2) rows (a, b) → (B, 4) tokens [a, op, b, =]; (B, T) token rows pass as they are."""
        x = x.long()
        if x.shape[1] == self.cfg.block_size:
            return x
        if x.shape[1] != 2:
            raise ValueError(f"the transformer takes (a, b) rows or {self.cfg.block_size} tokens, "
                             f"not {x.shape[1]} columns")
        p = self.cfg.n_classes
        op, eq = torch.full_like(x[:, :1], p), torch.full_like(x[:, :1], p + 1)
        return torch.cat([x[:, :1], op, x[:, 1:], eq], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 2) or (B, T) -> (B, n_classes)
        idx = self.tokens(x)  # (B, T)
        if self.training:
            self.last_tokens = idx
        if not self.answer_only:
            return self.forward_all(idx)[:, -1]
        blocks = list(self.blocks)
        T = idx.shape[1]
        qkv0 = None
        if not (self.embd_drop.training and self.embd_drop.p > 0):
            # The first block's input depends only on (token, position): q, k, v from a table.
            e = self.wte.weight[None] + self.wpe.weight[:T, None]  # (T, V, C)
            table = blocks[0].attn.c_attn(blocks[0].ln_1(e))  # (T, V, 3C)
            qkv0 = table[torch.arange(T, device=idx.device), idx]  # (B, T, 3C)
        if qkv0 is not None and len(blocks) == 1:
            # Only the answer position's residual stream is needed (embd dropout is the identity).
            x0 = self.embd_drop(self.wte(idx[:, -1:]) + self.wpe.weight[T - 1])  # (B, 1, C)
        else:
            x0 = self.embd_drop(self.wte(idx) + self.wpe.weight[:T])  # (B, T, C)
        if len(blocks) == 1:
            h = blocks[0](x0, qkv=qkv0, last_only=True)  # (B, C)
        else:
            h = blocks[0](x0, qkv=qkv0)  # (B, T, C)
            for block in blocks[1:-1]:
                h = block(h)
            h = blocks[-1](h, last_only=True)  # (B, C)
        return self._head(h)  # (B, n_classes)

    def _head(self, h: torch.Tensor) -> torch.Tensor:  # (B, C) -> (B, n_classes)
        if self.training:
            self.last_stream = h.detach()  # the residual stream at the answer (a reference)
        return self.head(self.ln_f(h))

    def forward_all(self, idx: torch.Tensor) -> torch.Tensor:
        """The plain GPT forward: logits at every position, (B, T) tokens → (B, T, n_classes)."""
        T = idx.shape[1]
        h = self.embd_drop(self.wte(idx) + self.wpe.weight[:T])  # (B, T, C)
        for block in self.blocks:
            h = block(h)  # (B, T, C)
        self._head(h[:, -1])  # records the stream at the answer position
        return self.head(self.ln_f(h))  # (B, T, n_classes)

    # ------------------------------------------------------------------ the trainer's interface
    def __getattr__(self, name: str):
        # The MLP-only parts the ensemble / MC dropout / calibration / landscape analyses walk: a
        # clear message instead of "'Transformer' object has no attribute 'linears'".
        if name in ("linears", "norms", "forward_batched", "drops", "input_drop"):
            raise NotForTransformer(f"this analysis walks an MLP's Linear layers ({name}); the "
                                    "transformer has none: use architecture = 'mlp' for it")
        return super().__getattr__(name)

    def weight_layers(self) -> list[nn.Module]:
        """The embeddings and matrices, input to output (their .weight are what histograms show)."""
        out: list[nn.Module] = [self.wte, self.wpe]
        for b in self.blocks:
            out += [b.attn.c_attn, b.attn.c_proj, b.mlp.c_fc, b.mlp.c_proj]
        return [*out, self.head]

    def site_modules(self) -> dict[str, list[InvertedDropout]]:
        """Site name → its dropout modules, one per layer (embd: one)."""
        return {"embd": [self.embd_drop], "attn": [b.attn.attn_drop for b in self.blocks],
                "resid": [b.attn.resid_drop for b in self.blocks],
                "ffn": [b.mlp.ffn_drop for b in self.blocks]}

    def dropout_modules(self) -> list[InvertedDropout]:
        """In the order of `dropout_sites`: embd, then per layer attn, resid, ffn."""
        out = [self.embd_drop]
        for b in self.blocks:
            out += [b.attn.attn_drop, b.attn.resid_drop, b.mlp.ffn_drop]
        return out

    def site_rates(self) -> tuple[float, ...]:
        """p of each entry of `dropout_sites`."""
        return tuple(d.p for d in self.dropout_modules())

    def seed_dropout(self, seed: int, step: int) -> None:
        key = (int(seed), int(step))
        for d in self.dropout_modules():
            d.key = key

    def set_sites(self, embd: float, attn: float, resid: float, ffn: float) -> None:
        """The four sites' rates from the next forward on (every layer alike)."""
        for name, p in zip(SITES, (embd, attn, resid, ffn)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name}_dropout = {p} is out of range; allowed: [0, 1)")
            for d in self.site_modules()[name]:
                d.p = float(p)

    def set_dropout(self, input_p: float, hidden_p: tuple[float, ...], channel: bool = False) -> None:
        """The MLP's rates mean nothing here: the sites follow the transformer settings
        (apply_hparams)."""

    def apply_hparams(self, h) -> None:
        """Follow the live settings of `h` (regsim.hparams.HParams) at the next forward."""
        self.set_sites(h.embd_dropout, h.attn_dropout, h.resid_dropout, h.ffn_dropout)
        self.answer_only = bool(h.answer_only)


def no_decay_embeddings(model: nn.Module) -> set[int]:
    """ids of the embedding tables (nn.Embedding weights): the GPT-3 / minGPT convention puts them
    in the no_decay group, nanoGPT decays them with the matrices."""
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}


def build_transformer(h, in_dim: int, out_dim: int) -> Transformer:
    """The transformer `h` (a regsim.hparams.HParams) describes, for (a, b) rows (`in_dim` = 2) and
    `out_dim` = p classes."""
    if in_dim not in (2, 4):
        raise ValueError(f"the transformer reads (a, b) rows of modular arithmetic, not {in_dim} "
                         "features: use dataset = 'modular'")
    return Transformer(TransformerConfig(
        n_classes=out_dim, n_layer=h.n_layer, n_head=h.n_head, n_embd=h.n_embd,
        embd_dropout=h.embd_dropout, attn_dropout=h.attn_dropout, resid_dropout=h.resid_dropout,
        ffn_dropout=h.ffn_dropout, answer_only=h.answer_only))


@torch.no_grad()
def site_view(model: Transformer, answer: int = -1):
    """The first example of the last training batch at the four sites, as numpy
    (regsim.snapshot.TransformerView); None before a training step. Costs one 1-row eval forward."""
    from .snapshot import TransformerView

    idx = model.last_tokens
    if idx is None or model.embd_drop.last_input is None:
        return None
    p = model.cfg.n_classes
    words = {p: "∘", p + 1: "="}
    tokens = tuple(words.get(int(t), str(int(t))) for t in idx[0].tolist())

    def kept(d: InvertedDropout) -> np.ndarray:  # example 0's kept-mask, (rows, last dim)
        x = d.last_input[0]
        m = d.last_scaled_mask
        k = torch.ones_like(x, dtype=torch.bool) if m is None else (m[0] != 0).expand_as(x)
        return k.reshape(-1, x.shape[-1]).cpu().numpy()

    attn = [b.attn.attn_drop for b in model.blocks]
    # The answer query's row of every layer (the answer-only layer computes only that row).
    att = np.stack([d.last_input[0, :, -1].float().cpu().numpy() for d in attn])  # (L, H, T)
    att_kept = np.stack([kept(d).reshape(d.last_input[0].shape)[:, -1] for d in attn])
    stream_train = model.last_stream[0].float().cpu().numpy()
    seen: dict[int, torch.Tensor] = {}
    hooks = [d.register_forward_pre_hook(lambda _m, a, i=i: seen.setdefault(i, a[0]))
             for i, d in enumerate(attn)]
    hooks.append(model.ln_f.register_forward_pre_hook(lambda _m, a: seen.setdefault(-1, a[0])))
    was = model.training
    model.eval()
    try:
        pred = int(model(idx[:1]).argmax(1)[0])
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    att_eval = np.stack([seen[i][0, :, -1].float().cpu().numpy() for i in range(len(attn))])
    masks = {name: tuple(kept(d) for d in mods) for name, mods in model.site_modules().items()}
    return TransformerView(
        sites=SITES, rates=tuple(model.site_modules()[s][0].p for s in SITES), tokens=tokens,
        answer=int(answer), predicted=pred, answer_only=model.answer_only, attention=att,
        attention_kept=att_kept, attention_eval=att_eval, masks=masks, stream_train=stream_train,
        stream_eval=seen[-1].reshape(-1, seen[-1].shape[-1])[-1].float().cpu().numpy())
