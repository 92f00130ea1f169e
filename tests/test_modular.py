"""The modular-arithmetic dataset (regsim/modular.py): exact split, labels by brute force, seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regsim.data import make_dataset
from regsim.hparams import HParams
from regsim.modular import is_prime, modular_inverse, token_sequences
from regsim.trainer import Trainer


def _brute(a: int, b: int, p: int, op: str) -> int:
    """a ∘ b mod p with plain integers; division by searching the inverse."""
    if op == "+":
        return (a + b) % p
    if op == "-":
        return (a - b) % p
    if op == "*":
        return (a * b) % p
    inv = next(k for k in range(1, p) if (b * k) % p == 1)
    return (a * inv) % p


@pytest.mark.parametrize("op", ["+", "-", "*", "/"])
@pytest.mark.parametrize("p", [11, 47])
def test_split_covers_every_pair_once_with_brute_force_labels(p: int, op: str) -> None:
    d = make_dataset(HParams(dataset="modular", modulus=p, operation=op, train_fraction=0.3, seed=3,
                             batch_size=8))
    x = np.concatenate([d.x_train, d.x_val])
    y = np.concatenate([d.y_train, d.y_val])
    pairs = {(int(a), int(b)) for a, b in x}
    expected = {(a, b) for a in range(p) for b in range(p) if op != "/" or b != 0}
    assert len(x) == len(expected) and pairs == expected  # every pair, none twice
    assert d.x_train.dtype == np.int64 and d.x_train.shape[1] == 2
    assert d.n_classes == p
    for (a, b), c in zip(x.tolist(), y.tolist()):
        assert c == _brute(a, b, p, op)


@pytest.mark.parametrize("f", [0.5, 0.3, 0.9, 0.01])
def test_train_fraction_is_exact(f: float) -> None:
    d = make_dataset(HParams(dataset="modular", modulus=47, train_fraction=f, batch_size=8))
    assert len(d.x_train) == round(f * 47 * 47)
    assert len(d.x_train) + len(d.x_val) == 47 * 47
    d = make_dataset(HParams(dataset="modular", modulus=47, operation="/", train_fraction=f,
                             batch_size=8))
    assert len(d.x_train) == round(f * 47 * 46)


def test_split_is_seeded() -> None:
    h = HParams(dataset="modular", modulus=59)
    a, b = make_dataset(h), make_dataset(h)
    c = make_dataset(h.replace(seed=1))
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_val, b.y_val)
    assert not np.array_equal(a.x_train, c.x_train)
    # The same set of pairs in the other order would be no new split: compare as sets.
    assert {tuple(r) for r in a.x_train.tolist()} != {tuple(r) for r in c.x_train.tolist()}


def test_inverse_and_primes() -> None:
    p = 97
    b = np.arange(1, p)
    assert np.all(b * modular_inverse(b, p) % p == 1)
    assert [n for n in range(30) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]


def test_token_sequences() -> None:
    x = np.array([[3, 5], [0, 46]])
    assert token_sequences(x, 47).tolist() == [[3, 47, 5, 48], [0, 47, 46, 48]]


@pytest.mark.parametrize("changes, field", [
    ({"modulus": 49}, "modulus"),  # not prime
    ({"modulus": 7}, "modulus"),  # below the range
    ({"modulus": 1009}, "modulus"),  # above it
    ({"operation": "%"}, "operation"),
    ({"train_fraction": 0.0}, "train_fraction"),
    ({"train_fraction": 1.0}, "train_fraction"),
    ({"train_fraction": 0.0001}, "train_fraction"),  # rounds to no training pair
    ({"batch_size": 1105}, "batch_size"),  # one more than the 1104 training pairs
    ({"architecture": "embed_mlp", "input_dropout": 0.1}, "input_dropout"),
])
def test_bad_values_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        HParams(dataset="modular", **changes)


def test_embed_mlp_needs_modular_data() -> None:
    with pytest.raises(ValueError, match="architecture"):
        HParams(dataset="moons", architecture="embed_mlp")
    HParams(dataset="modular", batch_size=1104)  # full batch: the 1104 training pairs


def test_embed_mlp_equals_one_hot_mlp() -> None:
    """E_a[a] + E_b[b] is W₁·[onehot(a), onehot(b)]: the gather and the matmul give one network."""
    from regsim.models import EmbedMLP

    torch.manual_seed(0)
    m = EmbedMLP(11, (16, 8), (0.0, 0.0)).eval()
    x = torch.tensor([[a, b] for a in range(11) for b in range(11)])
    onehot = torch.cat([torch.nn.functional.one_hot(x[:, 0], 11),
                        torch.nn.functional.one_hot(x[:, 1], 11)], 1).float()
    assert torch.allclose(m(x), m(onehot), atol=1e-6)
    w1 = m.embed.weight.T  # (H, 2p)
    ref = m.out(torch.relu(m.hidden_linears[0](torch.relu(onehot @ w1.T + m.bias))))
    assert torch.allclose(m(x), ref, atol=1e-5)


@pytest.mark.parametrize("arch", ["mlp", "embed_mlp"])
def test_trainer_trains_on_modular_data(arch: str) -> None:
    h = HParams(dataset="modular", modulus=11, train_fraction=0.5, architecture=arch, hidden=(32,),
                batch_size=60, lr=1e-2)
    t = Trainer(h, "cpu")
    t.step(40)
    s = t.snapshot()
    assert s.train_acc > 0.5  # 60 pairs of 11 classes: memorised fast
    assert s.data is not None and s.data.kind == "tokens"
    table = s.data.grid_prob
    assert table.shape == (11, 11)
    # The table holds, for every pair, whether the model's answer is right: recompute it.
    with torch.no_grad():
        t.model.eval()
        x = torch.cat([t.x_train, t.x_val])
        right = (t.model(x).argmax(1) == torch.cat([t.y_train, t.y_val])).numpy()
    assert np.array_equal(table[x[:, 0].numpy(), x[:, 1].numpy()], right.astype(np.float32))
    assert np.isclose(np.nanmean(table), (s.train_acc * 60 + s.val_acc * 61) / 121)
