"""Dropout from scratch (regsim/scratch.py, ui/panels/scratch.py): the NumPy code's values are the
live model's tensors, read independently here with module hooks on the run's real dropout module,
and nn.Dropout given the same mask gives the same numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt
from qtimage import show_on_screen
from torch import nn

from regsim import HParams
from regsim.scratch import (
    ROWS,
    SOURCE,
    dropout_backward,
    dropout_forward,
    function_of_line,
    line_variables,
    source_lines,
)
from regsim.snapshot import History
from regsim.trainer import Trainer

RUN = HParams(dataset="moons", hidden=(16, 12), dropout=0.4, input_dropout=0.2, train_size=96,
              val_size=64, batch_size=32, lr=0.01, seed=5)


def hooked_step(t: Trainer, module: nn.Module) -> dict:
    """One training step of `t`, with forward and full-backward hooks on `module` recording what
    flowed through it (independent of the module's own bookkeeping)."""
    seen: dict = {}

    def fwd(_m, args, out):
        seen["x"], seen["y"] = args[0].detach().clone(), out.detach().clone()

    def bwd(_m, grad_in, grad_out):
        seen["dy"] = grad_out[0].detach().clone()
        seen["dx"] = None if grad_in[0] is None else grad_in[0].detach().clone()

    handles = [module.register_forward_hook(fwd), module.register_full_backward_hook(bwd)]
    try:
        t.step(1)
    finally:
        for h in handles:
            h.remove()
    return seen


@pytest.mark.parametrize("site", [1, 2])
def test_code_values_equal_the_live_modules_tensors(site: int) -> None:
    t = Trainer(RUN, device="cpu")
    t.snapshot(parts=["scratch"])  # the part asked for: the sites keep their gradients from now on
    t.step(3)
    module = t.model.dropout_modules()[site]
    seen = hooked_step(t, module)
    snap = t.snapshot(parts=["scratch", "masks"])
    s = snap.dropout_scratch[site]
    assert s.site == t.model.dropout_sites[site] and s.p == pytest.approx(0.4) and s.has_grad
    assert s.step == t.step_count - 1 and s.batch == 32
    cols = s.unit_index
    assert len(cols) == min(8, s.units) and np.all(np.diff(cols) > 0)

    def part(a: torch.Tensor) -> np.ndarray:
        return a.numpy()[:ROWS][:, cols]

    np.testing.assert_array_equal(s.x, part(seen["x"]))
    np.testing.assert_array_equal(s.live_y, part(seen["y"]))
    np.testing.assert_array_equal(s.y, part(seen["y"]))  # NumPy's y is the module's, to the bit
    np.testing.assert_array_equal(s.dy, part(seen["dy"]))
    np.testing.assert_array_equal(s.dx, part(seen["dx"]))
    assert s.diff_live_y == 0.0 and s.diff_live_dx == 0.0 and s.mask_equal
    # The run's whole mask (the masks part: 32 × U is the whole batch here) explains the hooked
    # output, NumPy's m is that mask, and backward uses the same mask and scale:
    # dx = dy · m / (1 − p), checked on autograd's own tensors.
    x, y = seen["x"].numpy(), seen["y"].numpy()
    dy, dx = seen["dy"].numpy(), seen["dx"].numpy()
    kept = snap.dropout_masks[site]
    assert kept.shape == x.shape
    np.testing.assert_array_equal(kept[:ROWS][:, cols], s.m != 0)
    np.testing.assert_allclose(y[kept], x[kept] / 0.6, rtol=1e-6)
    np.testing.assert_array_equal(y[~kept], 0.0)
    np.testing.assert_allclose(dx[kept], dy[kept] / 0.6, rtol=1e-6)
    np.testing.assert_array_equal(dx[~kept], 0.0)
    assert 0.2 < 1 - kept.mean() < 0.6  # p = 0.4 on 32 × 12+ draws


def test_nn_dropout_with_the_same_mask_gives_the_same_numbers() -> None:
    """An independent nn.Dropout run here, its mask read off on a tensor of ones under the same
    seed: the from-scratch code given that mask reproduces its output and its gradient."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 10)).astype(np.float32)
    dy = rng.normal(size=(16, 10)).astype(np.float32)
    for p in (0.1, 0.5, 0.8):
        drop = nn.Dropout(p)
        xt = torch.tensor(x, requires_grad=True)
        torch.manual_seed(7)
        yt = drop(xt)
        torch.manual_seed(7)
        mask = (drop(torch.ones_like(xt)) != 0).numpy()
        yt.backward(torch.tensor(dy))
        y, m = dropout_forward(x, p, True, np.where(mask, 1.0, 0.0))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-6, atol=0)
        np.testing.assert_allclose(dropout_backward(dy, m, p), xt.grad.numpy(), rtol=1e-6, atol=0)
        assert 0 < m.mean() < 1  # some dropped, some kept
        # eval: the identity, as nn.Dropout.eval()
        ye, me = dropout_forward(x, p, False)
        assert me is None and ye is x
        np.testing.assert_array_equal(drop.eval()(torch.tensor(x)).numpy(), ye)
        drop.train()


def test_the_snapshot_compares_with_nn_dropout_and_eval() -> None:
    t = Trainer(RUN, device="cpu")
    t.snapshot(parts=["scratch"])
    t.step(2)
    s = t.snapshot(parts=["scratch"]).dropout_scratch[1]
    assert s.diff_torch_y < 1e-6 and s.diff_torch_dx < 1e-6 and s.diff_eval == 0.0
    np.testing.assert_allclose(s.numpy_torch_y, s.torch_y, rtol=1e-6)
    np.testing.assert_array_equal(s.torch_eval_y, s.x)
    # nn.Dropout draws its own mask: kept units scaled by 1/(1 − p), dropped ones zero
    np.testing.assert_allclose(s.torch_y, s.x * s.torch_m / 0.6, rtol=1e-6)


def test_the_input_site_has_no_gradient_and_p0_is_the_identity() -> None:
    t = Trainer(RUN.replace(dropout=0.0), device="cpu")
    t.snapshot(parts=["scratch"])
    t.step(2)
    snap = t.snapshot(parts=["scratch"])
    inp, fc1 = snap.dropout_scratch[0], snap.dropout_scratch[1]
    assert not inp.has_grad and np.isnan(inp.dy).all() and np.isnan(inp.diff_live_dx)
    assert fc1.p == 0.0 and fc1.has_grad
    np.testing.assert_array_equal(fc1.y, fc1.x)
    np.testing.assert_array_equal(fc1.dx, fc1.dy)


def test_without_the_part_no_gradient_is_kept() -> None:
    t = Trainer(RUN, device="cpu")
    t.step(2)
    assert all(d.last_grad_output is None for d in t.model.dropout_modules())
    assert t.snapshot(parts=["masks"]).dropout_scratch == ()


def test_the_source_is_the_code_that_runs() -> None:
    namespace: dict = {"np": np}
    exec(SOURCE, namespace)  # noqa: S102
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    u = np.linspace(0, 1, 12).reshape(3, 4)
    y, m = namespace["dropout_forward"](x, 0.5, True, u)
    y2, m2 = dropout_forward(x, 0.5, True, u)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(m, (u >= 0.5).astype(np.float32))
    np.testing.assert_array_equal(y, x * (u >= 0.5) * 2.0)
    lines = source_lines()
    y_line = next(i for i, line in enumerate(lines) if line.strip().startswith("y = x * m"))
    dx_line = next(i for i, line in enumerate(lines) if line.strip().startswith("dx = dy"))
    assert line_variables(lines[y_line]) == ("x", "m", "y")
    assert line_variables(lines[dx_line]) == ("m", "dy", "dx")
    assert function_of_line(y_line) == "forward" and function_of_line(dx_line) == "backward"


# ------------------------------------------------------------------------------------ the panel
@pytest.fixture
def panel(qtbot):
    from ui.panels.scratch import ScratchPanel

    p = ScratchPanel(History())
    qtbot.addWidget(p)
    show_on_screen(p, qtbot)
    return p


def _trained_snapshot():
    t = Trainer(RUN, device="cpu")
    t.snapshot(parts=["scratch"])
    t.step(5)
    return t.snapshot(parts=["scratch", "masks"])


def click_line(qtbot, panel, index: int) -> None:
    rect = panel.line_rect(index)
    qtbot.mouseClick(panel.code.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_panel_click_shows_the_lines_values(qtbot, panel) -> None:
    panel.redraw()
    assert "waiting" in panel.numpy_table.blocks_shown[0][0]  # the empty state says what to do
    snap = _trained_snapshot()
    panel.ingest(snap)
    panel.redraw()
    s = snap.dropout_scratch[panel.site_combo.currentIndex()]
    assert panel.site_combo.currentText() == "fc1"  # the first hidden site that drops
    lines = source_lines()
    y_line = next(i for i, line in enumerate(lines) if line.strip().startswith("y = x * m"))
    dx_line = next(i for i, line in enumerate(lines) if line.strip().startswith("dx = dy"))
    click_line(qtbot, panel, dx_line)
    assert panel.line == dx_line
    shown = panel.numpy_table.blocks_shown
    assert [t.split()[0] for t, _ in shown] == ["m", "dy", "dx"]
    np.testing.assert_allclose(shown[2][1], s.dx[:6, :6], rtol=1e-6)
    torch_shown = panel.torch_table.blocks_shown
    assert "autograd" in torch_shown[0][0]
    np.testing.assert_allclose(torch_shown[0][1], s.live_dx[:6, :6], rtol=1e-6)
    click_line(qtbot, panel, y_line)
    assert panel.line == y_line
    shown = panel.numpy_table.blocks_shown
    np.testing.assert_allclose(shown[0][1], s.x[:6, :6])
    np.testing.assert_allclose(shown[2][1], s.y[:6, :6])
    module_y = next(a for t, a in panel.torch_table.blocks_shown if "module output" in t)
    np.testing.assert_allclose(module_y, s.live_y[:6, :6])
    assert "0 (identical)" in panel.agree_label.text()
    qtbot.keyClick(panel.code, Qt.Key.Key_Down)  # ↓ moves to the next line
    assert panel.line == y_line + 1


def test_panel_eval_shows_the_identity(qtbot, panel) -> None:
    snap = _trained_snapshot()
    panel.ingest(snap)
    panel.set_mode("eval")
    assert panel.mode == "eval"
    lines = source_lines()
    ret = next(i for i, line in enumerate(lines) if "return x, None" in line)
    y_line = next(i for i, line in enumerate(lines) if line.strip().startswith("y = x * m"))
    panel.select_line(ret)
    s = snap.dropout_scratch[panel.site_combo.currentIndex()]
    (t0, a0), (t1, a1) = panel.numpy_table.blocks_shown
    np.testing.assert_array_equal(a0, a1)  # y = x
    np.testing.assert_array_equal(a1, s.x[:6, :6])
    np.testing.assert_array_equal(panel.torch_table.blocks_shown[0][1], s.x[:6, :6])
    panel.select_line(y_line)
    assert "does not run" in panel.numpy_table.blocks_shown[0][0]
    qtbot.mouseClick(panel.train_button, Qt.MouseButton.LeftButton)
    assert panel.mode == "train" and panel.numpy_table.blocks_shown[0][1] is not None
    with pytest.raises(ValueError, match="mode must be 'train' or 'eval'"):
        panel.set_mode("inference")
    with pytest.raises(ValueError, match=r"line must be in \[0, "):
        panel.select_line(99)


def test_a_site_part_replays_only_that_site_with_the_same_values() -> None:
    """"scratch:fc2" measures fc2's replay only (the others None); its values are the ones the
    all-sites part gives on the same step."""
    from regsim.snapshot import check_parts

    assert check_parts(["scratch:fc2"]) == {"scratch", "scratch:fc2"}
    with pytest.raises(ValueError, match="unknown part 'scratch:'"):
        check_parts(["scratch:"])
    t = Trainer(RUN, device="cpu")
    t.snapshot(parts=["scratch"])
    t.step(3)
    every = t.snapshot(parts=["scratch"]).dropout_scratch
    one = t.snapshot(parts=["scratch:fc2"])
    sites = list(one.dropout_sites)
    assert "scratch" in one.measured
    assert [s is not None for s in one.dropout_scratch] == [n == "fc2" for n in sites]
    a, b = every[sites.index("fc2")], one.dropout_scratch[sites.index("fc2")]
    for k in ("x", "m", "y", "dy", "dx", "torch_y"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)


def test_the_panel_asks_for_the_site_it_shows(qtbot, panel) -> None:
    asked: list[tuple[str, dict]] = []
    panel.request.connect(lambda name, payload: asked.append((name, payload)))
    snap = _trained_snapshot()
    panel.ingest(snap)
    panel.redraw()
    assert panel.measure_parts() == {"scratch:fc1"} and asked == [("measure", {})]
    panel.site_combo.setCurrentIndex(list(snap.dropout_sites).index("fc2"))
    assert panel.measure_parts() == {"scratch:fc2"} and len(asked) == 2
    t = Trainer(RUN, device="cpu")  # what the engine sends while fc1 was asked: fc2 not yet in
    t.snapshot(parts=["scratch"])
    t.step(2)
    panel.ingest(t.snapshot(parts=["scratch:fc1"]))
    panel.redraw()
    assert "measuring fc2's values" in panel.status_label.text()


def test_the_live_window_measures_only_the_shown_site(qtbot, settings) -> None:
    from conftest import make_window

    w = make_window(qtbot, settings, hparams=RUN)
    try:
        w.tabs.setCurrentIndex([p.key for p in w.panels].index("scratch"))
        panel = w.panels[w.tabs.currentIndex()]
        w.toggle_run()
        qtbot.waitUntil(lambda: w.latest.step > 3 and "scratch" in w.latest.measured, timeout=30_000)
        sites = list(w.latest.dropout_sites)

        def only(site: str) -> bool:
            s = w.latest.dropout_scratch
            return len(s) == len(sites) and [v is not None for v in s] == [n == site for n in sites]

        qtbot.waitUntil(lambda: only("fc1"), timeout=30_000)
        panel.site_combo.setCurrentIndex(sites.index("fc2"))
        qtbot.waitUntil(lambda: only("fc2"), timeout=30_000)
        assert "scratch:fc2" in w.measured_parts()
    finally:
        w.shutdown()
