"""The core engine's numbers, checked against independent computations."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch

from regsim import HParams, Trainer, list_presets, load_preset
from regsim.data import make_dataset
from regsim.models import MLP, InvertedDropout
from regsim.optim import build_optimizer, lr_at, split_decay_groups
from regsim.snapshot import Snapshot
from regsim.trainer import GRID, GRID_FINE

# ------------------------------------------------------------------------------------ dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_inverted_dropout_preserves_expectation(p: float) -> None:
    torch.manual_seed(0)
    drop = InvertedDropout(p).train()
    x = torch.rand(4000, 50) + 0.5  # (B, U), values in [0.5, 1.5]
    y = drop(x)
    # Each y_i is x_i/(1-p) with prob 1-p, else 0: Var = x² p/(1-p). Mean over B samples per unit.
    mean = y.mean(0)
    sd = torch.sqrt((x**2).mean(0) * p / (1 - p) / x.shape[0])
    z = ((mean - x.mean(0)).abs() / sd).max().item()
    assert z < 5.0, f"max z-score {z:.2f}: E[dropout(x)] differs from x"
    kept = drop.last_mask.float().mean().item()
    assert abs(kept - (1 - p)) < 0.01
    # survivors are scaled by exactly 1/(1-p), the dropped are exactly 0
    m = drop.last_mask
    torch.testing.assert_close(y[m], x[m] / (1 - p))
    assert torch.all(y[~m] == 0)


def test_dropout_is_identity_in_eval() -> None:
    drop = InvertedDropout(0.7).eval()
    x = torch.randn(64, 32)
    assert torch.equal(drop(x), x)


def test_dropout_rejects_p_one() -> None:
    drop = InvertedDropout(1.0).train()
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        drop(torch.ones(2, 2))


# ------------------------------------------------------------------------------------ hparams


@pytest.mark.parametrize("field, value, pattern", [
    ("dropout", 1.0, r"dropout = 1.0 is out of range; allowed: \[0, 1\)"),
    ("dropout", -0.1, r"dropout"),
    ("weight_decay", -1e-4, r"weight_decay = -0.0001 is out of range; allowed: \[0, 10\]"),
    ("lr", 0.0, r"lr = 0.0 is out of range; allowed: \[1e-06, 10000\]"),
    ("lr", float("nan"), r"lr"),
    ("optimizer", "rmsprop", r"optimizer = 'rmsprop' is not allowed; choose one of: sgd, momentum, adam"),
    ("decay_mode", "l1", r"decay_mode"),
    ("hidden", (0,), r"hidden"),
    ("batch_size", 0, r"batch_size"),
])
def test_invalid_hparams_rejected_with_field_and_range(field, value, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        HParams(**{field: value})


def test_hparams_from_dict_types_and_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown setting 'dropuot'"):
        HParams.from_dict({"dropuot": 0.5})
    with pytest.raises(ValueError, match="lr: 'fast' has the wrong type; expected a number"):
        HParams.from_dict({"lr": "fast"})
    with pytest.raises(ValueError, match="hidden"):
        HParams.from_dict({"hidden": "wide"})
    h = HParams.from_dict({"hidden": "128,64", "betas": [0.9, 0.95], "lr": "3e-4",
                           "decay_norms_and_biases": "true", "seed": 3})
    assert h.hidden == (128, 64) and h.betas == (0.9, 0.95) and h.lr == 3e-4
    assert h.decay_norms_and_biases is True and h.seed == 3
    assert HParams.from_dict(h.to_dict()) == h


# ------------------------------------------------------------------------------------ data


@pytest.mark.parametrize("name", ["moons", "circles", "spiral", "xor", "regression", "digits"])
def test_datasets_deterministic_by_seed(name: str) -> None:
    a = make_dataset(HParams(dataset=name, seed=1, train_size=100))
    b = make_dataset(HParams(dataset=name, seed=1, train_size=100))
    c = make_dataset(HParams(dataset=name, seed=2, train_size=100))
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_val, b.y_val)
    assert not np.array_equal(a.x_train, c.x_train)
    assert len(a.x_train) == 100


def test_digits_is_the_real_uci_set() -> None:
    d = make_dataset(HParams(dataset="digits", train_size=1000))
    assert len(d.x_train) + len(d.x_val) == 1797
    assert d.x_train.shape[1] == 64 and d.n_classes == 10
    assert d.x_train.min() >= 0 and d.x_train.max() <= 1
    counts = np.bincount(np.concatenate([d.y_train, d.y_val]), minlength=10)
    assert counts.min() >= 170 and counts.max() <= 190  # ~180 of each digit
    with pytest.raises(ValueError, match="train_size = 1500 is out of range for digits"):
        make_dataset(HParams(dataset="digits", train_size=1500))


def test_regression_has_a_gap() -> None:
    d = make_dataset(HParams(dataset="regression", train_size=500))
    assert np.all(np.abs(d.x_train) >= 1.0)


# ------------------------------------------------------------------------------------ optimizers


def _twin_trainers(**kw) -> tuple[Trainer, Trainer]:
    a = Trainer(HParams(**kw), device="cpu")
    b = Trainer(HParams(**kw), device="cpu")
    b.model.load_state_dict(a.model.state_dict())
    return a, b


def test_sgd_l2_equals_sgd_decoupled() -> None:
    # tanh, not relu: at a relu kink a 1-ulp rounding difference flips a unit on or off, which is
    # chaos in the float arithmetic, not a difference between the two update rules.
    kw = dict(dataset="moons", optimizer="sgd", lr=0.05, weight_decay=0.05, seed=4,
              activation="tanh")
    a = Trainer(HParams(decay_mode="l2", **kw), device="cpu")
    b = Trainer(HParams(decay_mode="decoupled", **kw), device="cpu")
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)  # same seed, same init
    a.step(2000)
    b.step(2000)
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        torch.testing.assert_close(pa, pb, atol=1e-6, rtol=0)
    # and the decay really acted: without it the weights differ
    c = Trainer(HParams(decay_mode="l2", **{**kw, "weight_decay": 0.0}), device="cpu")
    c.step(2000)
    assert (a.model.linears[0].weight - c.model.linears[0].weight).abs().max() > 1e-3


def test_adam_l2_differs_from_adamw() -> None:
    kw = dict(dataset="moons", optimizer="adam", lr=0.01, weight_decay=0.1, seed=4)
    a = Trainer(HParams(decay_mode="l2", **kw), device="cpu")
    b = Trainer(HParams(decay_mode="decoupled", **kw), device="cpu")
    a.step(200)
    b.step(200)
    diff = max((pa - pb).abs().max().item()
               for pa, pb in zip(a.model.parameters(), b.model.parameters()))
    assert diff > 1e-2


def test_one_adamw_step_matches_closed_form() -> None:
    h = HParams(dataset="moons", optimizer="adam", decay_mode="decoupled", lr=0.01,
                weight_decay=0.1, betas=(0.9, 0.95), seed=2, dropout=0.0)
    t = Trainer(h, device="cpu")
    w0 = t.model.linears[0].weight.detach().clone()
    b0 = t.model.linears[0].bias.detach().clone()
    # Reproduce the gradient of the first batch independently.
    twin = copy.deepcopy(t.model)
    gen = torch.Generator().manual_seed(h.seed)
    idx = torch.randperm(len(t.x_train), generator=gen)[: h.batch_size]
    loss = torch.nn.functional.cross_entropy(twin(t.x_train[idx]), t.y_train[idx])
    loss.backward()
    g_w, g_b = twin.linears[0].weight.grad, twin.linears[0].bias.grad
    t.step(1)
    eps, (b1, b2), lr, lam = 1e-8, h.betas, h.lr, h.weight_decay
    # AdamW, step 1: m̂ = g, v̂ = g², θ ← θ(1 − lr·λ) − lr · m̂ / (√v̂ + ε)
    def closed(theta, g, decay):
        m_hat = ((1 - b1) * g) / (1 - b1)
        v_hat = ((1 - b2) * g * g) / (1 - b2)
        return theta * (1 - lr * decay) - lr * m_hat / (v_hat.sqrt() + eps)

    torch.testing.assert_close(t.model.linears[0].weight, closed(w0, g_w, lam), atol=1e-6, rtol=0)
    # biases are in the no_decay group: no shrink
    torch.testing.assert_close(t.model.linears[0].bias, closed(b0, g_b, 0.0), atol=1e-6, rtol=0)


def test_no_decay_group_holds_exactly_biases_and_norms() -> None:
    model = MLP(2, (16, 8), 2, (0.0, 0.0), layer_norm=True)
    decay, no_decay = split_decay_groups(model)
    names = {id(p): n for n, p in model.named_parameters()}
    decay_names = sorted(names[id(p)] for p in decay)
    no_decay_names = sorted(names[id(p)] for p in no_decay)
    assert decay_names == ["linears.0.weight", "linears.1.weight", "out.weight"]
    assert no_decay_names == sorted(["linears.0.bias", "linears.1.bias", "out.bias",
                                     "norms.0.weight", "norms.0.bias", "norms.1.weight",
                                     "norms.1.bias"])
    opt = build_optimizer(model, HParams(weight_decay=0.1, layer_norm=True))
    wd = {g["name"]: g["weight_decay"] for g in opt.param_groups}
    assert wd == {"decay": 0.1, "no_decay": 0.0}
    opt = build_optimizer(model, HParams(weight_decay=0.1, decay_norms_and_biases=True))
    assert all(g["weight_decay"] == 0.1 for g in opt.param_groups)


def test_warmup_cosine_schedule() -> None:
    h = HParams(lr=1.0, schedule="warmup_cosine", warmup_steps=10, total_steps=110,
                min_lr_ratio=0.1)
    assert lr_at(h, 0) == pytest.approx(0.1)
    assert lr_at(h, 9) == pytest.approx(1.0)
    assert lr_at(h, 60) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_at(h, 110) == pytest.approx(0.1)
    assert lr_at(h, 10_000) == pytest.approx(0.1)


# ------------------------------------------------------------------------------------ updates


def test_update_applies_at_next_step_in_place() -> None:
    t = Trainer(HParams(dataset="moons", dropout=0.1, optimizer="adam"), device="cpu")
    t.step(5)
    opt_before = t.optimizer
    t.update(lr=0.123, weight_decay=0.02, dropout=0.9, betas=(0.8, 0.9))
    assert t.optimizer.param_groups[0]["lr"] != 0.123  # not yet
    t.step(1)
    assert t.optimizer is opt_before  # edited in place, not rebuilt
    g = {g["name"]: g for g in t.optimizer.param_groups}
    assert g["decay"]["lr"] == 0.123 and g["decay"]["weight_decay"] == 0.02
    assert g["no_decay"]["weight_decay"] == 0.0 and g["decay"]["betas"] == (0.8, 0.9)
    mask = t.model.drops[0].last_mask.float()
    assert abs(mask.mean().item() - 0.1) < 0.06  # p = 0.9 keeps ~10%
    snap = t.snapshot()
    assert snap.hparams.dropout == 0.9 and snap.hparams.lr == 0.123
    texts = [e[1] for e in snap.events]
    assert any(s.startswith("λ 0 → 0.02") for s in texts) and any("p 0.1 → 0.9" in s for s in texts)
    assert all(step == 5 for step, _ in snap.events)


def test_invalid_update_rejected_and_nothing_queued() -> None:
    t = Trainer(HParams(dataset="moons"), device="cpu")
    with pytest.raises(ValueError, match="dropout = 1.0 is out of range"):
        t.update(lr=0.5, dropout=1.0)
    with pytest.raises(ValueError, match="lr = -1.0 is out of range"):
        t.update(lr=-1)
    with pytest.raises(ValueError, match="needs a reset"):
        t.update(dataset="digits")
    t.step(1)
    assert t.hparams.lr == HParams().lr


def test_optimizer_switch_keeps_compatible_state() -> None:
    t = Trainer(HParams(dataset="moons", optimizer="adam", decay_mode="l2", weight_decay=0.01),
                device="cpu")
    t.step(20)
    p = t.model.linears[0].weight
    m_before = t.optimizer.state[p]["exp_avg"].clone()
    t.update(decay_mode="decoupled")
    t._apply_pending()
    assert torch.equal(t.optimizer.state[p]["exp_avg"], m_before)  # moments survive l2 ↔ decoupled
    assert t.optimizer.param_groups[0]["decoupled_weight_decay"] is True
    t.update(optimizer="momentum")
    t.step(3)
    assert isinstance(t.optimizer, torch.optim.SGD) and t.optimizer.param_groups[0]["momentum"] == 0.9
    assert "momentum_buffer" in t.optimizer.state[p]
    t.update(optimizer="sgd")
    t._apply_pending()
    assert "momentum_buffer" not in t.optimizer.state.get(p, {})
    t.step(3)
    assert math.isfinite(t.snapshot().train_loss)


# ------------------------------------------------------------------------------------ divergence


def test_divergence_detected_and_weights_restored() -> None:
    t = Trainer(HParams(dataset="digits", train_size=300, optimizer="momentum", lr=1e3,
                        hidden=(64, 64)), device="cpu")
    good = {k: v.clone() for k, v in t.model.state_dict().items()}
    t.step(200)
    snap = t.snapshot()
    assert snap.status == "diverged"
    assert "lr" in snap.message and "Lower lr" in snap.message
    for k, v in t.model.state_dict().items():
        assert torch.isfinite(v).all()
        assert torch.equal(v, good[k])  # the last finite weights: here the initial ones
    assert math.isfinite(snap.train_loss)
    t.step(10)  # a diverged trainer refuses to step until resumed
    assert t.step_count == snap.step
    t.update(lr=0.01)
    t.resume()
    t.step(20)
    assert t.status == "running" and math.isfinite(t.snapshot().train_loss)


def test_non_finite_weight_after_a_finite_loss_is_caught_in_the_same_call() -> None:
    """The update itself can overflow a weight while the step's loss was still finite: the fused
    check over the weights catches it before the call returns, and the checkpoint is restored."""
    t = Trainer(HParams(dataset="moons", hidden=(16, 16), train_size=64), device="cpu")
    t.step(3)
    w = t.model.weight_layers()[1].weight
    poison = [False]

    def after_step(_opt, _args, _kwargs) -> None:
        if poison[0]:
            with torch.no_grad():
                w[0, 0] = float("inf")

    t.optimizer.register_step_post_hook(after_step)
    poison[0] = True
    t.step(1)
    assert t.status == "diverged"
    assert "NaN/inf" in t.message
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


def test_device_errors() -> None:
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device = 'cuda' is not available"):
            Trainer(HParams(), device="cuda")
    with pytest.raises(ValueError, match="device = 'tpu' is not allowed"):
        Trainer(HParams(), device="tpu")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_cuda_path_trains_and_snapshots() -> None:
    t = Trainer(HParams(dataset="digits", train_size=500, dropout=0.5), device="auto")
    assert t.device.type == "cuda"
    t.step(200)
    snap = t.snapshot()
    assert snap.device.startswith("CUDA") and snap.train_acc > 0.5
    cpu = Trainer(HParams(dataset="digits", train_size=500, dropout=0.5), device="cpu")
    assert len(cpu.x_train) == len(t.x_train)


# ------------------------------------------------------------------------------------ snapshots


def test_snapshot_is_numpy_only_and_consistent() -> None:
    t = Trainer(HParams(dataset="moons", dropout=0.5, input_dropout=0.2), device="cpu")
    t.step(30)
    snap = t.snapshot()
    assert isinstance(snap, Snapshot)
    for f in dataclasses.fields(snap):
        v = getattr(snap, f.name)
        items = v if isinstance(v, tuple) else [v]
        for item in items:
            assert not isinstance(item, torch.Tensor), f.name
    # histograms count every weight; norms match an independent computation
    for lin, counts, norm in zip(t.model.weight_layers(), snap.weight_hist, snap.weight_norms):
        assert counts.sum() == lin.weight.numel()
        assert norm == pytest.approx(np.linalg.norm(lin.weight.detach().numpy()), rel=1e-5)
    # eval losses are what an independent eval-mode pass gives
    t.model.eval()
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(t.model(t.x_val), t.y_val).item()
    assert snap.val_loss == pytest.approx(expected, rel=1e-5)
    assert snap.dropout_sites == ("input", "fc1", "fc2")
    assert snap.dropout_masks[1].shape == (32, 64) and snap.dropout_masks[1].dtype == bool
    kept = snap.dropout_masks[1]
    post, pre = snap.activation_post[1], snap.activation_pre[1]
    np.testing.assert_allclose(post, pre * kept[0, : len(pre)] / 0.5, rtol=1e-6)
    assert snap.data.grid_prob.shape == (GRID * GRID_FINE, GRID * GRID_FINE)  # coarse × refined
    assert 0 <= snap.data.grid_prob.min() and snap.data.grid_prob.max() <= 1


def test_histogram_range_follows_shrinking_weights() -> None:
    t = Trainer(HParams(dataset="moons", optimizer="sgd", decay_mode="decoupled", lr=0.1,
                        weight_decay=5.0), device="cpu")
    first = t.snapshot()
    t.step(100)
    snap = t.snapshot()
    assert snap.weight_abs_max[0] < 0.1 * first.weight_abs_max[0]
    # bins shrink with the weights: the histogram keeps its resolution instead of one spike
    assert snap.weight_hist_edges[0][-1] == pytest.approx(snap.weight_abs_max[0])
    assert (snap.weight_hist[0] > 0).sum() > 10


def test_dropout_lowers_generalization_gap_on_digits() -> None:
    """The original recipe's setting (SGD + momentum, 256-256, dropout 0.5 on hidden units and 0.2
    on the inputs) on 300 real digits, same budget.

    Measured here at 1000 steps, gap p = 0 → recipe: 0.188 → 0.124 (seed 0), 0.259 → 0.141 (1),
    0.210 → 0.137 (2), 0.215 → 0.138 (3). Hidden dropout alone closed it only 2–16 % (0.188 →
    0.184 at seed 0), so weakly that the result hung on the mask stream: the per-run streams of
    issue 9 (regsim/models.py) moved seed 0 from just under the old 0.95 bound to just over.
    """
    for seed in (0, 1):
        gaps = {}
        for p in (0.0, 0.5):
            t = Trainer(HParams(dataset="digits", train_size=300, hidden=(256, 256), dropout=p,
                                input_dropout=0.4 * p, optimizer="momentum", momentum=0.9, lr=0.05,
                                batch_size=32, seed=seed), device="cpu")
            t.step(1000)
            s = t.snapshot()
            gaps[p] = s.val_loss - s.train_loss
        assert gaps[0.5] < 0.8 * gaps[0.0], (seed, gaps)


# ------------------------------------------------------------------------------------ presets


def test_presets_load_and_reject_bad_files(tmp_path) -> None:
    names = list_presets()
    for required in ("no_regularization", "original_dropout", "vision_sgd", "adam_l2", "adamw",
                     "llama_recipe"):
        assert required in names
        load_preset(required)
    llama = load_preset("llama_recipe")
    assert (llama.optimizer, llama.decay_mode, llama.weight_decay) == ("adam", "decoupled", 0.1)
    assert llama.betas == (0.9, 0.95) and llama.grad_clip == 1.0 and llama.dropout == 0.0
    assert llama.schedule == "warmup_cosine" and llama.min_lr_ratio == 0.1
    assert load_preset("original_dropout").dropout == 0.5
    bad = tmp_path / "bad.json"
    bad.write_text('{"hparams": {"learning_rate": 0.1}}')
    with pytest.raises(ValueError, match="unknown setting 'learning_rate'"):
        load_preset(bad)
    bad.write_text('{"hparams": {"dropout": "half"}}')
    with pytest.raises(ValueError, match="dropout: 'half' has the wrong type"):
        load_preset(bad)
    bad.write_text('{"hparams": {"dropout": 0.5}, "code": "import os"}')
    with pytest.raises(ValueError, match="unknown top-level key 'code'"):
        load_preset(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_preset(bad)
    with pytest.raises(ValueError, match="preset 'nope' not found"):
        load_preset("nope")


# ------------------------------------------------------------------------------------ change texts


def test_change_events_use_the_controls_words() -> None:
    """Status texts and change markers say what the controls say, not the field names
    ("decay_mode decoupled → l2" before), with numbers to 3 significant digits."""
    from regsim.hparams import CHOICE_LABELS, LABELS, field_names

    t = Trainer(HParams(dataset="moons", optimizer="adam", decay_mode="decoupled", lr=0.01,
                        weight_decay=0.001, dropout=0.1), device="cpu")
    t.step(2)
    t.update(decay_mode="l2", optimizer="momentum", weight_decay=0.0512345, lr=1e-5,
             dropout=0.733333, batch_size=64, schedule="warmup_cosine", decay_norms_and_biases=True,
             betas=(0.85, 0.99))
    t.step(1)
    texts = {e[1] for e in t.snapshot().events}
    assert texts == {"decay mode: decoupled → L2", "optimizer: Adam → SGD + momentum",
                     "λ 0.001 → 0.0512", "lr 0.01 → 1e-5", "p 0.1 → 0.733", "batch size: 32 → 64",
                     "schedule: constant → warm-up + cosine", "decay biases and norms: off → on",
                     "Adam β1, β2: (0.9, 0.999) → (0.85, 0.99)"}, texts
    assert not any("_" in s for s in texts)
    # every field has a human label, and the choice labels are the controls' combo items
    assert set(LABELS) == set(field_names())
    assert CHOICE_LABELS["decay_mode"] == {"decoupled": "decoupled, PyTorch (AdamW / SGDW: lr·λ)",
                                           "decoupled_paper": "decoupled, paper (η_t·λ)",
                                           "l2": "L2 penalty in the gradient"}
    assert CHOICE_LABELS["optimizer"] == {"adam": "Adam", "momentum": "SGD + momentum", "sgd": "SGD"}
