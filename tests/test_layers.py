"""The layering, enforced: import-linter's contracts (pyproject.toml, [tool.importlinter]) hold for the
tree, and a copy of the tree with one planted violation per contract breaks every one of them (so
the check can fail).

The contracts: regsim never imports Qt, pyqtgraph or ui; ui never imports torch itself; panels never
import each other; analyses never import the trainer; neither package has an import cycle (a lazy
import inside a function counts: lazy imports are for start-up time, never to hide a cycle).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = {c["id"]: c["name"] for c in
             tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["importlinter"]["contracts"]}


def lint_imports(root: Path) -> tuple[int, str]:
    """Run `lint-imports` on the tree at `root` (its packages first on sys.path: not the installed
    ones) and return its exit status and its report."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    env = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1"}  # one line per contract in the report
    out = subprocess.run([sys.executable, "-c", code, "--no-cache", "--no-logo"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
    return out.returncode, out.stdout + out.stderr


def verdicts(report: str) -> dict[str, str]:
    """{contract name: "KEPT" or "BROKEN"} from the report's summary lines."""
    found = {}
    for name in CONTRACTS.values():
        m = re.search(rf"^{re.escape(name)} (KEPT|BROKEN)", report, re.MULTILINE)
        if m:
            found[name] = m.group(1)
    return found


def test_the_import_contracts_hold() -> None:
    assert set(CONTRACTS) == {"core-without-qt", "ui-without-torch", "panels-independent",
                              "analyses-without-trainer", "core-acyclic", "ui-acyclic"}
    rc, report = lint_imports(ROOT)
    assert rc == 0, report
    assert verdicts(report) == {name: "KEPT" for name in CONTRACTS.values()}, report


# One violation per contract, planted in a copy of the tree: (file, text appended to it).
PLANTS = {
    "core-without-qt": ("regsim/_planted_qt.py", "import PySide6.QtCore\n"),
    "ui-without-torch": ("ui/_planted_torch.py", "import torch\n"),
    "panels-independent": ("ui/panels/training.py", "\nfrom ui.panels import dropout\n"),
    "analyses-without-trainer": ("regsim/analyses/_planted.py", "from regsim.trainer import Trainer\n"),
    # a cycle hidden in a function, as a lazy import would hide it
    "core-acyclic": ("regsim/_planted_b.py", "def _planted():\n    from regsim import _planted_a\n"),
    "ui-acyclic": ("ui/controls.py", "\n\ndef _planted():\n    from ui.main_window import MainWindow\n"),
}

# The trainer uses the analyses (RunView): an analysis importing the trainer is also a cycle.
ALSO_BROKEN = {"analyses-without-trainer": {"core-acyclic"}}


@pytest.mark.parametrize("contract", sorted(PLANTS))
def test_a_planted_violation_breaks_its_contract(tmp_path: Path, contract: str) -> None:
    for package in ("regsim", "ui"):
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    rc, report = lint_imports(tmp_path)
    assert rc == 0, f"the copy is not clean before planting:\n{report}"
    path, text = PLANTS[contract]
    target = tmp_path / path
    target.parent.mkdir(exist_ok=True)
    if not (target.parent / "__init__.py").exists():  # regsim.analyses before the package lands
        (target.parent / "__init__.py").write_text("")
    with target.open("a", encoding="utf-8") as f:
        f.write(text)
    if contract == "core-acyclic":  # the other half of the cycle: a plain import of _planted_b
        (tmp_path / "regsim" / "_planted_a.py").write_text("from regsim import _planted_b\n")
    rc, report = lint_imports(tmp_path)
    assert rc != 0, report
    found = verdicts(report)
    assert found[CONTRACTS[contract]] == "BROKEN", report
    also = ALSO_BROKEN.get(contract, set())
    assert {n for n, v in found.items() if v == "BROKEN"} == {CONTRACTS[c] for c in {contract} | also}, report
