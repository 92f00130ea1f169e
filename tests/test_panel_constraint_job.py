"""The constraint panel's real-model plane runs on JobPanel's one job lifecycle (ui/panels/base.py):
Cancel (Esc) while in flight, late events of a cancelled or forgotten job ignored, a reset cancels
the job in flight, Compare mode asks about the selected run."""

from __future__ import annotations

from synthetic import make_snapshot

from regsim.analyses.jobs import JobEvent
from regsim.snapshot import History
from ui.panels.base import JobPanel
from ui.panels.constraint import REAL_RESOLUTION, ConstraintPanel


def panel_and_requests(qtbot):
    panel = ConstraintPanel(History())
    qtbot.addWidget(panel)
    panel.ingest(make_snapshot())
    asked: list[tuple[str, dict]] = []
    panel.request.connect(lambda kind, payload: asked.append((kind, payload)))
    return panel, asked


def test_cancel_ends_the_job_and_ignores_its_late_result(qtbot) -> None:
    panel, asked = panel_and_requests(qtbot)
    assert isinstance(panel, JobPanel) and panel.analysis == "hessian_plane"
    panel.show()
    assert panel.cancel_button is not None and not panel.cancel_button.isVisible()
    panel.compute_button.click()
    kind, payload = asked[-1]
    assert kind == "analyze" and payload["params"] == {"resolution": REAL_RESOLUTION}
    assert "run" not in payload  # one run: the engine's only run
    assert panel.job_pending and panel.cancel_button.isVisible()
    assert not panel.compute_button.isEnabled()
    panel.cancel_button.click()
    assert asked[-1] == ("cancel", {"id": payload["id"]})
    assert not panel.job_pending and not panel.cancel_button.isVisible()
    assert panel.compute_button.isEnabled() and panel.real.status.text() == "cancelled"
    # The result was already on its way: ignored (set_result is never called with it).
    panel.on_job(JobEvent(payload["id"], "", "hessian_plane", "result", result=object()))
    assert panel.real.result is None
    panel.cleanup()


def test_reset_cancels_the_job_in_flight_and_compare_mode_names_the_run(qtbot) -> None:
    panel, asked = panel_and_requests(qtbot)
    panel.set_runs([("A", None, 0), ("B", None, 1)], "B")
    panel.compute_button.click()
    kind, payload = asked[-1]
    assert kind == "analyze" and payload["run"] == "B"
    panel.reset()  # a new run: the weights the job analyses are gone
    assert asked[-1] == ("cancel", {"id": payload["id"]})
    assert not panel.job_pending and panel.compute_button.isEnabled()
    panel.on_job(JobEvent(payload["id"], "B", "hessian_plane", "result", result=object()))
    assert panel.real.result is None
    # Another panel's job with the same id scheme is not ours.
    panel.compute_button.click()
    job = asked[-1][1]["id"]
    panel.on_job(JobEvent(job, "B", "hessian", "failed", message="not mine"))
    assert panel.job_pending and "not mine" not in panel.real.status.text()
    panel.cleanup()
    assert asked[-1] == ("cancel", {"id": job})  # closing the panel cancels its job


def test_the_bar_says_done_when_the_result_is_in(qtbot, monkeypatch) -> None:
    """The bar ends full ("done"), not frozen at the last progress event's count."""
    panel, asked = panel_and_requests(qtbot)
    drawn = []
    monkeypatch.setattr(panel.real, "set_result", drawn.append)
    panel.compute_button.click()
    job = asked[-1][1]["id"]
    panel.on_job(JobEvent(job, "", "hessian_plane", "progress", 1449, 1690))
    assert panel.progress.format() == "1449 / 1690" and "85 %" in panel.real.status.text()
    result = object()
    panel.on_job(JobEvent(job, "", "hessian_plane", "result", result=result))
    assert drawn == [result] and not panel.job_pending
    assert panel.progress.format() == "done" and panel.progress.value() == panel.progress.maximum()
    panel.cleanup()
