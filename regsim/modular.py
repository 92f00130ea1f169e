"""Modular arithmetic: the task on which networks grok (Power et al. 2022).

Every pair (a, b) of residues mod a prime p is one example, labelled c = a ∘ b mod p:

    +  c = (a + b) mod p            -  c = (a − b) mod p
    *  c = (a · b) mod p            /  c = a · b⁻¹ mod p,  b⁻¹ = b^(p−2) mod p (Fermat), b ≠ 0

Division is defined only for b ≠ 0, so "/" has p·(p − 1) examples and the others p². A seeded
permutation splits the table: round(f·N) pairs for training, the rest for validation, every pair in
exactly one split. The inputs are the two integer tokens (a, b) (int64, shape (N, 2)): the MLPs take
them as one-hot vectors or embedding rows; a sequence model reads them as [a, op, b, =] with
`token_sequences` (vocabulary p + 2: the residues, then the operation token p, then "=" at p + 1).

With half of the pairs for training the table cannot be memorised into generalising by accident: a
network first reaches 100 % train accuracy at chance validation accuracy (1/p), and only weight decay
then pulls it, hundreds of steps later, to the low-norm solution that computes a ∘ b (grokking).

Numpy only: the GUI process imports this without torch.
"""

from __future__ import annotations

import numpy as np

OPERATIONS = ("+", "-", "*", "/")  # HParams.operation's choices (regsim/hparams.py reads them here)

OPERATION_NAMES = {"+": "addition", "-": "subtraction", "*": "multiplication",
                   "/": "division (by the modular inverse)"}


def is_prime(n: int) -> bool:
    """Trial division (p ≤ a few hundred here)."""
    if n < 2:
        return False
    k = 2
    while k * k <= n:
        if n % k == 0:
            return False
        k += 1
    return True


def modular_inverse(b: np.ndarray, p: int) -> np.ndarray:
    """b⁻¹ mod p for b ≠ 0 (p prime), by Fermat: b^(p−2) mod p, square-and-multiply in int64."""
    b = np.asarray(b, dtype=np.int64) % p
    result = np.ones_like(b)
    base, e = b.copy(), p - 2
    while e > 0:
        if e & 1:
            result = result * base % p
        base = base * base % p
        e >>= 1
    return result


def apply_operation(a: np.ndarray, b: np.ndarray, p: int, operation: str) -> np.ndarray:
    """c = a ∘ b mod p, elementwise (int64); "/" needs every b ≠ 0."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if operation == "+":
        return (a + b) % p
    if operation == "-":
        return (a - b) % p
    if operation == "*":
        return a * b % p
    if operation == "/":
        if np.any(b % p == 0):
            raise ValueError("operation '/': b = 0 has no inverse mod p")
        return a * modular_inverse(b, p) % p
    raise ValueError(f"operation = {operation!r} is not allowed; choose one of: {', '.join(OPERATIONS)}")


def all_pairs(p: int, operation: str) -> np.ndarray:
    """Every valid (a, b), row-major: (p², 2), or (p·(p−1), 2) for "/" (b ≠ 0)."""
    b_lo = 1 if operation == "/" else 0
    a, b = np.meshgrid(np.arange(p, dtype=np.int64), np.arange(b_lo, p, dtype=np.int64), indexing="ij")
    return np.stack([a.ravel(), b.ravel()], 1)


def pair_count(p: int, operation: str) -> int:
    return p * (p - 1) if operation == "/" else p * p


def train_count(p: int, operation: str, fraction: float) -> int:
    """How many pairs the training split holds: round(f·N) (the split is exact, not sampled)."""
    return int(round(fraction * pair_count(p, operation)))


def split(p: int, operation: str, fraction: float, seed: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_val, y_val): all pairs, permuted by `seed`, the first round(f·N) for
    training. x: (n, 2) int64 tokens (a, b); y: (n,) int64 labels a ∘ b mod p."""
    pairs = all_pairs(p, operation)
    order = np.random.default_rng(seed).permutation(len(pairs))
    pairs = pairs[order]
    labels = apply_operation(pairs[:, 0], pairs[:, 1], p, operation)
    n = train_count(p, operation, fraction)
    return pairs[:n], labels[:n], pairs[n:], labels[n:]


def vocab_size(p: int) -> int:
    """Tokens of a sequence model: the residues 0..p−1, the operation (p) and "=" (p + 1)."""
    return p + 2


def token_sequences(x: np.ndarray, p: int) -> np.ndarray:
    """(N, 2) pairs → (N, 4) sequences [a, op, b, =] with op = p and "=" = p + 1 (one operation
    per dataset, so one operation token; the answer a ∘ b is predicted at the "=" position)."""
    x = np.asarray(x)
    n = len(x)
    out = np.empty((n, 4), dtype=np.int64)
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = x[:, 0], p, x[:, 1], p + 1
    return out


def check(p: int, operation: str, fraction: float) -> None:
    """A ValueError naming the field when (p, ∘, f) cannot make a dataset (HParams calls this)."""
    if not is_prime(p):
        raise ValueError(f"modulus = {p} is not prime; allowed: a prime such as 47, 59, 97 "
                         "(with a composite p, '*' and '/' are not a group: b⁻¹ may not exist)")
    if operation not in OPERATIONS:
        raise ValueError(f"operation = {operation!r} is not allowed; choose one of: "
                         f"{', '.join(OPERATIONS)}")
    n, total = train_count(p, operation, fraction), pair_count(p, operation)
    if not 1 <= n <= total - 1:
        raise ValueError(f"train_fraction = {fraction!r} leaves {n} of {total} pairs for training; "
                         f"allowed: a fraction that keeps at least one pair in each split "
                         f"({1 / total:.3g} to {1 - 1 / total:.3g} for p = {p})")
