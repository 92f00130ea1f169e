"""A live verdict is read on values measured AT the claim's step (regsim.lessons exact mode): a run
whose last point at or before at_step is earlier gets "not measured at step N", never ✓/✗."""

from __future__ import annotations

import json

import numpy as np

from regsim.lessons import SERIES, RunTrace, evaluate_claim, load_lesson

LESSON = {"id": "x", "title": "x", "explanation": "x", "panel": "weights",
          "base": {"dataset": "moons", "hidden": [8]}, "runs": {"A": {"lr": 0.05}, "B": {"lr": 1e-6}},
          "steps": 1000, "claim": [{"metric": "train_loss", "compare": "A < B"}]}


def trace(steps: list[int], loss: list[float]) -> RunTrace:
    n = len(steps)
    series = {k: np.full(n, 0.5) for k in SERIES}
    series["train_loss"] = np.array(loss, dtype=np.float64)
    return RunTrace(np.array(steps, dtype=np.int64), series)


def lesson(tmp_path, claim=None):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({**LESSON, **({"claim": claim} if claim else {})}))
    return load_lesson(path)


def test_a_point_hundreds_of_steps_early_is_not_a_verdict(tmp_path) -> None:
    # Both runs measured at 0 and 1400 only: at step 0, A < B is false (0.7 vs 0.69) — a ✗ "at step
    # 1000" read at step 0 is what the window showed.
    runs = {"A": trace([0, 1400], [0.70, 0.01]), "B": trace([0, 1400], [0.69, 0.69])}
    r = evaluate_claim(lesson(tmp_path), runs, exact=True)
    assert r.due and not r.measured and not r.holds
    assert r.text.startswith("? not measured at step 1000")
    assert "A last at step 0" in r.text and "B last at step 0" in r.text
    # Without exact (the CLI's traces are measured at at_step by construction) the old reading.
    assert evaluate_claim(lesson(tmp_path), runs).text.startswith("✗ fails at step 0")


def test_a_point_at_the_step_is_judged_and_replaces_the_history(tmp_path) -> None:
    runs = {"A": trace([0, 1400], [0.70, 0.01]), "B": trace([0, 1400], [0.69, 0.69])}
    at = {k: 0.5 for k in SERIES}
    runs["A"] = runs["A"].with_points({1000: {**at, "train_loss": 0.2}})
    runs["B"] = runs["B"].with_points({1000: {**at, "train_loss": 0.6}})
    assert list(runs["A"].steps) == [0, 1000, 1400]
    r = evaluate_claim(lesson(tmp_path), runs, exact=True)
    assert r.due and r.measured and r.holds
    assert r.values["train_loss@1000"] == {"A": 0.2, "B": 0.6}
    assert r.text.startswith("✓ holds at step 1000")
    # A recorded point replaces the one the History had at its step.
    assert runs["A"].with_points({1000: {**at, "train_loss": 0.3}}).series["train_loss"][1] == 0.3


def test_only_one_run_late(tmp_path) -> None:
    runs = {"A": trace([0, 1000, 1200], [0.7, 0.2, 0.1]), "B": trace([0, 990, 1200], [0.7, 0.6, 0.6])}
    r = evaluate_claim(lesson(tmp_path), runs, exact=True)
    assert not r.measured and "B last at step 990" in r.text and "A last" not in r.text


def test_before_the_step_it_is_still_so_far(tmp_path) -> None:
    runs = {"A": trace([0, 400], [0.7, 0.2]), "B": trace([0, 400], [0.7, 0.6])}
    r = evaluate_claim(lesson(tmp_path), runs, exact=True)
    assert not r.due and r.measured and r.text.startswith("✓ so far at step 400")


def test_curve_diff_needs_a_common_point_at_the_step(tmp_path) -> None:
    claim = [{"metric": "curve_diff", "compare": "|A - B| < 0.1"}]
    runs = {"A": trace([0, 900, 1200], [0.5, 0.5, 0.5]), "B": trace([0, 900, 1200], [0.5, 0.5, 0.5])}
    assert not evaluate_claim(lesson(tmp_path, claim), runs, exact=True).measured
    at = {k: 0.5 for k in SERIES}
    runs = {n: t.with_points({1000: at}) for n, t in runs.items()}
    r = evaluate_claim(lesson(tmp_path, claim), runs, exact=True)
    assert r.measured and r.holds
