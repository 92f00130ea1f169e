"""The job lifecycle every analysis panel shares (ui/panels/base.py JobPanel), driven through its own
buttons and the engine's JobEvents: a newer request cancels the older, stale and foreign events are
ignored, failed / cancelled / progress are shown, and every migrated panel speaks the same protocol."""

from __future__ import annotations

import importlib

import pytest
from qtimage import show_on_screen

from regsim.analyses.jobs import JobEvent
from regsim.snapshot import History
from ui.panels.base import BAR_MAX, JobPanel


class Toy(JobPanel):
    """The smallest job panel: asks for "calibration" with T from an attribute, keeps the result."""

    key = "toy"
    analysis = "calibration"
    job_unit = "passes"
    idle_text = "nothing yet: press Compute (T)"

    def __init__(self) -> None:
        super().__init__(History())
        self.T = 5
        self.shown: object | None = None
        self.build_job_controls("Compute", "T", "ask")
        self.make_status_label()

    def params(self) -> dict:
        if not 1 <= self.T <= 200:
            raise ValueError(f"T = {self.T}: out of range; allowed: 1–200")
        return {"T": self.T}

    def job_result(self, event: JobEvent) -> None:
        self.shown = event.result
        self._show_progress(1, 1, "done")
        self.status_label.setText(f"result {event.result}")


@pytest.fixture
def toy(qtbot):
    panel = Toy()
    qtbot.addWidget(panel)
    show_on_screen(panel, qtbot)
    sent: list[tuple[str, dict]] = []
    panel.request.connect(lambda kind, args: sent.append((kind, dict(args))))
    return panel, sent


def ev(job_id: str, kind: str, done: int = 0, total: int = 0, result=None, message: str = "",
       analysis: str = "calibration") -> JobEvent:
    return JobEvent(job_id, "", analysis, kind, done, total, result, message)


def test_a_newer_request_cancels_the_older_and_its_stale_result_is_ignored(toy) -> None:
    panel, sent = toy
    assert panel.status_label.text() == "nothing yet: press Compute (T)"
    assert not panel.cancel_button.isVisible() and panel.progress.text() == "idle"
    panel.compute_button.click()
    assert sent == [("analyze", {"id": sent[0][1]["id"], "analysis": "calibration", "params": {"T": 5}})]
    old = sent[0][1]["id"]
    assert panel.job_pending and panel.cancel_button.isVisible()
    assert panel.status_label.text() == "computing…"
    panel.T = 7
    panel.compute_button.click()
    assert sent[1] == ("cancel", {"id": old})
    kind, args = sent[2]
    new = args["id"]
    assert kind == "analyze" and new != old and args["params"] == {"T": 7} and len(sent) == 3
    # The old job's events, already on their way, change nothing.
    panel.on_job(ev(old, "progress", 4, 5))
    panel.on_job(ev(old, "result", 5, 5, result="old"))
    panel.on_job(ev(old, "cancelled", message=f"superseded by {new}"))
    assert panel.shown is None and panel.job_pending and panel.cancel_button.isVisible()
    assert panel.status_label.text() == "computing…" and panel.progress.text() == "computing…"
    # Another panel's job (same id space, another analysis) is not this panel's either.
    panel.on_job(ev(new, "result", result="foreign", analysis="ensemble"))
    assert panel.shown is None
    panel.on_job(ev(new, "result", 7, 7, result="new"))
    assert panel.shown == "new" and not panel.job_pending and not panel.cancel_button.isVisible()
    assert panel.status_label.text() == "result new"
    assert (panel.progress.value(), panel.progress.maximum()) == (1, 1)
    # Finished: the next Compute has nothing to cancel.
    panel.compute_button.click()
    assert [k for k, _ in sent[3:]] == ["analyze"]


def test_progress_updates_the_bar_with_its_unit(toy) -> None:
    panel, sent = toy
    panel.compute_button.click()
    job = sent[0][1]["id"]
    panel.on_job(ev(job, "started"))
    assert panel.progress.text() == "computing…"
    panel.on_job(ev(job, "progress", 3, 10))
    assert (panel.progress.value(), panel.progress.maximum()) == (3, 10)
    assert panel.progress.format() == "3 / 10 passes"
    panel.on_job(ev(job, "progress", 0, 0))  # no total yet: the bar stays as it was
    assert panel.progress.format() == "3 / 10 passes"
    # A total past an int's comfort is scaled: the bar's fraction is the job's.
    total = 250 * BAR_MAX
    panel.on_job(ev(job, "progress", total // 4, total))
    assert panel.progress.maximum() <= BAR_MAX
    assert panel.progress.value() / panel.progress.maximum() == pytest.approx(0.25)
    assert panel.progress.format() == f"{total // 4} / {total} passes"


def test_failed_shows_the_message_and_nothing_stays_pending(toy, qtbot) -> None:
    panel, sent = toy
    panel.compute_button.click()
    job = sent[0][1]["id"]
    msg = "Calibration needs a classification run (softmax outputs); this run is a regression."
    with qtbot.waitSignal(panel.status_message) as said:
        panel.on_job(ev(job, "failed", message=msg))
    assert said.args == [msg]
    assert panel.status_label.text() == f"failed: {msg}" and panel.progress.text() == "failed"
    assert not panel.job_pending and not panel.cancel_button.isVisible() and panel.shown is None


def test_cancel_returns_to_idle_and_late_events_are_ignored(toy) -> None:
    panel, sent = toy
    panel.compute_button.click()
    job = sent[0][1]["id"]
    panel.on_job(ev(job, "progress", 2, 5))
    panel.cancel_button.click()
    assert sent[-1] == ("cancel", {"id": job})
    assert not panel.job_pending and not panel.cancel_button.isVisible()
    assert panel.status_label.text() == "cancelled" and panel.progress.text() == "cancelled"
    assert panel.progress.value() == 0
    panel.on_job(ev(job, "cancelled", message="cancelled"))
    panel.on_job(ev(job, "result", result="late"))
    assert panel.shown is None and panel.status_label.text() == "cancelled"
    n = len(sent)
    panel.cancel_button.click()  # hidden, but a click (or Esc) while idle sends nothing
    assert len(sent) == n
    panel.compute_button.click()  # idle: a fresh job, nothing to cancel
    assert [k for k, _ in sent[n:]] == ["analyze"]
    # Cancelled by the engine (superseded, its run reset): said with its reason.
    panel.on_job(ev(sent[-1][1]["id"], "cancelled", message="the run was reset"))
    assert panel.status_label.text() == "cancelled: the run was reset" and not panel.job_pending


def test_forget_job_cancels_the_job_in_flight_and_ignores_it(toy) -> None:
    panel, sent = toy
    panel.compute_button.click()
    job = sent[0][1]["id"]
    panel.forget_job()  # what a panel's reset() does: a new run
    assert sent[-1] == ("cancel", {"id": job})
    assert panel.status_label.text() == panel.idle_text and panel.progress.text() == "idle"
    panel.on_job(ev(job, "result", result="of the old run"))
    assert panel.shown is None and not panel.job_pending


def test_a_bad_field_is_named_and_nothing_is_sent(toy, qtbot) -> None:
    panel, sent = toy
    panel.T = 0
    with qtbot.waitSignal(panel.status_message) as said:
        panel.compute_button.click()
    assert sent == [] and not panel.job_pending
    assert said.args == ["T = 0: out of range; allowed: 1–200"]
    assert panel.status_label.text() == "not started: T = 0: out of range; allowed: 1–200"


MIGRATED = [("calibration", "CalibrationPanel", "calibration"), ("ensemble", "EnsemblePanel", "ensemble"),
            ("mc_dropout", "MCDropoutPanel", "mc_dropout"), ("hessian", "HessianPanel", "hessian"),
            ("sweep", "SweepPanel", "sweep")]


@pytest.mark.parametrize(("module", "cls", "analysis"), MIGRATED, ids=[m for m, _c, _a in MIGRATED])
def test_every_analysis_panel_speaks_the_same_protocol(module, cls, analysis, qtbot) -> None:
    """Compute twice on a fresh panel: the second Compute cancels the first job by its id, and only
    the newer job's failure is shown."""
    panel = getattr(importlib.import_module(f"ui.panels.{module}"), cls)(History())
    qtbot.addWidget(panel)
    assert isinstance(panel, JobPanel) and panel.analysis == analysis
    sent: list[tuple[str, dict]] = []
    panel.request.connect(lambda kind, args: sent.append((kind, dict(args))))
    panel.compute_button.click()
    panel.compute_button.click()
    assert [k for k, _ in sent] == ["analyze", "cancel", "analyze"]
    first, second = sent[0][1], sent[2][1]
    assert sent[1][1] == {"id": first["id"]} and second["id"] != first["id"]
    assert first["analysis"] == second["analysis"] == analysis
    panel.on_job(JobEvent(first["id"], "", analysis, "failed", message="stale"))
    assert "stale" not in panel.status_label.text() and panel.job_pending
    panel.on_job(JobEvent(second["id"], "", analysis, "failed", message="bad k"))
    assert "bad k" in panel.status_label.text() and not panel.job_pending
    if panel.cancel_button is not None:
        assert not panel.cancel_button.isVisible()
    panel.cleanup()
