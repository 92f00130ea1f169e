"""The small conv net on the 8×8 digits with element-wise (nn.Dropout) or channel-wise
(nn.Dropout2d) dropout: the masks' structure and rate, checked on the module's own tensors and
against torch's nn.Dropout2d / nn.Dropout drawing theirs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from qtimage import show_on_screen
from torch import nn

from regsim.hparams import HParams
from regsim.models import ConvNet
from regsim.presets import load_preset
from regsim.snapshot import History
from regsim.trainer import Trainer

CONV = HParams(dataset="digits", architecture="conv", hidden=(8, 16), dropout=0.3, train_size=256,
               batch_size=32, lr=0.003, seed=2)


def channel_structure(mask: np.ndarray) -> tuple[bool, float]:
    """(every (example, channel) map all kept or all dropped, dropped fraction) of a (B, C, H, W)
    mask."""
    flat = mask.reshape(mask.shape[0], mask.shape[1], -1)
    whole = bool(np.all(flat.all(-1) | (~flat).all(-1)))
    return whole, 1.0 - float(mask.mean())


def run_masks(kind: str, steps: int = 40, seed: int = 2) -> list[np.ndarray]:
    """The conv sites' (B, C, 8, 8) kept-masks over `steps` training steps, read from their
    output (a kept pixel is x/(1 − p) ≠ 0 where x ≠ 0) and their input."""
    t = Trainer(CONV.replace(dropout_kind=kind, seed=seed), device="cpu")
    seen: list[np.ndarray] = []

    def hook(_m, args, out):
        x, y = args[0].detach(), out.detach()
        # where x = 0 (ReLU) the output says nothing: take the module's mask there
        scaled = _m.last_scaled_mask.expand_as(x)
        kept = torch.where(x != 0, y != 0, scaled != 0)
        torch.testing.assert_close(y, x * scaled)  # y = m ⊙ x / (1 − p)
        seen.append(kept.numpy())

    handles = [d.register_forward_hook(hook) for d in t.model.drops]
    for _ in range(steps):
        t.step(1)
    for h in handles:
        h.remove()
    return seen


@pytest.mark.parametrize("seed", [2, 3])
def test_channel_mode_zeroes_whole_channels_at_rate_p(seed: int) -> None:
    masks = run_masks("channel", seed=seed)
    assert all(m.shape[1:] in ((8, 8, 8), (16, 8, 8)) for m in masks)
    rates = []
    for m in masks:
        whole, rate = channel_structure(m)
        assert whole, "a channel was partly dropped in channel mode"
        rates.append(rate)
    # 40 steps × 32 examples × (8 + 16) channels / 2 sites: 15 360 channel draws; sd ≈ 0.0037
    assert abs(np.mean(rates) - 0.3) < 0.02


@pytest.mark.parametrize("seed", [2, 3])
def test_element_mode_is_not_channel_wise_and_rate_is_p(seed: int) -> None:
    masks = run_masks("element", seed=seed)
    assert not any(channel_structure(m)[0] for m in masks)
    assert abs(np.mean([channel_structure(m)[1] for m in masks]) - 0.3) < 0.01


def test_torch_references_have_the_same_structure() -> None:
    """The independent references: nn.Dropout2d zeroes whole channels, nn.Dropout does not, both
    at rate p: the structure the two modes are tested for is torch's."""
    torch.manual_seed(0)
    ones = torch.ones(64, 16, 8, 8)
    d2 = (nn.Dropout2d(0.3)(ones) != 0).numpy()
    d1 = (nn.Dropout(0.3)(ones) != 0).numpy()
    assert channel_structure(d2)[0] and not channel_structure(d1)[0]
    assert abs(channel_structure(d2)[1] - 0.3) < 0.05 and abs(channel_structure(d1)[1] - 0.3) < 0.01


def test_switching_the_kind_applies_at_the_next_step_and_the_scratch_replay_follows() -> None:
    t = Trainer(CONV, device="cpu")
    t.snapshot(parts=["scratch"])
    t.step(2)
    assert not channel_structure(t.model.drops[1].last_scaled_mask.expand(32, 16, 8, 8).numpy() != 0)[0]
    t.update(dropout_kind="channel")
    t.step(1)
    scaled = t.model.drops[1].last_scaled_mask
    assert scaled.shape == (32, 16, 1, 1)  # one draw per (example, channel)
    snap = t.snapshot(parts=["scratch", "masks"])
    assert snap.hparams.dropout_kind == "channel"
    assert snap.dropout_shapes == ((64,), (8, 8, 8), (16, 8, 8))
    sent = snap.dropout_masks[2].reshape(32, 16, 64)
    assert sent.shape == (32, 16, 64) and channel_structure(sent)[0]
    s = snap.dropout_scratch[2]
    assert s.mask_equal and s.diff_live_y == 0.0 and s.diff_live_dx == 0.0 and s.units == 1024
    # the torch reference is then nn.Dropout2d, on the same x given its own (whole-channel) mask
    assert s.torch_name == "nn.Dropout2d" and s.diff_torch_y < 1e-6 and s.diff_torch_dx < 1e-6


def test_convnet_checks_its_input_and_the_setting_is_validated() -> None:
    with pytest.raises(ValueError, match="8×8 images"):
        ConvNet(2, (4,), 2, (0.1,))
    with pytest.raises(ValueError, match="architecture = 'conv' needs dataset = 'digits'"):
        HParams(architecture="conv")
    net = ConvNet(64, (8, 16), 10, (0.2, 0.2), channel=True)
    assert net(torch.zeros(5, 64)).shape == (5, 10)
    assert net.dropout_sites == ("input", "conv1", "conv2") and net.sizes == (64, 8, 16, 10)


def test_the_preset_trains_and_the_masks_panel_shows_whole_channels(qtbot) -> None:
    from ui.panels.dropout import DropoutPanel

    h = load_preset("conv_dropout2d")
    assert (h.architecture, h.dropout_kind, h.hidden, h.dropout) == ("conv", "channel", (8, 16), 0.2)
    t = Trainer(h, device="cpu")
    t.step(60)
    snap = t.snapshot()
    assert snap.val_acc > 0.5  # 60 steps already learn the digits
    panel = DropoutPanel(History())
    qtbot.addWidget(panel)
    show_on_screen(panel, qtbot)
    panel.ingest(snap)
    panel.redraw()
    assert [c.endswith("by channel") for c in panel.mask_captions] == [False, True, True]
    fractions = panel.channel_fractions(snap, 1)
    assert fractions.shape == (32, 8) and np.isin(fractions, (0.0, 1.0)).all()
    t.update(dropout_kind="element")
    t.step(1)
    snap = t.snapshot()
    panel.ingest(snap)
    panel.redraw()
    assert panel.mask_captions[2].endswith("by element")
    assert not np.isin(panel.channel_fractions(snap, 2), (0.0, 1.0)).all()


@pytest.mark.parametrize("analysis", ["landscape", "ensemble", "mc_dropout", "calibration"])
def test_mlp_only_analyses_say_so_on_the_conv_net_not_a_torch_error(analysis: str) -> None:
    """The loss surface's closed-form grid and the dropout analyses walk Linear layers: on the conv
    net each job ends with a message naming the architecture, without an exception's type name
    (before: 'Loss surface failed: RuntimeError: t() expects a tensor with <= 2 dimensions')."""
    from regsim.analyses.jobs import JobRunner

    t = Trainer(CONV, device="cpu")
    t.step(2)
    runner = JobRunner()
    assert runner.submit("j", "", analysis, {}, t.view) == []
    events = []
    while runner.busy:
        events += runner.run_slice(1.0)
    assert [e.kind for e in events] == ["started", "failed"]
    msg = events[-1].message
    assert "conv net (architecture = 'conv')" in msg and "architecture = 'mlp'" in msg
    assert "Error" not in msg and "failed" not in msg
