"""An event strategy's parameter sweep: examples/rsi_bracket_events.py (RSI below `oversold` buys 10 shares with a
5% stop and a 10% target) over 35 combinations, n = 8..20 step 2 by oversold = 20..40 step 5, on 10 symbols x
2,520 daily bars (bench_events.py's seeded data), 0.1% commission: MarketBoss's `marketboss.sweep` (the compiled
on_bar; every combination one account of the ten symbols; its 26 metrics per combination and per symbol) against
backtesting.py's `Backtest.optimize` of the same strategy (bench_events.py's, its two parameters as class
attributes) on each symbol, maximising final equity. Each side as it runs by default: MarketBoss's sweep of a job
this size in its own process, one combination after the other; backtesting.py's optimize in a pool of forked
processes, one per core. Same data in memory, same run, interleaved rounds, medians.

Run: .venv/bin/python benchmarks/bench_event_sweep.py [--repeat N]

Session 25, --repeat 5, two runs each way alternating, load 1.6-1.8 (2 cores): MarketBoss 0.074-0.075 s, 2.1 ms a
combination; backtesting.py 4.9-5.1 s (its pool of 2 processes); 65.5-68.8x. Before a sweep's combination stopped
making the tables it does not read (the signals frame and the result's four frames: backtest.events.event_outcome
gives the metrics and each symbol's part from the run's arrays), 0.127-0.134 s, 3.6-3.8 ms a combination, 37-39x:
the tables took 42% of the sweep. Then each combination made of the parameters validated once (create had resolved
the plug-in again for each): 0.069 s, 2.0 ms a combination, 72.8-73.4x (backtesting.py 5.0 s), two runs at load 1.6.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bars
from backtesting import Backtest, Strategy

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
from rsi_bracket_events import RsiBracketEvents

from bench_events import CASH, COMMISSION, QTY, _daily, _frame
from common import interleaved, report
from marketboss.api import sweep
from marketboss.backtest import BacktestConfig, Costs
from marketboss.data.market import Market
from marketboss.indicators import rsi

N = list(range(8, 22, 2))
OVERSOLD = [20.0, 25.0, 30.0, 35.0, 40.0]


class RsiBracketOpt(Strategy):  # type: ignore[misc]
    """bench_events.py's backtesting.py strategy, its parameters class attributes (optimize sets them); at module
    level: optimize's processes unpickle it."""

    n = 14
    oversold = 30.0

    def init(self) -> None:
        self.rsi = self.I(lambda c: rsi(np.asarray(c, dtype=np.float64), self.n), self.data.Close)

    def next(self) -> None:
        if not self.position and self.rsi[-1] < self.oversold:
            price = self.data.Close[-1]
            self.buy(size=QTY, sl=price * 0.95, tp=price * 1.10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="timed rounds (median)")
    args = ap.parse_args()
    bars = _daily()
    market = Market.from_bars(bars)
    frames = [_frame(bars.filter(pl.col("symbol") == s)) for s in market.symbols]
    config = BacktestConfig(cash=CASH, costs=Costs(commission=COMMISSION))
    grid: dict[str, Any] = {"n": N, "oversold": OVERSOLD}
    combos = len(N) * len(OVERSOLD)

    def ours() -> None:
        out = sweep(RsiBracketEvents, market, grid, {"quantity": QTY}, config=config)
        assert out.summary.height == combos

    def theirs() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for df in frames:
                Backtest(df, RsiBracketOpt, cash=CASH, commission=COMMISSION).optimize(
                    n=N, oversold=OVERSOLD, maximize="Equity Final [$]")

    mb_s, bt_s = interleaved([ours, theirs], repeat=args.repeat, runs=[9, 1])
    report("event_sweep_10x2520_daily_35_combos", combinations=combos, symbols=market.n_symbols,
           bars=market.n_times, marketboss_s=mb_s, marketboss_ms_per_combination=mb_s / combos * 1e3,
           backtesting_py_optimize_s=bt_s, speedup=bt_s / mb_s)  # fmt: skip


if __name__ == "__main__":
    main()
