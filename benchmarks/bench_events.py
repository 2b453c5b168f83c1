"""Event-driven strategies: the same RSI-with-bracket strategy in backtesting.py (init/next, `self.buy(sl=, tp=)`)
and in MarketBoss's event mode, plain Python `on_bar` and the compiled path, same data, same run.

The strategy (examples/rsi_bracket_events.py): when flat and RSI(14) is below 30, buy 10 shares with a stop-loss
5% below and a take-profit 10% above the signal bar's close; orders fill at the next bar's open; commission 0.1%;
1,000,000 cash. backtesting.py gets the same RSI values (marketboss.indicators.rsi through `self.I`).

Two jobs: 10 symbols x 2,520 daily bars (seeded synthetic data; backtesting.py runs one symbol per Backtest, ten
runs; MarketBoss runs the ten in one account, one run) and 1 symbol x 1,000,000 minute bars (a random walk).
A third, without the goals (they are the RSI strategy's): a strategy that trades often, examples/
time_trailing_stop.py (a breakout buy with a 5% trailing stop leg, closed after 10 bars: an order every 1.5
bars) on 10 symbols x 7,020 synthetic minute bars; backtesting.py's version raises each trade's stop-loss to 5%
under each close (it has no trailing order) and closes a trade after 10 bars.
A run is the whole job on data already in memory, after a warm-up: MarketBoss's `run_events` (indicators, the
bar loop, the kernel, the result frames and every metric), backtesting.py's `Backtest.run()` (its `next()`
loop, broker and statistics). Each side runs in a process of its own, as a user runs one engine (in one
process, the memory an engine's run had left made the next side's new arrays fault their pages in again: the
compiled million bars 30-33 ms after backtesting.py's runs, 24-31 ms after the plain path's, 19-21 ms alone).
Each figure is a median over --repeat rounds, each round timing the three sides one after the other
(interleaved: a shared machine's load moves all three alike; plain Python 3 runs a round, compiled 9,
backtesting.py 1), each side timing its own runs. --job runs some of the jobs. backtesting.py runs on --bt-bars of
the million bars (default all); on a slice the ratio is per bar, and the output says so. Trade counts are printed
side by side (the engines differ in rounding of the bracket prices to the tick, and backtesting.py sizes nothing
away for commission, so they are close, not asserted equal).

Run: .venv/bin/python benchmarks/bench_events.py [--repeat N] [--bt-bars N] [--job NAME ...]

Session 31 (a fractional short sale refused at its fill, the trailing level on the price grid, a bracket's bar
opening through the target taking it), defaults and --repeat 9, right after the suite: 1 x 1,000,000 bars
compiled 0.021 s, 228.5x (backtesting.py 4.71 s), plain 0.355 s, 13.3x; daily compiled 3.4 ms, 74.4x
(backtesting.py 0.255 s), plain 0.014 s, 17.9x; time_trailing_stop compiled 0.014 s, 49.2x, plain 0.094 s, 7.4x.
Session 30 (start(ctx) given the market without a bar; an order waiting for its symbol's next bar open to the
end; a flip's exits set), defaults and --repeat 9, load 0.9: 1 x 1,000,000 bars compiled 0.020 s, 206.4x
(backtesting.py 4.06 s), plain 0.315 s, 12.9x; daily compiled 2.9 ms, 76.1x (backtesting.py 0.219 s), plain
0.011 s, 19.0x; time_trailing_stop compiled 0.013 s, 48.4x, plain 0.076 s, 8.0x.
Session 29 (the kernel's collateral check on each fill that grows a position; data synth's prices on the cent
grid), defaults and --repeat 9: 1 x 1,000,000 bars compiled 0.019 s, 210.9x (backtesting.py 4.11 s), plain 0.308 s,
13.3x; daily compiled 2.6 ms, 75.3x (backtesting.py 0.193 s), plain 0.010 s, 19.0x; time_trailing_stop compiled
0.012 s, 48.7x, plain 0.073 s, 7.8x (2,191 trades: the cent-grid bars).
Session 28 (event indicators checked at two cuts of two symbols, strategies.causal, in place of one cut of every
symbol), defaults and --repeat 9, load 0.2: 1 x 1,000,000 bars compiled 0.019 s, 207.1x (backtesting.py 4.03 s),
plain 0.312 s, 12.9x; daily compiled 2.6 ms, 74.9x (backtesting.py 0.197 s), plain 0.011 s, 18.5x;
time_trailing_stop compiled 0.012 s, 49.9x, plain 0.074 s, 8.0x.
Session 27 (the indicators check a series for NaN, a missing bar, by its sum: no measurable cost), defaults and
--repeat 9: 1 x 1,000,000 bars compiled 0.019 s, 251.7x (backtesting.py 4.78 s), plain 0.336 s, 14.2x; daily
compiled 3.3 ms, 69.2x (backtesting.py 0.231 s), plain 0.014 s, 17.0x; time_trailing_stop compiled 0.014 s,
47.9x, plain 0.088 s, 7.4x.
Session 26 (the run unchanged), defaults and --repeat 9, load 0.0-0.7: 1 x 1,000,000 bars compiled 0.018 s,
253.1x (backtesting.py 4.43 s), plain 0.319 s, 13.9x; daily compiled 2.9 ms, 73.2x (backtesting.py 0.216 s), plain
0.012 s, 17.7x; time_trailing_stop compiled 0.013 s, 48.9x, plain 0.086 s, 7.5x.
Session 25 (an order of no fields of its own, ctx.buy(symbol=s) or ctx.close(s), made without checking fields:
the plain path's orders cost a third less), defaults and --repeat 9, load 1.0: 1 x 1,000,000 bars compiled 0.018 s,
225.3x (backtesting.py 4.07 s), plain 0.315 s, 12.9x; daily compiled 2.6 ms, 75.5x (backtesting.py 0.20 s), plain
0.011 s, 18.9x; time_trailing_stop compiled 0.013 s, 47.6x, plain 0.082 s, 7.4x (5.9-6.1x before). The daily
compiled goal stays out of reach of the run as it is: without the indicators' causality check the run still
took 2.65 ms (3.0 with it, in the same process), 1 ms being the goal's whole budget; calling the compiled loop
through its entry point (no numba dispatch: 27 us a call against 7) and the buy-and-hold metric from each
symbol's first and last bar saved ~0.1 ms (3%), under the 20% a speed trick must save, and went.
Session 24 (each side in a process of its own; the kernel rounding order prices to the tick and cutting a
compiled long-only sale), defaults and --repeat 9, two runs at load 0.8-1.0: 1 x 1,000,000 bars compiled
0.020-0.021 s, 206-220x (backtesting.py 4.37-4.40 s), plain 0.33-0.34 s, 12.8-13.4x; daily compiled 2.9 ms,
75-77x (backtesting.py 0.22 s), plain 0.013 s, 16.7-16.8x; time_trailing_stop compiled 0.013-0.014 s, 47.6x, plain
0.103-0.106 s, 5.9-6.1x.
Session 23 (the run unchanged), defaults and --repeat 9, load 0.2: 1 x 1,000,000 bars compiled 0.030 s, 160.4x
(backtesting.py 4.77 s), plain 0.36 s, 13.3x; daily compiled 2.6 ms, 89.8x (backtesting.py 0.24 s), plain 0.012 s,
19.0x; time_trailing_stop compiled 0.014 s, 49.2x, plain 0.105 s, 6.7x. Again after `data synth` became stable in
its end (new synthetic bars for the daily and time_trailing jobs; the million bars are their own random walk), load
0.3: 1 x 1,000,000 bars compiled 0.021 s, 199.3x (backtesting.py 4.12 s), plain 13.1x; daily 77.2x (246 trades),
plain 17.8x; time_trailing_stop 49.1x, plain 7.1x. The million bars alone in a process: 18.8
ms; after backtesting.py's run in it, 30-33 ms, ~3,200 page faults a run (1,490 in the indicators, 1,690 marking
the equity; alone: 1-2), with or without mallopt(M_MMAP_THRESHOLD): not glibc's threshold.
Session 22 (the run unchanged; backtesting.py ran faster on this machine: 4.1-4.2 s on the million bars, against
5.0-5.1), defaults and --repeat 9, load 0.9-1.3: 1 x 1,000,000 bars compiled 0.025-0.027 s, 152-161x, plain 0.32 s,
12.8-13.0x; daily compiled 2.3 ms, 85.5-88.9x (backtesting.py 0.20 s), plain 0.010 s, 19.4-20.1x;
time_trailing_stop compiled 0.012 s, 48.5-48.6x, plain 0.083-0.084 s, 7.1-7.2x. The million bars alone: 18 ms
(17.5 min), as in session 21 (the rest in the benchmark: the first touch of the run's new arrays, below).
Session 21 (the examples' compiled twins on per-symbol memory, time_trailing_stop's reading open_orders; the
kernel ending a symbol's exits as a resting order against the position goes live), defaults, one run at load
1.8: 1 x 1,000,000 bars compiled 0.023 s, 220.7x (backtesting.py 5.07 s), plain 0.400 s, 12.7x; daily compiled
2.3 ms, 99.0x (backtesting.py 0.232 s), plain 0.012 s, 18.5x; time_trailing_stop compiled 0.013 s, 55.8x, plain
0.099 s, 7.2x.
Session 19 (a cancel of a filled order ends its exits, nb.cancel_row; each plain order records the line
that placed it, at a fixed frame depth: walking up the frames made the order-heavy plain run 5% slower), defaults,
two runs at load 0.8-1.3: 1 x 1,000,000 bars compiled 0.023-0.024 s, 209-218x (backtesting.py 5.0-5.1 s), plain
Python 0.395-0.398 s, 12.6-12.8x; daily compiled 2.8 ms, 96.2-98.9x (backtesting.py 0.27-0.28 s), plain 0.013-0.014
s, 20.5-20.6x; time_trailing_stop compiled 0.012-0.013 s, 56.6-58.9x, plain 0.087-0.088 s, 8.0-8.8x.
Session 18 (a compiled on_bar's rows checked for their side and gtc, its target-weight rows sized in the
kernel's take, the warm-up's and outside cancels; indicators take matrices), defaults, two runs at load 1.0-1.1:
1 x 1,000,000 bars compiled 0.023 s, 212-217x (backtesting.py 4.9 s), plain Python 0.39-0.42 s, 11.8-12.5x;
daily compiled 2.5 ms, 96.1-99.6x (backtesting.py 0.24-0.25 s), plain 0.012-0.013 s, 18.6-20.0x;
time_trailing_stop compiled 0.012-0.013 s, 55.5-58.5x, plain 0.082-0.083 s, 8.4-8.6x. The target-weight rows
first sized in the compiled loop itself made it slower by half on the million bars (6 ms to 9: LLVM compiled the
loop worse with that code in it, run though it was at the bars with orders only); in the take callback, 6.2 ms.
Session 17 (after Signal's rules over an event run's orders became one compiled kernel,
signals.nb.rules_pass, in place of a polars expression of ~80 nodes), defaults, two runs at load 1.1-1.4:
1 x 1,000,000 bars compiled 0.021 s, 234-242x (backtesting.py 5.0-5.2 s), plain Python 0.36-0.37 s, 13.7-14.4x;
daily compiled 2.5 ms, 99.0-100.5x (backtesting.py 0.248 s), plain 0.012 s, 20.3-20.4x; time_trailing_stop
compiled 0.011 s, 62-63x, plain 0.075-0.076 s, 9.1x. Session 16 (the rule expression in polars), at load
1.2-1.6: 222x and 13.5-13.6x; daily 3.3 ms, 66.5-67.6x, and 17.5-18.1x; time_trailing_stop 56-57x and 8.9x.
Before, shared 2-core machine, two runs at load 0.6-1.0, alternating with the code before the kernel's
calls were compiled without reference counting (backtest/nb.py NO_REFCOUNTS) and took the run's arrays as one
pointer (backtest/events.py KernelState):
- 1 x 1,000,000 bars: compiled 0.025 s, 198x (backtesting.py 4.9-5.0 s); plain Python 0.36 s, 13.8-13.9x (before:
  the same, 197-202x and 13.6-13.7x).
- daily (10 x 2,520): compiled 3.4-3.9 ms, 67-69x (backtesting.py 0.24-0.26 s); plain Python 0.013-0.014 s,
  18.3-18.8x (before: 4.4-5.2 ms, 49-52x, and 0.016-0.017 s, 14.2-15.1x).
- time_trailing_stop (10 x 7,020 minute bars, 4,704 orders): compiled 0.013 s, 52x; plain Python 0.075-0.076 s,
  8.9-9.2x (backtesting.py 0.68-0.69 s). Before: 0.032 s, 21-22x, and 0.125-0.127 s, 5.5x; before the run
  ahead's budget (MIN_RUN_AHEAD), 1.47 s and 1.67 s: each run ahead of the strategy went on to the end of the data
  and was thrown away at its next order, a bar or two later.
246 trades against backtesting.py's 243, 209 against 208, and 2,262 against 2,259 (the synthetic data since session
23; 187/185 and 2,352/2,349 before). The compiled loop reaches the
kernel through C callbacks (backtest/events.py KernelCalls: a strategy's first compiled run in a process takes
about 0.5 s to compile instead of 2.5-5 s, given the run's state as one pointer, KernelState). Compiling the
bracket scan once per side (the position's side a constant) made the million-bar run 7% faster (0.025-0.026 s,
199-209x): under the 20% a speed trick must save to stay, so it went.

The compiled goal (200x) is not met daily (99-100.5x in session 17; what follows is session 16's analysis, at
64-69x, when the rule check below still took 0.7 ms: it now takes ~0.01 ms, and the daily run 2.3-2.5 ms, of which
the indicators and their causality check 0.5 ms, the loop 0.45 ms, the signals frame 0.33 ms and the result tables
and metrics 0.57 ms; the rest is the arrays' first touch). Session 16: 197-207x on the million bars (at the edge:
it moves with the load), 64-69x daily. Daily, backtesting.py takes 10 us a bar, 0.24 s for the 25,200 bars, so 200x
is 1.2 ms for the whole run; the fixed costs of a run take 3 times that (3.3-3.5 ms alone): the loop 0.45-0.55 ms
(the kernel started 532 times: it pauses at each of the run's 434 changes, and goes back 98 times to replay up to a
bar where orders were placed; counting the references of the ~50 arrays of its state, each start took ~2.5 us,
1.4-1.7 ms in all); the signals frame 1.2-1.3 ms, of which checking every order against Signal's rules 0.7 ms
(polars evaluates the ~80 nodes of the rule expression at 5-9 us each, whatever the number of rows; without query
optimisation it is no faster) and building the 16 columns with ids 0.5 ms; the result tables and metrics 1.1 ms (4
polars frames: ~30 us a frame and ~4 us a column, and the metrics); the indicators and their causality check 0.5
ms. The polars frames alone (2.4 ms) are twice what the goal allows. On the million bars (0.017 s alone): the
indicators 3.3 ms (RSI on 1.5 million bars at 2 ns a bar, the causality check's comparison), the loop 6.8 ms (the
kernel 3.7 ms; calling on_bar with its six history views 1.5 ms), the result 4.7 ms (marking the equity on every
bar 3.6 ms), the signals frame 2.2 ms. In the benchmark the same run takes 0.025-0.026 s: once backtesting.py has
run in the process, every run faults ~3,200 pages of its new arrays in (the indicators 1,365, the result tables
1,818: 3-6 ms more each; alone: none): the process's memory, not the run, differs (session 23 above). """

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
from rsi_bracket_events import RsiBracketEvents, RsiBracketParams
from time_trailing_stop import TimeTrailingParams, TimeTrailingStop

from common import report
from marketboss.backtest import BacktestConfig, Costs
from marketboss.backtest.events import run_events
from marketboss.data.market import Market
from marketboss.data.synth import synth_bars
from marketboss.indicators import rolling_max, rsi
from marketboss.strategies.events import EventStrategy

CASH, COMMISSION, QTY = 1_000_000.0, 0.001, 10
CONFIG = BacktestConfig(cash=CASH, costs=Costs(commission=COMMISSION))


def _minute_bars(n: int, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, n)))
    open_ = np.concatenate([[close[0]], close[:-1]]) * (1.0 + rng.normal(0.0, 0.0002, n))
    wick = np.abs(rng.normal(0.0, 0.0005, (2, n)))
    ts = np.datetime64("2000-01-03T14:30", "us") + np.arange(n) * np.timedelta64(60, "s")
    bars = pl.DataFrame({"timestamp": ts, "symbol": "SYN", "open": open_,
                         "high": np.maximum(open_, close) * (1 + wick[0]),
                         "low": np.minimum(open_, close) * (1 - wick[1]), "close": close, "volume": 1000.0})
    return bars.with_columns(pl.col("timestamp").dt.replace_time_zone("UTC"))


def _frame(bars: pl.DataFrame) -> pd.DataFrame:
    """One symbol's bars as backtesting.py takes them."""
    return pd.DataFrame({"Open": bars["open"].to_numpy(), "High": bars["high"].to_numpy(),
                         "Low": bars["low"].to_numpy(), "Close": bars["close"].to_numpy(),
                         "Volume": bars["volume"].to_numpy()},
                        index=pd.DatetimeIndex(bars["timestamp"].dt.replace_time_zone(None).to_numpy()))  # fmt: skip


def _bt_rsi_bracket() -> type:
    from backtesting import Strategy

    class RsiBracket(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.rsi = self.I(lambda c: rsi(np.asarray(c, dtype=np.float64), 14), self.data.Close)

        def next(self) -> None:
            if not self.position and self.rsi[-1] < 30:
                price = self.data.Close[-1]
                self.buy(size=QTY, sl=price * 0.95, tp=price * 1.10)

    return RsiBracket


def _bt_time_trailing() -> type:
    """examples/time_trailing_stop.py's defaults in backtesting.py: its stop-loss raised to 5% under each close
    (it has no trailing order: backtesting.lib's TrailingStrategy does the same from the ATR)."""
    from backtesting import Strategy

    class TimeTrailing(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.prior = self.I(lambda c: rolling_max(np.asarray(c, dtype=np.float64), 20, exclude_current=True),
                                self.data.Close)  # fmt: skip

        def next(self) -> None:
            price = self.data.Close[-1]
            for trade in self.trades:
                if len(self.data) - 1 - trade.entry_bar >= 10:
                    trade.close()
                else:
                    trade.sl = max(trade.sl or 0.0, price * 0.95)
            if not self.position and price > self.prior[-1]:
                self.buy(size=QTY, sl=price * 0.95)

    return TimeTrailing


def _bt_run(frames: list[pd.DataFrame], strategy: type) -> int:
    """backtesting.py on each frame: the number of trades."""
    from backtesting import Backtest

    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for df in frames:
            stats = Backtest(df, strategy, cash=CASH, commission=COMMISSION).run()
            n += int(stats["# Trades"])
    return n


@dataclass(frozen=True)
class Job:
    name: str
    bars: Callable[[], pl.DataFrame]
    mb_strategy: Callable[[], EventStrategy[Any]]
    bt_strategy: Callable[[], type]
    goals: bool = True  # the RSI strategy's


def _daily() -> pl.DataFrame:
    daily = synth_bars([f"S{i:02d}" for i in range(10)], "2010-01-01", "2020-12-31", "1Day", seed=3)
    return daily.filter(pl.col("timestamp") < daily["timestamp"].unique().sort()[2520])


def _rsi_bracket() -> EventStrategy[Any]:
    return RsiBracketEvents(RsiBracketParams(quantity=QTY))


def _million() -> pl.DataFrame:
    return _minute_bars(1_000_000)


def _often() -> pl.DataFrame:
    return synth_bars([f"S{i:02d}" for i in range(10)], "2024-01-02", "2024-01-26", "1Min", seed=3)


def _time_trailing() -> EventStrategy[Any]:
    return TimeTrailingStop(TimeTrailingParams(quantity=QTY))


JOBS = (
    Job("events_10x2520_daily", _daily, _rsi_bracket, _bt_rsi_bracket),
    Job("events_1x1m_minute", _million, _rsi_bracket, _bt_rsi_bracket),
    Job("time_trailing_10x7020_minute", _often, _time_trailing, _bt_time_trailing, goals=False),
)


def _side(job: Job, side: str, bt_bars: int) -> Callable[[str], int]:
    """One side of the job, its data in memory: a run of it (`kind`: python or compiled for MarketBoss) gives
    the number of trades."""
    bars = job.bars()
    if side == "bt":
        cut = bars.head(bt_bars)
        frames = [_frame(cut.filter(pl.col("symbol") == s)) for s in cut["symbol"].unique().sort()]
        strategy = job.bt_strategy()
        return lambda _: _bt_run(frames, strategy)
    market, mb_strategy = Market.from_bars(bars), job.mb_strategy()
    return lambda kind: run_events(market, mb_strategy, CONFIG, compiled=kind == "compiled")[0].trades.height


def _serve(conn: Connection, job: str, side: str, bt_bars: int) -> None:
    """A worker process: runs its side of the job when asked ((kind, k): k timed runs), sends (times, trades)."""
    run = _side(next(j for j in JOBS if j.name == job), side, bt_bars)
    while (ask := conn.recv()) is not None:
        kind, k = ask
        times, trades = [], 0
        for _ in range(k):
            t0 = time.perf_counter()
            trades = run(kind)
            times.append(time.perf_counter() - t0)
        conn.send((times, trades))


class Worker:
    """One side of a job in a process of its own (spawned: a fresh interpreter)."""

    def __init__(self, job: Job, side: str, bt_bars: int):
        self.conn, child = mp.get_context("spawn").Pipe()
        self.proc = mp.get_context("spawn").Process(target=_serve, args=(child, job.name, side, bt_bars), daemon=True)
        self.proc.start()

    def run(self, kind: str, k: int) -> tuple[list[float], int]:
        self.conn.send((kind, k))
        times, trades = self.conn.recv()
        return times, trades

    def stop(self) -> None:
        self.conn.send(None)
        self.proc.join()


def _job(job: Job, repeat: int, bt_bars: int) -> None:
    """The three sides timed in turn, round after round (interleaved: a shared machine's load falls on all of
    them alike), each in a process of its own timing its own runs (medians), after a warm-up run each."""
    n_bars = job.bars().height
    bt_n = min(bt_bars, n_bars)
    sides = (("python", Worker(job, "mb", bt_bars), 3), ("compiled", Worker(job, "mb", bt_bars), 9),
             ("bt", Worker(job, "bt", bt_bars), 1))
    times: dict[str, list[float]] = {kind: [] for kind, _, _ in sides}
    trades: dict[str, int] = {}
    try:
        for kind, worker, _ in sides:
            worker.run(kind, 1)
        for _ in range(repeat):
            for kind, worker, k in sides:
                ts, trades[kind] = worker.run(kind, k)
                times[kind] += ts
    finally:
        for _, worker, _ in sides:
            worker.stop()
    python_s, compiled_s, bt_s = (statistics.median(times[k]) for k in ("python", "compiled", "bt"))
    per_bar = bt_s / bt_n
    sliced = bt_n < n_bars
    speedups = per_bar * n_bars / python_s, per_bar * n_bars / compiled_s
    goal_met = ({"python_goal_10x": speedups[0] >= 10, "compiled_goal_200x": speedups[1] >= 200} if job.goals
                else {})  # fmt: skip
    report(job.name, bars=n_bars, symbols=job.bars()["symbol"].n_unique(), python_s=python_s, compiled_s=compiled_s,
           backtesting_py_s=bt_s, backtesting_py_bars=bt_n,
           backtesting_py_measured_on=f"{bt_n}_of_{n_bars}_bars_ratio_per_bar" if sliced else "all_bars",
           python_us_per_bar=python_s / n_bars * 1e6, compiled_us_per_bar=compiled_s / n_bars * 1e6,
           backtesting_py_us_per_bar=per_bar * 1e6,
           python_speedup=speedups[0], compiled_speedup=speedups[1], **goal_met,
           trades_python=trades["python"], trades_compiled=trades["compiled"],
           trades_backtesting_py=trades["bt"] if not sliced else f"{trades['bt']}_on_the_slice")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="timed rounds (median; the 1M-bar job: half as many)")
    ap.add_argument("--bt-bars", type=int, default=1_000_000, help="backtesting.py's bars of the 1M-bar job")
    ap.add_argument("--job", choices=[j.name for j in JOBS], action="append", help="only this job (repeatable)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    for job in JOBS:
        if args.job and job.name not in args.job:
            continue
        one_m = job.name == "events_1x1m_minute"
        _job(job, max(1, (args.repeat + 1) // 2) if one_m else args.repeat, args.bt_bars if one_m else 10**12)
    print(f"total {time.perf_counter() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
