"""Lessons: every bundled lesson loads, and its claim holds when its runs are really trained, on two
seeds; the same claim fails on runs that do not show it (swapped or identical runs); the claim
language's arithmetic and texts against hand-computed values; bad lesson files name the field.

Training cost: run_lesson takes 1.8–2.6 s of CPU per lesson and seed on one thread (OMP_NUM_THREADS=1,
the shared 2-core machine; wall time up to ~2× that with other jobs running), so the ten
lesson-seeds train in ~25 s; each is trained once and shared by the tests that read it. Each lesson's
"notes" hold its measured claim values on seeds 0–3. The transformer recipe lesson
(llm_recipe_llama_vs_original) costs more: 13–14 s of training per seed (2 runs × 600 steps).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from regsim.cli import run_cli
from regsim.hparams import HParams
from regsim.lessons import (
    LESSON_DIR,
    METRICS,
    PANEL_KEYS,
    RunTrace,
    evaluate_claim,
    list_lessons,
    load_lesson,
    parse_compare,
    parse_lesson,
    run_lesson,
    train_lesson,
)

SEEDS = (0, 1)
LESSONS = sorted(list_lessons())
# What the issue asks to ship.
REQUIRED = {"dropout_closes_the_gap", "weight_decay_closes_the_gap", "sgd_l2_is_sgdw",
            "adam_l2_is_not_adamw", "no_decay_matters", "llm_recipe_llama_vs_original"}


@cache
def traces(lesson_id: str, seed: int) -> dict[str, RunTrace]:
    """Train a lesson once per seed for all the tests that read it."""
    result, problem = train_lesson(load_lesson(lesson_id), seed)
    assert not problem, problem
    return result


# ------------------------------------------------------------------------------------ the files
def test_the_required_lessons_ship():
    assert REQUIRED <= set(LESSONS), sorted(REQUIRED - set(LESSONS))


@pytest.mark.parametrize("lesson_id", LESSONS)
def test_lesson_file_loads_and_validates(lesson_id):
    from ui.panels.registry import panel_keys

    lesson = load_lesson(lesson_id)
    assert lesson.id == lesson_id
    assert lesson.panel in panel_keys()
    assert len(lesson.runs) >= 2 and lesson.differences(), "a lesson compares runs that differ"
    assert "\n" not in lesson.explanation and len(lesson.explanation) > 300  # one paragraph
    assert lesson.title and lesson.notes
    assert all(c.at_step <= lesson.steps for c in lesson.claim)
    # Same seed everywhere: the runs share data, initial weights and batch order.
    assert len({h.seed for h in lesson.runs.values()}) == 1


def test_lesson_panels_are_registry_keys():
    from ui.panels.registry import panel_keys

    assert set(PANEL_KEYS) <= set(panel_keys())


# ------------------------------------------------------------------------------------ the claims
@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("lesson_id", LESSONS)
def test_claim_holds(lesson_id, seed):
    lesson = load_lesson(lesson_id)
    result = evaluate_claim(lesson, traces(lesson_id, seed))
    assert result.due
    assert result.holds, result.text
    # A claim judged at several steps (e.g. "costs steps": an early at_step) names each step per part.
    one_step = {c.at_step for c in lesson.claim} == {lesson.steps}
    assert result.text.startswith(f"✓ holds at step {lesson.steps}" if one_step else "✓ holds: ")


# Lessons whose claim is about each run alone (the same bound for every run, no run against another):
# swapping or duplicating runs cannot falsify them. Left: falsify them another way (e.g. the MC
# lesson's ratios on a network without the gap in its data).
NON_COMPARATIVE = {"mc_bands_widen_off_data": "each run's σ ratio against a constant; no run is compared "
                   "with another, so a swap cannot falsify it"}


@pytest.mark.slow
@pytest.mark.parametrize("lesson_id", LESSONS)
def test_claim_fails_on_swapped_or_identical_runs(lesson_id):
    """The claim can fail: with the runs' records swapped (A's read as B's), or with every run
    replaced by the first one (a lesson whose runs are identical), it does not hold."""
    if lesson_id in NON_COMPARATIVE:
        pytest.skip(NON_COMPARATIVE[lesson_id])
    lesson = load_lesson(lesson_id)
    got = traces(lesson_id, SEEDS[0])
    names = list(lesson.runs)
    swapped = {n: got[m] for n, m in zip(names, reversed(names))}
    result = evaluate_claim(lesson, swapped)
    assert result.due and not result.holds, result.text
    assert result.text.startswith("✗ fails")
    same = {n: got[names[0]] for n in names}
    result = evaluate_claim(lesson, same)
    assert result.due and not result.holds, result.text


@pytest.mark.slow
def test_identical_runs_really_trained_show_no_effect():
    """Two runs with the same settings, trained in lockstep: the dropout lesson's claim is false
    (B's gap equals A's, so it is not below 0.7 × A's), and their curves agree exactly."""
    data = json.loads((LESSON_DIR / "dropout_closes_the_gap.json").read_text("utf-8"))
    data["runs"] = {"A": {"dropout": 0.0}, "B": {"dropout": 0.0}}
    lesson = parse_lesson(data, "identical")
    got, problem = train_lesson(lesson, 0)
    assert not problem
    for k in got["A"].series:
        np.testing.assert_array_equal(got["A"].series[k], got["B"].series[k])
    result = evaluate_claim(lesson, got)
    assert result.due and not result.holds, result.text


@pytest.mark.slow
def test_run_lesson_returns_the_claim_result():
    lesson = load_lesson("adam_l2_is_not_adamw")
    result = run_lesson(lesson, seed=0)
    assert result.holds, result.text
    assert result.values == evaluate_claim(lesson, traces(lesson.id, 0)).values  # deterministic


# ------------------------------------------------------------------------------------ the language
def _trace(steps, **series):
    steps = np.asarray(steps)
    full = {k: np.asarray(series.get(k, np.zeros(len(steps))), dtype=np.float64)
            for k in ("train_loss", "val_loss", "train_acc", "val_acc", "weight_norm")}
    return RunTrace(steps, full)


def _lesson(claim, runs=None, steps=3000):
    return parse_lesson({"id": "t", "title": "t", "explanation": "t", "panel": "training",
                         "runs": runs or {"A": {}, "B": {"dropout": 0.5}}, "steps": steps,
                         "claim": claim}, "t")


def test_claim_text_and_values_against_hand_computed_gaps():
    lesson = _lesson({"metric": "gap_loss", "compare": "B < 0.7 * A", "at_step": 3000})
    a = _trace([0, 1500, 3000], train_loss=[0.7, 0.1, 0.05], val_loss=[0.7, 0.3, 0.45])
    b = _trace([0, 1500, 3000], train_loss=[0.7, 0.2, 0.18], val_loss=[0.7, 0.25, 0.30])
    result = evaluate_claim(lesson, {"A": a, "B": b})
    assert result.holds and result.due
    assert result.text == "✓ holds at step 3000: B's gap 0.12 < 0.7 × A's 0.4"
    assert result.values["gap_loss@3000"] == pytest.approx({"A": 0.40, "B": 0.12})
    # 0.12 < 0.7 × 0.15 = 0.105 is false:
    a2 = _trace([0, 3000], train_loss=[0.7, 0.05], val_loss=[0.7, 0.20])
    result = evaluate_claim(lesson, {"A": a2, "B": b})
    assert not result.holds and result.text == "✗ fails at step 3000: B's gap 0.12 < 0.7 × A's 0.15"


def test_claim_reads_the_last_point_at_or_before_at_step_and_waits_until_due():
    lesson = _lesson({"metric": "val_acc", "compare": "B > A + 0.02", "at_step": 2000})
    a = _trace([0, 1000, 2000, 3000], val_acc=[0.5, 0.80, 0.85, 0.99])
    b = _trace([0, 1000, 2000, 3000], val_acc=[0.5, 0.81, 0.88, 0.0])
    result = evaluate_claim(lesson, {"A": a, "B": b})
    assert result.holds and result.values == {"val_acc@2000": {"A": 0.85, "B": 0.88}}
    early = {"A": _trace([0, 1000], val_acc=[0.5, 0.8]), "B": _trace([0, 1000], val_acc=[0.5, 0.9])}
    result = evaluate_claim(lesson, early)
    assert not result.holds and not result.due
    assert result.text.startswith("✓ so far at step 1000 (judged at step 2000)")


def test_ratio_claims_need_a_positive_reference():
    """'B < 0.7 × A' with A's gap negative would hold for B's more negative gap; it must not."""
    lesson = _lesson({"metric": "gap_loss", "compare": "B < 0.7 * A"})
    a = _trace([3000], train_loss=[0.3], val_loss=[0.2])  # gap −0.1
    b = _trace([3000], train_loss=[0.6], val_loss=[0.1])  # gap −0.5 < 0.7 × −0.1
    result = evaluate_claim(lesson, {"A": a, "B": b})
    assert not result.holds and "needs A's gap > 0" in result.text


def test_pair_metrics_curve_and_weight_difference():
    lesson = _lesson([{"metric": "curve_diff", "compare": "|A - B| < 1e-5"},
                      {"metric": "weight_diff", "compare": "|A - B| < 1e-5"}])
    a = _trace([0, 1500, 3000], train_loss=[1, 0.5, 0.2], val_loss=[1, 0.6, 0.4], weight_norm=[3, 4, 5])
    b = _trace([0, 1500, 3000], train_loss=[1, 0.5, 0.2], val_loss=[1, 0.6 + 3e-6, 0.4],
               weight_norm=[3, 4, 5 - 2e-6])
    w = np.arange(10.0)
    a.weights[3000], b.weights[3000] = w, w + np.where(w == 7, 4e-6, 0)
    result = evaluate_claim(lesson, {"A": a, "B": b})
    assert result.holds, result.text
    assert result.values["curve_diff@3000"]["|A-B|"] == pytest.approx(3e-6, rel=1e-6)
    assert result.values["weight_diff@3000"]["|A-B|"] == pytest.approx(4e-6, rel=1e-6)
    b.weights[3000][0] += 1e-4
    assert not evaluate_claim(lesson, {"A": a, "B": b}).holds
    del b.weights[3000]
    result = evaluate_claim(lesson, {"A": a, "B": b})
    assert not result.holds and "weights were not recorded" in result.text


def test_snapshot_and_history_give_the_trainers_values():
    """evaluate_claim reads live Snapshots and Histories (the GUI's data) as it reads traces:
    checked against the trainer's own evaluation and a numpy norm of its weights."""
    from regsim.snapshot import History
    from regsim.trainer import Trainer

    h = HParams(hidden=(8,), train_size=40, val_size=40, batch_size=8)
    t = Trainer(h, "cpu")
    history = History()
    history.add(t.snapshot())
    t.step(30)
    snap = t.snapshot()
    history.add(snap)
    tl, vl, ta, va = t.evaluate()
    norm = np.sqrt(sum(float(np.sum(lin.weight.detach().numpy().astype(np.float64) ** 2))
                       for lin in t.model.weight_layers()))
    for trace in (RunTrace.from_snapshot(snap), RunTrace.from_history(history),
                  RunTrace.from_trainer(t)):
        assert trace.steps[-1] == 30
        assert trace.series["val_loss"][-1] == pytest.approx(vl)
        assert trace.series["train_acc"][-1] == pytest.approx(ta)
        assert trace.series["weight_norm"][-1] == pytest.approx(norm, rel=1e-6)
    flat = np.concatenate([p.detach().numpy().ravel() for p in t.model.parameters()])
    np.testing.assert_array_equal(RunTrace.from_trainer(t).weights[30], flat)
    lesson = _lesson({"metric": "gap_loss", "compare": "|A - B| < 1e-9", "at_step": 30}, steps=30)
    assert evaluate_claim(lesson, {"A": snap, "B": history}).holds
    assert evaluate_claim(lesson, {"A": t, "B": history}).holds
    other = Trainer(h.replace(lr=0.05), "cpu")
    other.step(30)
    pair = _lesson({"metric": "weight_diff", "compare": "|A - B| < 1e-9", "at_step": 30}, steps=30)
    assert evaluate_claim(pair, {"A": t, "B": t}).holds
    diff = float(np.max(np.abs(flat - np.concatenate([p.detach().numpy().ravel()
                                                        for p in other.model.parameters()]))))
    result = evaluate_claim(pair, {"A": t, "B": other})
    assert not result.holds and result.values["weight_diff@30"]["|A-B|"] == pytest.approx(diff)


@pytest.mark.parametrize("text, expect", [
    ("B < 0.7 * A", ("B", 1.0, 0.0, "<", "A", 0.7, 0.0)),
    ("B>=A+0.02", ("B", 1.0, 0.0, ">=", "A", 1.0, 0.02)),
    ("adam_l2 <= 0.5*adamw - 1e-3", ("adam_l2", 1.0, 0.0, "<=", "adamw", 0.5, -1e-3)),
    ("A > .5", ("A", 1.0, 0.0, ">", None, 1.0, 0.5)),
])
def test_parse_compare(text, expect):
    left, op, right = parse_compare(text)
    got = (left.run, left.factor, left.offset, op, right.run, right.factor, right.offset)
    assert got == pytest.approx(expect) if None not in expect else got == expect


@pytest.mark.parametrize("text", ["B < 0.7 * A < C", "B 0.7 A", "__import__('os').system('x') < 1",
                                  "B < A * 0.7", "1 < 2", "B < |A|", "B << A", "", "B < 0.7 *"])
def test_parse_compare_rejects(text):
    with pytest.raises(ValueError, match="compare"):
        parse_compare(text)


# ------------------------------------------------------------------------------------ bad files
def _good() -> dict:
    return json.loads((LESSON_DIR / "dropout_closes_the_gap.json").read_text("utf-8"))


def _set(path: str, value):
    def edit(d):
        *keys, last = path.split(".")
        for k in keys:
            d = d[int(k)] if k.isdigit() else d[k]
        if value is KeyError:
            del d[last]
        else:
            d[int(last) if last.isdigit() else last] = value
    return edit


@pytest.mark.parametrize("edit, field, allowed", [
    (_set("colour", "red"), "unknown key 'colour'", "allowed: id, title"),
    (_set("claim", KeyError), "missing key 'claim'", "required:"),
    (_set("panel", "histograms"), "panel = 'histograms'", "training, weights, dropout, landscape"),
    (_set("steps", 0), "steps = 0", "[1, 100000]"),
    (_set("claim.0.metric", "gap"), "claim[0].metric = 'gap'", ", ".join(METRICS)),
    (_set("claim.1.compare", "B < C"), "claim[1].compare", "runs: A, B"),
    (_set("claim.0.compare", "B <"), "claim[0].compare", "OP one of <, <=, >, >="),
    (_set("claim.0.at_step", 5000), "claim[0].at_step = 5000", "[1, 1000]"),
    (_set("claim.0.when", 3), "claim[0]: unknown key 'when'", "metric, compare, at_step"),
    (_set("claim.0.metric", "weight_diff"), "weight_diff compares two runs", "|A - B| OP NUMBER"),
    (_set("runs.B.dropout", 1.5), "runs.B: dropout = 1.5", "[0, 1)"),
    (_set("runs.B.colour", 1), "runs.B: unknown setting 'colour'", "known: dataset"),
    (_set("base.hidden", "wide"), "base: hidden", "a list of layer widths"),
    (_set("runs", {}), "runs must be an object of 1 to 4", ""),
    (_set("runs", {"A": {}, "a_very_long_run_name": {}}), "run name 'a_very_long_run_name'", "1 to 16"),
    (_set("claim", []), "claim must be a condition object or a non-empty list", ""),
])
def test_bad_lesson_names_the_field(edit, field, allowed):
    data = copy.deepcopy(_good())
    edit(data)
    with pytest.raises(ValueError) as e:
        parse_lesson(data, "lesson 'x'")
    msg = str(e.value)
    assert msg.startswith("lesson 'x': ") and field in msg and allowed in msg, msg


def test_bad_lesson_files(tmp_path):
    (tmp_path / "broken.json").write_text("{\"id\": ", "utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_lesson(tmp_path / "broken.json")
    (tmp_path / "other.json").write_text(json.dumps(_good()), "utf-8")
    with pytest.raises(ValueError, match="must match the file name"):
        load_lesson(tmp_path / "other.json")
    with pytest.raises(ValueError, match="not found; available: .*dropout_closes_the_gap"):
        load_lesson("no_such_lesson")


# ------------------------------------------------------------------------------------ the CLI
def _tiny(tmp_path: Path, compare: str) -> Path:
    data = {"id": "tiny", "title": "tiny", "explanation": "tiny", "panel": "training",
            "base": {"hidden": [8], "train_size": 40, "val_size": 40, "batch_size": 8},
            "runs": {"A": {}, "B": {"dropout": 0.5}}, "steps": 20,
            "claim": {"metric": "val_loss", "compare": compare}}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(data), "utf-8")
    return path


def test_cli_lists_lessons(capsys):
    assert run_cli(["lesson"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in LESSONS)


def test_cli_exit_codes_and_json(tmp_path, capsys):
    out_json = tmp_path / "out.json"
    assert run_cli(["lesson", str(_tiny(tmp_path, "A < 100")), "--seed", "3", "--json",
                    str(out_json), "--threads", "1"]) == 0
    assert "✓ holds at step 20: A's val loss" in capsys.readouterr().out
    record = json.loads(out_json.read_text("utf-8"))
    assert record["claim"]["holds"] is True and record["hparams"]["B"]["seed"] == 3
    assert record["curves"]["A"]["step"][-1] == 20
    assert record["claim"]["values"]["val_loss@20"]["A"] == record["curves"]["A"]["val_loss"][-1]
    assert run_cli(["lesson", str(_tiny(tmp_path, "A > 100")), "--threads", "1"]) == 1
    assert "✗ fails at step 20" in capsys.readouterr().out
    assert run_cli(["lesson", "no_such_lesson"]) == 2
    assert "not found" in capsys.readouterr().err
    assert run_cli(["lesson", str(_tiny(tmp_path, "A < 1")), "--threads", "999"]) == 2
    assert "--threads = 999 is out of range" in capsys.readouterr().err
