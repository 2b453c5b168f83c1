"""A bracket on every entry, one cash account: MarketBoss's backtest against vectorbt's from_signals, same run.

The job: 500 symbols x 2,520 daily bars (seeded synthetic data, marketboss.data.synth, written once to a Parquet
file both sides read), an SMA(10)/SMA(50) crossover, long-only: buy when the fast average crosses above the slow
one, sell when it crosses below (a cross needs the fast average to have been on the other side: nothing is
bought mid-trend at the start); every entry carries a stop-loss 5% below and a take-profit 10% above, the legs
one-cancels-other, the stop taken when one bar reaches both; orders fill at the next bar's open; commission
0.1% of notional, no slippage; one shared 1,000,000 cash account; each entry is worth about 1/500 of the
account (2,000 at the start), whole shares, so that every symbol can hold a position at once.

MarketBoss runs the user's path: `strategies.create("ma_crossover", {..., "sizing": "weight", "weight": 1/500,
"stop_loss_pct": 5, "take_profit_pct": 10})` and `backtest.run_strategy` on a `Market` built once (its build is
timed on its own): signals with their ids and bracket prices, the simulation, the equity/fills/trades/orders
frames and every metric. vectorbt runs its documented path: MA.run for both windows, ma_crossed_above /
ma_crossed_below, signals shifted one bar (its own advice for signals computed on the close) and
`Portfolio.from_signals(close, entries, exits, price=open, open=, high=, low=, sl_stop=0.05, tp_stop=0.10,
size=2000, size_type="value", size_granularity=1, fees=0.001, init_cash=1e6, cash_sharing=True,
group_by=True, direction="longonly")`, then the total return and the trade count.

The two do comparable, not identical, work (so the results are printed side by side, not asserted):
- MarketBoss's exits are absolute prices from the signal bar's close (tick-rounded, as paper trading sends
  them); vectorbt's sl_stop/tp_stop are fractions of its entry price (stop_entry_price="price": the fill bar's
  open, the nearest vectorbt offers to the signal bar's close).
- MarketBoss's legs are live on the entry's own bar (the entry filled at its open); vectorbt tests stops from
  the bar after the entry.
- MarketBoss sizes a target weight of equity (after commission, to the cash left); vectorbt a fixed value per
  entry (size_type="value": a target percent is not available to from_signals).
- On one bar MarketBoss fills exits before entries; vectorbt goes in column order (cash is never short here).
Both test the stop before the take-profit and fill a stop at the worse of open and stop, a take-profit at the
better of open and limit.

Two measures, each side in its own child process (its own peak memory):
(a) in-process: both children load the data and warm up (compilation, numba's disk cache), then the parent
    asks them in turns for a block of timed runs, --blocks times, so both span the same stretch of this shared
    machine's load; each figure is the median of all of a side's runs;
(b) whole process: the wall time of `python bench_bracket.py --child <side> --once` from start to result
    (interpreter start, imports, reading the Parquet file, building the market or pivoting the frames, the
    compilation cache load, one run and its result), --process-runs times, the two sides alternating; medians.

Run: .venv/bin/python benchmarks/bench_bracket.py [--repeat N] [--blocks N] [--process-runs N]

Latest (after the backtest's order step was rewritten, quieter machine, defaults): in-process MarketBoss 0.085 s
against vectorbt 0.298 s (3.5x), whole process 1.88 s against 8.11 s (4.3x), peak 713 MB against 1.9 GB; the
same trade, exit and fill counts as below.

Earlier, on a shared 2-core machine with other jobs running (load average 2-5), three full runs (defaults:
30 warm runs per side in 6 interleaved blocks, 5 whole processes per side): in-process MarketBoss 0.117 /
0.218 / 0.159 s against vectorbt 0.344 / 0.528 / 0.427 s, 2.9x / 2.4x / 2.7x faster (Market built once,
0.56-1.5 s; first run in a process 1.1-2.3 s against vectorbt's 5.8-8.7 s); whole process MarketBoss 3.9 / 3.0 /
3.1 s against vectorbt 13.9 / 9.3 / 11.2 s, 3.6x / 3.2x / 3.6x faster; peak memory 660-675 MB against 1.9 GB. Same
work: 18,515 against 18,546 trades, 6,244 / 6,255 stop-loss and 4,011 / 3,993 take-profit exits; total return
-12.3% against -15.0%, the gap from sizing (vectorbt's fixed 2,000 an entry, 1,841 on average after whole
shares, against 1/500 of MarketBoss's falling equity, 1,720 on average) and the stops' reference and first bar.
Of MarketBoss's ~3 s whole process (one loaded run): imports ~1.0 s (polars 0.3, marketboss 0.7), reading the
Parquet file 0.2 s, Market.from_bars 0.6-1.2 s (half or more of it data.stats.bars_per_year: a group-by of
1.26M (symbol, New York date) pairs), the first run ~1.0 s (numba's compiler machinery and cache loading on the
first compiled call, ~0.4-0.6 s of it inside the signals), against ~0.2 s for a warm run.
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
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).parent))
from common import median_time, peak_rss_mb, report

N_SYMBOLS = 500
N_BARS = 2520
FAST, SLOW = 10, 50
STOP_LOSS_PCT, TAKE_PROFIT_PCT = 5.0, 10.0
COMMISSION = 0.001
CASH = 1_000_000.0
WEIGHT = 1.0 / N_SYMBOLS


def make_data(path: Path) -> None:
    import polars as pl

    from marketboss.data.synth import symbols_from, synth_bars

    bars = synth_bars(symbols_from(str(N_SYMBOLS)), "2010-01-01", "2020-12-31", "1Day", seed=42)
    first = bars["timestamp"].unique().sort().head(N_BARS)
    bars.filter(pl.col("timestamp").is_in(first.implode())).write_parquet(path)


class Side:
    """One side's job: `run()` is the timed work, `summary(result)` what it did (for the sanity comparison)."""

    def run(self) -> Any:
        raise NotImplementedError

    def summary(self, result: Any) -> dict[str, Any]:
        raise NotImplementedError

    def extra(self) -> dict[str, Any]:
        return {}


class Ours(Side):
    def __init__(self, path: Path) -> None:
        import polars as pl

        from marketboss.backtest import BacktestConfig, Costs, run_strategy
        from marketboss.data.market import Market
        from marketboss.strategies import create

        self.bars = pl.read_parquet(path)
        self.market = Market.from_bars(self.bars)
        self.strategy = create("ma_crossover", {
            "fast": FAST, "slow": SLOW, "sizing": "weight", "weight": WEIGHT, "long_only": True,
            "stop_loss_pct": STOP_LOSS_PCT, "take_profit_pct": TAKE_PROFIT_PCT,
        })  # fmt: skip
        self.config = BacktestConfig(cash=CASH, costs=Costs(commission=COMMISSION))
        self._run = run_strategy

    def run(self) -> Any:
        return self._run(self.market, self.strategy, self.config)

    def summary(self, result: Any) -> dict[str, Any]:
        import polars as pl

        res, signals = result
        m = res.metrics
        legs = res.fills["leg"]
        return {
            "total_return_pct": m["total_return_pct"], "trades": m["n_trades"] + m["open_trades"],
            "fills": m["n_fills"], "signals": signals.height, "rejected": m["rejected_orders"],
            "stop_exits": int((legs == "stop_loss").sum()), "take_profit_exits": int((legs == "take_profit").sum()),
            "symbols": self.market.n_symbols, "bars": self.market.n_times,
            "skipped": int((res.orders["status"] == "skipped").sum()),
            "open_at_end": int(res.trades.filter(~pl.col("closed")).height),
        }

    def extra(self) -> dict[str, Any]:
        from marketboss.data.market import Market

        return {"market_build_s": median_time(lambda: Market.from_bars(self.bars), repeat=3)}


class Vectorbt(Side):
    def __init__(self, path: Path) -> None:
        import warnings

        import pandas as pd
        import vectorbt as vbt

        warnings.simplefilter("ignore")
        df = pd.read_parquet(path)
        self.ohlc = {c: df.pivot(index="timestamp", columns="symbol", values=c).sort_index()
                     for c in ("open", "high", "low", "close")}  # fmt: skip
        self.vbt = vbt

    def run(self) -> Any:
        vbt, o = self.vbt, self.ohlc
        fast = vbt.MA.run(o["close"], window=FAST, short_name="fast")
        slow = vbt.MA.run(o["close"], window=SLOW, short_name="slow")
        # decided on bar t's close, traded at bar t+1's open: vectorbt's advice is to shift the signals
        entries = fast.ma_crossed_above(slow).vbt.fshift(1, fill_value=False)
        exits = fast.ma_crossed_below(slow).vbt.fshift(1, fill_value=False)
        pf = vbt.Portfolio.from_signals(
            o["close"], entries, exits, price=o["open"], open=o["open"], high=o["high"], low=o["low"],
            sl_stop=STOP_LOSS_PCT / 100, tp_stop=TAKE_PROFIT_PCT / 100, stop_entry_price="price",
            size=CASH * WEIGHT, size_type="value", size_granularity=1.0, fees=COMMISSION, init_cash=CASH,
            cash_sharing=True, group_by=True, direction="longonly", freq="1D",
        )
        return pf, float(pf.total_return()), int(pf.trades.count()), exits

    def summary(self, result: Any) -> dict[str, Any]:
        import numpy as np

        pf, total_return, trades, exits = result
        t = pf.trades.records
        closed = t[t["status"] == 1]
        # a closed trade whose exit bar has no exit signal was closed by a stop: below its entry the stop-loss,
        # above it the take-profit (vectorbt's records do not name the stop)
        by_stop = closed[~exits.to_numpy()[closed["exit_idx"], closed["col"]]]
        return {
            "total_return_pct": total_return * 100.0, "trades": trades, "fills": int(pf.orders.count()),
            "open_at_end": int(pf.trades.open.count()),
            "stop_exits": int(np.sum(by_stop["exit_price"] < by_stop["entry_price"])),
            "take_profit_exits": int(np.sum(by_stop["exit_price"] > by_stop["entry_price"])),
            "symbols": int(self.ohlc["close"].shape[1]), "bars": int(self.ohlc["close"].shape[0]),
        }


def make_side(name: str, path: Path) -> Side:
    return Ours(path) if name == "ours" else Vectorbt(path)


def child_once(name: str, path: Path) -> None:
    """Whole-process mode: load, run once, print what was done."""
    side = make_side(name, path)
    print(json.dumps(side.summary(side.run())), flush=True)


def child_serve(name: str, path: Path) -> None:
    """In-process mode: load and warm up, say ready, then answer "N" with N run times, "quit" with peak memory
    and the extra timings (taken last, so that they do not count in the peak)."""
    side = make_side(name, path)
    t0 = time.perf_counter()
    result = side.run()  # compilation, or loading numba's disk cache
    first = time.perf_counter() - t0
    print(json.dumps({"first_run_s": first, **side.summary(result)}), flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        times = []
        for _ in range(int(line)):
            t0 = time.perf_counter()
            side.run()
            times.append(time.perf_counter() - t0)
        print(json.dumps(times), flush=True)
    peak = peak_rss_mb()  # the job's own: read before extra() builds more
    print(json.dumps({"peak_rss_mb": peak, **side.extra()}), flush=True)


def _env() -> dict[str, str]:
    return {**os.environ, "MARKETBOSS_LOG_LEVEL": "warning"}


class Child:
    """A serving child: one line of JSON per request."""

    def __init__(self, name: str, data: Path, err: IO[str]) -> None:
        self.name = name
        self.proc = subprocess.Popen([sys.executable, __file__, "--child", name, "--data", str(data)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                                     env=_env())  # fmt: skip
        self.err = err

    def ask(self, line: str | None = None) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if line is not None:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        out = self.proc.stdout.readline()
        if not out:
            self.proc.wait()
            self.err.seek(0)
            raise SystemExit(f"child {self.name} failed:\n{self.err.read()[-3000:]}")
        return json.loads(out)

    def close(self) -> dict[str, Any]:
        out: dict[str, Any] = self.ask("quit")
        self.proc.wait()
        return out


def in_process(data: Path, repeat: int, blocks: int) -> dict[str, dict[str, Any]]:
    """Both children loaded and warmed up, then blocks of timed runs in turns (the order alternating)."""
    with tempfile.TemporaryFile("w+") as e1, tempfile.TemporaryFile("w+") as e2:
        children = [Child("ours", data, e1), Child("vectorbt", data, e2)]
        ready = {c.name: c.ask() for c in children}
        times: dict[str, list[float]] = {c.name: [] for c in children}
        for b in range(blocks):
            for c in children if b % 2 == 0 else children[::-1]:
                times[c.name] += c.ask(str(repeat))
        for c in children:
            ready[c.name].update(c.close(), seconds=statistics.median(times[c.name]), runs=len(times[c.name]))
    return ready


def whole_process(data: Path, runs: int) -> dict[str, dict[str, Any]]:
    """Wall time of a fresh interpreter doing the whole job once, the sides alternating; medians."""
    walls: dict[str, list[float]] = {"ours": [], "vectorbt": []}
    last: dict[str, Any] = {}
    for r in range(runs):
        for name in ("ours", "vectorbt") if r % 2 == 0 else ("vectorbt", "ours"):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "--child", name, "--data", str(data), "--once"],
                                  capture_output=True, text=True, env=_env())  # fmt: skip
            walls[name].append(time.perf_counter() - t0)
            if proc.returncode != 0:
                raise SystemExit(f"child {name} --once failed:\n{proc.stderr[-3000:]}")
            last[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    return {n: {"seconds": statistics.median(w), "min_s": min(w), "max_s": max(w), **last[n]} for n, w in walls.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per side per block (in-process)")
    ap.add_argument("--blocks", type=int, default=6, help="turns of blocks (in-process)")
    ap.add_argument("--process-runs", type=int, default=5, help="whole-process runs per side")
    ap.add_argument("--child", choices=["ours", "vectorbt"], help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        (child_once if args.once else child_serve)(args.child, args.data)
        return

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bars.parquet"
        make_data(data)
        warm = in_process(data, args.repeat, args.blocks)
        whole = whole_process(data, args.process_runs)
    ours, vbt = warm["ours"], warm["vectorbt"]
    assert ours["symbols"] == vbt["symbols"] == N_SYMBOLS and ours["bars"] == vbt["bars"] == N_BARS
    report(
        "bracket_ma_crossover_in_process",
        rules="sma10/50_long_only_stop5%_tp10%_oco_next_open_fees_0.1%_one_cash_account_1/500_per_entry",
        symbols=N_SYMBOLS,
        bars=N_BARS,
        marketboss_s=ours["seconds"],
        marketboss_runs=ours["runs"],
        marketboss_first_run_s=ours["first_run_s"],
        marketboss_market_build_s=ours["market_build_s"],
        marketboss_peak_rss_mb=ours["peak_rss_mb"],
        vectorbt_s=vbt["seconds"],
        vectorbt_runs=vbt["runs"],
        vectorbt_first_run_s=vbt["first_run_s"],
        vectorbt_peak_rss_mb=vbt["peak_rss_mb"],
        speedup=vbt["seconds"] / ours["seconds"],
        marketboss_faster=ours["seconds"] < vbt["seconds"],
        timing="medians_after_warmup_interleaved_blocks",
    )
    report(
        "bracket_ma_crossover_whole_process",
        marketboss_s=whole["ours"]["seconds"],
        marketboss_range_s=f"{whole['ours']['min_s']:.2f}-{whole['ours']['max_s']:.2f}",
        vectorbt_s=whole["vectorbt"]["seconds"],
        vectorbt_range_s=f"{whole['vectorbt']['min_s']:.2f}-{whole['vectorbt']['max_s']:.2f}",
        runs_each=args.process_runs,
        speedup=whole["vectorbt"]["seconds"] / whole["ours"]["seconds"],
        marketboss_faster=whole["ours"]["seconds"] < whole["vectorbt"]["seconds"],
        timing="median_wall_of_fresh_interpreters_alternating",
    )
    report(
        "bracket_ma_crossover_sanity",
        marketboss_total_return_pct=ours["total_return_pct"],
        vectorbt_total_return_pct=vbt["total_return_pct"],
        marketboss_trades=ours["trades"],
        vectorbt_trades=vbt["trades"],
        marketboss_open_at_end=ours["open_at_end"],
        vectorbt_open_at_end=vbt["open_at_end"],
        marketboss_fills=ours["fills"],
        vectorbt_fills=vbt["fills"],
        marketboss_stop_exits=ours["stop_exits"],
        vectorbt_stop_exits=vbt["stop_exits"],
        marketboss_take_profit_exits=ours["take_profit_exits"],
        vectorbt_take_profit_exits=vbt["take_profit_exits"],
        marketboss_signals=ours["signals"],
        marketboss_skipped_orders=ours["skipped"],
        marketboss_rejected=ours["rejected"],
        whole_process_results_same=whole["ours"]["total_return_pct"] == ours["total_return_pct"]
        and whole["vectorbt"]["total_return_pct"] == vbt["total_return_pct"],
    )


if __name__ == "__main__":
    main()
