"""Demo-like files for the dashboard tests: bars, signals, three backtest runs, paper logs, a model registry and a
running live session (its status file and signals log; its equity goes to the paper equity log, as the loop's does).

The paper logs are what the executor writes (the guide's fields plus signal_id, slippage and commission): its
first signals filled a few basis points worse than the backtest, and the account's snapshots along the way.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from marketboss.backtest.costs import BacktestConfig
from marketboss.backtest.engine import run_backtest, run_strategy
from marketboss.backtest.runs import save_run
from marketboss.data.io import format_ts, write_bars, write_jsonl
from marketboss.data.market import Market
from marketboss.data.synth import synth_bars
from marketboss.execution.live_status import LiveStatus, StreamHealth, write_status
from marketboss.signals import write_signals
from marketboss.strategies import create

FEATURES = ("ret_1", "ret_5", "ret_20", "ma_ratio_10_30", "vol_20", "rsi_14", "volume_z", "range")


@dataclass(frozen=True)
class Demo:
    root: Path
    market_data: Path
    signals: Path
    models_dir: Path
    paper_equity: Path
    paper_trades: Path
    runs_dir: Path
    live_status: Path
    live_signals: Path

    def env(self) -> dict[str, str]:
        """MARKETBOSS_* variables that make these files the dashboard's defaults."""
        return {
            "MARKETBOSS_MARKET_DATA": str(self.market_data),
            "MARKETBOSS_SIGNALS": str(self.signals),
            "MARKETBOSS_MODELS_DIR": str(self.models_dir),
            "MARKETBOSS_PAPER_EQUITY": str(self.paper_equity),
            "MARKETBOSS_PAPER_TRADES": str(self.paper_trades),
            "MARKETBOSS_RUNS_DIR": str(self.runs_dir),
            "MARKETBOSS_LIVE_STATUS": str(self.live_status),
            "MARKETBOSS_LIVE_SIGNALS": str(self.live_signals),
        }


def build_demo(root: Path, *, symbols: tuple[str, ...] = ("AAPL", "MSFT", "JPM"), paper_signals: int = 40) -> Demo:
    data = root / "data"
    d = Demo(root, data / "market_data.jsonl", data / "signals.jsonl", root / "models",
             data / "paper_trading_equity.jsonl", data / "paper_trading_trades.jsonl", root / "runs",
             data / "live_status.json", data / "live_signals.jsonl")  # fmt: skip
    bars = synth_bars(list(symbols), "2023-01-01", "2024-12-31", "1Day", seed=7)
    write_bars(bars, d.market_data)
    market = Market.from_bars(bars)
    signals = create("ma_crossover", ["fast=5", "slow=20"]).signals(market)
    write_signals(d.signals, signals)
    for name, params in (("ma_crossover", ["fast=5", "slow=20"]), ("momentum", []), ("mean_reversion", [])):
        result, sig = run_strategy(market, create(name, params))
        save_run(result, d.runs_dir / name, {"name": name, "strategies": [name]}, signals=sig)
    write_paper_logs(bars, signals.head(paper_signals), d.paper_trades, d.paper_equity)
    write_models(d.models_dir)
    write_live_session(d.live_status, d.live_signals, signals.tail(12), list(symbols))
    return d


def write_live_session(status_path: Path, signals_path: Path, signals: pl.DataFrame, symbols: list[str]) -> LiveStatus:
    """A session running on these symbols whose last bar is the last signal's: its signals log and status file."""
    write_signals(signals_path, signals)
    now = format_ts(datetime.now(UTC))
    status = LiveStatus(
        strategy="ma_crossover", symbols=symbols, timeframe="1Day", broker="local", mode="local", pid=os.getpid(),
        started_at=format_ts(signals["timestamp"][0]), updated_at=now, state="running",
        last_bar=format_ts(signals["timestamp"][-1]), bars_seen=len(symbols) * signals.height, signals_today=1,
        orders_submitted=signals.height, stream=StreamHealth(True, 2, 1, 3, now),
        account={"equity": 101_234.5, "cash": 40_000.0, "buying_power": 80_000.0},
        positions=[{"symbol": symbols[0], "qty": 10.0, "avg_entry_price": 101.5, "market_value": 1050.0},
                   {"symbol": symbols[1], "qty": 3.0, "avg_entry_price": 250.25, "market_value": 748.5}],
        open_orders=[{"id": "ord-live-1", "client_order_id": "mb-live-1", "symbol": symbols[1], "side": "buy",
                      "type": "limit", "qty": 5.0, "limit_price": 99.0, "status": "new"}],
    )  # fmt: skip
    write_status(status_path, status)
    return status


def write_paper_logs(bars: pl.DataFrame, signals: pl.DataFrame, trades_path: Path, equity_path: Path) -> None:
    bt = run_backtest(bars, signals, BacktestConfig())
    trades = []
    for i, f in enumerate(bt.fills.iter_rows(named=True)):
        sign = 1.0 if f["side"] == "BUY" else -1.0
        price = round(f["price"] * (1 + sign * (3 + i % 5) / 1e4), 4)
        trades.append({
            "timestamp": format_ts(f["timestamp"]), "signal_timestamp": format_ts(f["signal_timestamp"]),
            "order_id": f"ord-{i}", "symbol": f["symbol"], "side": f["side"], "qty": f["qty"], "filled_price": price,
            "status": "filled", "signal_id": f["signal_id"], "client_order_id": f"mb-{f['signal_id']}",
            "expected_price": f["price"], "slippage_bps": sign * (price - f["price"]) / f["price"] * 1e4,
            "commission": 0.0,
        })  # fmt: skip
    write_jsonl(trades_path, trades)
    last_fill = bt.fills["timestamp"].max()
    eq = bt.equity.filter(pl.col("timestamp").is_between(signals["timestamp"].min(), last_fill))
    n = eq.height
    write_jsonl(
        equity_path,
        (
            {
                "timestamp": format_ts(r["timestamp"]),
                "cash": round(r["cash"], 2),
                "portfolio_value": round(r["equity"] - 2.5 * i * 40 / max(n, 1), 2),
                "buying_power": round(r["cash"], 2),
                "equity_multiplier": 1.0,
            }
            for i, r in enumerate(eq.iter_rows(named=True))
        ),
    )


def metadata(version: str, created_at: str, shift: float = 0.0) -> dict[str, object]:
    folds = [
        {"fold": k + 1, "n_train": 200 + 50 * k, "n_test": 50, "mse": 0.0004 + 0.00001 * k + shift / 1000,
         "ic": 0.05 - 0.01 * k, "rank_ic": 0.04 - 0.01 * k, "hit_rate": 0.52 - 0.005 * k}
        for k in range(5)
    ]  # fmt: skip
    return {
        "name": "ridge_fwd5",
        "version": version,
        "created_at": created_at,
        "model_type": "ridge",
        "features": list(FEATURES),
        "target": "forward_return_5",
        "horizon": 5,
        "params": {"alpha": 1.0},
        "train_start": "2023-01-03T05:00:00Z",
        "train_end": "2024-06-28T04:00:00Z",
        "data_sha256": "ab" * 32,
        "cv": {"scheme": "purged_walk_forward", "folds": 5, "purge": 5, "embargo": 5, "per_fold": folds},
        "metrics": {"mse": {"mean": 0.00042, "std": 0.00001}, "ic": {"mean": 0.03, "std": 0.015}},
        "feature_importance": {
            "gain": {f: round(1.0 / (k + 1) + shift, 6) for k, f in enumerate(FEATURES)},
            "permutation": {f: round(0.01 * (len(FEATURES) - k), 6) for k, f in enumerate(FEATURES)},
        },
        "library_versions": {"scikit-learn": "1.7", "polars": "2.1"},
    }


DECISIONS = [
    {"timestamp": "2024-07-01T21:00:00Z", "decision": "keep", "reasons": ["no drift", "rolling IC 0.031 >= 0"],
     "psi": {f: 0.02 for f in FEATURES}, "ks": {f: 0.04 for f in FEATURES}, "rolling_ic": 0.031, "version": "v1"},
    {"timestamp": "2024-08-01T21:00:00Z", "decision": "retrain",
     "reasons": ["psi(vol_20) 0.31 > 0.25", "rolling IC -0.012 < 0"],
     "psi": {f: (0.31 if f == "vol_20" else 0.03) for f in FEATURES},
     "ks": {f: (0.22 if f == "vol_20" else 0.05) for f in FEATURES}, "rolling_ic": -0.012, "version": "v1"},
]  # fmt: skip


def write_models(models_dir: Path) -> None:
    model = models_dir / "ridge_fwd5"
    for version, created, shift in (("v1", "2024-06-30T21:00:00Z", 0.0), ("v2", "2024-08-01T21:30:00Z", 0.1)):
        (model / version).mkdir(parents=True, exist_ok=True)
        (model / version / "metadata.json").write_text(json.dumps(metadata(version, created, shift), indent=2))
    (model / "latest").write_text("v2\n")
    write_jsonl(model / "decisions.jsonl", DECISIONS)
