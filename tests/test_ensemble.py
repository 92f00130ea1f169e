"""The ensemble analysis against a brute-force loop over every dropout mask (one mask at a time)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import regsim
from regsim import HParams, Trainer
from regsim.analyses import ensemble
from regsim.analyses.base import drain


def trained(hidden: tuple[int, ...], p: float, steps: int = 300, dataset: str = "moons",
            **kw: object) -> Trainer:
    t = Trainer(HParams(dataset=dataset, hidden=hidden, dropout=p, train_size=200, val_size=200,
                        lr=0.01, **kw), device="cpu")
    t.step(steps)
    return t


def brute_force(t: Trainer, site: int, p: float, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Every mask of every unit at `site` (0 = input, k = after hidden layer k), one forward pass
    each, written out from the nn.Linear layers: no code shared with the analysis. The forward
    passes run in the network's float32 (a float64 copy differs from the float32 network itself
    by up to 1.2e-6 in probability on a trained net: seen), the means accumulate in float64."""
    model = t.view().model
    lin = list(model.linears) + [model.out]
    h = x
    for i in range(site):
        h = torch.relu(lin[i](h))
    n = h.shape[1]
    arith = 0.0
    log_geo = 0.0
    acc, weight = [], []
    for m in range(2**n):
        bits = torch.tensor([(m >> i) & 1 for i in range(n)], dtype=torch.float32)
        w = float(np.prod([(1 - p) if b else p for b in bits.tolist()]))
        z = h * bits / (1 - p)
        for i in range(site, len(lin) - 1):
            z = torch.relu(lin[i](z))
        z = lin[-1](z)
        prob = torch.softmax(z, 1).double()
        arith = arith + w * prob
        log_geo = log_geo + w * torch.log_softmax(z, 1).double()
        acc.append(float((z.argmax(1) == y).double().mean()))
        weight.append(w)
    geo = torch.softmax(log_geo, 1)  # normalized Π p_m^P(m)
    with torch.no_grad():
        ws = torch.softmax(model(x), 1).double()
    return {"arithmetic": arith.numpy(), "geometric": geo.numpy(), "weight_scaled": ws.numpy(),
            "sub_accuracy": np.array(acc), "mask_weight": np.array(weight)}


def check_against(res: ensemble.EnsembleResult, ref: dict) -> None:
    for k in ("arithmetic", "geometric", "weight_scaled", "mask_weight"):
        np.testing.assert_allclose(getattr(res, k), ref[k], atol=1e-6, rtol=0, err_msg=k)
    np.testing.assert_array_equal(res.sub_accuracy, ref["sub_accuracy"])


@pytest.fixture(scope="module")
def one_layer() -> Trainer:
    return trained((8,), 0.3)


def test_exact_last_layer_equals_brute_force_n8(one_layer: Trainer) -> None:
    t = one_layer
    with torch.no_grad():
        res = regsim.analyze(t, "ensemble")
        x = torch.cat([t.x_train, t.x_val])
        y = torch.cat([t.y_train, t.y_val])
        ref = brute_force(t, 1, 0.3, x, y)
    assert res.exact and res.linear and res.n_units == 8 and res.n_masks == 256
    assert "meet in the middle" in res.method
    check_against(res, ref)
    # the page's sub-networks, evaluated directly, are the masks of their indices
    assert res.page_probs.shape == (16, len(x), 2)
    assert np.array_equal(res.page_masks[3], [True, True, False, False, False, False, False, False])
    np.testing.assert_allclose(res.kept, res.page_masks.sum(1).tolist() + [
        bin(m).count("1") for m in range(16, 256)])


def test_geometric_equals_weight_scaling_for_the_last_layer_not_the_arithmetic(one_layer: Trainer) -> None:
    res = regsim.analyze(one_layer, "ensemble")
    assert res.max_diff_geometric < 1e-6
    # Jensen: the arithmetic mean of the sub-networks' softmax is not the weight-scaled net
    # (measured 0.17 max, 0.03 mean on this run)
    assert res.max_diff_arithmetic > 0.05 and res.mean_diff_arithmetic > 0.005
    assert res.max_diff_arithmetic_geometric > 0.05


def test_n16_exact_and_geometric_equals_weight_scaling() -> None:
    t = trained((16,), 0.5)
    res = regsim.analyze(t, "ensemble", page_size=0)
    assert res.exact and res.n_masks == 2**16
    assert res.max_diff_geometric < 1e-6
    np.testing.assert_allclose(res.mask_weight, 2.0**-16)
    # the ensemble beats the average single sub-network
    assert res.accuracy_arithmetic > res.mean_sub_accuracy
    assert res.max_diff_arithmetic > 0.05


def test_ten_classes_last_layer_equals_brute_force() -> None:
    t = trained((6,), 0.4, steps=150, dataset="digits")
    res = regsim.analyze(t, "ensemble", points="val")
    with torch.no_grad():
        ref = brute_force(t, 1, 0.4, t.x_val, t.y_val)
    assert res.arithmetic.shape == (len(t.x_val), 10)
    check_against(res, ref)
    assert res.max_diff_geometric < 1e-6


def test_deeper_site_is_not_linear_and_geometric_differs() -> None:
    t = trained((8, 8), 0.5)
    res = regsim.analyze(t, "ensemble", site="fc1")
    assert res.exact and not res.linear and "forward passes" in res.method
    with torch.no_grad():
        ref = brute_force(t, 1, 0.5, torch.cat([t.x_train, t.x_val]), torch.cat([t.y_train, t.y_val]))
    check_against(res, ref)
    # a ReLU and a Linear lie between the mask and the logits: G ≠ W (measured 0.04 here)
    assert res.max_diff_geometric > 0.005
    # the last layer of the same net: linear again
    last = regsim.analyze(t, "ensemble")
    assert last.linear and last.max_diff_geometric < 1e-6


def test_input_site_brute_force() -> None:
    t = trained((8,), 0.0, input_dropout=0.2)
    res = regsim.analyze(t, "ensemble", site="input")
    assert res.n_masks == 4 and res.p == pytest.approx(0.2)
    with torch.no_grad():
        ref = brute_force(t, 0, 0.2, torch.cat([t.x_train, t.x_val]), torch.cat([t.y_train, t.y_val]))
    check_against(res, ref)


def test_seed_small_case_four_units_sixteen_masks() -> None:
    t = trained((4,), 0.5, steps=100)
    res = regsim.analyze(t, "ensemble", points="grid", resolution=11)
    assert res.n_units == 4 and res.n_masks == 16 and res.exact
    assert res.x.shape == (121, 2) and res.grid_shape == (11, 11)
    assert res.arithmetic.shape == (121, 2) and res.page_probs.shape == (16, 121, 2)
    assert len(res.labels) == 400  # accuracies on train + val


def test_wide_layer_samples_or_enumerates_a_subset() -> None:
    t = trained((40,), 0.5, steps=50)
    res = regsim.analyze(t, "ensemble", samples=512)
    assert not res.exact and res.n_masks == 512 and "sampled" in res.note
    assert res.masks.shape == (512, 40)
    np.testing.assert_allclose(res.mask_weight, 1 / 512)
    # the kept share of sampled masks is near 1 − p
    assert abs(res.masks.mean() - 0.5) < 0.02
    sub = regsim.analyze(t, "ensemble", units=list(range(0, 40, 4)))
    assert sub.exact and sub.n_masks == 2**10 and "10 of the 40 units" in sub.note
    assert sub.max_diff_geometric < 1e-6  # still linear: the rest sit at their expected value


def test_p_zero_site_falls_back_and_says_so() -> None:
    t = trained((4,), 0.0, steps=20)
    res = regsim.analyze(t, "ensemble")
    assert res.p == 0.5 and "p = 0" in res.note


@pytest.mark.parametrize("params, field", [
    ({"site": "fc9"}, "site"), ({"units": list(range(17))}, "units"), ({"units": [1, 1]}, "units"),
    ({"p": 1.0}, "p"), ({"points": "all"}, "points"), ({"samples": 3}, "samples"),
    ({"page_size": -1}, "page_size"), ({"resolution": 2}, "resolution"), ({"units": [99]}, "units")])
def test_bad_requests_name_the_field(one_layer: Trainer, params: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        regsim.analyze(one_layer, "ensemble", **params)


def test_regression_is_refused_and_the_job_yields_progress() -> None:
    t = Trainer(HParams(dataset="regression", hidden=(8,), dropout=0.2), device="cpu")
    with pytest.raises(ValueError, match="classification"):
        regsim.analyze(t, "ensemble")
    t = trained((16,), 0.5, steps=10)
    gen = ensemble.compute(t.view(), ensemble.EnsembleRequest())
    steps = 0
    try:
        while True:
            next(gen)
            steps += 1
            assert torch.is_grad_enabled()  # no suspended no_grad leaks into the engine's training
    except StopIteration as stop:
        res = stop.value
    assert steps >= 4 and res.n_masks == 2**16
    assert drain(ensemble.compute(t.view(), ensemble.EnsembleRequest(page_size=0))).page_probs.shape[0] == 0


def batched_brute_force(model, x: torch.Tensor, y: torch.Tensor, p: float) -> dict:
    """Every mask of the last hidden layer through the network's own output layer, 1024 masks at a
    time (n = 16 one at a time takes minutes): z_m = out(h ⊙ m / (1 − p)), softmax, then the means
    in float64. Only nn.Linear and the masks: nothing of the analysis."""
    with torch.no_grad():
        h = x
        for lin in model.linears:
            h = torch.relu(lin(h))
        n = h.shape[1]
        arith = torch.zeros(len(x), model.out.out_features, dtype=torch.float64)
        log_geo = torch.zeros_like(arith)
        acc, weight = [], []
        for m0 in range(0, 2**n, 1024):
            idx = torch.arange(m0, min(2**n, m0 + 1024))
            bits = ((idx[:, None] >> torch.arange(n)) & 1).float()  # (G, n)
            w = ((1 - p) ** bits.sum(1) * p ** (n - bits.sum(1))).double()  # (G,)
            z = model.out(h[None] * bits[:, None] / (1 - p))  # (G, N, C)
            arith += torch.einsum("g,gnc->nc", w, torch.softmax(z, -1).double())
            log_geo += torch.einsum("g,gnc->nc", w, torch.log_softmax(z, -1).double())
            acc.append((z.argmax(-1) == y).double().mean(1))
            weight.append(w)
        ws = torch.softmax(model(x), 1).double()
    return {"arithmetic": arith.numpy(), "geometric": torch.softmax(log_geo, 1).numpy(),
            "weight_scaled": ws.numpy(), "sub_accuracy": torch.cat(acc).numpy(),
            "mask_weight": torch.cat(weight).numpy()}


def test_n16_factorized_sigmoid_equals_brute_force() -> None:
    """The two-class loop computes σ(A + B) as 1 / (1 + e^−A · e^−B): all 2¹⁶ masks against the
    batched loop, on a p = 0.3 net (unequal mask weights)."""
    t = trained((16,), 0.3, steps=200)
    x, y = torch.cat([t.x_train, t.x_val]), torch.cat([t.y_train, t.y_val])
    res = regsim.analyze(t, "ensemble", page_size=0)
    assert res.exact and res.n_masks == 2**16 and "e^(−A_j)" in res.method
    check_against(res, batched_brute_force(t.view().model, x, y, 0.3))


def test_huge_logits_take_the_sigmoid_path_and_still_equal_brute_force(monkeypatch) -> None:
    """Logits ×400 push the halves' exponents past ±EXP_SPAN (e^−A would overflow): the sigmoid
    loop takes over, with the same numbers as brute force; forcing that loop on an ordinary net
    (EXP_SPAN = 0) gives the factorized loop's numbers."""
    t = trained((10,), 0.5, steps=200)
    view = t.view()
    with torch.no_grad():
        view.model.out.weight.mul_(400)
    x, y = torch.cat([view.x_train, view.x_val]), torch.cat([view.y_train, view.y_val])
    with torch.no_grad():
        d = view.model(x)
    assert float((d[:, 1] - d[:, 0]).abs().max()) > 2 * ensemble.EXP_SPAN
    calls = []
    orig = ensemble._two_class_sigmoid
    monkeypatch.setattr(ensemble, "_two_class_sigmoid", lambda *a: calls.append(1) or orig(*a))
    res = drain(ensemble.compute(view, ensemble.EnsembleRequest()))
    assert calls, "the sigmoid loop was not used"
    ref = batched_brute_force(view.model, x, y, 0.5)
    for k in ("arithmetic", "weight_scaled", "mask_weight"):
        np.testing.assert_allclose(getattr(res, k), ref[k], atol=1e-6, rtol=0, err_msg=k)
    np.testing.assert_array_equal(res.sub_accuracy, ref["sub_accuracy"])
    # the mean logits reach ±10³ here, where a float32 ulp is 6e-5: the geometric mean is only
    # that exact (seen 2.7e-6 off in probability), whichever loop ran
    np.testing.assert_allclose(res.geometric, ref["geometric"], atol=1e-4, rtol=0)
    plain = trained((10,), 0.5, steps=200)
    fast = regsim.analyze(plain, "ensemble")
    calls.clear()
    monkeypatch.setattr(ensemble, "EXP_SPAN", 0.0)
    slow = regsim.analyze(plain, "ensemble")
    assert calls
    np.testing.assert_allclose(fast.arithmetic, slow.arithmetic, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(fast.sub_accuracy, slow.sub_accuracy)


def test_order_accuracy_pages_best_first(one_layer: Trainer) -> None:
    res = regsim.analyze(one_layer, "ensemble", order="accuracy", page_size=8)
    best = np.sort(res.sub_accuracy)[::-1][:8]
    np.testing.assert_array_equal(res.sub_accuracy[res.page_index], best)
    np.testing.assert_array_equal(res.page_masks, ensemble.mask_bits(res.page_index, 8))
    with pytest.raises(ValueError, match="order"):
        regsim.analyze(one_layer, "ensemble", order="random")
