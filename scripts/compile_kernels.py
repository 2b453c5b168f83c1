"""Compile the numba kernels ahead of the first command (`make` runs this): the commands a user starts with run
once on a tiny synthetic data set in a temporary directory, so their kernels land in numba's cache beside the
sources and the user's first `marketboss backtest` loads them instead of compiling for half a minute. Then the
kernels the everyday commands run (signal generation's and the backtest's, each package's `kernels.py`) are
compiled ahead of time into a module beside each nb.py (marketboss.aot), which a command loads in milliseconds
without numba; without a C compiler that step is skipped (numba's cache serves).

Run: .venv/bin/python scripts/compile_kernels.py
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time

import _project

#: Each command as a user types it (relative paths inside the temporary directory).
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("data", "synth", "--symbols", "3", "--start", "2022-01-01", "--end", "2023-12-31", "--seed", "1",
     "--output", "bars.jsonl"),
    *(("signals", "generate", "--data", "bars.jsonl", "--strategy", s, "--output", f"{s}.jsonl")
      for s in ("ma_crossover", "momentum", "mean_reversion")),
    ("backtest", "--data", "bars.jsonl", "--signals", "ma_crossover.jsonl", "--commission", "0.001",
     "--output-dir", "runs/a"),
    ("backtest", "--data", "bars.jsonl", "--signals", "momentum.jsonl", "--stop-loss-pct", "5",
     "--take-profit-pct", "10", "--output-dir", "runs/b"),
    ("backtest", "--data", "bars.jsonl", "--strategy", "ma_crossover", "--param", "sizing=weight",
     "--param", "weight=0.2", "--param", "rebalance=monthly", "--trail-percent", "5", "--output-dir", "runs/c"),
    ("sweep", "--data", "bars.jsonl", "--strategy", "ma_crossover", "--grid", "fast=5:10:5", "--grid",
     "slow=20:30:10", "--output", "sweep.parquet"),
    ("walkforward", "--data", "bars.jsonl", "--strategy", "mean_reversion", "--grid", "window=10:20:10",
     "--train", "200", "--test", "100"),
    ("backtest", "--data", "bars.jsonl", "--strategy",  # an event strategy's compiled on_bar: the loop's kernel
     f"{_project.ROOT}/examples/time_trailing_stop.py:TimeTrailingStop", "--output-dir", "runs/d"),
)  # fmt: skip


def main() -> int:
    clear_numba_caches()
    from marketboss.cli import app
    from marketboss.cli.common import run_guarded

    os.environ["MARKETBOSS_CACHE_DIR"] = "off"  # nothing of the throw-away data stays in the user's cache
    os.environ["MARKETBOSS_AOT"] = "off"  # numba's cache first: the fallback whenever the module cannot serve
    start = time.perf_counter()
    home = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="marketboss-compile-") as tmp:
        os.chdir(tmp)
        try:
            # the commands' tables and notes are not the point here (a note on their throw-away runs showed in
            # `make demo`): said only when one fails
            for args in COMMANDS:
                said = io.StringIO()
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(said):
                    code = run_guarded(lambda args=args: app(["--log-level", "warning", *args],
                                                             prog_name="marketboss"))  # fmt: skip
                if code:
                    print(f"compile_kernels: `marketboss {' '.join(args)}` failed ({code}): {said.getvalue().strip()}",
                          file=sys.stderr)  # fmt: skip
                    return code
            plain_event_run("bars.jsonl")
        finally:
            os.chdir(home)  # out of the directory about to go: the C compiler needs a working directory
    print(f"compiled kernels in {time.perf_counter() - start:.0f} s (numba's cache, beside the sources)")
    return build_ahead_of_time()


def clear_numba_caches() -> None:
    """Numba keys a function's cache by its own source file alone: one that calls another module's kernel keeps
    the old code when only that module changed (backtest/events.py's `advance` after an edit of nb.py's `step`
    traded by the old rules). `make` runs this whenever a kernel source changes: everything recompiles."""
    for pattern in ("*.nbi", "*.nbc"):
        for path in (_project.ROOT / "src" / "marketboss").rglob(pattern):
            path.unlink(missing_ok=True)


def plain_event_run(bars: str) -> None:
    """An event strategy's plain on_bar (what a user's own strategy starts as) on the bars as a command loads
    them: the kernel calls of the plain loop, which no command above runs (the examples have a compiled on_bar),
    would take a user's first such run 1.4 s longer."""
    from pathlib import Path

    sys.path.insert(0, str(_project.ROOT / "examples"))
    from time_trailing_stop import TimeTrailingStop

    from marketboss.backtest.events import run_events
    from marketboss.cli.common import load_market

    run_events(load_market(Path(bars)), TimeTrailingStop(), compiled=False)
    sys.path.remove(str(_project.ROOT / "examples"))


#: The packages whose kernels are compiled ahead of time (each one's `kernels.py`: its KERNELS).
AHEAD_OF_TIME = (
    "marketboss.data", "marketboss.indicators", "marketboss.signals", "marketboss.strategies", "marketboss.backtest",
)


def build_ahead_of_time() -> int:
    from importlib import import_module

    for package in AHEAD_OF_TIME:
        start = time.perf_counter()
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the C compiler's command lines
                path = import_module(f"{package}.kernels").KERNELS.build()
        except Exception as exc:  # no compiler, no headers: the commands still run through numba
            print(f"compile_kernels: {package}'s kernels were not compiled ahead of time ({exc}); numba's cache "
                  "serves them", file=sys.stderr)  # fmt: skip
            continue
        print(f"compiled {package}'s kernels ahead of time in {time.perf_counter() - start:.0f} s ({path.name})")
    return 0


if __name__ == "__main__":
    _project.ensure_marketboss()
    sys.exit(main())
