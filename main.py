"""regsim entry point.

    python main.py                      open the app
    python main.py train --preset NAME [--set key=value ...] [--steps N] [--device D] [--json PATH]
    python main.py presets              list presets
    python main.py lesson [NAME] [--seed N] [--json PATH]   list lessons, or run one and check its claim
    python main.py sweep --preset NAME --lrs A,B --decays A,B --variants adamw,adam-l2 --out DIR
    python main.py bench [--quick] [--json PATH] [--soak MINUTES]
    python main.py bench --gui-check    the real-window lecture check (needs Xvfb, openbox, xdotool)
    python main.py export --preset NAME --out DIR [...]   figures without a display
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and not argv[0].startswith("-") else "app"
    if command == "app":
        argv = argv[1:] if argv and argv[0] == "app" else [""] + argv
        try:
            from ui.app import run_app
        except ImportError as e:  # until the app exists, or without Qt installed
            print(f"regsim: the desktop app is not available ({e}); "
                  "try `python main.py train --preset moons_dropout`", file=sys.stderr)
            return 2
        return run_app(argv[1:])
    if command == "export":
        from ui.app import headless_window
        from ui.export.cli import run_export

        return run_export(argv[1:], headless_window)
    if command == "bench":
        if "--gui-check" in argv:
            return _gui_check()
        from regsim.bench import run_bench

        try:
            from ui.bench_gui import bench_gui, soak
        except ImportError:
            bench_gui = soak = None
        return run_bench(argv[1:], bench_gui, soak)
    from regsim.cli import run_cli

    figure = None
    if command == "sweep":  # sweep.png is the panel itself, rendered offscreen (the core has no Qt)
        try:
            from ui.export.sweep_figure import write_figure as figure
        except ImportError as e:
            print(f"regsim: no sweep.png ({e}); the grid files are written", file=sys.stderr)
    return run_cli(argv, figure)


def _gui_check() -> int:
    """Run tests/test_real_window.py's checks outside pytest (it lives with the tests: it drives the
    app from outside, as they do)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent / "tests" / "test_real_window.py"
    spec = importlib.util.spec_from_file_location("regsim_gui_check", path)
    if spec is None or spec.loader is None or not path.exists():
        print(f"regsim: error: {path} is missing", file=sys.stderr)
        return 2
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run_gui_check()


if __name__ == "__main__":
    sys.exit(main())
