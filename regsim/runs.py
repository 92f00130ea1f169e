"""Runs side by side, the torch-free part: names, what differs, what is shared, snapshots per run.

`regsim.comparison.Comparison` trains the runs; this module holds what the GUI process needs to know
about them without importing torch: the config diff (only the settings that differ), the sentence
saying what two runs share and when that sharing breaks, and `RunSnapshots`, the engine's message
carrying one Snapshot per run at aligned steps.

What a run built from HParams h shares with a reference run built from r (both trained by one
Comparison; each is constructed from its settings alone, so the sharing below is by construction and
tests/test_comparison.py checks it):

- data: the same arrays when dataset, seed and train_size agree, and (synthetic sets) noise and
  val_size, (regression) noise and val_size; digits ignore noise and val_size.
- initial weights: the same when the network's shape (inputs, classes, hidden) and seed agree: the
  Linear layers are drawn from torch.manual_seed(seed) in order. activation and layer_norm do not
  change them (LayerNorm starts at scale 1, shift 0 and draws nothing).
- minibatch order: the same batches at every step when the data and batch_size agree (one
  generator seeded by seed shuffles each epoch). With a different batch size, epoch k still visits
  the examples in the same shuffled order, grouped differently, and at a given step the run with
  the larger batches is further through its epochs.
- dropout masks: each site's mask at step t comes from a stream seeded by (seed, t, site) (see
  regsim.models), so with the same seed, batch size and widths the runs draw the same uniforms u at
  every step. Same p: the same mask. Different p (m = [u ≥ p]): coupled masks, the units kept at the
  higher p a subset of those kept at the lower. A different width or batch size at a site changes
  the shape of u there: that site's masks are unrelated (the other sites still share theirs).
- everything else (λ, decay mode, optimizer, lr, schedule, clipping, label smoothing, p) is the
  setting being compared: it is the only difference while the above hold.

A run added as a copy (`Comparison.add(name, source=...)`, the GUI's "Compare") duplicates its
source at the current step: weights, optimizer moments, step, batch position. From then on both
continue in lockstep and stay bit-identical until a setting differs. After a divergence restore a
run's batch stream is not wound back (it continues from where it was), so its batches differ from
the others' from that point on.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .hparams import LABELS, HParams, field_names
from .snapshot import Snapshot

MAX_RUNS = 4  # lockstep costs N× one run; four curves are as many as a slide can tell apart
RUN_NAMES = ("A", "B", "C", "D")  # default names, in the order runs are added
MAX_NAME = 16  # characters in a run name (it labels legends and the run bar)



def check_name(name: object, taken: tuple[str, ...] | list[str] = ()) -> str:
    """A valid, unused run name (stripped), or a ValueError naming the rule."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"run name {name!r} is not allowed; use 1 to {MAX_NAME} characters")
    name = name.strip()
    if len(name) > MAX_NAME or not name.isprintable():
        raise ValueError(f"run name {name!r} is not allowed; use 1 to {MAX_NAME} printable "
                         "characters")
    if name in taken:
        raise ValueError(f"run name {name!r} is taken; runs: {', '.join(taken)}")
    return name


def next_name(taken: tuple[str, ...] | list[str]) -> str:
    """The first of A, B, C, D (then E…) not taken."""
    for name in RUN_NAMES:
        if name not in taken:
            return name
    i = len(RUN_NAMES)
    while (name := chr(ord("A") + i)) in taken:
        i += 1
    return name


def config_diff(runs: dict[str, HParams]) -> dict[str, dict[str, object]]:
    """{field: {run: value}} for the settings that are not the same in every run, in HParams
    field order (the config diff TensorBoard and omniboard users ask for: only what differs)."""
    if len(runs) < 2:
        return {}
    dicts = {name: h.to_dict() for name, h in runs.items()}
    out: dict[str, dict[str, object]] = {}
    for f in field_names():
        values = {name: d[f] for name, d in dicts.items()}
        if len({repr(v) for v in values.values()}) > 1:
            out[f] = values
    return out


def _data_differs(a: HParams, b: HParams) -> list[str]:
    fields = ["dataset", "seed", "train_size"]
    if a.dataset != "digits" or b.dataset != "digits":
        fields += ["noise", "val_size"]
    return [f for f in fields if getattr(a, f) != getattr(b, f)]


def _shape(dataset: str) -> tuple[int, int]:
    """(inputs, outputs) of the network a dataset needs."""
    return {"digits": (64, 10), "regression": (1, 1)}.get(dataset, (2, 2))


def sharing(run: HParams, reference: HParams) -> dict[str, bool]:
    """What `run` shares with `reference` when both are built from their settings (see above):
    {"data", "initial weights", "batches", "dropout stream"} → shared or not."""
    data = not _data_differs(run, reference)
    same_net = run.hidden == reference.hidden and _shape(run.dataset) == _shape(reference.dataset)
    weights = same_net and run.seed == reference.seed
    batches = data and run.batch_size == reference.batch_size
    stream = same_net and run.seed == reference.seed and run.batch_size == reference.batch_size
    return {"data": data, "initial weights": weights, "batches": batches, "dropout stream": stream}


def sharing_text(run: HParams, reference: HParams, run_name: str = "B",
                 reference_name: str = "A") -> str:
    """One paragraph for the config-diff tooltip: what the two runs share, and why not where not."""
    s = sharing(run, reference)
    if all(s.values()):
        return (f"{run_name} and {reference_name} share the data, the initial weights, the "
                "minibatch order and the dropout random stream: the settings listed are the only "
                "difference (with different p the masks are coupled: the units kept at the higher p "
                "are a subset of those kept at the lower).")
    parts = []
    diff = _data_differs(run, reference)
    if diff:
        parts.append(f"different data ({', '.join(LABELS.get(f, f) for f in diff)} differ)")
    if not s["initial weights"]:
        parts.append("different initial weights" + (" (hidden widths differ)"
                                                    if run.hidden != reference.hidden else ""))
    if not s["batches"]:
        parts.append("different minibatches" + (
            " (batch size differs: each epoch visits the same shuffled order, grouped differently)"
            if not diff and run.batch_size != reference.batch_size else ""))
    if not s["dropout stream"]:
        why = [f for f in ("seed", "batch_size", "hidden") if getattr(run, f) != getattr(reference, f)]
        parts.append("unrelated dropout masks at the sites whose shape or seed differs ("
                     + ", ".join(LABELS.get(f, f) for f in why) + ")")
    shared = [k for k, v in s.items() if v]
    head = f"{run_name} vs {reference_name}: " + "; ".join(parts) + "."
    return head + (f" Still shared: {', '.join(shared)}." if shared else " Nothing is shared.")


@dataclass(frozen=True)
class RunSnapshots:
    """The engine's snapshot message: one Snapshot per run, taken after the same training chunk
    (so their steps agree unless a run is diverged or catching up)."""

    runs: dict[str, Snapshot]  # run name → its snapshot, in run order (the first is the reference)
    selected: str  # the run the controls edit (un-addressed commands go to it)

    @property
    def current(self) -> Snapshot:
        """The selected run's snapshot."""
        return self.runs[self.selected]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.runs)


# ---------------------------------------------------------------------------------- ghost runs

GHOST_FORMAT = "regsim-ghost-1"  # the "format" of a saved run's history file


@dataclass(frozen=True)
class Ghost:
    """A finished run's curves loaded from a file, drawn behind the live runs ("last lecture's run
    vs today's"). Data only: the History series, the run's name and its settings."""

    name: str  # the run's name when it was saved
    hparams: HParams | None  # its settings at the end (None if the file's were not valid)
    data: dict  # History.SERIES name → (N,) float64

    def series(self, name: str) -> np.ndarray:
        return self.data[name]

    def __len__(self) -> int:
        return len(self.data["step"])


def save_history(path: str | os.PathLike, history: Any, name: str,
                 hparams: HParams | None = None) -> Path:
    """Write a run's curves (every History series, plus its name and settings as JSON) to an .npz
    file, whole or not at all (regsim.files: a temporary file in the same folder, then os.replace).
    Data only: loading it runs no code (np.load without pickle)."""
    from .files import atomic_write_bytes
    from .snapshot import History

    arrays = {f"series_{k}": np.asarray(history.series(k), dtype=np.float64) for k in History.SERIES}
    meta = {"format": GHOST_FORMAT, "name": str(name),
            "hparams": hparams.to_dict() if hparams is not None else None}
    buf = io.BytesIO()
    np.savez_compressed(buf, meta=np.array(json.dumps(meta)), **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def load_ghost(path: str | os.PathLike) -> Ghost:
    """A run saved by save_history, or a ValueError naming the file and what is wrong with it."""
    from .snapshot import History

    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            if meta.get("format") != GHOST_FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {GHOST_FORMAT!r}")
            missing = [k for k in History.SERIES if f"series_{k}" not in f.files]
            if missing:
                raise ValueError(f"series {missing[0]!r} missing")
            data = {k: np.asarray(f[f"series_{k}"], dtype=np.float64) for k in History.SERIES}
    except FileNotFoundError:
        raise ValueError(f"{p}: no such file") from None
    except (OSError, KeyError, ValueError, json.JSONDecodeError, zipfile.BadZipFile) as e:
        raise ValueError(f"{p} is not a saved regsim run: {e}") from None
    n = {len(v) for v in data.values()}
    if len(n) != 1:
        raise ValueError(f"{p} is not a saved regsim run: its series have different lengths")
    try:
        hparams = HParams.from_dict(meta["hparams"]) if meta.get("hparams") else None
    except ValueError:
        hparams = None  # settings from another version: the curves are still worth showing
    return Ghost(str(meta.get("name") or p.stem), hparams, data)
