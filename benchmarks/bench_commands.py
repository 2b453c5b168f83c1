"""What a user waits for: whole `marketboss` commands, and the in-process calls behind the larger ones, timed
for one or more source trees in interleaved runs (tree A, tree B, A, B, ...; medians per tree).

This is the benchmark by which the backtest and sweep path's speed machinery is judged (a piece stays only
where it saves at least 20% of the wall time of one of these). The cases:

- demo_backtest_cli: `marketboss backtest` of the guide's demo (5 symbols x 5 years of daily bars, the
  ma_crossover signals file), the whole process: imports, reading, the backtest, writing the run.
- portfolio_backtest_cli: the same command on 500 symbols x 2,520 daily bars (ma_crossover signals, one
  account of 1,000,000): the whole process.
- portfolio_backtest_s: `run_backtest` of those bars and signals in-process, data in memory (median of
  --inner runs after a warm-up, in a child process of its own).
- demo_sweep_cli: `marketboss sweep --grid fast=5:50:5 --grid slow=20:200:10` on the demo data, whole process.
- event_backtest_cli: `marketboss backtest --strategy examples/rsi_bracket_events.py:RsiBracketEvents` (the
  tree's own example, its compiled on_bar) on the demo data, whole process: the event loop compiled for the
  strategy's function, loaded from numba's disk cache (backtest/loop_cache.py; before, compiled in every
  process: session 20, two runs of 5 rounds, medians 1.01 s against 1.66 s and 1.31 s against 1.97 s).
- portfolio_event_backtest_cli: `marketboss backtest --strategy examples/time_trailing_stop.py:TimeTrailingStop`
  on the 500 symbols (parquet): ~140,000 orders, most with a trailing stop leg, written to the run's
  signals.jsonl (session 26: 2.20 s while a signals file with order fields was written row by row, 1.81 s).
- demo_walkforward_cli: `marketboss walkforward --grid fast=5:20:5 --grid slow=30:60:10` on the demo data,
  whole process (session 26: 1.71 s while the deflated Sharpe ratio imported scipy.stats, 1.22 s).
- sweep_s / sweep_1_thread_s: `research.sweep` of bench_sweep.py's grid (174 combinations x 100 symbols x
  2,520 daily bars) in-process, as the local backend runs it (numba threads, one per core), and on one thread.
- backtest_1m_bars_s: bench_backtest.py's 1,000,000-bar one-symbol `run_strategy` in-process (for reference:
  not a command a user runs).

Every tree runs the same data files, made once. The first round warms the trees up (numba's caches) and is
not counted; the trees take turns in alternating order. The machine is shared and noisy: take the medians
over several rounds (a threaded sweep, for one, runs at one thread's speed whenever another process holds a
core).

Run: .venv/bin/python benchmarks/bench_commands.py [--tree NAME=SRC_DIR ...] [--rounds N] [--only CASE,...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import median_time, report

HERE_SRC = Path(__file__).resolve().parents[1] / "src"
CLI_CASES = ("demo_backtest_cli", "portfolio_backtest_cli", "demo_sweep_cli", "event_backtest_cli",
             "portfolio_event_backtest_cli", "demo_walkforward_cli")
CHILD_CASES = ("portfolio_backtest_s", "sweep_s", "sweep_1_thread_s", "backtest_1m_bars_s")
CASES = (*CLI_CASES, *CHILD_CASES)
PORTFOLIO_CASH = "1000000"


def _env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src), "MARKETBOSS_LOG_LEVEL": "warning", "NO_COLOR": "1"}


def _cli(src: Path, *args: str, cwd: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "marketboss", *args], env=_env(src), cwd=cwd, capture_output=True,
                          text=True)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"marketboss {args[0]} failed ({src}):\n{proc.stderr[-3000:]}")


def make_data(tmp: Path, src: Path) -> None:
    """The demo (the guide's commands) and the 500-symbol portfolio (and the sweep's 100 symbols)."""
    _cli(src, "data", "synth", "--symbols", "5", "--start", "2020-01-01", "--end", "2024-12-31", "--seed", "7",
         "--output", str(tmp / "demo.jsonl"), cwd=tmp)  # fmt: skip
    _cli(src, "signals", "generate", "--data", str(tmp / "demo.jsonl"), "--strategy", "ma_crossover",
         "--output", str(tmp / "demo_signals.jsonl"), cwd=tmp)  # fmt: skip
    code = f"""
import polars as pl
from marketboss.data.io import write_bars
from marketboss.data.synth import symbols_from, synth_bars
for n, name in ((500, "portfolio"), (100, "sweep")):
    bars = synth_bars(symbols_from(str(n)), "2010-01-01", "2020-12-31", "1Day", seed=42)
    first = bars["timestamp"].unique().sort().head(2520)
    bars = bars.filter(pl.col("timestamp").is_in(first.implode()))
    bars.write_parquet("{tmp}/" + name + ".parquet")
    if name == "portfolio":
        write_bars(bars, "{tmp}/portfolio.jsonl")
"""
    subprocess.run([sys.executable, "-c", code], env=_env(src), check=True)
    _cli(src, "signals", "generate", "--data", str(tmp / "portfolio.jsonl"), "--strategy", "ma_crossover",
         "--output", str(tmp / "portfolio_signals.jsonl"), cwd=tmp)  # fmt: skip


def cli_case(case: str, src: Path, tmp: Path, out: Path) -> float:
    """Wall time of one whole command."""
    costs = ["--commission", "0.001", "--slippage-bps", "2"]
    if case == "demo_backtest_cli":
        args = ["backtest", "--data", str(tmp / "demo.jsonl"), "--signals", str(tmp / "demo_signals.jsonl"),
                "--cash", "100000", *costs, "--output-dir", str(out / "run")]  # fmt: skip
    elif case == "portfolio_backtest_cli":
        args = ["backtest", "--data", str(tmp / "portfolio.jsonl"), "--signals", str(tmp / "portfolio_signals.jsonl"),
                "--cash", PORTFOLIO_CASH, *costs, "--output-dir", str(out / "run")]  # fmt: skip
    elif case == "demo_sweep_cli":
        args = ["sweep", "--data", str(tmp / "demo.jsonl"), "--grid", "fast=5:50:5", "--grid", "slow=20:200:10",
                "--output", str(out / "rows.parquet")]  # fmt: skip
    elif case == "demo_walkforward_cli":
        args = ["walkforward", "--data", str(tmp / "demo.jsonl"), "--grid", "fast=5:20:5", "--grid", "slow=30:60:10",
                "--output", str(out / "folds.parquet")]  # fmt: skip
    elif case == "portfolio_event_backtest_cli":
        example = src.parent / "examples" / "time_trailing_stop.py"
        args = ["backtest", "--data", str(tmp / "portfolio.parquet"), "--strategy", f"{example}:TimeTrailingStop",
                "--output-dir", str(out / "run")]  # fmt: skip
    else:
        example = src.parent / "examples" / "rsi_bracket_events.py"
        args = ["backtest", "--data", str(tmp / "demo.jsonl"), "--strategy", f"{example}:RsiBracketEvents",
                "--output-dir", str(out / "run")]  # fmt: skip
    t0 = time.perf_counter()
    _cli(src, *args, cwd=out)
    return time.perf_counter() - t0


def child(case: str, tmp: Path, inner: int) -> float:
    """Median in-process time of a case (runs in a child process with the tree's src on its path)."""
    import polars as pl

    from marketboss.backtest import BacktestConfig, Costs, FillMode, run_backtest, run_strategy
    from marketboss.data.market import Market
    from marketboss.research import LocalBackend, combinations, sweep
    from marketboss.strategies import create

    fn: Callable[[], Any]
    if case == "portfolio_backtest_s":
        from marketboss.signals import read_signals_frame

        market = Market.from_bars(pl.read_parquet(tmp / "portfolio.parquet"))
        signals = read_signals_frame(tmp / "portfolio_signals.jsonl")
        config = BacktestConfig(cash=float(PORTFOLIO_CASH), costs=Costs(commission=0.001, slippage_bps=2))

        def fn() -> Any:
            return run_backtest(market, signals, config)
    elif case in ("sweep_s", "sweep_1_thread_s"):
        market = Market.from_bars(pl.read_parquet(tmp / "sweep.parquet"))
        combos = combinations("ma_crossover", ["fast=5:50:5", "slow=20:200:10"], {"quantity": 10})
        sweep_config = BacktestConfig(cash=100_000.0, costs=Costs(commission=0.001), fill=FillMode.CLOSE)
        backend = LocalBackend(workers=1) if case == "sweep_1_thread_s" else LocalBackend()

        def fn() -> Any:
            return sweep(market, combos, sweep_config, backend=backend)
    else:
        from bench_backtest import CASH, COMMISSION, N_BARS, random_walk

        one = Market.from_bars(random_walk(N_BARS))
        strategy = create("ma_crossover", ["fast=10", "slow=30", "quantity=10"])
        one_config = BacktestConfig(cash=CASH, costs=Costs(commission=COMMISSION))

        def fn() -> Any:
            return run_strategy(one, strategy, one_config)
    return median_time(fn, repeat=inner, warmup=1)


def child_case(case: str, src: Path, tmp: Path, inner: int) -> float:
    proc = subprocess.run([sys.executable, __file__, "--child", case, "--data", str(tmp), "--inner", str(inner)],
                          env=_env(src), capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{case} failed ({src}):\n{proc.stderr[-3000:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", action="append", default=[], help="NAME=SRC_DIR, repeatable (default: this tree)")
    ap.add_argument("--rounds", type=int, default=7, help="counted rounds (each tree once per case per round)")
    ap.add_argument("--inner", type=int, default=5, help="in-process runs per child (median)")
    ap.add_argument("--only", default=",".join(CASES), help="comma-separated cases")
    ap.add_argument("--child", choices=CHILD_CASES, help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.data, args.inner)))
        return
    trees = dict(t.split("=", 1) for t in args.tree) if args.tree else {"this": str(HERE_SRC)}
    srcs = {name: Path(src).resolve() for name, src in trees.items()}
    cases = [c for c in args.only.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        raise SystemExit(f"unknown cases: {sorted(unknown)}")
    times: dict[tuple[str, str], list[float]] = {(c, t): [] for c in cases for t in srcs}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        make_data(tmp, next(iter(srcs.values())))
        for r in range(args.rounds + 1):  # round 0 warms up
            order = list(srcs.items()) if r % 2 else list(srcs.items())[::-1]  # no tree always goes first
            for case in cases:
                for name, src in order:
                    out = tmp / f"out-{name}"
                    out.mkdir(exist_ok=True)
                    s = cli_case(case, src, tmp, out) if case in CLI_CASES else child_case(case, src, tmp, args.inner)
                    if r:
                        times[case, name].append(s)
            print(f"# round {r} done", file=sys.stderr, flush=True)
    for case in cases:
        first = statistics.median(times[case, next(iter(srcs))])
        for name in srcs:
            ts = times[case, name]
            med = statistics.median(ts)
            report(case, tree=name, median_s=med, min_s=min(ts), max_s=max(ts), runs=len(ts),
                   vs_first_pct=(med / first - 1.0) * 100.0)  # fmt: skip


if __name__ == "__main__":
    main()
