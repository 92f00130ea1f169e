"""The one torch-thread policy (regsim.threads) used by the engine, `train` and the bench (item 21)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from regsim import threads
from regsim.bench import busy_core, cli_train_rate
from regsim.cli import run_cli
from regsim.hparams import HParams

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def restore_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_policy_is_one_thread_per_spare_core(monkeypatch) -> None:
    for cores, spare in ((1, 1), (2, 1), (4, 3), (16, 15)):
        monkeypatch.setattr(threads, "available_cores", lambda c=cores: c)
        assert threads.spare_threads() == spare
        assert threads.engine_threads() == spare
        assert threads.engine_threads(3) == 3
        assert threads.check_threads(0) == spare  # 0 = automatic
        assert threads.check_threads(cores) == cores


@pytest.mark.parametrize("value", [-1, -8, 9, "two"])
def test_check_threads_names_the_flag_and_range(monkeypatch, value) -> None:
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    with pytest.raises(ValueError) as e:
        threads.check_threads(value)
    assert str(e.value).startswith(f"--threads = {value!r}" if isinstance(value, str)
                                   else f"--threads = {value} is out of range")
    assert "allowed: 0 (automatic: 7 here) or [1, 8]" in str(e.value)


def test_the_app_engine_uses_the_core_policy() -> None:
    pytest.importorskip("PySide6")
    from ui import engine_client

    assert engine_client.engine_threads is threads.engine_threads


def test_cli_train_runs_on_the_policys_thread_count(tmp_path, capsys, restore_torch_threads) -> None:
    """In-process, so torch's own count is read after the run (torch's default is one per core)."""
    torch.set_num_threads(threads.available_cores())
    path = tmp_path / "run.json"
    code = run_cli(["train", "--preset", "moons_dropout", "--steps", "20", "--device", "cpu",
                    "--json", str(path)])
    assert code == 0
    assert torch.get_num_threads() == threads.spare_threads()
    data = json.loads(path.read_text())
    assert data["threads"] == threads.spare_threads()
    assert data["status"] == "finished" and data["steps_per_sec"] > 0
    n = threads.spare_threads()
    assert f"{n} CPU thread{'s' if n != 1 else ''} (automatic" in capsys.readouterr().out


def test_cli_threads_flag_is_honoured(tmp_path, capsys, restore_torch_threads) -> None:
    path = tmp_path / "run.json"
    n = threads.available_cores()  # the top of the allowed range
    assert run_cli(["train", "--steps", "5", "--device", "cpu", "--threads", str(n),
                    "--json", str(path)]) == 0
    assert json.loads(path.read_text())["threads"] == n == torch.get_num_threads()
    assert "(as asked)" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["-1", str(threads.available_cores() + 1)])
def test_cli_rejects_bad_threads(value) -> None:
    out = subprocess.run([sys.executable, "main.py", "train", "--steps", "5", "--threads", value],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert f"--threads = {value} is out of range; allowed: 0 (automatic" in out.stderr
    assert "step" not in out.stdout  # rejected before any training


def test_cli_rejects_non_integer_threads() -> None:
    out = subprocess.run([sys.executable, "main.py", "train", "--threads", "x"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--threads" in out.stderr


def test_bench_measures_the_cli_as_run_and_stops_its_busy_loop() -> None:
    """The bench row's parts: a fresh CLI process reports the policy's thread count, and the busy
    loop is gone after the block (numbers are not judged: shared machines are noisy)."""
    with busy_core() as spinner:
        assert spinner.poll() is None  # spinning
        rate, used = cli_train_rate(HParams(dataset="moons", hidden=(16,)), 10, "cpu")
    assert spinner.poll() is not None  # stopped and reaped
    assert rate > 0 and used == threads.spare_threads()


def test_export_cli_takes_the_same_threads_flag(tmp_path) -> None:
    """`python main.py export` trains too: same flag, same policy, same message."""
    pytest.importorskip("PySide6")
    from ui.export.cli import build_parser, validate

    def plan(*extra: str):
        return validate(build_parser().parse_args(["--preset", "moons_dropout", "--out",
                                                   str(tmp_path), "--device", "cpu", *extra]))

    assert plan().threads == threads.spare_threads()
    assert plan("--threads", "1").threads == 1
    with pytest.raises(ValueError, match=r"--threads = -1 is out of range; allowed: 0 \(automatic"):
        plan("--threads", "-1")
