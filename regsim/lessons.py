"""Lessons that prove themselves: a comparison preset (JSON data) plus the claim it demonstrates.

A lesson is a file in resources/lessons/ (never code):

    {"id": "dropout_closes_the_gap", "title": "...", "explanation": "one paragraph",
     "panel": "training",                         # the panel to open (ui/panels/registry.py keys)
     "base": {"dataset": "moons", ...},           # settings every run shares
     "runs": {"A": {"dropout": 0.0}, "B": {"dropout": 0.5}},   # name → changes on top of base
     "steps": 1000,                               # the step budget
     "claim": [{"metric": "gap_loss", "compare": "B < 0.7 * A", "at_step": 1000}],
     "notes": "what was measured, on which seeds"}

The claim is data in a small language with no eval(): each condition names a metric from the
fixed table METRICS and a comparison in the grammar

    compare := side OP side            OP := <  <=  >  >=
    side    := NUMBER | [NUMBER *] RUN [(+|-) NUMBER] | |RUN - RUN|

so "B < 0.7 * A" is "B's value < 0.7 × A's", "B > A + 0.02" a margin, "|A - B| > 0.1" a
difference either way, "A < 0.5" a threshold. Pair metrics (curve_diff, weight_diff) describe two
runs at once and take only "|A - B| OP NUMBER". A claim holds when every condition holds at its
step (`at_step`, default: the step budget).

`evaluate_claim(lesson, runs)` reads Snapshots (the GUI's live runs), Histories, live Trainers (e.g.
a Comparison's `.trainers`, weights included) or the RunTraces that `train_lesson` records;
`run_lesson(lesson, seed)` trains the runs in lockstep and returns the ClaimResult. No Qt here,
and torch only once a lesson is trained.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .files import read_bundled_json
from .hparams import HParams
from .lesson_metrics import ANALYSIS_METRICS
from .runs import MAX_NAME, MAX_RUNS

LESSON_DIR = Path(__file__).resolve().parent.parent / "resources" / "lessons"

# The panels a lesson may open: keys of ui/panels/registry.py (regsim cannot import ui; the lesson
# test checks that these are registry keys).
PANEL_KEYS = ("training", "weights", "dropout", "landscape", "compression", "uncertainty", "ensemble",
              "grokking", "hessian", "recipe")
MAX_STEPS = 100_000
RECORD_POINTS = 20  # train_lesson measures every run this many times over the budget (curve_diff)


@dataclass(frozen=True)
class Metric:
    label: str  # how a claim's text names it: "B's gap 0.12"
    pair: bool  # True: one value for two runs (only "|A - B| OP NUMBER")
    doc: str  # what it is, for error messages and the docs


METRICS: dict[str, Metric] = {
    "gap_loss": Metric("gap", False, "val − train loss (eval mode, whole splits)"),
    "val_loss": Metric("val loss", False, "validation loss"),
    "train_loss": Metric("train loss", False, "training loss (eval mode, dropout off)"),
    "gap_acc": Metric("accuracy gap", False, "train − val accuracy"),
    "val_acc": Metric("val acc", False, "validation accuracy, in [0, 1]"),
    "train_acc": Metric("train acc", False, "training accuracy, in [0, 1]"),
    "weight_norm": Metric("‖W‖", False, "total L2 norm of the weight matrices, √(Σ ‖W_l‖²)"),
    "curve_diff": Metric("max curve difference", True,
                         "max |A − B| over every step measured up to at_step, across the train "
                         "loss, val loss and ‖W‖ curves ('curves identical')"),
    "weight_diff": Metric("max |weight difference|", True,
                          "max |θ_A − θ_B| over every parameter at at_step (needs the runs' weights: "
                          "train_lesson records them)"),
}
# Measured by an analysis of the live network at the condition's at_step (regsim/lesson_metrics.py):
# train_lesson records them; Snapshots and Histories do not carry them.
METRICS.update({k: Metric(label, False, doc) for k, (label, doc, _) in ANALYSIS_METRICS.items()})
OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}
_TOP_KEYS = ("id", "title", "explanation", "panel", "base", "runs", "steps", "claim", "notes")
_REQUIRED = ("id", "title", "explanation", "panel", "runs", "steps", "claim")
_COND_KEYS = ("metric", "compare", "at_step")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
                    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op><=|>=|<|>)|(?P<sym>[*+\-|]))")


# --------------------------------------------------------------------------------- the language
@dataclass(frozen=True)
class Side:
    """One side of a comparison: factor · value(run) + offset, |value(run) − value(other)|, or a
    constant (run is None)."""

    run: str | None = None  # the run whose value it reads; None = a constant
    factor: float = 1.0  # multiplies the run's value ("0.7 * A")
    offset: float = 0.0  # added after the factor ("A + 0.02", "A - 0.05")
    other: str | None = None  # set for |run − other|

    def value(self, values: Mapping[str, float]) -> float:
        if self.run is None:
            return self.offset
        if self.other is not None:
            return abs(values[self.run] - values[self.other])
        return self.factor * values[self.run] + self.offset

    def runs(self) -> tuple[str, ...]:
        return tuple(r for r in (self.run, self.other) if r is not None)


def parse_compare(text: str, where: str = "compare") -> tuple[Side, str, Side]:
    """(left, operator, right) of a comparison; a ValueError naming `where` and the grammar."""
    grammar = ("expected e.g. 'B < 0.7 * A', 'B > A + 0.02', '|A - B| > 0.1' or 'A < 0.5' "
               "(side OP side; OP one of <, <=, >, >=; a side is NUMBER, [NUMBER *] RUN "
               "[+|- NUMBER] or |RUN - RUN|)")
    if not isinstance(text, str):
        raise ValueError(f"{where} = {text!r} must be a string; {grammar}")
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"{where} = {text!r}: cannot read {text[pos:].strip()!r}; {grammar}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    ops = [i for i, (k, _) in enumerate(tokens) if k == "op"]
    if len(ops) != 1:
        raise ValueError(f"{where} = {text!r} needs exactly one comparison operator; {grammar}")
    i = ops[0]
    try:
        left, right = _side(tokens[:i]), _side(tokens[i + 1:])
    except ValueError:
        raise ValueError(f"{where} = {text!r} is not a comparison; {grammar}") from None
    if not left.runs() and not right.runs():
        raise ValueError(f"{where} = {text!r} names no run; {grammar}")
    return left, tokens[i][1], right


def _side(tokens: list[tuple[str, str]]) -> Side:
    kinds = "".join({"num": "n", "name": "r", "sym": ""}.get(k, "?") or v for k, v in tokens)
    vals = [v for _, v in tokens]
    if kinds == "n":
        return Side(offset=float(vals[0]))
    if kinds == "|r-r|":
        return Side(run=vals[1], other=vals[3])
    m = re.fullmatch(r"(n\*)?r([+-]n)?", kinds)
    if m is None:
        raise ValueError(kinds)
    factor = float(vals[0]) if m.group(1) else 1.0
    run = vals[2] if m.group(1) else vals[0]
    offset = 0.0
    if m.group(2):
        offset = float(vals[-1]) * (1.0 if vals[-2] == "+" else -1.0)
    return Side(run=run, factor=factor, offset=offset)


@dataclass(frozen=True)
class Condition:
    metric: str  # a key of METRICS
    compare: str  # the comparison as written in the lesson file
    at_step: int  # the step at which it is judged
    left: Side  # parsed from `compare`
    op: str  # one of OPS
    right: Side

    def runs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.left.runs() + self.right.runs()))


@dataclass(frozen=True)
class Lesson:
    id: str  # the file name without .json
    title: str  # one line
    explanation: str  # one paragraph, drawn from the reference text
    panel: str  # the panel to open, one of PANEL_KEYS
    runs: dict[str, HParams]  # name → settings, in the file's order (the first is the reference)
    steps: int  # the step budget: every run trains this many steps
    claim: tuple[Condition, ...]  # all must hold
    notes: str = ""  # measurements behind the claim's numbers
    base: dict[str, Any] = field(default_factory=dict)  # the shared settings as written

    def hparams(self, seed: int | None = None) -> dict[str, HParams]:
        """The runs' settings, every seed replaced by `seed` when given."""
        if seed is None:
            return dict(self.runs)
        return {name: h.replace(seed=seed) for name, h in self.runs.items()}

    def differences(self) -> dict[str, dict[str, Any]]:
        """{setting: {run: value}} for the settings in which the runs differ (the config diff)."""
        dicts = {name: h.to_dict() for name, h in self.runs.items()}
        keys = next(iter(dicts.values())).keys()
        return {k: {n: d[k] for n, d in dicts.items()} for k in keys
                if len({json.dumps(d[k]) for d in dicts.values()}) > 1}


# --------------------------------------------------------------------------------- loading
def parse_lesson(data: Any, source: str = "lesson") -> Lesson:
    """A validated Lesson from parsed JSON; every error names `source`, the field and what is
    allowed."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object with keys {', '.join(_REQUIRED)}")
    extra = [k for k in data if k not in _TOP_KEYS]
    if extra:
        raise ValueError(f"{source}: unknown key {extra[0]!r}; allowed: {', '.join(_TOP_KEYS)}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ValueError(f"{source}: missing key {missing[0]!r}; required: {', '.join(_REQUIRED)}")
    for key in ("id", "title", "explanation", "panel", "notes"):
        if key in data and (not isinstance(data[key], str) or (key != "notes" and not data[key].strip())):
            raise ValueError(f"{source}: {key} = {data[key]!r} must be a non-empty string")
    if not _NAME.match(data["id"]):
        raise ValueError(f"{source}: id = {data['id']!r} must be a name of letters, digits and _")
    if data["panel"] not in PANEL_KEYS:
        raise ValueError(f"{source}: panel = {data['panel']!r} is not allowed; choose one of: "
                         f"{', '.join(PANEL_KEYS)}")
    steps = data["steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"{source}: steps = {steps!r} is out of range; allowed: an integer in "
                         f"[1, {MAX_STEPS}]")
    base = data.get("base", {})
    if not isinstance(base, dict):
        raise ValueError(f"{source}: base = {base!r} must be an object of settings")
    runs_data = data["runs"]
    if not isinstance(runs_data, dict) or not 1 <= len(runs_data) <= MAX_RUNS:
        raise ValueError(f"{source}: runs must be an object of 1 to {MAX_RUNS} named runs, "
                         "e.g. {\"A\": {\"dropout\": 0.0}, \"B\": {\"dropout\": 0.5}}")
    try:
        shared = HParams.from_dict(base)
    except ValueError as e:
        raise ValueError(f"{source}: base: {e}") from None
    runs: dict[str, HParams] = {}
    for name, changes in runs_data.items():
        if not _NAME.match(name) or len(name) > MAX_NAME:
            raise ValueError(f"{source}: run name {name!r} must be 1 to {MAX_NAME} letters, digits "
                             "and _ (starting with a letter), e.g. A, B, adamw")
        if not isinstance(changes, dict):
            raise ValueError(f"{source}: runs.{name} must be an object of settings")
        try:
            runs[name] = HParams.from_dict(changes, base=shared)
        except ValueError as e:
            raise ValueError(f"{source}: runs.{name}: {e}") from None
    claim = data["claim"]
    if isinstance(claim, dict):
        claim = [claim]
    if not isinstance(claim, list) or not claim:
        raise ValueError(f"{source}: claim must be a condition object or a non-empty list of them, "
                         "e.g. {\"metric\": \"gap_loss\", \"compare\": \"B < 0.7 * A\"}")
    conditions = tuple(_condition(c, f"{source}: claim[{i}]", runs, steps)
                       for i, c in enumerate(claim))
    return Lesson(id=data["id"], title=data["title"].strip(), explanation=data["explanation"].strip(),
                  panel=data["panel"], runs=runs, steps=steps, claim=conditions,
                  notes=data.get("notes", ""), base=dict(base))


def _condition(c: Any, where: str, runs: Mapping[str, HParams], steps: int) -> Condition:
    if not isinstance(c, dict):
        raise ValueError(f"{where} must be an object with keys {', '.join(_COND_KEYS)}")
    extra = [k for k in c if k not in _COND_KEYS]
    if extra:
        raise ValueError(f"{where}: unknown key {extra[0]!r}; allowed: {', '.join(_COND_KEYS)}")
    for key in ("metric", "compare"):
        if key not in c:
            raise ValueError(f"{where}: missing key {key!r}; required: metric, compare")
    metric = c["metric"]
    if metric not in METRICS:
        raise ValueError(f"{where}.metric = {metric!r} is not allowed; choose one of: "
                         f"{', '.join(METRICS)}")
    at = c.get("at_step", steps)
    if isinstance(at, bool) or not isinstance(at, int) or not 1 <= at <= steps:
        raise ValueError(f"{where}.at_step = {at!r} is out of range; allowed: an integer in "
                         f"[1, {steps}] (the lesson's steps)")
    left, op, right = parse_compare(c["compare"], f"{where}.compare")
    for run in left.runs() + right.runs():
        if run not in runs:
            raise ValueError(f"{where}.compare = {c['compare']!r} names run {run!r}; the lesson's "
                             f"runs: {', '.join(runs)}")
    if METRICS[metric].pair and not (left.other is not None and right.run is None):
        raise ValueError(f"{where}.compare = {c['compare']!r}: {metric} compares two runs; write "
                         "it as '|A - B| OP NUMBER', e.g. '|A - B| < 1e-5'")
    return Condition(metric, c["compare"], at, left, op, right)


def list_lessons(directory: Path | None = None) -> dict[str, str]:
    """{id: title} of every lesson file, sorted by id."""
    out = {}
    for path in sorted((directory or LESSON_DIR).glob("*.json")):
        try:
            out[path.stem] = str(json.loads(path.read_text("utf-8")).get("title", ""))
        except (OSError, ValueError, AttributeError):
            out[path.stem] = "(unreadable)"
    return out


def load_lesson(name_or_path: str | Path) -> Lesson:
    """A bundled lesson by id, or any lesson file by path; the id must match the file name."""
    data, path = read_bundled_json(name_or_path, LESSON_DIR, "lesson", list_lessons)
    lesson = parse_lesson(data, f"lesson {path.stem!r}")
    if lesson.id != path.stem:
        raise ValueError(f"lesson {path.stem!r}: id = {lesson.id!r} must match the file name "
                         f"({path.stem!r})")
    return lesson


# --------------------------------------------------------------------------------- observations
SERIES = ("train_loss", "val_loss", "train_acc", "val_acc", "weight_norm")
CURVES = ("train_loss", "val_loss", "weight_norm")  # what curve_diff compares


@dataclass(frozen=True)
class RunTrace:
    """What a claim reads about one run: scalar series at measured steps, weights where known."""

    steps: np.ndarray  # (K,) increasing steps at which the series were measured
    series: dict[str, np.ndarray]  # each of SERIES → (K,)
    weights: dict[int, np.ndarray] = field(default_factory=dict)  # step → (P,) all parameters

    @staticmethod
    def from_snapshot(snap: Any) -> RunTrace:
        """One point: a Snapshot's metrics at the step they were measured (eval_step)."""
        step = snap.eval_step if snap.eval_step >= 0 else snap.step
        norm = float(np.sqrt(np.sum(np.square(np.asarray(snap.weight_norms, dtype=np.float64)))))
        values = dict(train_loss=snap.train_loss, val_loss=snap.val_loss, train_acc=snap.train_acc,
                      val_acc=snap.val_acc, weight_norm=norm)
        return RunTrace(np.array([step]), {k: np.array([float(v)]) for k, v in values.items()})

    @staticmethod
    def from_history(history: Any) -> RunTrace:
        """Every point of a History (regsim.snapshot.History: the GUI's and CLI's curves)."""
        return RunTrace(np.asarray(history.series("step")).astype(np.int64),
                        {k: np.array(history.series(k), dtype=np.float64) for k in SERIES})

    @staticmethod
    def from_trainer(trainer: Any, weights: bool = True) -> RunTrace:
        """One point, measured now on a live Trainer (eval mode, whole splits), with its weights:
        what an engine that hosts the runs can judge a weight_diff claim on (snapshots carry
        histograms and norms, not the weights)."""
        metrics, flat = measure_trainer(trainer, weights)
        step = trainer.step_count
        return RunTrace(np.array([step]), {k: np.array([v]) for k, v in zip(SERIES, metrics)},
                        {step: flat} if flat is not None else {})

    def with_points(self, points: Mapping[int, Mapping[str, float]]) -> RunTrace:
        """This trace plus `points` (step → SERIES values), which replace any point at their step:
        the values a live window recorded exactly at a claim's at_step, whatever its History kept."""
        if not points:
            return self
        keep = ~np.isin(self.steps, np.array(list(points), dtype=np.int64))
        steps = np.concatenate([self.steps[keep], np.array(list(points), dtype=np.int64)])
        order = np.argsort(steps, kind="stable")
        series = {k: np.concatenate([v[keep], np.array([float(p[k]) for p in points.values()])])[order]
                  for k, v in self.series.items()}
        return RunTrace(steps[order], series, self.weights)

    def index_at(self, step: int) -> int | None:
        """The last point at or before `step`, or None if nothing was measured that early."""
        i = int(np.searchsorted(self.steps, step, side="right")) - 1
        return i if i >= 0 else None


def measure_trainer(trainer: Any, weights: bool = False) -> tuple[tuple[float, ...], np.ndarray | None]:
    """(SERIES values, all parameters flattened or None) of a Trainer now. The norm is the
    Frobenius norm over the weight matrices, as Snapshot.weight_norms and History's weight_norm."""
    import torch

    with torch.no_grad():
        tl, vl, ta, va = trainer.evaluate()
        norm = float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(lin.weight) for lin in trainer.model.weight_layers()])))
        flat = (torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()])
                .double().cpu().numpy() if weights else None)
    return (tl, vl, ta, va, norm), flat


def as_trace(obs: Any) -> RunTrace:
    if isinstance(obs, RunTrace):
        return obs
    if hasattr(obs, "model") and hasattr(obs, "evaluate"):
        return RunTrace.from_trainer(obs)
    if hasattr(obs, "series") and callable(obs.series):
        return RunTrace.from_history(obs)
    if hasattr(obs, "train_loss") and hasattr(obs, "weight_norms"):
        return RunTrace.from_snapshot(obs)
    raise TypeError(f"cannot read a run from {type(obs).__name__}; expected a Snapshot, a History, "
                    "a Trainer or a RunTrace")


# --------------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class ConditionResult:
    condition: Condition
    holds: bool  # the comparison is true on the values read
    due: bool  # every run was measured at (or after) at_step; False: "so far", not a verdict
    step: int  # the step the values were read at (≤ at_step)
    values: dict[str, float]  # run name (or "|A-B|" for a pair metric) → the metric's value
    text: str  # "B's gap 0.12 < 0.7 × A's 0.40"
    measured: bool = True  # False (exact mode): due, but no run value was measured AT at_step


@dataclass(frozen=True)
class ClaimResult:
    holds: bool  # every condition holds and is due
    due: bool  # every condition was judged at its at_step (False while a live run is short of it)
    text: str  # "✓ holds at step 1000: B's gap 0.12 < 0.7 × A's 0.40"
    values: dict[str, dict[str, float]]  # "metric@step" → {run: value}, for tables and JSON
    parts: tuple[ConditionResult, ...] = ()
    problem: str = ""  # a run diverged or was not given: the claim cannot be judged
    measured: bool = True  # False: due, but a condition has no value measured at its at_step

    def to_dict(self) -> dict[str, Any]:
        return {"holds": self.holds, "due": self.due, "text": self.text, "values": self.values,
                "problem": self.problem,
                "conditions": [{"metric": p.condition.metric, "compare": p.condition.compare,
                                "at_step": p.condition.at_step, "step": p.step, "holds": p.holds,
                                "due": p.due, "values": p.values, "text": p.text} for p in self.parts]}


def evaluate_claim(lesson: Lesson, runs: Mapping[str, Any], exact: bool = False) -> ClaimResult:
    """Judge the lesson's claim on its runs: `runs` maps each run name to a Snapshot (the live
    state), a History (the curves), a Trainer (measured now, with its weights) or a RunTrace
    (train_lesson's record).

    Each condition reads every run at the last point measured at or before its at_step. While a
    run has not reached at_step yet the result says "so far" (due = False) and does not hold yet.
    With `exact` (the live window, whose runs are measured every few hundred steps on a big net),
    a due condition is judged only on values measured AT its at_step: a run whose last point at or
    before it is earlier gives "not measured at step N" (measured = False), neither ✓ nor ✗ — a
    verdict read at step 0 for a claim about step 1000 would be a wrong answer.
    """
    missing = [r for c in lesson.claim for r in c.runs() if r not in runs]
    if missing:
        text = f"? cannot judge: run {missing[0]!r} is missing (have: {', '.join(runs) or 'none'})"
        return ClaimResult(False, False, text, {}, (), text)
    traces = {name: as_trace(obs) for name, obs in runs.items()}
    parts = tuple(_judge(c, traces, exact) for c in lesson.claim)
    unmeasured = [p for p in parts if not p.measured]
    if unmeasured:
        body = "; ".join(p.text for p in unmeasured)
        text = f"? not measured at step {unmeasured[0].condition.at_step}: {body}"
        return ClaimResult(False, True, text, {}, parts, measured=False)
    holds = all(p.holds and p.due for p in parts)
    due = all(p.due for p in parts)
    steps = {p.step for p in parts}
    body = "; ".join(p.text if len(steps) == 1 else f"{p.text} (step {p.step})" for p in parts)
    at = f" at step {next(iter(steps))}" if len(steps) == 1 else ""
    if not due:
        target = max(c.at_step for c in lesson.claim)
        verdict = "✓ so far" if all(p.holds for p in parts) else "… not yet"
        text = f"{verdict}{at} (judged at step {target}): {body}"
    else:
        failed = [p for p in parts if not p.holds]
        text = f"✓ holds{at}: {body}" if holds else f"✗ fails{at}: " + "; ".join(
            p.text if len(steps) == 1 else f"{p.text} (step {p.step})" for p in failed)
    values = {f"{p.condition.metric}@{p.step}": p.values for p in parts}
    return ClaimResult(holds, due, text, values, parts)


def _judge(c: Condition, traces: Mapping[str, RunTrace], exact: bool = False) -> ConditionResult:
    metric = METRICS[c.metric]
    names = c.runs()
    idx = {n: traces[n].index_at(c.at_step) for n in names}
    if any(i is None for i in idx.values()):
        return ConditionResult(c, False, False, 0, {}, f"{c.compare}: not measured yet")
    due = all(traces[n].steps[-1] >= c.at_step for n in names)
    if exact and due and c.metric != "weight_diff":
        # curve_diff reads every common step up to at_step, the others the point at it: either
        # way the last value read must be AT at_step.
        late = {n: int(traces[n].steps[idx[n]]) for n in names if traces[n].steps[idx[n]] != c.at_step}
        if late:
            last = ", ".join(f"{n} last at step {s}" for n, s in late.items())
            return ConditionResult(c, False, True, min(late.values()), {},
                                   f"{c.compare}: not measured at step {c.at_step} ({last})",
                                   measured=False)
    if metric.pair:
        a, b = c.left.run, c.left.other
        assert a is not None and b is not None
        step, value = _pair_value(c, traces[a], traces[b])
        key = f"|{a}-{b}|"
        if value is None:
            return ConditionResult(c, False, False, step, {}, f"{c.compare}: {_why_no_pair(c)}")
        ok = OPS[c.op](value, c.right.value({}))
        text = f"{metric.label} |{a} − {b}| {_num(value)} {_op(c.op)} {_num(c.right.value({}))}"
        return ConditionResult(c, ok, due, step, {key: value}, text)
    if c.metric in ANALYSIS_METRICS and any(c.metric not in traces[n].series for n in names):
        return ConditionResult(c, False, False, 0, {}, f"{c.compare}: {metric.label} is measured by "
                               "an analysis of the trained network (main.py lesson), not on live runs")
    values = {n: float(traces[n].series[c.metric][idx[n]]) if c.metric in traces[n].series
              else _derived(c.metric, traces[n], idx[n]) for n in names}
    step = min(int(traces[n].steps[idx[n]]) for n in names)
    lv, rv = c.left.value(values), c.right.value(values)
    ok = all(math.isfinite(v) for v in values.values()) and OPS[c.op](lv, rv)
    text = f"{_side_text(c.left, metric, values, True)} {_op(c.op)} {_side_text(c.right, metric, values)}"
    # A ratio compares magnitudes: "B < 0.7 × A" with A's gap ≤ 0 would hold for any B a bit below
    # A (−0.2 < 0.7 × −0.1 is false, but −0.5 < 0.7 × −0.1 is true), which is not what it claims.
    scaled = [s.run for s in (c.left, c.right) if s.run is not None and s.other is None and s.factor != 1]
    bad = [r for r in scaled if not values[r] > 0]
    if bad:
        ok = False
        text += f" (a ratio needs {bad[0]}'s {metric.label} > 0)"
    return ConditionResult(c, ok, due, step, values, text)


def _derived(metric: str, trace: RunTrace, i: int) -> float:
    s = trace.series
    if metric == "gap_loss":
        return float(s["val_loss"][i] - s["train_loss"][i])
    if metric == "gap_acc":
        return float(s["train_acc"][i] - s["val_acc"][i])
    raise KeyError(metric)  # pragma: no cover - METRICS and this function move together


def _pair_value(c: Condition, a: RunTrace, b: RunTrace) -> tuple[int, float | None]:
    if c.metric == "weight_diff":
        step = max((s for s in a.weights if s <= c.at_step and s in b.weights), default=None)
        if step is None:
            return 0, None
        return step, float(np.max(np.abs(a.weights[step] - b.weights[step])))
    # curve_diff: every step both runs measured, up to at_step.
    common = np.intersect1d(a.steps[a.steps <= c.at_step], b.steps[b.steps <= c.at_step])
    if not len(common):
        return 0, None
    ia, ib = np.searchsorted(a.steps, common), np.searchsorted(b.steps, common)
    diff = max(float(np.max(np.abs(a.series[k][ia] - b.series[k][ib]))) for k in CURVES)
    return int(common[-1]), diff


def _why_no_pair(c: Condition) -> str:
    if c.metric == "weight_diff":
        return "the runs' weights were not recorded at a common step (train_lesson records them)"
    return "the runs have no measured step in common"


def _side_text(side: Side, metric: Metric, values: Mapping[str, float], first: bool = False) -> str:
    """"B's gap 0.12", "0.7 × A's 0.40", "A's 0.9 + 0.02", "|A − B| val loss 0.3", "0.5"."""
    if side.run is None:
        return _num(side.offset)
    label = f" {metric.label}" if first else ""
    if side.other is not None:
        return f"|{side.run} − {side.other}|{label} {_num(side.value(values))}"
    core = f"{side.run}'s{label} {_num(values[side.run])}"
    if side.factor != 1:
        core = f"{side.factor:.6g} × {core}"  # a bound like 0.300823 × A must not read 0.301
    if side.offset:
        core += f" {'+' if side.offset > 0 else '−'} {_num(abs(side.offset))}"
    return core


def _op(op: str) -> str:
    return {"<=": "≤", ">=": "≥"}.get(op, op)


def _num(v: float) -> str:
    """3 significant digits; scientific below 0.001 (a float-tolerance difference: 3.1e-7)."""
    if v != v:
        return "NaN"
    if v == 0:
        return "0"
    if abs(v) < 1e-3:
        mant, exp = f"{v:.1e}".split("e")
        return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


# --------------------------------------------------------------------------------- training
def train_lesson(lesson: Lesson, seed: int | None = None, device: str = "cpu",
                 progress: Callable[[int, int], None] | None = None) -> tuple[dict[str, RunTrace], str]:
    """Train the lesson's runs in lockstep for its step budget; returns ({run: RunTrace}, problem).

    Every run is measured (eval mode, whole splits) RECORD_POINTS times and at each condition's
    at_step; the weights are kept at the at_steps of weight_diff conditions. `problem` is "" or
    says which run diverged (the divergence monitor restored its weights; the claim is then void).
    """
    from .comparison import Comparison

    runs = lesson.hparams(seed)
    # Lockstep: the same data, initial weights, minibatch order and dropout masks wherever the
    # settings allow (regsim/runs.py), so the setting a lesson changes is the only difference.
    group = Comparison(runs, device)
    every = max(1, lesson.steps // RECORD_POINTS)
    marks = sorted({*range(every, lesson.steps + 1, every), lesson.steps,
                    *(c.at_step for c in lesson.claim)})
    keep_weights = {c.at_step for c in lesson.claim if c.metric == "weight_diff"}
    analyses = {(c.at_step, c.metric) for c in lesson.claim if c.metric in ANALYSIS_METRICS}
    measured: dict[str, dict[str, list[float]]] = {n: {m: [] for _, m in analyses} for n in runs}
    records: dict[str, list[tuple[int, tuple[float, ...]]]] = {n: [] for n in runs}
    weights: dict[str, dict[int, np.ndarray]] = {n: {} for n in runs}

    def measure(step: int) -> None:
        for name, t in group.trainers.items():
            metrics, flat = measure_trainer(t, step in keep_weights)
            records[name].append((step, metrics))
            if flat is not None:
                weights[name][step] = flat
            for metric, values in measured[name].items():
                fn = ANALYSIS_METRICS[metric][2]
                # A pair-run metric (regsim/shrink_bands.py) also reads the other runs of the group.
                args = (t, group.trainers) if getattr(fn, "pair_runs", False) else (t,)
                values.append(fn(*args) if (step, metric) in analyses else math.nan)

    measure(0)
    done = 0
    problem = ""
    for mark in marks:
        group.step(mark - done)
        done = mark
        diverged = [n for n, t in group.trainers.items() if t.status == "diverged"]
        if diverged:
            problem = f"run {diverged[0]} diverged: {group.trainers[diverged[0]].message}"
            break
        measure(done)
        if progress is not None:
            progress(done, lesson.steps)
    traces = {}
    for name, rows in records.items():
        steps = np.array([s for s, _ in rows], dtype=np.int64)
        cols = np.array([v for _, v in rows], dtype=np.float64).reshape(len(rows), len(SERIES))
        series = {k: cols[:, j] for j, k in enumerate(SERIES)}
        series.update({m: np.array(v, dtype=np.float64) for m, v in measured[name].items()})
        traces[name] = RunTrace(steps, series, weights[name])
    return traces, problem


def run_lesson(lesson: Lesson, seed: int | None = None, device: str = "cpu",
               progress: Callable[[int, int], None] | None = None) -> ClaimResult:
    """Train the lesson's runs (all with `seed`, when given) and judge its claim."""
    traces, problem = train_lesson(lesson, seed, device, progress)
    result = evaluate_claim(lesson, traces)
    if problem:
        return ClaimResult(False, result.due, f"✗ cannot judge: {problem}", result.values,
                           result.parts, problem)
    return result

