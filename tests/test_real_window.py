"""The lecture check (issue 8): the real app in a real X window with a real window manager, driven
with real input from outside — what qtbot cannot see (window-manager close, X window destroyed by
another client, the window growing past the screen, the process and its engine really ending).

Needs Xvfb, openbox, xdotool and wmctrl (Debian packages `xvfb openbox xdotool wmctrl`); skipped
cleanly where any is missing. Also runs as `python main.py bench --gui-check`. Each check starts its
own Xvfb (display chosen by Xvfb itself, -displayfd) and a temporary XDG_CONFIG_HOME, so it never
touches a user's settings or another display. The app reports what it shows and what its engine does
through REGSIM_STATE_FILE (ui/app.py write_state), every 0.5 s.

No speed target is asserted in pytest except the 2 s exit (the issue's own acceptance bound), which
the bench reports too; on a heavily loaded machine set REGSIM_EXIT_BOUND to widen it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("Xvfb", "openbox", "xdotool", "wmctrl")
SCREEN = (1600, 1000)
# A preset that diverges within a few steps (the banner's case): heavy-ball SGD at a huge lr.
DIVERGING = {"description": "diverges at once (real-window check)",
             "hparams": {"dataset": "digits", "train_size": 200, "hidden": [32, 32],
                         "optimizer": "momentum", "lr": 1000.0, "dropout": 0.3}}
EXIT_BOUND = float(os.environ.get("REGSIM_EXIT_BOUND", "2.0"))


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


class Failure(AssertionError):
    pass


class RealWindow:
    """Xvfb + openbox + `python main.py` with a preset; helpers to read its state and drive it."""

    def __init__(self, workdir: Path, preset: dict | None = None) -> None:
        self.dir = workdir
        self.state_path = workdir / "state.json"
        self.export_dir = workdir / "exports"
        self.export_dir.mkdir()
        self.xvfb = self.wm = self.app = None
        self.preset = preset
        self.log = workdir / "app.log"
        self.max_frame = (0, 0)
        # Checks that fail are collected, so one run reports every broken item, not the first.
        self.failures: list[str] = []

    def fail(self, message: str) -> None:
        if message not in self.failures:
            self.failures.append(message)

    # ------------------------------------------------------------------------------- start / stop
    def __enter__(self) -> RealWindow:
        read_fd, write_fd = os.pipe()
        self.xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0",
                                      f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten", "tcp"],
                                     pass_fds=(write_fd,), stderr=subprocess.DEVNULL)
        os.close(write_fd)
        with os.fdopen(read_fd) as f:
            self.display = ":" + f.readline().strip()
        self.env = dict(os.environ, DISPLAY=self.display, XDG_CONFIG_HOME=str(self.dir / "config"),
                        REGSIM_STATE_FILE=str(self.state_path), PYTHONUNBUFFERED="1")
        self.env.pop("QT_QPA_PLATFORM", None)
        self.wm = subprocess.Popen(["openbox"], env=self.env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        # The export dialog remembers its folder in QSettings: point it at our temp folder.
        conf = self.dir / "config" / "regsim"
        conf.mkdir(parents=True)
        (conf / "regsim.conf").write_text(f"[export]\nfolder={self.export_dir}\nformat=png\n")
        args = [sys.executable, "main.py", "--device", "cpu"]
        if self.preset is not None:
            path = self.dir / "preset.json"
            path.write_text(json.dumps(self.preset))
            args += ["--preset", str(path)]
        self.app = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=self.log.open("w"),
                                    stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc) -> None:
        for proc in (self.app, self.wm, self.xvfb):
            if proc is not None and proc.poll() is None:
                for child in _children(proc.pid):
                    child.kill()
                proc.kill()
                proc.wait(5)

    # ------------------------------------------------------------------------------- reading
    def state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}

    def wait(self, what: str, predicate, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.app.poll() is not None:
                raise Failure(f"the app exited ({self.app.returncode}) while waiting for {what}; "
                              f"log: {self.log.read_text()[-800:]}")
            s = self.state()
            if s:
                self.note_frame(s)
                if predicate(s):
                    return s
            time.sleep(0.2)
        raise Failure(f"timed out after {timeout:.0f} s waiting for {what}; last state: {self.state()}")

    def note_frame(self, s: dict) -> None:
        x, y, w, h = s["frame"]
        self.max_frame = (max(self.max_frame[0], w), max(self.max_frame[1], h))
        if w > SCREEN[0] or h > SCREEN[1]:
            self.fail(f"the window grew larger than the screen {SCREEN[0]}×{SCREEN[1]}")

    def window_id(self) -> str:
        out = self.xdo("search", "--onlyvisible", "--name", "^regsim")
        return out.split()[0]

    def x_geometry(self) -> tuple[int, int, int, int]:
        """The client window as X sees it (xdotool), independent of what Qt believes."""
        values = {}
        for line in self.xdo("getwindowgeometry", "--shell", self.window_id()).splitlines():
            key, _, value = line.partition("=")
            values[key] = int(value)
        return values["X"], values["Y"], values["WIDTH"], values["HEIGHT"]

    def check_on_screen(self, when: str) -> None:
        x, y, w, h = self.x_geometry()
        if w > SCREEN[0] or h > SCREEN[1] or x < 0 or y < 0 or x + w > SCREEN[0] or y + h > SCREEN[1]:
            self.fail(f"{when}: the window ({w}×{h} at {x},{y}) exceeds the screen "
                      f"{SCREEN[0]}×{SCREEN[1]}")

    def shot(self, name: str) -> None:
        """A screenshot of the whole screen into $REGSIM_GUI_CHECK_SHOTS (if set; needs
        ImageMagick's `import`), to look at what the check saw."""
        folder = os.environ.get("REGSIM_GUI_CHECK_SHOTS")
        if folder and shutil.which("import"):
            Path(folder).mkdir(parents=True, exist_ok=True)
            subprocess.run(["import", "-window", "root", str(Path(folder) / f"{name}.png")],
                           env=self.env, timeout=20, check=False)

    # ------------------------------------------------------------------------------- driving
    def xdo(self, *args: str) -> str:
        return subprocess.run(["xdotool", *args], env=self.env, capture_output=True, text=True,
                              check=True, timeout=20).stdout

    def key(self, keys: str) -> None:
        self.xdo("windowactivate", "--sync", self.window_id())
        self.xdo("key", "--clearmodifiers", keys)

    def click(self, rect: list[int]) -> None:
        x, y, w, h = rect
        self.xdo("mousemove", "--sync", str(x + w // 2), str(y + h // 2), "click", "1")

    def drag(self, handle: list[int], end: float) -> None:
        """Press on a slider's handle (state "handles": x, y, w, h, slider_x, slider_width) and
        release at `end` (a fraction of the slider's width), moving in steps as a hand does."""
        x, y, w, h, sx, sw = handle
        x0, cy = x + w // 2, y + h // 2
        x1 = int(sx + end * sw)
        self.xdo("mousemove", "--sync", str(x0), str(cy), "mousedown", "1")
        for i in range(1, 9):
            self.xdo("mousemove", "--sync", str(int(x0 + (x1 - x0) * i / 8)), str(cy))
            time.sleep(0.03)
        self.xdo("mouseup", "1")

    def consistent(self, s: dict) -> bool:
        """Run/Pause says what the engine does: "Pause" exactly while the engine is running."""
        return (s.get("button") == "Pause") == (s.get("engine_status") == "running")

    def close_and_time(self) -> float:
        """Close through the window manager; seconds until the process has exited. Raises if a
        child process (engine, resource tracker) outlives it."""
        children = _children(self.app.pid)
        t0 = time.monotonic()
        subprocess.run(["wmctrl", "-c", "regsim"], env=self.env, check=True, timeout=10)
        try:
            self.app.wait(30)
        except subprocess.TimeoutExpired:
            raise Failure("the app did not exit within 30 s of the close request") from None
        elapsed = time.monotonic() - t0
        _, alive = psutil.wait_procs(children, timeout=3)
        if alive:
            raise Failure(f"child processes left after exit: {[p.pid for p in alive]}")
        return elapsed


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


# ----------------------------------------------------------------------------------- the checks


def lecture_check(workdir: Path, report=print) -> dict:
    """Space, a slider drag, divergence and "Lower lr and resume", Ctrl+E, a resize to 1366×768
    and a window-manager close, asserting along the way. Returns the measurements."""
    results: dict = {}
    with RealWindow(workdir, DIVERGING) as rw:
        s = rw.wait("the engine's first snapshot", lambda s: s.get("engine_status") is not None, 120)
        rw.check_on_screen("at start")
        report(f"window up, engine {s['engine_status']}, frame {s['frame']}")
        # Drag the dropout slider (real mouse) before the first step: the engine must get the new p.
        p0 = s["dropout"]
        rw.drag(s["handles"]["dropout"], 0.7)
        s = rw.wait("the dragged dropout to reach the engine", lambda s: s["dropout"] != p0, 20)
        report(f"dropout dragged {p0} → {s['dropout']}")
        # Space with real input starts training; with lr = 1000 it diverges within steps.
        rw.key("space")
        s = rw.wait("divergence and its banner", lambda s: s["banner_visible"]
                    and s["engine_status"] == "diverged", 60)
        if not rw.consistent(s):
            rw.fail(f"after divergence the button says {s['button']!r} but the engine is "
                          f"{s['engine_status']!r}")
        rw.check_on_screen("after divergence")
        rw.shot("1-diverged")
        report(f"diverged at step {s['step']}; banner {s['banner_action']!r}")
        # Recover with the banner's button; the UI must then say what the engine does.
        lr0 = s["lr"]
        button = s["widgets"]["banner_action"]
        if button is None or button[0] + button[2] > SCREEN[0] or button[1] + button[3] > SCREEN[1]:
            rw.fail(f"the banner's button is off screen at {button} (screen {SCREEN[0]}×{SCREEN[1]})")
            # Go on with the rest: slide the window left until the button can be clicked.
            x, y, _, _ = rw.x_geometry()
            rw.xdo("windowmove", "--sync", rw.window_id(), str(x - (button[0] + button[2] + 20 - SCREEN[0])),
                   str(y))
            time.sleep(1.0)
            button = rw.wait("the moved window's state", lambda s: True, 5)["widgets"]["banner_action"]
        # lr = 1000 lowered ×0.1 still diverges at 100 and 10: click until training really
        # resumes (a lecturer would), each time checking that the UI tells the truth.
        for clicks in range(1, 6):  # noqa: B007 (used after the loop)
            rw.click(button)
            s = rw.wait("the lowered lr", lambda s, lr0=lr0: s["lr"] is not None and s["lr"] < lr0, 20)
            end = time.monotonic() + 3
            while time.monotonic() < end:  # a settled state must be consistent, sample for 3 s
                time.sleep(0.6)
                s = rw.state()
                rw.note_frame(s)
            if not rw.consistent(s):
                rw.fail(f"after 'Lower lr and resume' the button says {s['button']!r} but the "
                              f"engine is {s['engine_status']!r} (step {s['step']})")
            if s["engine_status"] == "running":
                break
            s = rw.wait("the banner again", lambda s: s["banner_visible"]
                        and s["engine_status"] == "diverged", 30)
            lr0, button = s["lr"], s["widgets"]["banner_action"]
        if s["engine_status"] != "running":
            rw.fail(f"'Lower lr and resume' clicked {clicks} times, lr {s['lr']}: still not training")
        results["recovery_clicks"] = clicks
        rw.check_on_screen("after 'Lower lr and resume'")
        rw.shot("2-resumed")
        report(f"after recovery ({clicks} clicks): button {s['button']!r}, engine "
               f"{s['engine_status']!r}, lr {s['lr']}")
        # Export the visible panel with Ctrl+E; the dialog's Save is its default button.
        rw.key("ctrl+e")
        time.sleep(1.5)
        subprocess.run(["xdotool", "key", "Return"], env=rw.env, check=True, timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list(rw.export_dir.glob("*.png")):
            time.sleep(0.3)
        exported = list(rw.export_dir.glob("*.png"))
        if not exported:
            raise Failure("Ctrl+E, Return wrote no PNG into the export folder")
        results["export"] = exported[0].name
        report(f"exported {exported[0].name} ({exported[0].stat().st_size} bytes)")
        # A 1366×768 projector.
        rw.xdo("windowsize", "--sync", rw.window_id(), "1366", "768")
        time.sleep(1.0)
        s = rw.wait("a state after the resize", lambda s: True, 5)
        x, y, w, h = rw.x_geometry()
        if w > 1366 or h > 768:
            rw.fail(f"asked for 1366×768, the window is {w}×{h} (a minimum size too large)")
        rw.check_on_screen("after the resize")
        rw.shot("3-resized")
        report(f"resized: X reports {w}×{h}")
        results["largest_frame"] = rw.max_frame
        results["exit_s"] = rw.close_and_time()
        report(f"closed through the window manager: exited after {results['exit_s']:.2f} s")
        if results["exit_s"] > EXIT_BOUND:
            rw.fail(f"exit took {results['exit_s']:.2f} s after the close request "
                    f"(bound {EXIT_BOUND} s)")
        if rw.failures:
            raise Failure("; ".join(rw.failures) + f" (largest frame seen: {rw.max_frame[0]}×"
                          f"{rw.max_frame[1]})")
    return results


def destroyed_window_check(workdir: Path, report=print) -> float:
    """Destroy the app's X window from another client (XDestroyWindow, not a close request): the
    app must quit, its engine with it. Returns the seconds it took."""
    import ctypes
    import ctypes.util

    lib = ctypes.util.find_library("X11")
    if lib is None:
        raise Failure("libX11 not found (needed to destroy a window from outside)")
    with RealWindow(workdir) as rw:
        rw.wait("the engine's first snapshot", lambda s: s.get("engine_status") is not None, 120)
        rw.key("space")
        rw.wait("training", lambda s: s["step"] > 0, 60)
        children = _children(rw.app.pid)
        x11 = ctypes.cdll.LoadLibrary(lib)
        x11.XOpenDisplay.restype = ctypes.c_void_p
        display = ctypes.c_void_p(x11.XOpenDisplay(rw.display.encode()))
        t0 = time.monotonic()
        x11.XDestroyWindow(display, ctypes.c_ulong(int(rw.window_id())))
        x11.XSync(display, 0)
        x11.XCloseDisplay(display)
        try:
            rw.app.wait(20)
        except subprocess.TimeoutExpired:
            raise Failure("the app kept running after its window was destroyed") from None
        elapsed = time.monotonic() - t0
        _, alive = psutil.wait_procs(children, timeout=3)
        if alive:
            raise Failure(f"child processes left after the window was destroyed: {alive}")
        report(f"window destroyed from outside: app and engine gone after {elapsed:.2f} s")
        return elapsed


def run_gui_check() -> int:
    """`python main.py bench --gui-check`: both checks, printed; exit status 1 on a failure."""
    gone = missing_tools()
    if gone:
        print(f"gui-check skipped: missing {', '.join(gone)} (apt install xvfb openbox xdotool wmctrl)")
        return 0
    failures = 0
    for name, check in (("lecture", lecture_check), ("destroyed window", destroyed_window_check)):
        with tempfile.TemporaryDirectory(prefix="regsim-gui-check-") as d:
            t0 = time.monotonic()
            try:
                check(Path(d), report=lambda m: print(f"  {m}", flush=True))
                print(f"{name}: ok ({time.monotonic() - t0:.0f} s)", flush=True)
            except Failure as e:
                failures += 1
                print(f"{name}: FAILED: {e}", flush=True)
    return 1 if failures else 0


needs_x = pytest.mark.skipif(bool(missing_tools()),
                             reason=f"needs {', '.join(TOOLS)} (Debian: xvfb openbox xdotool wmctrl)")


@pytest.mark.slow
@needs_x
def test_lecture_in_a_real_window(tmp_path) -> None:
    lecture_check(tmp_path)


@pytest.mark.slow
@needs_x
def test_app_quits_when_its_window_is_destroyed(tmp_path) -> None:
    destroyed_window_check(tmp_path)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(run_gui_check())
