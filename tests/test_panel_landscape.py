"""LossSurfacePanel: requests (button, shortcut, auto mode), drawing, robustness, theming."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication
from qtimage import show_on_screen, viewbox_pixel
from qtimage import to_rgb as to_array
from synthetic import make_landscape, make_snapshot

from regsim.snapshot import History
from ui.panels.loss_surface import LossSurfacePanel, display_values
from ui.theme import SCREEN, SLIDE


@pytest.fixture
def panel(qtbot):
    p = LossSurfacePanel(History())
    qtbot.addWidget(p)
    return p


@pytest.fixture
def requests(panel):
    seen: list[tuple[str, dict]] = []
    panel.request.connect(lambda name, args: seen.append((name, args)))
    return seen


def test_compute_button_emits_the_spin_box_values(panel, qtbot):
    panel.resolution_spin.setValue(31)
    panel.span_spin.setValue(2.5)
    with qtbot.waitSignal(panel.request, timeout=1000) as blocker:
        qtbot.mouseClick(panel.compute_button, Qt.MouseButton.LeftButton)
    name, job = blocker.args
    assert (name, job["analysis"], job["params"]) == ("analyze", "landscape",
                                                      {"resolution": 31, "span": 2.5})
    assert job["id"] == panel._job_id
    assert panel.pending


def test_defaults_and_ranges(panel):
    assert (panel.resolution_spin.value(), panel.resolution_spin.minimum(),
            panel.resolution_spin.maximum()) == (51, 11, 101)
    assert (panel.span_spin.value(), panel.span_spin.minimum(),
            panel.span_spin.maximum()) == (1.0, 0.1, 5.0)
    assert panel.auto_steps.value() == 500
    assert panel.compute_button.shortcut().toString() == "L"


def test_shortcut_l_requests(panel, qtbot):
    panel.show()
    qtbot.waitExposed(panel)
    qtbot.waitUntil(lambda: QApplication.focusWindow() is panel.windowHandle())
    # Sent to the window, the key goes through Qt's shortcut map as a real key press does. A
    # shortcut "animate-clicks" its button: the click lands ~100 ms later, hence waitSignal.
    with qtbot.waitSignal(panel.request, timeout=2000) as blocker:
        qtbot.keyClick(panel.windowHandle(), Qt.Key.Key_L)
    assert blocker.args[0] == "analyze"
    assert blocker.args[1]["params"] == {"resolution": 51, "span": 1.0}


def test_auto_mode_requests_once_per_k_steps_and_never_while_pending(panel, requests):
    panel.ingest(make_snapshot(0))
    assert requests == []  # auto is off by default
    panel.auto_steps.setValue(500)
    panel.auto_check.setChecked(True)
    panel.ingest(make_snapshot(100))
    assert len(requests) == 1  # the first snapshot with auto on asks at once
    for step in (300, 700, 1200):  # far past K, but the first request is still in flight
        panel.ingest(make_snapshot(step))
    assert len(requests) == 1
    panel.on_landscape(make_landscape(100, n=11, coarse=True))
    panel.ingest(make_snapshot(1300))
    assert len(requests) == 1 and panel.pending  # a preview does not end the request
    panel.on_landscape(make_landscape(100, n=11))
    assert not panel.pending
    panel.ingest(make_snapshot(1400))  # 1300 steps since the request at 100
    assert len(requests) == 2
    panel.on_landscape(make_landscape(1400, n=11))
    panel.ingest(make_snapshot(1600))
    panel.ingest(make_snapshot(1899))
    assert len(requests) == 2  # fewer than K steps since 1400
    panel.ingest(make_snapshot(1900))
    assert len(requests) == 3
    assert all(r[0] == "analyze" and r[1]["params"] == {"resolution": 51, "span": 1.0}
               for r in requests)
    assert len({r[1]["id"] for r in requests}) == 3  # a new job id per request


def test_auto_mode_restarts_with_a_new_run(panel, requests):
    panel.auto_check.setChecked(True)
    panel.ingest(make_snapshot(5000))
    panel.on_landscape(make_landscape(5000, n=11))
    panel.ingest(make_snapshot(10))  # steps went backwards: a new run
    assert len(requests) == 2


def test_image_is_the_log_loss_placed_on_the_grid(panel):
    result = make_landscape(200, n=41)
    panel.on_landscape(result)
    assert panel.log_check.isChecked()
    np.testing.assert_allclose(panel.image.image, np.log10(result.loss))
    panel.log_check.setChecked(False)
    np.testing.assert_allclose(panel.image.image, result.loss)
    # Pixel centres on the grid: the image spans one half step beyond each end.
    rect = panel.image.mapRectToParent(panel.image.boundingRect())
    half = (result.alphas[1] - result.alphas[0]) / 2
    assert rect.left() == pytest.approx(result.alphas[0] - half)
    assert rect.right() == pytest.approx(result.alphas[-1] + half)
    assert rect.top() == pytest.approx(result.betas[0] - half)
    assert rect.bottom() == pytest.approx(result.betas[-1] + half)
    lo, hi = panel.colorbar.levels()
    assert (lo, hi) == pytest.approx((result.loss.min(), result.loss.max()))


def test_contours_path_and_current_point(panel):
    result = make_landscape(200, n=31)
    panel.on_landscape(result)
    shown = [iso for iso in panel.contours if iso.isVisible()]
    assert len(shown) >= 4
    values = np.log10(result.loss)
    for iso in shown:
        np.testing.assert_array_equal(iso.data, panel.image.image)
        assert values.min() < iso.level < values.max()
    x, y = panel.path.getData()
    np.testing.assert_allclose(np.c_[x, y], result.path)
    cx, cy = panel.current.getData()
    assert (list(cx), list(cy)) == ([0.0], [0.0])


def test_coarse_preview_then_full_grid(panel, requests):
    panel.request_landscape()
    assert panel.progress.value() == 0
    coarse = make_landscape(300, n=11, coarse=True)  # finished: done == total == 121
    panel.on_landscape(coarse)
    assert panel.pending
    assert "preview" in panel.status_label.text()
    assert panel.image.image.shape == (11, 11)  # the preview is drawn at once
    # While the full grid fills, the engine sends it half-done, unfinished points NaN: that
    # moves the progress bar but is neither drawn nor taken as the end of the request.
    partial = make_landscape(300, n=51)
    loss = partial.loss.copy()
    loss.ravel()[1000:] = np.nan
    panel.on_landscape(dataclasses.replace(partial, loss=loss, center_loss=float("nan"),
                                           done=1000, total=2601))
    assert panel.pending
    # One progress over the whole request: the 121 preview points, then the full grid's.
    assert (panel.progress.value(), panel.progress.maximum()) == (121 + 1000, 121 + 2601)
    assert "1121/2722" in panel.progress.text()
    assert panel.image.image.shape == (11, 11)
    assert panel.note_label.text() == ""  # no "non-finite" warning for unfinished points
    full = dataclasses.replace(make_landscape(300, n=51), elapsed=0.21)
    panel.on_landscape(full)
    assert not panel.pending
    assert "full 51×51 in 0.21 s" in panel.status_label.text()
    assert panel.progress.value() == panel.progress.maximum()
    assert panel.image.image.shape == (51, 51)
    panel.on_landscape(coarse)  # a late preview must not replace the full grid
    assert panel.image.image.shape == (51, 51)


def test_non_finite_losses_draw_without_crashing(panel, qtbot):
    result = make_landscape(100, n=21)
    loss = result.loss.copy()
    loss[:3, :3] = np.nan
    loss[-1, -1] = np.inf
    loss[0, -1] = -np.inf
    loss[5, 5] = 0.0
    show_on_screen(panel, qtbot)
    panel.on_landscape(dataclasses.replace(result, loss=loss))
    assert np.isfinite(panel.image.image).all()
    assert "11 non-finite" in panel.note_label.text()
    panel.log_check.setChecked(False)
    assert np.isfinite(panel.image.image).all()
    assert to_array(panel.grab().toImage()).std() > 10  # paints (contours included)
    panel.on_landscape(dataclasses.replace(result, loss=np.full_like(loss, np.nan)))
    assert np.isfinite(panel.image.image).all()
    panel.grab()


def test_display_values():
    loss = np.array([[1.0, 10.0], [np.nan, 100.0]])
    values, bad = display_values(loss, log=True)
    assert bad == 1
    np.testing.assert_allclose(values, [[0.0, 1.0], [2.0, 2.0]])  # NaN shown as the worst
    values, bad = display_values(loss, log=False)
    np.testing.assert_allclose(values, [[1.0, 10.0], [100.0, 100.0]])


def test_path_points_off_the_slice_are_reported(panel):
    result = make_landscape(100, n=11)
    path = np.array([[3.0, 0.0], [0.5, 0.5], [0.0, 0.0]])
    panel.on_landscape(dataclasses.replace(result, path=path, path_steps=np.arange(3)))
    assert "1 of 3 path points" in panel.note_label.text()


def test_slide_theme_has_white_plot_background(panel, qtbot):
    show_on_screen(panel, qtbot)
    x, y = viewbox_pixel(panel, panel.view, panel.plot)
    np.testing.assert_array_equal(to_array(panel.grab().toImage())[y, x],
                                  QColor(SCREEN.background).getRgb()[:3])
    panel.apply_theme(SLIDE)
    x, y = viewbox_pixel(panel, panel.view, panel.plot)
    np.testing.assert_array_equal(to_array(panel.grab().toImage())[y, x], (255, 255, 255))
    assert panel.plot.getAxis("left").style["tickFont"].pointSize() == SLIDE.font_pt
    assert panel.path.opts["pen"].widthF() == SLIDE.line_width + 1  # wider than the curves


def test_reset_clears_the_result_and_the_pending_request(panel, requests):
    panel.auto_check.setChecked(True)
    panel.ingest(make_snapshot(100))
    panel.on_landscape(make_landscape(100, n=11, coarse=True))
    panel.reset()
    assert panel.image.image is None and not panel.pending and panel.result is None
    panel.ingest(make_snapshot(10))
    assert len(requests) == 2  # nothing in flight any more, so auto asks again


# ------------------------------------------------------------ issue 8: objective, path, states


def with_penalty(result, scale: float = 0.5):
    """A synthetic result with a decay term λ/2·‖θ + α·d₁ + β·d₂‖²-like bowl off the centre."""
    aa, bb = np.meshgrid(result.alphas, result.betas)
    penalty = scale * ((aa + 0.4) ** 2 + (bb - 0.3) ** 2)
    return dataclasses.replace(result, penalty=penalty, center_penalty=scale * 0.25,
                               objective="λ/2·‖θ_decay‖²", objective_note="L2 mode: test note",
                               path_residual=np.linspace(0.5, 0.0, len(result.path)),
                               path_captured=0.8, pca_explained=(0.7, 0.2))


def test_objective_toggle_colours_by_loss_plus_decay_term(panel):
    result = with_penalty(make_landscape(200, n=21))
    panel.on_landscape(result)
    assert panel.objective_check.isChecked() and panel.objective_check.isEnabled()
    np.testing.assert_allclose(panel.image.image, np.log10(result.loss + result.penalty))
    np.testing.assert_allclose(panel.section_a.getData()[1], np.log10(result.loss + result.penalty)[10])
    assert "λ/2·‖θ_decay‖²" in panel.plot.titleLabel.text
    assert "test note" in panel.objective_label.text()
    assert "L + decay 0.425" in panel.map_legend.items[0][1].text
    panel.objective_check.setChecked(False)
    np.testing.assert_allclose(panel.image.image, np.log10(result.loss))
    assert "data loss" in panel.plot.titleLabel.text
    assert "data loss only" in panel.objective_label.text()
    # Nothing decayed (λ = 0): no term to add, the box says so by being disabled.
    panel.objective_check.setChecked(True)
    panel.on_landscape(dataclasses.replace(make_landscape(300, n=21), objective_note="λ = 0"))
    assert not panel.objective_check.isEnabled()
    np.testing.assert_allclose(panel.image.image, np.log10(make_landscape(300, n=21).loss))


def test_title_and_axes_name_the_same_directions(panel):
    pca = with_penalty(make_landscape(200, n=11))
    panel.on_landscape(pca)
    title = panel.plot.titleLabel.text
    bottom, left = panel.plot.getAxis("bottom").labelText, panel.plot.getAxis("left").labelText
    assert "PCA" in title and "filter-normalized" in title
    assert "PC1 (70 % of path)" in bottom and "filter-normalized" in bottom
    assert "PC2 (20 %)" in left
    panel.on_landscape(dataclasses.replace(pca, step=300, directions="random (trajectory too short)",
                                           pca_explained=()))
    title = panel.plot.titleLabel.text
    bottom, left = panel.plot.getAxis("bottom").labelText, panel.plot.getAxis("left").labelText
    assert "random directions" in title and "PCA of the path" not in title and "too short" in title
    assert "random" in bottom and "random" in left and "PC" not in bottom + left


def test_path_residual_readout(panel):
    result = with_penalty(make_landscape(200, n=11))
    panel.on_landscape(result)
    text = panel.path_label.text()
    assert "off this plane" in text and "up to 0.5" in text
    assert f"median {np.median(result.path_residual):.2g}" in text
    assert "holds 80 %" in text and "PC1 + PC2 explain 90 %" in text


def test_preview_never_replaces_a_full_grid_and_progress_agrees_with_its_text(panel, requests):
    """Auto mode: request, preview, partials, full; again and again. Once a full grid is shown, a
    preview never replaces it (the flicker), and the bar's value/range are the numbers its text
    states at every message (it said 100 % beside 2120/2601)."""
    import re

    def check_bar() -> None:
        text = panel.progress.text()
        assert "%%" not in text and not re.search(r"%\d", text)  # it read "%30%%" once
        nums = re.search(r"(\d+)/(\d+) points · (\d+)%$", text)
        if nums:
            done, total, pct = (int(v) for v in nums.groups())
            assert (done, total) == (panel.progress.value(), panel.progress.maximum())
            assert pct == int(100 * done / total)  # Qt's %p truncates
            assert done < total  # never "100 %" before the full grid is done

    shown = []
    for k, step in enumerate((100, 600, 1100)):
        panel.request_landscape()
        check_bar()
        coarse = make_landscape(step, n=11, coarse=True)
        panel.on_landscape(coarse)
        check_bar()
        if k == 0:
            assert panel.image.image.shape == (11, 11)  # nothing better to show yet
        else:
            assert panel.image.image.shape == (51, 51) and panel.result.step == shown[-1]
        full = make_landscape(step, n=51)
        for done in (500, 1500, 2120):
            loss = full.loss.copy()
            loss.ravel()[done:] = np.nan
            panel.on_landscape(dataclasses.replace(full, loss=loss, done=done, total=2601))
            check_bar()
            assert panel.progress.value() == 121 + done
            assert "2722" in panel.progress.text()
            assert panel.image.image.shape == ((11, 11) if k == 0 else (51, 51))
        panel.on_landscape(full)
        assert panel.progress.value() == panel.progress.maximum() and "done" in panel.progress.text()
        assert panel.result.step == step and panel.image.image.shape == (51, 51)
        shown.append(step)
    assert len(requests) == 3


def test_empty_state_is_a_hint_not_empty_axes(panel, qtbot):
    show_on_screen(panel, qtbot)
    assert panel.placeholder.isVisible() and "Press L" in panel.placeholder.toPlainText()
    for plot in (panel.plot, panel.section):
        assert not plot.getAxis("left").isVisible() and not plot.getAxis("bottom").isVisible()
    assert not panel.colorbar.isVisible()
    panel.on_landscape(make_landscape(100, n=11))
    assert not panel.placeholder.isVisible()
    for plot in (panel.plot, panel.section):
        assert plot.getAxis("left").isVisible() and plot.getAxis("bottom").isVisible()
    panel.reset()
    assert panel.placeholder.isVisible() and not panel.plot.getAxis("left").isVisible()


def test_legends_and_labels_do_not_cover_the_data(panel, qtbot):
    show_on_screen(panel, qtbot)
    panel.on_landscape(with_penalty(make_landscape(100, n=31)))
    qtbot.wait(50)
    for legend, plot in ((panel.map_legend, panel.plot), (panel.section_legend, panel.section)):
        assert legend.isVisible() and len(legend.items) == 5
        box = legend.sceneBoundingRect()
        assert box.height() > 0
        assert not box.intersects(plot.getViewBox().sceneBoundingRect())
    # No text item drawn on the map besides the (hidden) empty-state hint.
    import pyqtgraph as pg
    texts = [i for i in panel.plot.getViewBox().addedItems if isinstance(i, pg.TextItem)]
    assert all(not t.isVisible() for t in texts)


def test_help_is_a_button_with_an_explanation(panel, qtbot):
    from PySide6.QtWidgets import QAbstractButton
    assert isinstance(panel.help_button, QAbstractButton)
    assert panel.help_button.toolTip()
    qtbot.mouseClick(panel.help_button, Qt.MouseButton.LeftButton)
    assert panel.help_dialog is not None and panel.help_dialog.isVisible()
    text = panel.help_dialog.findChild(type(panel.status_label).__mro__[1]).text()
    assert "filter-normalized" in text and "λ/2·‖θ‖²" in text and "PCA" in text
    assert "course" not in text.lower() and "course" not in panel.help_button.toolTip().lower()
    panel.help_dialog.close()


# ------------------------------------------------------------ the engine side: independent checks


def _twin_objective(t, d1, d2, a, b, coefs):
    """Data loss + ½·Σ c·θ² of a deep copy of the model moved by a·d₁ + b·d₂, by hand."""
    import copy

    import torch
    twin = copy.deepcopy(t.model).eval()
    with torch.no_grad():
        for p, u, v in zip(twin.parameters(), d1, d2):
            p.add_(a * u + b * v)
        x, y = t.x_train[:512], t.y_train[:512]
        data = torch.nn.functional.cross_entropy(twin(x), y).item()
        pen = sum(0.5 * float((c * p.double() ** 2).sum())
                  for p, c in zip(twin.parameters(), coefs) if c is not None)
    return data, pen


@pytest.mark.parametrize("mode,opt,decay_all", [
    ("l2", "adam", False), ("l2", "sgd", True), ("decoupled", "sgd", False),
    ("decoupled", "momentum", False), ("decoupled", "adam", False)])
def test_regularized_surface_matches_an_independent_computation(mode, opt, decay_all):
    import torch

    from regsim.analyses import analyze
    from regsim.analyses.landscape_math import make_directions
    from regsim.hparams import HParams
    from regsim.trainer import Trainer

    lam = 0.05
    t = Trainer(HParams(dataset="moons", hidden=(16, 16), train_size=128, weight_decay=lam,
                        decay_mode=mode, optimizer=opt, decay_norms_and_biases=decay_all,
                        lr=0.05 if opt != "adam" else 0.01), device="cpu")
    t.step(150)
    res = analyze(t, "landscape", resolution=5, span=0.5, preview=0, directions="random")
    params = list(t.model.parameters())
    d1, d2, _ = make_directions(params, [], "random", 0)
    # Which parameters pay, and at what rate, worked out here from the settings (not the optimizer).
    coefs = []
    for p in params:
        if p.dim() < 2 and not decay_all:
            coefs.append(None)
        elif mode == "l2" or opt == "sgd":
            coefs.append(lam)
        elif opt == "momentum":
            coefs.append((1 - 0.9) * lam)  # SGDW: fixed points of L + (1−μ)·λ/2·‖θ‖²
        else:  # AdamW: λ·(√v̂ + ε), v̂ = v / (1 − β₂ᵗ)
            st = t.optimizer.state[p]
            vhat = st["exp_avg_sq"].double() / (1 - 0.999 ** float(st["step"]))
            coefs.append(lam * (vhat.sqrt() + 1e-8))
    assert res.penalty is not None and res.objective
    for i, j in ((2, 2), (0, 0), (4, 1), (1, 3), (3, 4)):
        data, pen = _twin_objective(t, d1, d2, float(res.alphas[j]), float(res.betas[i]), coefs)
        assert res.loss[i, j] == pytest.approx(data, rel=1e-4, abs=1e-6)
        assert res.penalty[i, j] == pytest.approx(pen, rel=1e-6)
    assert res.center_penalty == pytest.approx(_twin_objective(t, d1, d2, 0.0, 0.0, coefs)[1], rel=1e-6)
    assert torch.is_grad_enabled()


def test_no_decay_gives_no_penalty():
    from regsim.analyses import analyze
    from regsim.hparams import HParams
    from regsim.trainer import Trainer
    t = Trainer(HParams(dataset="moons", hidden=(8,), train_size=64, weight_decay=0.0), device="cpu")
    t.step(20)
    res = analyze(t, "landscape", resolution=3, preview=0)
    assert res.penalty is None and res.objective == "" and "λ = 0" in res.objective_note


def test_path_residual_matches_an_independent_projection():
    from regsim.analyses import analyze
    from regsim.analyses.landscape_math import make_directions
    from regsim.hparams import HParams
    from regsim.trainer import Trainer

    t = Trainer(HParams(dataset="moons", hidden=(16, 16), weight_decay=0.01, decay_mode="l2"),
                device="cpu")
    for _ in range(15):
        t.step(20)
    res = analyze(t, "landscape", resolution=5, preview=0)
    params = list(t.model.parameters())
    path = [v for _, v in t.history_path()]
    d1, d2, used = make_directions(params, path, "pca", 0)
    assert used == "pca" == res.directions
    theta = np.concatenate([p.detach().numpy().ravel() for p in params]).astype(np.float64)
    basis = np.stack([np.concatenate([u.numpy().ravel() for u in d]) for d in (d1, d2)], 1)
    delta = np.stack([v.numpy() for v in path]).astype(np.float64) - theta  # (P, n)
    coef, *_ = np.linalg.lstsq(basis.astype(np.float64), delta.T, rcond=None)
    resid = delta - (basis @ coef).T
    expected = np.linalg.norm(resid, axis=1) / np.linalg.norm(basis[:, 0])
    np.testing.assert_allclose(res.path_residual, expected, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(res.path, coef.T, rtol=1e-4, atol=1e-6)
    captured = 1 - (resid ** 2).sum() / (delta ** 2).sum()
    assert res.path_captured == pytest.approx(captured, rel=1e-5)
    sv = np.linalg.svd(delta, compute_uv=False) ** 2
    np.testing.assert_allclose(res.pca_explained, sv[:2] / sv.sum(), rtol=1e-3)
    assert expected.max() > 1e-3  # the path really does leave the plane


# ------------------------------------------------------------ issue 9: the request as a background job


def job_event(panel, kind, done=0, total=0, result=None, message="", job_id=None):
    from regsim.analyses.jobs import JobEvent
    return JobEvent(job_id or panel._job_id, "", "landscape", kind, done, total, result, message)


def test_job_events_drive_progress_preview_and_result(panel, requests):
    panel.request_landscape()
    assert panel.pending and panel.cancel_button.isVisibleTo(panel)
    panel.on_job(job_event(panel, "started"))
    panel.on_job(job_event(panel, "progress", 60, 121 + 2601))
    assert (panel.progress.value(), panel.progress.maximum()) == (60, 2722)
    assert "preview 11×11 · 60/2722 points" in panel.progress.text()
    coarse = make_landscape(300, n=11, coarse=True)
    panel.on_job(job_event(panel, "partial", 121, 2722, result=coarse))
    assert panel.image.image.shape == (11, 11) and panel.pending
    panel.on_job(job_event(panel, "progress", 121 + 1000, 2722))
    assert "full 51×51 · 1121/2722 points" in panel.progress.text()
    panel.on_job(job_event(panel, "result", 2722, 2722, result=make_landscape(300, n=51)))
    assert not panel.pending and not panel.cancel_button.isVisibleTo(panel)
    assert panel.image.image.shape == (51, 51) and "done" in panel.progress.text()


def test_cancel_button_and_escape_cancel_the_job_in_flight(panel, requests, qtbot):
    show_on_screen(panel, qtbot)
    assert not panel.cancel_button.isVisible()  # nothing to cancel
    panel.on_landscape(make_landscape(100, n=21))
    panel.request_landscape()
    job = panel._job_id
    assert panel.cancel_button.isVisible()
    qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    assert requests[-1] == ("cancel", {"id": job})
    assert not panel.pending and not panel.cancel_button.isVisible()
    assert panel.progress.text() == "cancelled"
    # What the cancelled job had already sent is ignored: the grid on screen stays.
    panel.on_job(job_event(panel, "result", 2722, 2722, result=make_landscape(400, n=51),
                           job_id=job))
    assert panel.result.step == 100 and panel.image.image.shape == (21, 21)
    # Esc does the same.
    panel.request_landscape()
    job = panel._job_id
    qtbot.waitUntil(lambda: QApplication.focusWindow() is panel.windowHandle())
    with qtbot.waitSignal(panel.request, timeout=2000) as blocker:
        qtbot.keyClick(panel.windowHandle(), Qt.Key.Key_Escape)
    assert blocker.args == ["cancel", {"id": job}] and not panel.pending


def test_a_failed_job_ends_the_request_with_its_message(panel, requests, qtbot):
    panel.request_landscape()
    with qtbot.waitSignal(panel.status_message, timeout=1000) as blocker:
        panel.on_job(job_event(panel, "failed", message="Loss surface failed: RuntimeError: x"))
    assert blocker.args == ["Loss surface failed: RuntimeError: x"]
    assert not panel.pending and panel.progress.text() == "failed"
    assert "RuntimeError: x" in panel.status_label.text()
    assert panel.placeholder.textItem.toPlainText() == "Loss surface failed: RuntimeError: x"
    panel.reset()  # a new run: the hint again
    assert panel.placeholder.textItem.toPlainText() == panel.EMPTY_HINT.replace("\n", "\n")
