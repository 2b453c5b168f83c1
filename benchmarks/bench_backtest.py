"""One backtest of 1,000,000 bars: MarketBoss's compiled engine against backtesting.py, same data and strategy.

The strategy is the guide's default, an SMA(10)/SMA(30) crossover trading 10 shares long-only, commission 0.1%,
filled at the next bar's open, on a one-symbol random walk of minute bars. Both engines run in-process on data
already in memory, after a warm-up (numba compilation is cached on disk anyway), and each figure is the median
of several runs, taken in turns (a block of --repeat MarketBoss runs, then a backtesting.py run, --bt-repeat
times) so that both span the same stretch of a shared machine's load. A MarketBoss "backtest" is the whole
job: strategy signals (with their ids), the portfolio simulation, equity/fills/trades/orders frames and every
metric; backtesting.py's is `Backtest.run()` (its `next()` loop, broker and statistics). Both run on one
thread. backtesting.py needs ~10 s per million bars;
by default it runs on the same million bars, --bt-bars N times it on a slice instead, compared by bars per
second (a slice flatters the ratio: backtesting.py has a fixed cost per run). Both engines' trades and final
equity are checked to agree on the bars backtesting.py ran.

Also timed: a 1,000,000-bar multi-symbol MarketBoss run (100 symbols x 10,000 bars, one cash account, target
weights), and building the dense market arrays from the polars bars (done once per data set).

Run: .venv/bin/python benchmarks/bench_backtest.py [--bt-bars N] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar
sys.path.insert(0, str(Path(__file__).parent))
from common import median_time, report
from marketboss.backtest import BacktestConfig, Costs, run_strategy
from marketboss.data.market import Market
from marketboss.strategies import create

N_BARS = 1_000_000
CASH = 1_000_000.0
COMMISSION = 0.001


def random_walk(n: int, n_symbols: int = 1, seed: int = 1) -> pl.DataFrame:
    """Minute bars (a continuous clock: the engines only see a sequence), symbols interleaved per time."""
    rng = np.random.default_rng(seed)
    per = n // n_symbols
    frames = []
    t0 = np.datetime64("2000-01-03T14:30:00", "us")
    times = t0 + np.arange(per) * np.timedelta64(1, "m")
    for s in range(n_symbols):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, per)))
        open_ = close * np.exp(rng.normal(0, 0.0005, per))
        frames.append(pl.DataFrame({
            "timestamp": pl.Series(times).dt.replace_time_zone("UTC"), "symbol": f"S{s:03d}", "open": open_,
            "high": np.maximum(open_, close) * 1.0005, "low": np.minimum(open_, close) * 0.9995, "close": close,
            "volume": np.full(per, 1_000, dtype=np.int64),
        }))
    return pl.concat(frames).sort("timestamp", "symbol")


def to_pandas(bars: pl.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {"Open": bars["open"].to_numpy(), "High": bars["high"].to_numpy(), "Low": bars["low"].to_numpy(),
         "Close": bars["close"].to_numpy(), "Volume": bars["volume"].to_numpy()},
        index=pd.DatetimeIndex(bars["timestamp"].dt.replace_time_zone(None).to_numpy()),
    )


def backtesting_py(df: pd.DataFrame) -> Any:
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover

    def sma(x: Any, n: int) -> np.ndarray:
        return pd.Series(x).rolling(n).mean().to_numpy()

    class SmaCross(Strategy):
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, 10)
            self.slow = self.I(sma, self.data.Close, 30)

        def next(self) -> None:
            if crossover(self.fast, self.slow):
                self.buy(size=10)
            elif crossover(self.slow, self.fast):
                self.position.close()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Backtest(df, SmaCross, cash=CASH, commission=COMMISSION).run()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bt-bars", type=int, default=N_BARS, help="bars for backtesting.py (default: all 1,000,000)")
    ap.add_argument("--repeat", type=int, default=21, help="timed MarketBoss runs per turn (median of all)")
    ap.add_argument("--bt-repeat", type=int, default=3, help="timed backtesting.py runs (median)")
    args = ap.parse_args()

    bars = random_walk(N_BARS)
    strategy = create("ma_crossover", ["fast=10", "slow=30", "quantity=10"])
    config = BacktestConfig(cash=CASH, costs=Costs(commission=COMMISSION))
    build_s = median_time(lambda: Market.from_bars(bars), repeat=3)
    market = Market.from_bars(bars)
    result, signals = run_strategy(market, strategy, config)  # warm-up (compilation is cached on disk anyway)

    # Same slice for both engines: results must agree before speed means anything. The engines take turns
    # (a block of MarketBoss runs, then one backtesting.py run, bt-repeat times): both medians then span the
    # same stretch of this shared machine's ups and downs.
    n_bt = min(args.bt_bars, N_BARS)
    sub = bars.head(n_bt)
    bt_df = to_pandas(sub)
    ours_times: list[float] = []
    bt_times = []
    for _ in range(args.bt_repeat):
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            run_strategy(market, strategy, config)
            ours_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        stats = backtesting_py(bt_df)
        bt_times.append(time.perf_counter() - t0)
    ours_s = statistics.median(ours_times)
    bt_s = statistics.median(bt_times)
    sub_result, _ = run_strategy(Market.from_bars(sub), strategy, config)
    closed = sub_result.trades.filter(pl.col("closed"))
    agree = (
        closed.height == len(stats["_trades"])
        and np.allclose(closed["pnl"].to_numpy(), stats["_trades"]["PnL"].to_numpy(), rtol=1e-9)
        and abs(sub_result.metrics["final_equity"] - stats["Equity Final [$]"]) < 1e-6 * CASH
    )

    ours_rate = N_BARS / ours_s
    bt_rate = n_bt / bt_s
    report(
        "backtest_1m_bars",
        strategy="sma10/30_crossover_qty10_commission0.1%_next_open",
        bars=N_BARS,
        signals=signals.height,
        trades=result.metrics["n_trades"],
        marketboss_ms=ours_s * 1e3,
        marketboss_bars_per_s=ours_rate,
        backtesting_py_bars=n_bt,
        backtesting_py_s=bt_s,
        backtesting_py_bars_per_s=bt_rate,
        backtesting_py_s_for_1m_bars=(N_BARS / bt_rate),
        measured_on_full_1m=n_bt == N_BARS,
        speedup=ours_rate / bt_rate,
        target_1000x_met=ours_rate / bt_rate >= 1000,
        results_agree=agree,
        market_arrays_build_ms=build_s * 1e3,
    )

    multi = random_walk(N_BARS, n_symbols=100, seed=2)
    multi_market = Market.from_bars(multi)
    weights = create("ma_crossover", ["fast=10", "slow=30", "sizing=weight", "weight=0.01"])
    multi_s = median_time(lambda: run_strategy(multi_market, weights, config), repeat=args.repeat)
    multi_result, multi_signals = run_strategy(multi_market, weights, config)
    report(
        "backtest_1m_bars_100_symbols",
        bars=multi.height,
        symbols=multi_market.n_symbols,
        signals=multi_signals.height,
        fills=multi_result.metrics["n_fills"],
        rejected=multi_result.metrics["rejected_orders"],
        marketboss_ms=multi_s * 1e3,
        marketboss_bars_per_s=multi.height / multi_s,
    )


if __name__ == "__main__":
    main()
