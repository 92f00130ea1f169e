"""The transformer (regsim/transformer.py): each dropout site acts on the tensor it is named for, eval
mode is deterministic, the answer-position path equals the full forward, label smoothing equals its
closed form, the no_decay group holds exactly what each convention says, and the schedule equals its
closed form at every step."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from regsim import HParams
from regsim.optim import build_optimizer, lr_at
from regsim.trainer import task_loss
from regsim.transformer import SITES, NotForTransformer, Transformer, TransformerConfig

P = 13  # residues; vocabulary P + 2
EPS = 1e-7  # p = 1 − ε keeps an entry with probability 1e-7: none of these few thousand


def rows(n: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, P, (n, 2), generator=g)


def model_with(n_layer: int = 1, answer_only: bool = True, **rates: float) -> Transformer:
    torch.manual_seed(0)
    return Transformer(TransformerConfig(n_classes=P, n_layer=n_layer, n_head=2, n_embd=16,
                                         answer_only=answer_only, **rates))


def _site_outputs(model: Transformer, x: torch.Tensor) -> dict[str, list[tuple]]:
    """site → per module (input, output) of the last forward, through forward hooks."""
    got: dict[str, list[tuple]] = {s: [] for s in SITES}
    hooks = [d.register_forward_hook(lambda _m, a, y, s=s: got[s].append((a[0], y)))
             for s, mods in model.site_modules().items() for d in mods]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return got


@pytest.mark.parametrize("answer_only", [False, True], ids=["full", "answer_only"])
@pytest.mark.parametrize("site", SITES)
def test_each_site_zeroes_exactly_its_tensor(site: str, answer_only: bool) -> None:
    """p = 1 − ε at one site: that site's output is all zeros, every other site passes its input
    through unchanged; and the tensor zeroed is the one the site is named for."""
    model = model_with(n_layer=2, answer_only=answer_only, **{f"{site}_dropout": 1 - EPS})
    model.train()
    model.seed_dropout(0, 0)
    x = rows()
    seen: dict[str, torch.Tensor] = {}
    b0 = model.blocks[0]
    hooks = [b0.attn.c_proj.register_forward_hook(lambda _m, a, y: seen.setdefault("proj", y)),
             b0.mlp.c_proj.register_forward_hook(lambda _m, a, y: seen.setdefault("fc_proj", y))]
    got = _site_outputs(model, x)
    for h in hooks:
        h.remove()
    for name, pairs in got.items():
        assert pairs, f"{name}: the site never ran"
        for inp, out in pairs:
            if name == site:
                assert inp.abs().sum() > 0 and torch.count_nonzero(out) == 0, name
            else:
                assert torch.equal(inp, out), name
    inp0 = got[site][0][0]
    idx = model.tokens(x)
    if site == "embd":  # the embedding + position sum
        assert torch.allclose(inp0, model.wte(idx) + model.wpe.weight[:4])
    elif site == "attn":  # post-softmax weights: non-negative rows summing to 1, causal zeros
        assert inp0.shape == (8, 2, 4, 4) and (inp0 >= 0).all()
        assert torch.allclose(inp0.sum(-1), torch.ones(8, 2, 4))
        assert torch.count_nonzero(inp0.triu(1)) == 0
    elif site == "resid":  # the attention sub-layer's output projection, before the add
        assert torch.equal(inp0, seen["proj"])
    else:  # the FFN's down-projection output, before the add
        assert torch.equal(inp0, seen["fc_proj"])


def test_eval_mode_is_deterministic_and_drops_nothing() -> None:
    rates = {f"{s}_dropout": 0.3 for s in SITES}
    model, plain = model_with(**rates), model_with()
    x = rows(32)
    model.train()
    assert not torch.equal(model(x), model(x))  # training: two draws differ (the test can fail)
    model.eval()
    plain.eval()
    a, b = model(x), model(x)
    assert torch.equal(a, b)
    assert torch.allclose(a, plain(x), atol=1e-6)  # the same weights, p = 0: inverted dropout


@pytest.mark.parametrize("n_layer", [1, 2, 3])
@pytest.mark.parametrize("mode", ["eval", "train_embd"])
def test_answer_path_equals_full_forward(n_layer: int, mode: str) -> None:
    """The answer-only path (per-token q, k, v table, last layer at '=' only) gives the full
    forward's logits at the answer position, and the same gradients."""
    model = model_with(n_layer=n_layer, embd_dropout=0.2 if mode == "train_embd" else 0.0)
    model.train(mode != "eval")
    x, y = rows(64), rows(64)[:, 0]
    grads = []
    for answer_only in (True, False):
        model.answer_only = answer_only
        model.seed_dropout(3, 7)  # the same embedding mask in both
        model.zero_grad()
        logits = model(x)
        F.cross_entropy(logits, y).backward()
        grads.append((logits.detach(), [p.grad.clone() for p in model.parameters()]))
    (fast, gf), (full, gs) = grads
    assert fast.shape == (64, P)
    assert torch.allclose(fast, full, atol=1e-5)
    assert torch.allclose(fast, model.forward_all(model.tokens(x))[:, -1].detach(), atol=1e-5)
    for a, b in zip(gf, gs):
        assert torch.allclose(a, b, atol=1e-5)


def test_label_smoothing_equals_closed_form() -> None:
    """CE with smoothing ε = (1 − ε)·(−log p_y) + ε·mean_c(−log p_c) (target (1 − ε)·onehot + ε/C)."""
    model = model_with()
    model.eval()
    x, y = rows(50), rows(50, seed=1)[:, 1]
    with torch.no_grad():
        logits = model(x).double()
    logp = torch.log_softmax(logits, 1)
    for eps in (0.0, 0.1, 0.5):
        closed = ((1 - eps) * -logp[torch.arange(50), y] + eps * -logp.mean(1)).mean()
        assert float(task_loss("classification", eps, logits, y)) == pytest.approx(float(closed))
        ce = torch.nn.CrossEntropyLoss(label_smoothing=eps)(logits, y)
        assert float(ce) == pytest.approx(float(closed))


@pytest.mark.parametrize("decay_embeddings", [True, False], ids=["nanoGPT", "minGPT"])
def test_no_decay_group_per_convention(decay_embeddings: bool) -> None:
    """no_decay = every bias and LayerNorm parameter, plus the embedding tables under the GPT-3 /
    minGPT convention; nanoGPT decays the tables. Checked against the parameters' names."""
    model = model_with(n_layer=2)
    opt = build_optimizer(model, HParams(weight_decay=0.1, decay_embeddings=decay_embeddings))
    names = {id(p): n for n, p in model.named_parameters()}
    groups: dict[str, set[str]] = {"decay": set(), "no_decay": set()}  # a param_group per kind
    for g in opt.param_groups:
        groups[g["name"]] |= {names[id(p)] for p in g["params"]}
    expected = {n for n in names.values() if n.endswith(".bias") or ".ln_" in n or n.startswith("ln_f")}
    if not decay_embeddings:
        expected |= {"wte.weight", "wpe.weight"}
    assert groups["no_decay"] == expected
    assert groups["decay"] == set(names.values()) - expected
    assert {"wte.weight", "wpe.weight"} <= (groups["decay"] if decay_embeddings else groups["no_decay"])
    wd = {(g["name"], g["weight_decay"]) for g in opt.param_groups}
    assert wd == {("decay", 0.1), ("no_decay", 0.0)}


def test_decay_embeddings_live_switch_stops_decaying_the_tables() -> None:
    from regsim.optim import apply_settings

    model = model_with()
    old = HParams(weight_decay=0.1)
    opt = build_optimizer(model, old)
    opt2 = apply_settings(opt, model, old, old.replace(decay_embeddings=False))
    assert opt2 is opt
    nd = [p for g in opt.param_groups if g["name"] == "no_decay" for p in g["params"]]
    assert any(p is model.wte.weight for p in nd)
    assert all(g["weight_decay"] == 0.0 for g in opt.param_groups if g["name"] == "no_decay")
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


@pytest.mark.parametrize("warmup, total, floor", [(3, 20, 0.1), (0, 7, 0.0), (10, 10, 0.5)])
def test_schedule_equals_closed_form_every_step(warmup: int, total: int, floor: float) -> None:
    """warmup_cosine: η(t+1)/T_w for t < T_w, then η(r + (1 − r)·½(1 + cos π s)), s = (t − T_w)/(T − T_w)
    clipped to 1 — at every step of a run past its end."""
    h = HParams(lr=3e-3, schedule="warmup_cosine", warmup_steps=warmup, total_steps=total,
                min_lr_ratio=floor)
    for t in range(total + 5):
        if t < warmup:
            want = 3e-3 * (t + 1) / warmup
        else:
            s = min(1.0, (t - warmup) / max(1, total - warmup))
            want = 3e-3 * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * s)))
        assert lr_at(h, t) == pytest.approx(want, rel=1e-12), t


def test_mlp_analyses_say_they_do_not_apply() -> None:
    model = model_with()
    with pytest.raises(NotForTransformer, match="architecture = 'mlp'"):
        _ = model.linears
    with pytest.raises(ValueError, match="n_embd = 10 must divide by n_head = 4"):
        Transformer(TransformerConfig(n_classes=P, n_embd=10, n_head=4))


def test_site_rates_change_in_place() -> None:
    model = model_with()
    mods = [d for ds in model.site_modules().values() for d in ds]
    model.set_sites(0.1, 0.2, 0.3, 0.4)
    assert [d for ds in model.site_modules().values() for d in ds] == mods  # the same modules
    assert model.site_rates() == (0.1, 0.2, 0.3, 0.4)
    with pytest.raises(ValueError, match=r"attn_dropout = 1.0 is out of range; allowed: \[0, 1\)"):
        model.set_sites(0.0, 1.0, 0.0, 0.0)


@pytest.mark.parametrize("warmup, total, floor", [(3, 20, 0.1), (0, 7, 0.0), (100, 2000, 0.1)])
def test_recipe_lr_curve_equals_the_trainers_schedule_every_step(warmup: int, total: int,
                                                                  floor: float) -> None:
    """The panel's numpy schedule (regsim.recipe.lr_curve) is the trainer's lr_at at every step."""
    import numpy as np

    from regsim.recipe import lr_curve

    for schedule in ("constant", "warmup_cosine"):
        h = HParams(lr=1e-3, schedule=schedule, warmup_steps=warmup, total_steps=total,
                    min_lr_ratio=floor)
        steps = np.arange(total + 50)
        want = np.array([lr_at(h, int(t)) for t in steps])
        assert np.allclose(lr_curve(h, steps), want, rtol=1e-12, atol=0)


def test_clip_events_count_the_steps_whose_norm_exceeded_the_clip() -> None:
    """Snapshot.clip_events = #steps with ‖g‖ > c, against the norms read back step by step."""
    from regsim.trainer import Trainer

    h = HParams(dataset="moons", hidden=(16,), train_size=64, val_size=32, batch_size=8,
                optimizer="sgd", lr=0.1, grad_clip=0.3, seed=2)
    t = Trainer(h, device="cpu")
    norms = []
    for _ in range(40):
        t.step(1)
        norms.append(t.snapshot(parts=()).grad_norm)
    want = sum(n > 0.3 for n in norms)
    assert 0 < want < 40  # some steps clipped, some not: the count can be wrong either way
    assert t.snapshot(parts=()).clip_events == want
    assert t.fork().snapshot(parts=()).clip_events == want


def test_recipe_table_names_the_optimizer_that_runs() -> None:
    """λ = 0 under decoupled decay is plain Adam (the original Transformer's), λ > 0 AdamW (LLaMA's)."""
    from regsim.presets import load_preset
    from regsim.recipe import recipe_rows

    rows = {p: dict(recipe_rows(load_preset(p)))["optimizer"] for p in ("transformer_original",
                                                                         "transformer_llama")}
    assert rows["transformer_original"].startswith("Adam, ")
    assert rows["transformer_llama"].startswith("AdamW, ")
