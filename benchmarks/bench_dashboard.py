"""Dashboard render time with 1,000,000 bars and 100,000 signals (issue 7: first render < 3 s, rerun < 0.5 s).

The page is run headless with streamlit's AppTest (the same script the browser gets) on files in a temporary
directory: 1,000,000 one-minute bars of 11 symbols, 100,000 signals, paper logs, three backtest runs over
the same bars and a model registry, so that every section renders.

- first_render: a new session with every cache empty (modules already imported), median of several;
- first_render_cpu: CPU seconds of that render, all threads (the machine's load does not change it);
- rerun: the same session run again (a widget change or the paper section's refresh), median;
- fresh_process: the first render in a new Python process: the imports of streamlit, polars, plotly and the
  package, and the component scan, which a server pays once at start-up, are inside this figure.

Usage: python benchmarks/bench_dashboard.py [--bars 1000000] [--signals 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import polars as pl
from tests.dashboard.demo import write_models, write_paper_logs

from common import peak_rss_mb, report
from marketboss.backtest.engine import run_strategy
from marketboss.backtest.runs import save_run
from marketboss.data.io import write_bars
from marketboss.data.market import Market
from marketboss.data.synth import synth_bars
from marketboss.signals import id_key, signal_ids, write_signals
from marketboss.strategies import create

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


def make_files(root: Path, n_bars: int, n_signals: int) -> dict[str, str]:
    symbols = [f"S{i:02d}" for i in range(11)]
    bars = synth_bars(symbols, "2023-01-01", "2023-12-31", "1Min", seed=3).head(n_bars)
    data = root / "data"
    write_bars(bars, data / "market_data.jsonl")
    rng = np.random.default_rng(1)
    rows = bars[np.sort(rng.choice(bars.height - len(symbols), n_signals, replace=False))]
    buy = rng.random(n_signals) < 0.5
    keys = np.array([id_key("random", "{}", s) for s in symbols], dtype=np.uint64)
    key_of = rows["symbol"].cast(pl.Enum(symbols)).to_physical().to_numpy()
    signals = pl.DataFrame({
        "id": signal_ids(keys[key_of], rows["timestamp"].dt.epoch("us").to_numpy(), np.where(buy, 1, 2)),
        "timestamp": rows["timestamp"], "symbol": rows["symbol"], "action": np.where(buy, "BUY", "SELL"),
        "quantity": np.full(n_signals, 5.0), "strategy": rng.choice(["alpha", "beta", "gamma"], n_signals),
        "price": rows["close"], "target_weight": pl.Series([None] * n_signals, dtype=pl.Float64),
    })  # fmt: skip
    write_signals(data / "signals.jsonl", signals)
    write_paper_logs(bars, signals.head(500), data / "paper_trading_trades.jsonl", data / "paper_trading_equity.jsonl")
    market = Market.from_bars(bars)
    for name in ("ma_crossover", "momentum", "mean_reversion"):
        result, _ = run_strategy(market, create(name))
        save_run(result, root / "runs" / name, {"name": name, "strategies": [name]})
    write_models(root / "models")
    return {
        "MARKETBOSS_MARKET_DATA": str(data / "market_data.jsonl"),
        "MARKETBOSS_SIGNALS": str(data / "signals.jsonl"),
        "MARKETBOSS_MODELS_DIR": str(root / "models"),
        "MARKETBOSS_PAPER_EQUITY": str(data / "paper_trading_equity.jsonl"),
        "MARKETBOSS_PAPER_TRADES": str(data / "paper_trading_trades.jsonl"),
        "MARKETBOSS_RUNS_DIR": str(root / "runs"),
    }


def new_session(components: Any) -> Any:
    """A new browser session on the running app. A server scans installed packages for Streamlit components
    once at start-up; AppTest would redo that (~0.6 s) in every new session, so the scan is shared here."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=120)
    at._bidi_component_manager = components
    return at


def components() -> Any:
    from streamlit.components.v2.component_manager import BidiComponentManager

    mgr = BidiComponentManager()
    mgr.discover_and_register_components(start_file_watching=False)
    return mgr


def render_once() -> float:
    """One first render in a fresh process (every import paid inside the timing)."""
    at = new_session(components())
    t0 = time.perf_counter()
    at.run()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--signals", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(f"{render_once():.6f}")
        return

    from marketboss.config import get_settings
    from marketboss.dashboard.cache import clear_all

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        env = make_files(Path(tmp), args.bars, args.signals)
        setup = time.perf_counter() - t0
        os.environ.update(env)
        os.environ.setdefault("MARKETBOSS_LOG_LEVEL", "warning")
        get_settings.cache_clear()
        size_mb = Path(env["MARKETBOSS_MARKET_DATA"]).stat().st_size / 1e6

        # imports, the component scan and numba's on-disk cache: what a running server has already paid
        shared = components()
        new_session(shared).run()
        firsts, first_cpu, reruns = [], [], []
        for _ in range(args.repeat):
            clear_all()
            at = new_session(shared)
            t, c = time.perf_counter(), time.process_time()
            at.run()
            firsts.append(time.perf_counter() - t)
            first_cpu.append(time.process_time() - c)
            if at.exception:
                raise SystemExit(f"the page raised: {at.exception[0].value}")
            if at.error or at.info:
                raise SystemExit(f"the page shows problems: {[e.value for e in (*at.error, *at.info)]}")
            for _ in range(3):
                t = time.perf_counter()
                at.run()
                reruns.append(time.perf_counter() - t)
        child = subprocess.run([sys.executable, __file__, "--child"], env={**os.environ}, capture_output=True,
                               text=True, check=True)  # fmt: skip
        fresh = float(child.stdout.strip().splitlines()[-1])
    report(
        "dashboard",
        bars=args.bars,
        signals=args.signals,
        bars_file_mb=size_mb,
        setup_s=setup,
        first_render_s=statistics.median(firsts),
        first_render_max_s=max(firsts),
        first_render_cpu_s=statistics.median(first_cpu),
        rerun_s=statistics.median(reruns),
        rerun_max_s=max(reruns),
        fresh_process_first_render_s=fresh,
        peak_rss_mb=peak_rss_mb(),
        load_avg_1min=os.getloadavg()[0],
        cores=os.cpu_count() or 0,
        target_first_s=3.0,
        target_rerun_s=0.5,
    )


if __name__ == "__main__":
    main()
