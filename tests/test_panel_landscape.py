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
    assert blocker.args == ["landscape", {"resolution": 31, "span": 2.5}]
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
    assert blocker.args == ["landscape", {"resolution": 51, "span": 1.0}]


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
    assert all(r == ("landscape", {"resolution": 51, "span": 1.0}) for r in requests)


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
    assert panel.progress.value() == round(1000 * 1000 / 2601)
    assert "1000/2601" in panel.status_label.text()
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


def test_grab_is_not_blank(panel, qtbot):
    panel.ingest(make_snapshot(100))
    panel.on_landscape(make_landscape(100))
    show_on_screen(panel, qtbot)
    panel.redraw()
    img = to_array(panel.grab().toImage())
    assert img.shape[:2] == (800, 1200)
    assert img.astype(float).std() > 20


def test_slide_theme_has_white_plot_background(panel, qtbot):
    show_on_screen(panel, qtbot)
    x, y = viewbox_pixel(panel, panel.view, panel.plot)
    np.testing.assert_array_equal(to_array(panel.grab().toImage())[y, x],
                                  QColor(SCREEN.background).getRgb()[:3])
    panel.apply_theme(SLIDE)
    x, y = viewbox_pixel(panel, panel.view, panel.plot)
    np.testing.assert_array_equal(to_array(panel.grab().toImage())[y, x], (255, 255, 255))
    assert panel.plot.getAxis("left").style["tickFont"].pointSize() == SLIDE.font_pt
    assert panel.path.opts["pen"].widthF() == SLIDE.line_width


def test_reset_clears_the_result_and_the_pending_request(panel, requests):
    panel.auto_check.setChecked(True)
    panel.ingest(make_snapshot(100))
    panel.on_landscape(make_landscape(100, n=11, coarse=True))
    panel.reset()
    assert panel.image.image is None and not panel.pending and panel.result is None
    panel.ingest(make_snapshot(10))
    assert len(requests) == 2  # nothing in flight any more, so auto asks again
