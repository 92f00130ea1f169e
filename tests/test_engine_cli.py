"""The engine message loop, landscapes, history buffers, the Qt-free core and the command line."""

from __future__ import annotations

import copy
import json
import queue
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from regsim import HParams, Trainer
from regsim.analyses import analyze, spec
from regsim.analyses.landscape import LandscapeRequest
from regsim.analyses.landscape_math import filter_normalize, make_directions
from regsim.engine import engine_main
from regsim.snapshot import History, histogram_percentiles

ROOT = Path(__file__).resolve().parents[1]


def test_core_imports_without_qt() -> None:
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('PySide6', 'pyqtgraph', 'superqt', 'shiboken6', 'ui'):
                    raise ImportError('blocked: ' + name)
        sys.meta_path.insert(0, Block())
        import regsim
        from regsim import HParams, Trainer, load_preset, list_presets
        import regsim.engine, regsim.analyses.landscape_math, regsim.cli, regsim.bench
        t = Trainer(load_preset('moons_dropout'), device='cpu')
        t.step(5)
        assert t.snapshot().step == 5
        assert not any(m.split('.')[0] in ('PySide6', 'pyqtgraph') for m in sys.modules)
        print('ok')
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_regsim_light_import_does_not_load_torch() -> None:
    code = ("import sys, regsim, regsim.snapshot, regsim.analyses, regsim.analyses.jobs\n"
            "from regsim.analyses.landscape import LandscapeResult\n"
            "assert 'landscape' in regsim.list_analyses()\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "False", out.stderr


# ------------------------------------------------------------------------------------ engine


def _wait_for(out: queue.Queue, pred, timeout: float = 20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            kind, payload = out.get(timeout=0.2)
        except queue.Empty:
            continue
        if pred(kind, payload):
            return kind, payload
    raise AssertionError("message not seen in time")


def test_engine_thread_run_update_pause_stop() -> None:
    cmds: queue.Queue = queue.Queue()
    out: queue.Queue = queue.Queue()
    th = threading.Thread(target=engine_main, args=(cmds, out, HParams(dataset="moons").to_dict(),
                                                    "cpu"), daemon=True)
    th.start()
    _wait_for(out, lambda k, p: k == "ready")
    cmds.put(("run", None))
    _, snap = _wait_for(out, lambda k, p: k == "snapshot" and p.step > 20)
    cmds.put(("update", {"weight_decay": 0.05}))
    _, snap2 = _wait_for(out, lambda k, p: k == "snapshot" and p.hparams.weight_decay == 0.05)
    assert snap2.step > snap.step and any("λ" in e[1] for e in snap2.events)
    cmds.put(("update", {"dropout": 1.0}))
    _, msg = _wait_for(out, lambda k, p: k == "invalid")
    assert "dropout = 1.0 is out of range" in msg
    cmds.put(("pause", None))
    _, paused = _wait_for(out, lambda k, p: k == "snapshot" and p.status == "paused")
    cmds.put(("step", 7))
    _, stepped = _wait_for(out, lambda k, p: k == "snapshot" and p.step >= paused.step + 7)
    assert stepped.step == paused.step + 7
    cmds.put(("analyze", {"id": "j1", "run": "", "analysis": "landscape",
                          "params": {"resolution": 9, "preview": 0}}))
    _, job = _wait_for(out, lambda k, p: k == "job" and p.kind == "result")
    assert job.id == "j1" and job.result.loss.shape == (9, 9)
    cmds.put(("reset", HParams(dataset="xor").to_dict()))
    _, fresh = _wait_for(out, lambda k, p: k == "snapshot" and p.hparams.dataset == "xor")
    assert fresh.step == 0
    cmds.put(("stop", None))
    _wait_for(out, lambda k, p: k == "stopped")
    th.join(5)
    assert not th.is_alive()


def test_engine_reports_bad_start_and_stops() -> None:
    cmds: queue.Queue = queue.Queue()
    out: queue.Queue = queue.Queue()
    engine_main(cmds, out, {"dropout": 2.0}, "cpu")
    kinds = []
    while not out.empty():
        kinds.append(out.get()[0])
    assert kinds == ["error", "stopped"]


# ------------------------------------------------------------------------------------ landscape


@pytest.mark.parametrize("hparams", [
    HParams(dataset="moons", hidden=(16, 16), train_size=128),
    HParams(dataset="regression", hidden=(16, 8), train_size=64),  # MSE, targets (N, 1)
    HParams(dataset="digits", hidden=(16,), train_size=64),  # 64 inputs, 10 classes
    HParams(dataset="spiral", hidden=(8, 8, 8), train_size=64, layer_norm=True,
            activation="tanh"),
], ids=["moons", "regression", "digits", "layernorm-tanh"])
def test_landscape_matches_independent_perturbation(hparams, monkeypatch) -> None:
    """Every grid point equals the loss of a copy of the network moved by α·d₁ + β·d₂, computed
    the plain way; chunks of 3 grid points (the last one partial) exercise the reused buffers."""
    import regsim.analyses.landscape_math as landscape_math

    t = Trainer(hparams, device="cpu")
    t.step(100)
    monkeypatch.setattr(landscape_math, "CACHE_FLOATS", 3 * len(t.x_train) * max(t.model.sizes))
    land = spec("landscape")
    gen = land.compute(t.view(), land.request(dict(resolution=5, span=0.5, preview=3,
                                                   directions="random")))
    res = []
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            res.append(stop.value)
            break
        if p.partial is not None and p.partial.done == p.partial.total:
            res.append(p.partial)
    assert [r.coarse for r in res] == [True, False]
    assert res[0].loss.shape == (3, 3) and np.isfinite(res[0].loss).all()
    full = res[-1]
    params = list(t.model.parameters())
    d1, d2, _ = make_directions(params, [], "random", 0)

    def loss(model) -> float:
        out = model(t.x_train)
        if hparams.dataset == "regression":
            return torch.nn.functional.mse_loss(out, t.y_train).item()
        return torch.nn.functional.cross_entropy(out, t.y_train).item()

    expected = np.zeros_like(full.loss)
    with torch.no_grad():
        for i, b in enumerate(full.betas):
            for j, a in enumerate(full.alphas):
                twin = copy.deepcopy(t.model).eval()
                for p, u, v in zip(twin.parameters(), d1, d2):
                    p.add_(a * u + b * v)
                expected[i, j] = loss(twin)
        t.model.eval()
        center = loss(t.model)
        t.model.train()
    np.testing.assert_allclose(full.loss, expected, rtol=1e-4, atol=1e-6)
    assert full.center_loss == pytest.approx(center, rel=1e-5)
    assert full.loss[2, 2] == pytest.approx(center, rel=1e-4)  # (0, 0) is the current weights


def test_filter_normalization_rows() -> None:
    w = [torch.randn(8, 4) * torch.arange(1, 9).float()[:, None], torch.randn(8)]
    d = filter_normalize([torch.randn(8, 4), torch.randn(8)], w)
    torch.testing.assert_close(d[0].norm(dim=1), w[0].norm(dim=1))
    assert torch.all(d[1] == 0)  # biases get no direction


def test_pca_directions_show_the_path() -> None:
    t = Trainer(HParams(dataset="moons", hidden=(16, 16)), device="cpu")
    for _ in range(10):
        t.step(20)
    res = analyze(t, "landscape", resolution=5, preview=0)
    assert res.directions == "pca"
    assert len(res.path) == len(res.path_steps) >= 10
    assert np.abs(res.path[0]).max() > 0.05  # the start is visibly away from the centre
    assert np.abs(res.path[-1]).max() < 1e-3  # the newest point is the centre
    assert res.alphas.max() >= np.abs(res.path[:, 0]).max()  # the window holds the path


def test_landscape_request_validation() -> None:
    with pytest.raises(ValueError, match=r"resolution = 2 is out of range; allowed: \[3, 201\]"):
        LandscapeRequest(resolution=2)
    with pytest.raises(ValueError, match="span"):
        LandscapeRequest(span=0)
    with pytest.raises(ValueError, match="unknown landscape setting 'size'"):
        spec("landscape").request({"size": 3})


# ------------------------------------------------------------------------------------ history


def test_histogram_percentiles_match_numpy() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=200_000)
    counts, edges = np.histogram(x, bins=64, range=(-5, 5))
    got = histogram_percentiles(counts, edges, History.PERCENTILES)
    want = np.percentile(x, History.PERCENTILES)
    width = edges[1] - edges[0]
    assert np.all(np.abs(got[1:-1] - want[1:-1]) < width)


def test_history_is_bounded_and_keeps_both_ends() -> None:
    from synthetic import make_snapshot

    h = History(capacity=16, percentile_capacity=8)
    for s in range(0, 1000, 10):
        h.add(make_snapshot(s))
    steps = h.series("step")
    assert len(steps) <= 16 and steps[0] == 0 and steps[-1] == 990
    assert np.all(np.diff(steps) > 0)
    assert h.layer_norm_series().shape == (len(steps), 3)
    t, bands = h.percentiles()
    assert len(t) <= 8 and bands.shape[1:] == (3, 9)
    h.add(make_snapshot(5))  # a step going back means a reset
    assert list(h.series("step")) == [5]


# ------------------------------------------------------------------------------------ command line


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_train_writes_history(tmp_path) -> None:
    path = tmp_path / "run.json"
    out = _cli("train", "--preset", "moons_dropout", "--set", "weight_decay=0.01", "--steps", "60",
               "--device", "cpu", "--json", str(path))
    assert out.returncode == 0, out.stderr
    assert "step     60" in out.stdout
    data = json.loads(path.read_text())
    assert data["hparams"]["weight_decay"] == 0.01
    assert data["final"]["step"] == 60
    assert data["history"]["step"][-1] == 60 and len(data["history"]["val_loss"]) >= 2


@pytest.mark.parametrize("args, message", [
    (["--set", "dropout=1"], "dropout = 1.0 is out of range; allowed: [0, 1)"),
    (["--set", "weight_decay=-1"], "weight_decay = -1.0 is out of range"),
    (["--set", "lr=0"], "lr = 0.0 is out of range"),
    (["--set", "nonsense"], "expected key=value"),
    (["--preset", "nope"], "preset 'nope' not found"),
    (["--device", "quantum"], "device = 'quantum' is not allowed"),
])
def test_cli_rejects_bad_input(args, message) -> None:
    out = _cli("train", "--steps", "5", *args)
    assert out.returncode == 2
    assert message in out.stderr


def test_cli_presets_lists_them() -> None:
    out = _cli("presets")
    assert out.returncode == 0 and "llama_recipe" in out.stdout and "adamw" in out.stdout


def test_bench_prints_its_table_and_json(tmp_path) -> None:
    """The harness runs and reports; its numbers are not judged here (shared machines are noisy)."""
    path = tmp_path / "bench.json"
    out = _cli("bench", "--quick", "--only", "hist,landscape", "--device", "cpu", "--json",
               str(path), timeout=600)
    assert out.returncode == 0, out.stderr
    assert "histogram cost λ=0.1 ÷ λ=0" in out.stdout and "Summary" in out.stdout
    rows = json.loads(path.read_text())["rows"]
    names = [r["name"] for r in rows]
    assert "loss surface 51×51, 512 pts, 2-64-64-2" in names
    assert all(isinstance(r["value"], float) and r["value"] > 0 for r in rows)


# ------------------------------------------------------------------- dropout views (issue 8, item 9)


def test_snapshot_carries_what_inference_computes_for_the_shown_example() -> None:
    """The Dropout panel's Inference mode shows these: no mask anywhere, weights as they are."""
    t = Trainer(HParams(dataset="moons", hidden=(32, 32), dropout=0.5, input_dropout=0.2),
                device="cpu")
    assert all(a.size == 0 for a in t.snapshot().activation_inference)  # no step yet
    t.step(3)
    snap = t.snapshot()
    inference = snap.activation_inference
    assert len(inference) == len(snap.dropout_sites) == 3
    x0 = t.model.input_drop.last_input[:1]  # the shown example, before any dropout
    with torch.no_grad():
        h1 = torch.relu(t.model.linears[0](x0))  # independent eval forward: no masks, no scaling
        h2 = torch.relu(t.model.linears[1](h1))
    for got, want in zip(inference, (x0, h1, h2), strict=True):
        np.testing.assert_allclose(got, want[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(inference[0], snap.activation_pre[0])  # the input is the same
    # Beyond the first site the training pass's h saw upstream masks; inference's did not.
    assert not np.allclose(inference[2], snap.activation_pre[2])
    assert t.model.training  # the eval forward left the model in training mode
