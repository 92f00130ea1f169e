"""The slide export answers the analysis panels' own requests from the trained run (ui/export/cli.py
compute_panel_analyses), so their slides show results, and says why where a network cannot."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSettings

import regsim
from regsim import HParams, Trainer
from ui.app import headless_window
from ui.export.cli import ANALYSIS_PANELS, compute_panel_analyses, train_into_window


def _window(h: HParams, tmp_path):
    return headless_window(h, "cpu", QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))


def test_each_analysis_panel_gets_the_result_of_its_own_request(qtbot, tmp_path) -> None:
    h = HParams(dataset="moons", hidden=(6,), dropout=0.5, train_size=100, val_size=100, lr=0.01)
    w = _window(h, tmp_path)
    try:
        t = Trainer(h, device="cpu")
        train_into_window(w, t, 60, landscape=False)
        notes = compute_panel_analyses(w, t, ANALYSIS_PANELS)
        assert notes == {}
        panels = {p.key: p for p in w.panels}
        ens = panels["ensemble"].result
        ref = regsim.analyze(t, "ensemble", points="grid", site="fc1")
        assert ens is not None and ens.n_masks == 64
        np.testing.assert_allclose(ens.geometric, ref.geometric, atol=1e-7)
        assert panels["uncertainty"].result is not None and panels["calibration"].result is not None
        assert panels["constraint"].real.result is not None  # the real-model Hessian plane
        assert "press Compute" not in panels["ensemble"].status_label.text()
    finally:
        w.shutdown()


def test_the_conv_net_says_why_instead_of_a_result(qtbot, tmp_path) -> None:
    h = HParams(dataset="digits", architecture="conv", hidden=(4, 4), dropout=0.2, train_size=64)
    w = _window(h, tmp_path)
    try:
        t = Trainer(h, device="cpu")
        train_into_window(w, t, 2, landscape=False)
        notes = compute_panel_analyses(w, t, ("ensemble", "calibration"))
        assert set(notes) == {"ensemble", "calibration"}
        assert all("conv net" in n for n in notes.values())
        panel = {p.key: p for p in w.panels}["ensemble"]
        assert panel.result is None and "conv net" in panel.status_label.text()
    finally:
        w.shutdown()
