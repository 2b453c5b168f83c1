"""Whole processes, as a user waits for them: each MarketBoss command beside the peer's whole script for the same
job, timed from interpreter start to exit, with each process's own peak memory, in interleaved runs (ours, the
peer's, ours, ...; medians). Issue 19's figures:

- help: `marketboss --help` (target: under 0.3 s; no peer).
- demo: `marketboss backtest` of the guide's demo (5 symbols x 5 years of daily bars, ma_crossover signals,
  commission 0.1%) against backtesting.py's whole script for one symbol of the same file (read the JSON Lines
  with pandas, SmaCross 10/30 buying 10 shares, commission 0.1%, print the stats). Target: at least 2x faster.
- portfolio: `marketboss backtest` of 500 symbols x 2,520 daily bars (JSON Lines, 51,072 ma_crossover signals of
  10 shares, cash 10,000,000 so that neither side is ever short of cash, commission 0.1%, slippage 2 bps) against
  a vectorbt script doing the same job (read the same two files, pivot, each signal one order of 10 shares at the
  next bar's open with the same slippage and fees, one cash account: `Portfolio.from_orders(cash_sharing=True)`),
  the final equities compared to the cent. Target: at least 10x faster.
- signals: `marketboss signals generate` of the demo's data (ma_crossover): the built-ins' kernels compiled ahead
  of time, no numba imported (no peer: the demo's peer script makes its own signals inside its backtest).
- minute: `marketboss backtest` of 100 symbols x 1 year of 1-minute bars (9.7M bars, Parquet) and its 375,808
  ma_crossover signals. Target: under 5 s and 1.2 GB peak. No peer script is run (vectorbt's pivot alone of this
  set needs several GB).

MarketBoss's figures are given cold (the first command on a file: parsing and validating it, keeping its
validated copies) and warm (the next commands on the same file: the copies, data/cache.py), the warm ones
against the targets. Each process runs under a small parent that reports its wall time and peak RSS
(getrusage of its one child), so the peers' and ours are measured alike.

Run: .venv/bin/python benchmarks/bench_whole.py [--runs N] [--only help,demo,signals,portfolio,minute]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import report

CASES = ("help", "demo", "signals", "portfolio", "minute")
#: Runs a command, then prints its wall time and its peak RSS (this parent's only child).
MEASURE = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
wall = time.perf_counter() - t0
if p.returncode:
    sys.exit(f"{sys.argv[1:]} failed: {p.stderr[-2000:]}")
print(json.dumps({"s": wall, "mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""

BACKTESTING_PY = """
import sys
import pandas as pd
from backtesting import Backtest, Strategy
from backtesting.lib import crossover

df = pd.read_json(sys.argv[1], lines=True)
df = df[df["symbol"] == df["symbol"].iloc[0]]
df = df.set_index(pd.to_datetime(df["timestamp"])).rename(columns=str.capitalize)
df = df[["Open", "High", "Low", "Close", "Volume"]]


def sma(x, n):
    return pd.Series(x).rolling(n).mean().to_numpy()


class SmaCross(Strategy):
    def init(self):
        self.fast = self.I(sma, self.data.Close, 10)
        self.slow = self.I(sma, self.data.Close, 30)

    def next(self):
        if crossover(self.fast, self.slow):
            self.buy(size=10)
        elif crossover(self.slow, self.fast):
            self.position.close()


print(Backtest(df, SmaCross, cash=100_000, commission=0.001).run())
"""

VECTORBT = """
import sys
import numpy as np
import pandas as pd
import vectorbt as vbt

bars = pd.read_json(sys.argv[1], lines=True, dtype={"symbol": str, "timestamp": str})
bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True)
signals = pd.read_json(sys.argv[2], lines=True, dtype={"symbol": str, "timestamp": str})
open_ = bars.pivot(index="timestamp", columns="symbol", values="open")
close = bars.pivot(index="timestamp", columns="symbol", values="close")
signals["timestamp"] = pd.to_datetime(signals["timestamp"], utc=True)
rows = open_.index.get_indexer(signals["timestamp"]) + 1  # each signal fills at the next bar's open
cols = open_.columns.get_indexer(signals["symbol"])
qty = np.where(signals["action"] == "BUY", signals["quantity"], -signals["quantity"])
ok = rows < len(open_.index)
size = np.zeros(open_.shape)
np.add.at(size, (rows[ok], cols[ok]), qty[ok])
size[size == 0] = np.nan
size = pd.DataFrame(size, index=open_.index, columns=open_.columns)
pf = vbt.Portfolio.from_orders(close, size=size, price=open_, fees=0.001, slippage=0.0002, init_cash=10_000_000,
                               cash_sharing=True, group_by=True, freq="1D")
print(f"final_equity {float(pf.value().iloc[-1]):.2f}")
"""


def measure(*cmd: str, env: dict[str, str], cwd: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], env=env, cwd=cwd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_data(tmp: Path, env: dict[str, str], cases: list[str]) -> None:
    mb = [sys.executable, "-m", "marketboss"]

    def run(*args: str) -> None:
        subprocess.run([*mb, *args], env=env, cwd=tmp, check=True, capture_output=True)

    if "demo" in cases or "signals" in cases:
        run("data", "synth", "--symbols", "5", "--start", "2020-01-01", "--end", "2024-12-31", "--seed", "7",
            "--output", "demo.jsonl")  # fmt: skip
        run("signals", "generate", "--data", "demo.jsonl", "--strategy", "ma_crossover", "--output", "demo_sig.jsonl")
    code = """
import polars as pl, sys
from marketboss.data.io import write_bars
from marketboss.data.synth import symbols_from, synth_bars
if "portfolio" in sys.argv:
    bars = synth_bars(symbols_from("500"), "2010-01-01", "2020-12-31", "1Day", seed=42)
    first = bars["timestamp"].unique().sort().head(2520)
    write_bars(bars.filter(pl.col("timestamp").is_in(first.implode())), "portfolio.jsonl")
if "minute" in sys.argv:
    write_bars(synth_bars(symbols_from("100"), "2023-01-01", "2023-12-31", "1Min", seed=3), "minute.parquet")
"""
    subprocess.run([sys.executable, "-c", code, *cases], env=env, cwd=tmp, check=True)
    if "portfolio" in cases:
        run("signals", "generate", "--data", "portfolio.jsonl", "--strategy", "ma_crossover", "--output",
            "portfolio_sig.jsonl")  # fmt: skip
    if "minute" in cases:
        run("signals", "generate", "--data", "minute.parquet", "--strategy", "ma_crossover", "--output",
            "minute_sig.jsonl")  # fmt: skip


def ours(case: str, out: str) -> list[str]:
    mb = [sys.executable, "-m", "marketboss"]
    if case == "help":
        return [*mb, "--help"]
    if case == "signals":
        return [*mb, "signals", "generate", "--data", "demo.jsonl", "--strategy", "ma_crossover", "--output",
                f"{out}.jsonl"]  # fmt: skip
    data = {"demo": "demo.jsonl", "portfolio": "portfolio.jsonl", "minute": "minute.parquet"}[case]
    sig = {"demo": "demo_sig.jsonl", "portfolio": "portfolio_sig.jsonl", "minute": "minute_sig.jsonl"}[case]
    cash = "100000" if case == "demo" else "10000000"
    costs = ["--commission", "0.001"] + (["--slippage-bps", "2"] if case == "portfolio" else [])
    return [*mb, "backtest", "--data", data, "--signals", sig, "--cash", cash, *costs, "--output-dir", out]


def peer(case: str, tmp: Path) -> list[str] | None:
    if case == "demo":
        return [sys.executable, str(tmp / "peer_backtesting.py"), "demo.jsonl"]
    if case == "portfolio":
        return [sys.executable, str(tmp / "peer_vectorbt.py"), "portfolio.jsonl", "portfolio_sig.jsonl"]
    return None


def same_result(tmp: Path, env: dict[str, str]) -> tuple[float, float]:
    """The portfolio's final equity by MarketBoss's run and by the vectorbt script."""
    ours_equity = json.loads((tmp / "runs" / "portfolio" / "metrics.json").read_text())["final_equity"]
    text = subprocess.run([sys.executable, str(tmp / "peer_vectorbt.py"), "portfolio.jsonl", "portfolio_sig.jsonl"],
                          env=env, cwd=tmp, capture_output=True, text=True, check=True).stdout  # fmt: skip
    return float(ours_equity), float(text.split("final_equity")[-1].split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="warm runs per side (medians)")
    ap.add_argument("--only", default=",".join(CASES), help="comma-separated cases")
    args = ap.parse_args()
    cases = [c for c in args.only.split(",") if c]
    with tempfile.TemporaryDirectory(prefix="bench-whole-") as t:
        tmp = Path(t)
        src = Path(__file__).resolve().parents[1] / "src"
        env = {**os.environ, "PYTHONPATH": str(src), "MARKETBOSS_LOG_LEVEL": "warning", "NO_COLOR": "1",
               "MARKETBOSS_CACHE_DIR": str(tmp / "cache"), "MARKETBOSS_MAX_INPUT_BYTES": str(8 << 30)}  # fmt: skip
        (tmp / "peer_backtesting.py").write_text(BACKTESTING_PY)
        (tmp / "peer_vectorbt.py").write_text(VECTORBT)
        make_data(tmp, env, cases)
        for case in cases:
            cold = measure(*ours(case, f"runs/{case}"), env=env, cwd=tmp)
            p = peer(case, tmp)
            if p is not None:
                measure(*p, env=env, cwd=tmp)  # warm-up: the file system cache, the peers' own caches
            mine: list[dict[str, float]] = []
            theirs: list[dict[str, float]] = []
            for _ in range(args.runs):
                mine.append(measure(*ours(case, f"runs/{case}"), env=env, cwd=tmp))
                if p is not None:
                    theirs.append(measure(*p, env=env, cwd=tmp))
            s = statistics.median(m["s"] for m in mine)
            figures: dict[str, Any] = {"marketboss_s": s, "marketboss_peak_mb": max(m["mb"] for m in mine),
                                       "cold_s": cold["s"], "cold_peak_mb": cold["mb"]}  # fmt: skip
            if theirs:
                peer_s = statistics.median(m["s"] for m in theirs)
                figures.update(peer_s=peer_s, peer_peak_mb=max(m["mb"] for m in theirs), ratio=peer_s / s)
            if case == "portfolio":
                a, b = same_result(tmp, env)
                figures.update(final_equity=a, peer_final_equity=b, same_to_the_cent=abs(a - b) < 0.005)
            report(f"whole_{case}", **figures)


if __name__ == "__main__":
    main()
