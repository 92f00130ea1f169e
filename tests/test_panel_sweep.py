"""The sweep panel: what it draws is the result's grid (partial cells, top-10 rings, the best-λ line,
the hatching within 1 SE), its controls validate, Start/Cancel speak the job protocol, and
`python main.py sweep --out` writes the figure."""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import QPoint, QPointF
from PySide6.QtTest import QTest
from qtimage import show_on_screen

from regsim.analyses.jobs import JobEvent
from regsim.analyses.sweep import result_of
from regsim.hparams import HParams
from regsim.snapshot import History
from regsim.sweep import SweepGrid, SweepSpec
from ui.panels.sweep import HATCH, SweepPanel, log_axis, tick_text

LRS = (0.01, 0.03, 0.1, 0.3)
DECAYS = (1e-4, 1e-3, 1e-2, 1e-1)
SPEC = SweepSpec(HParams(dataset="moons"), LRS, DECAYS, ("sgd-l2", "sgdw-paper"), (0, 1, 2), 50)


def grid(done_seeds: int = 3) -> SweepGrid:
    """SGD+L2 with a diagonal valley (best λ index 3 − lr index), SGDW (paper) a vertical one
    (best λ index 1 at every lr); seeds add ±0.002 of noise."""
    L, D = len(LRS), len(DECAYS)
    i, j = np.meshgrid(np.arange(L), np.arange(D), indexing="ij")
    diag = 0.1 + 0.05 * np.abs(j - (D - 1 - i)) + 0.01 * i
    vert = 0.1 + 0.05 * np.abs(j - 1) + 0.01 * i
    diag[0, 2] = 0.101  # 0.001 behind the best (0, 3): within the SE of the difference, 0.0016
    vert[0, 2] = 0.1005  # the same beside (0, 1)
    noise = np.array([-0.002, 0.0, 0.002])
    error = np.stack([diag, vert])[..., None] + noise  # (V, L, D, S)
    error[:, :, :, done_seeds:] = np.nan
    return SweepGrid(SPEC, error, np.zeros(error.shape, bool), 2 * L * D * done_seeds, 1.0)


def make(qtbot) -> SweepPanel:
    panel = SweepPanel(History())
    qtbot.addWidget(panel)
    show_on_screen(panel, qtbot)
    return panel


def test_partial_then_full_grid_rings_line_and_hatching(qtbot) -> None:
    panel = make(qtbot)
    half = grid().error.copy()
    half[:, 2:] = np.nan  # the first two lrs trained so far
    partial = result_of(SweepGrid(SPEC, half, np.zeros(half.shape, bool), 48, 0.5), False, True)
    panel.on_job(JobEvent("other", "", "sweep", "partial", 1, 2, result=partial))
    assert panel.result is None  # not its job
    panel._job_id = "mine"
    panel.on_job(JobEvent("mine", "", "sweep", "partial", 48 * 50, 96 * 50, result=partial))
    panel.redraw()
    m = panel.map_of("sgd-l2")
    np.testing.assert_array_equal(m.image.image, partial.mean[0])  # row = lr, column = λ
    assert np.isnan(m.image.image[2:]).all() and np.isfinite(m.image.image[:2]).all()
    assert len(m.rings.data) == 8  # only 8 cells trained: 8 rings, not 10
    assert "48 / 96 runs" in panel.status_label.text() and panel.progress.value() == 48 * 50

    full = result_of(grid(), False, True)
    panel.on_job(JobEvent("mine", "", "sweep", "result", 96 * 50, 96 * 50, result=full))
    panel.redraw()
    assert not panel.cancel_button.isVisible()
    for v, slug in enumerate(("sgd-l2", "sgdw-paper")):
        m = panel.map_of(slug)
        np.testing.assert_array_equal(m.image.image, full.mean[v])
        xs, ys = m.rings.getData()
        assert len(xs) == 10
        # the 10 lowest means, brute force
        order = np.argsort(full.mean[v].ravel(), kind="stable")[:10]
        assert sorted(zip(ys - 0.5, xs - 0.5)) == sorted(divmod(int(k), 4) for k in order)
        lx, ly = m.line.getData()
        best = np.argmin(full.mean[v], axis=1)
        usable = panel.usable_rows(v)
        np.testing.assert_array_equal(ly, usable + 0.5)
        np.testing.assert_array_equal(lx, best[usable] + 0.5)
        hx, hy = m.hatch.getData()
        cells = panel.hatched(v)
        assert {tuple(c) for c in cells} == {(0, 2)}
        assert len(hx) == 2 * HATCH * len(cells)
        # every stroke lies in its cell: ⌊midpoint⌋ is the cell
        mid = np.stack([(hy[0::2] + hy[1::2]) / 2, (hx[0::2] + hx[1::2]) / 2], 1)
        assert {tuple(c) for c in np.floor(mid).astype(int)} == {tuple(c) for c in cells}
    # the valleys: diagonal through (i, 3 − i) for SGD+L2, vertical at λ index 1 for SGDW
    sgd_x, _ = panel.map_of("sgd-l2").line.getData()
    sgdw_x, _ = panel.map_of("sgdw-paper").line.getData()
    rows = panel.usable_rows(0)
    assert len(rows) >= 2
    np.testing.assert_array_equal(sgd_x, 3 - rows + 0.5)
    assert set(sgdw_x) == {1.5}
    assert panel.valley(0) == "best λ moves" and panel.valley(1) == "best λ fixed"
    text = panel.cell_text(0, 1, 2)
    assert f"lr 0.03, λ 0.01: val error {full.mean[0, 1, 2]:.3f} ± {full.se[0, 1, 2]:.3f} (SE), n = 3" in text
    assert "rank 1" in panel.cell_text(0, 0, 3)
    assert "rank 2 · within 1 SE of the best" in panel.cell_text(0, 0, 2)
    assert "not in this sweep" == panel.map_of("adamw").hint.toPlainText()
    # hovering the cell (lr 0.1, λ 1e-3) of SGDW (paper) reads it out
    qtbot.wait(50)  # the titles' new rows laid out
    vb = panel.map_of("sgdw-paper").plot.vb
    at = panel.view.mapFromScene(vb.mapViewToScene(QPointF(1.5, 2.5)))
    for d in (0, 1):
        QTest.mouseMove(panel.view.viewport(), at + QPoint(d, d))
    assert panel.hover_label.text() == panel.cell_text(1, 2, 1) == panel.view.toolTip()
    assert panel.hover_label.text().startswith("SGDW (paper), lr 0.1, λ 1e-3: val error ")
    panel.cleanup()


def test_controls_validate_and_start_cancel_speak_the_job_protocol(qtbot) -> None:
    panel = make(qtbot)
    panel.lr_lo.setText("-1")
    sent = []
    panel.request.connect(lambda kind, args: sent.append((kind, args)))
    panel.start_button.click()
    assert sent == [] and "smallest lr" in panel.status_label.text()
    assert "(0, 10]" in panel.status_label.text()
    panel.lr_lo.setText("0.3")
    panel.lr_hi.setText("0.01")
    panel.start_button.click()
    assert sent == [] and "the smallest must not exceed" in panel.status_label.text()
    for box in panel.variant_boxes.values():
        box.setChecked(False)
    panel.lr_lo.setText("0.01")
    panel.lr_hi.setText("0.3")
    panel.start_button.click()
    assert sent == [] and "variants" in panel.status_label.text()
    panel.variant_boxes["adamw"].setChecked(True)
    panel.lr_n.setValue(3)
    panel.wd_zero.setChecked(True)
    panel.start_button.click()
    kind, args = sent[-1]
    assert kind == "analyze" and args["analysis"] == "sweep"
    assert args["params"]["lrs"] == log_axis(0.01, 0.3, 3) == (0.01, 0.055, 0.3)
    assert args["params"]["decays"][0] == 0.0 and args["params"]["variants"] == ("adamw",)
    assert panel.cancel_button.isVisible()
    panel.cancel_button.click()
    assert sent[-1] == ("cancel", {"id": args["id"]}) and not panel.cancel_button.isVisible()
    assert [tick_text(x) for x in (0, 1e-4, 3.2e-3, 0.055, 0.3, 1)] == ["0", "1e-4", "3.2e-3", "0.055",
                                                                       "0.3", "1"]
    panel.cleanup()


def test_sweep_cli_writes_the_figure(tmp_path, capsys) -> None:
    from regsim.cli import run_cli
    from ui.export.sweep_figure import write_figure

    out = tmp_path / "grid"
    rc = run_cli(["sweep", "--set", "dataset=moons", "--set", "hidden=4", "--set", "train_size=32",
                  "--set", "val_size=32", "--set", "batch_size=16", "--set", "dropout=0", "--lrs", "0.01,0.1",
                  "--decays", "0,0.1", "--variants", "sgd-l2", "--steps", "3", "--threads", "1",
                  "--out", str(out)], sweep_figure=write_figure)
    assert rc == 0, capsys.readouterr()
    with Image.open(out / "sweep.png") as img:
        assert img.size == (1920, 1080)
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.astype(float).std() > 15
