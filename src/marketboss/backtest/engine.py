"""The backtest: bars plus signals (the very file the paper executor trades), or a strategy, through the
compiled portfolio kernel (nb.simulate) into equity, fills, round-trip trades and metrics.

Rules (see also marketboss.signals for what a signal means):
- one shared cash account for every symbol; cash may never go negative (no margin borrowing); short sales
  credit their proceeds to cash. An order that cash cannot cover is rejected whole, never resized.
- market orders fill at the symbol's next bar's open (default) or at the signal bar's close (optimistic).
- target-weight orders size against equity marked at the fill bar's open (before the fill), rounded toward
  zero to whole shares unless `fractional`; quantity orders trade exactly their quantity.
- equity is marked to market at every bar's close (a symbol without a bar keeps its last close).
- no price from the future: the fill bar is after the decision bar; the last bar's orders expire unfilled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from marketboss.backtest import nb
from marketboss.backtest.costs import BacktestConfig, FillMode
from marketboss.backtest.metrics import equity_metrics, trade_metrics
from marketboss.data.schema import LINE, TIMESTAMP_DTYPE
from marketboss.errors import InputError
from marketboss.strategies.base import Strategy
from marketboss.strategies.market import Market

STATUS = {
    nb.PENDING: "pending",
    nb.FILLED: "filled",
    nb.REJECTED_CASH: "rejected",
    nb.SKIPPED: "skipped",
    nb.EXPIRED: "expired",
    nb.NO_BAR: "no_bar",
}
REASONS = {
    nb.REJECTED_CASH: "insufficient cash",
    nb.SKIPPED: "nothing to trade: target already reached on the signal's side",
    nb.EXPIRED: "no later bar of the symbol to fill at",
    nb.NO_BAR: "no bar of the symbol at the signal time (needed by --fill close)",
}


@dataclass(frozen=True)
class BacktestResult:
    config: BacktestConfig
    equity: pl.DataFrame  # timestamp, cash, positions_value, equity
    fills: pl.DataFrame  # timestamp, signal_id, symbol, side, qty, price, commission, signal_timestamp
    trades: pl.DataFrame  # round trips, FIFO per symbol; closed = false for those open at the end
    orders: pl.DataFrame  # every signal with its status (filled/rejected/skipped/expired/no_bar) and reason
    metrics: dict[str, Any]

    @property
    def rejections(self) -> pl.DataFrame:
        return self.orders.filter(pl.col("status") != "filled")


def _ts(us: np.ndarray) -> pl.Series:
    return pl.Series(us).cast(pl.Datetime("us")).cast(TIMESTAMP_DTYPE)


def _symbol_codes(market: Market, signals: pl.DataFrame, source: str) -> np.ndarray:
    codes = signals["symbol"].cast(pl.Enum(market.symbols), strict=False)
    if codes.null_count():
        i = int(codes.is_null().arg_max() or 0)
        line = int(signals[LINE][i]) if LINE in signals.columns and signals[LINE][i] is not None else None
        raise InputError(source, f"symbol '{signals['symbol'][i]}' has no bars in the data", line=line, field="symbol")
    return codes.to_physical().to_numpy().astype(np.int64)


def run_backtest(
    market: Market | pl.DataFrame,
    signals: pl.DataFrame,
    config: BacktestConfig | None = None,
    *,
    source: str = "signals",
) -> BacktestResult:
    """Simulate `signals` (marketboss.signals' frame: read_signals_frame or Strategy.signals) on `market`.

    `source` names the signals in error messages (the file path)."""
    cfg = config or BacktestConfig()
    mkt = market if isinstance(market, Market) else Market.from_bars(market)
    sig = signals
    ts = sig["timestamp"].dt.epoch("us").to_numpy()
    if ts.shape[0] > 1 and not (ts[1:] >= ts[:-1]).all():
        order = np.argsort(ts, kind="stable")
        sig = sig[order]
        ts = ts[order]
    s_idx = _symbol_codes(mkt, sig, source)
    buy = (sig["action"] == "BUY").to_numpy()
    side = np.where(buy, 1.0, -1.0)
    qty = sig["quantity"].to_numpy()
    is_qty = ~np.isnan(qty) if sig["quantity"].null_count() < sig.height else np.zeros(sig.height, dtype=bool)
    kind = np.where(is_qty, nb.KIND_QTY, nb.KIND_WEIGHT).astype(np.int8)
    value = np.where(is_qty, np.nan_to_num(qty) * side, sig["target_weight"].fill_null(0.0).to_numpy())
    sig_t = nb.locate(mkt.times, ts)
    exact = (sig_t >= 0) & (mkt.times[np.maximum(sig_t, 0)] == ts)
    at_close = cfg.fill == FillMode.CLOSE
    exec_t, status = nb.exec_bars(mkt.close, sig_t, exact, s_idx, at_close)
    live = np.flatnonzero(exec_t >= 0)
    live = live[np.argsort(exec_t[live], kind="stable")]
    c = cfg.costs
    eq_cash, eq_value, eq_total = np.empty(mkt.n_times), np.empty(mkt.n_times), np.empty(mkt.n_times)
    (exposed, st, f_qty, f_price, f_comm,
     tr_s, tr_t0, tr_t1, tr_p0, tr_p1, tr_q, tr_pnl, tr_o0, tr_o1, tr_closed) = nb.simulate(
        mkt.open, mkt.close, exec_t[live], s_idx[live], kind[live], value[live], side[live],
        cfg.cash, at_close, cfg.fractional, c.commission, c.commission_per_share, c.commission_min, c.slip,
        eq_cash, eq_value, eq_total,
    )  # fmt: skip
    status[live] = st
    times = mkt.timestamps()
    equity = pl.DataFrame({"timestamp": times, "cash": eq_cash, "positions_value": eq_value, "equity": eq_total})
    ids = sig["id"]
    symbols = pl.Series(mkt.symbols, dtype=pl.String)
    filled = np.flatnonzero(st == nb.FILLED)
    fo = live[filled]
    f_qty, f_price, f_comm = f_qty[filled], f_price[filled], f_comm[filled]
    fills = pl.DataFrame(
        {
            "timestamp": times.gather(exec_t[fo]),
            "signal_id": ids.gather(fo),
            "symbol": symbols.gather(s_idx[fo]),
            "side": pl.Series(["SELL", "BUY"]).gather((f_qty > 0).astype(np.intp)),
            "qty": np.abs(f_qty),
            "price": f_price,
            "commission": f_comm,
            "signal_timestamp": sig["timestamp"].gather(fo),
        }
    )
    t0, t1 = mkt.times[tr_t0], mkt.times[tr_t1]
    exit_ids = ids.gather(live[np.maximum(tr_o1, 0)]) if tr_o1.shape[0] else ids.clear()
    trades = pl.DataFrame(
        {
            "symbol": symbols.gather(tr_s),
            "side": pl.Series(["SHORT", "LONG"]).gather((tr_q > 0).astype(np.intp)),
            "qty": np.abs(tr_q),
            "entry_time": _ts(t0),
            "entry_price": tr_p0,
            "exit_time": _ts(t1),
            "exit_price": tr_p1,
            "pnl": tr_pnl,
            "return_pct": tr_pnl / (np.abs(tr_q) * tr_p0) * 100.0,
            "entry_signal_id": ids.gather(live[tr_o0]) if tr_o0.shape[0] else ids.clear(),
            "exit_signal_id": pl.Series(exit_ids).scatter(np.flatnonzero(tr_o1 < 0), None)
            if (tr_o1 < 0).any() else exit_ids,
            "duration_days": (t1 - t0) / 86_400e6,
            "bars": tr_t1 - tr_t0,
            "closed": tr_closed,
        }
    )  # the kernel records round trips in the order they close; those still open come last
    codes = status.astype(np.intp)
    orders = sig.select(
        pl.col("id").alias("signal_id"), "timestamp", "symbol", "action", "quantity", "target_weight"
    ).with_columns(
        pl.Series("status", [STATUS[i] for i in range(len(STATUS))]).gather(codes),
        pl.Series("reason", [REASONS.get(i) for i in range(len(STATUS))], dtype=pl.String).gather(codes),
    )
    metrics = equity_metrics(mkt.times, eq_total, initial=cfg.cash, periods_per_year=mkt.bars_per_year)
    metrics.update(
        trade_metrics(
            trades,
            fills,
            exposure_pct=exposed / mkt.n_times * 100.0,
            buy_hold_return_pct=buy_and_hold_pct(mkt),
            rejected_orders=int((status == nb.REJECTED_CASH).sum()),
            unfilled_orders=int(((status == nb.EXPIRED) | (status == nb.NO_BAR)).sum()),
        )
    )
    return BacktestResult(cfg, equity, fills, trades, orders, metrics)


def buy_and_hold_pct(market: Market) -> float:
    """Equal-weight buy and hold of every symbol in the data, first close to last close."""
    rets = []
    for s in range(market.n_symbols):
        r = market.rows(s)
        rets.append(market.close[r[-1], s] / market.close[r[0], s] - 1.0)
    return float(np.mean(rets) * 100.0)


def run_strategy(
    market: Market | pl.DataFrame, strategy: Strategy[Any], config: BacktestConfig | None = None
) -> tuple[BacktestResult, pl.DataFrame]:
    """Generate the strategy's signals and backtest them: (result, signals)."""
    mkt = market if isinstance(market, Market) else Market.from_bars(market)
    signals = strategy.signals(mkt)
    return run_backtest(mkt, signals, config, source=f"strategy {strategy.name}"), signals
