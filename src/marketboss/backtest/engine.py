"""The backtest: bars plus signals (the very file the paper executor trades), or a strategy, through the
compiled portfolio kernels into equity, fills, round-trip trades and metrics: on a second core, nb.simulate
fills the orders and nb.mark then marks every bar, while this one builds the signals frame, matches the round
trips (nb.round_trips) and builds the tables.

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
from marketboss.backtest.metrics import ReturnStats, equity_metrics, trade_metrics
from marketboss.data.market import Market
from marketboss.data.schema import LINE, TIMESTAMP_DTYPE
from marketboss.errors import InputError
from marketboss.strategies.base import SignalRows, Strategy

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
    orders: pl.DataFrame  # every signal with its status (filled/rejected/skipped/expired/no_bar)
    metrics: dict[str, Any]

    @property
    def rejections(self) -> pl.DataFrame:
        """The orders not filled, each with the reason why."""
        out = self.orders.filter(pl.col("status") != "filled")
        return out.with_columns(reason=pl.col("status").replace_strict(_REASONS_BY_STATUS, return_dtype=pl.String))


_STATUS_NAMES = tuple(STATUS[i] for i in range(len(STATUS)))
_REASONS_BY_STATUS = {STATUS[code]: REASONS.get(code) for code in STATUS}


def _ts(name: str, us: np.ndarray) -> pl.Series:
    return pl.Series(name, us).cast(TIMESTAMP_DTYPE)


def _epoch_us(timestamps: pl.Series) -> np.ndarray:
    """Epoch microseconds of a Datetime series (any unit or time zone): its physical integers."""
    dtype = timestamps.dtype
    if isinstance(dtype, pl.Datetime) and dtype.time_unit != "us":
        timestamps = timestamps.dt.cast_time_unit("us")
    return timestamps.cast(pl.Int64).to_numpy()


def _symbol_codes(market: Market, signals: pl.DataFrame, source: str) -> np.ndarray:
    codes = signals["symbol"].replace_strict(
        market.symbols, range(market.n_symbols), default=None, return_dtype=pl.Int64
    )
    if codes.null_count():
        i = int(codes.is_null().arg_max() or 0)
        line = int(signals[LINE][i]) if LINE in signals.columns and signals[LINE][i] is not None else None
        raise InputError(source, f"symbol '{signals['symbol'][i]}' has no bars in the data", line=line, field="symbol")
    return codes.to_numpy()


def run_backtest(
    market: Market | pl.DataFrame,
    signals: pl.DataFrame,
    config: BacktestConfig | None = None,
    *,
    source: str = "signals",
) -> BacktestResult:
    """Simulate `signals` (marketboss.signals' frame: read_signals_frame or Strategy.signals) on `market`.

    `source` names the signals in error messages (the file path)."""
    mkt = market if isinstance(market, Market) else Market.from_bars(market)
    return _backtest(mkt, _rows(mkt, signals, source), config or BacktestConfig())


def _rows(market: Market, signals: pl.DataFrame, source: str) -> SignalRows:
    """What the simulation reads from a signals frame, in time order: bars and symbols looked up."""
    sig = signals
    ts = _epoch_us(sig["timestamp"])
    if ts.shape[0] > 1 and not (ts[1:] >= ts[:-1]).all():
        order = np.argsort(ts, kind="stable")
        sig = sig[order]
        ts = ts[order]
    qty = sig["quantity"].to_numpy()  # NaN where null: a target-weight order
    # Weights are read only for orders without a quantity.
    weight = sig["target_weight"].fill_null(0.0).to_numpy() if np.isnan(qty).any() else qty
    return SignalRows(sig, ts, nb.signal_bars(market.times, ts), _symbol_codes(market, sig, source),
                      (sig["action"] == "BUY").to_numpy(), qty, weight)


def _backtest(mkt: Market, rows: SignalRows, cfg: BacktestConfig) -> BacktestResult:
    at_close = cfg.fill == FillMode.CLOSE
    full = np.array([mkt.is_full(s) for s in range(mkt.n_symbols)])
    exec_t, status, live, ordered = nb.schedule(mkt.times, mkt.close, full, rows.time, rows.bar, rows.symbol,
                                                at_close)
    c = cfg.costs
    n = live.shape[0]  # fills: at most one per order
    f_int, f_flt, f_buys = np.empty((3, n), dtype=np.int64), np.empty((3, n)), np.empty((n,), dtype=np.bool_)
    n_f = nb.simulate(
        mkt.times, mkt.open, mkt.close, live, exec_t, rows.symbol, rows.buy, rows.quantity, rows.weight, status,
        cfg.cash, at_close, cfg.fractional, c.commission, c.commission_per_share, c.commission_min, c.slip, f_int,
        f_flt, f_buys,
    )
    eq = np.empty((3, mkt.n_times))  # every element is written by mark
    f_row, f_s, f_buy, f_qty, f_price, f_comm = f_int[0, :n_f], f_int[2, :n_f], f_buys[:n_f], f_flt[0, :n_f], \
        f_flt[1, :n_f], f_flt[2, :n_f]
    exposed, returns = nb.mark(mkt.close, exec_t, f_row, f_s, f_buy, f_qty, f_price, f_comm, cfg.cash, eq[0],
                               eq[1], eq[2])
    sig = rows.frame
    f_time = f_int[1, :n_f]
    m = 2 * n_f + 1  # round trips: at most two per fill, and one more
    tr_int, tr_flt, tr_flag = np.empty((6, m), dtype=np.int64), np.empty((6, m)), np.empty((2, m), dtype=np.bool_)
    n_tr = nb.round_trips(mkt.times, mkt.close, exec_t, f_row, f_time, f_s, f_buy, f_qty, f_price, f_comm, tr_int,
                          tr_flt, tr_flag)
    tr_s, tr_time0, tr_time1, tr_row0, tr_row1, tr_bars = tr_int[:, :n_tr]
    tr_qty, tr_p0, tr_p1, tr_pnl, tr_ret, tr_days = tr_flt[:, :n_tr]
    tr_long, tr_closed = tr_flag[:, :n_tr]
    ids = sig["id"]
    all_filled = n_f == sig.height
    if all_filled and ordered:  # every signal filled, in signal order: fill i is signal i
        by_signal = [ids, sig["symbol"], sig["action"], sig["timestamp"]]
    else:
        by_signal = [ids[f_row], pl.Series("symbol", mkt.symbols, dtype=pl.String).gather(f_s),
                     pl.Series("side", ["SELL", "BUY"]).gather(f_buy.view(np.int8)), _ts("", np.take(rows.time, f_row))]
    signal_id, symbol, side, signal_ts = by_signal
    fills = pl.DataFrame([
        _ts("timestamp", f_time),
        signal_id.alias("signal_id"),
        symbol.alias("symbol"),
        side.alias("side"),
        pl.Series("qty", f_qty),
        pl.Series("price", f_price),
        pl.Series("commission", f_comm),
        signal_ts.alias("signal_timestamp"),
    ])
    exit_ids = ids[np.maximum(tr_row1, 0)].alias("exit_signal_id")
    open_end = np.flatnonzero(tr_row1 < 0)  # round trips still open at the end have no exit signal
    if open_end.shape[0]:
        exit_ids.scatter(open_end, None)
    trades = pl.DataFrame([
        pl.Series("symbol", mkt.symbols, dtype=pl.String).gather(tr_s),
        pl.Series("side", ["SHORT", "LONG"]).gather(tr_long.view(np.int8)),
        pl.Series("qty", tr_qty),
        _ts("entry_time", tr_time0),
        pl.Series("entry_price", tr_p0),
        _ts("exit_time", tr_time1),
        pl.Series("exit_price", tr_p1),
        pl.Series("pnl", tr_pnl),
        pl.Series("return_pct", tr_ret),
        ids[tr_row0].alias("entry_signal_id"),
        exit_ids,
        pl.Series("duration_days", tr_days),
        pl.Series("bars", tr_bars),
        pl.Series("closed", tr_closed),
    ])  # the kernel records round trips in the order they close; those still open come last
    orders = pl.DataFrame([
        ids.alias("signal_id"), sig["timestamp"], sig["symbol"], sig["action"], sig["quantity"], sig["target_weight"],
        pl.Series("status", _STATUS_NAMES, dtype=pl.String).gather(status),
    ])
    counts = np.zeros(len(STATUS), dtype=np.int64) if all_filled else np.bincount(status, minlength=len(STATUS))
    trade_acc = nb.trade_stats(tr_pnl, tr_ret, tr_days, tr_closed)
    buy_hold = buy_and_hold_pct(mkt)
    eq_cash, eq_value, eq_total = eq
    equity = pl.DataFrame([mkt.timestamps(), pl.Series("cash", eq_cash), pl.Series("positions_value", eq_value),
                           pl.Series("equity", eq_total)])
    metrics = equity_metrics(mkt.times, eq_total, initial=cfg.cash, periods_per_year=mkt.bars_per_year,
                             stats=ReturnStats.from_kernel(mkt.n_times, returns))
    metrics.update(
        trade_metrics(
            trades,
            fills,
            exposure_pct=exposed / mkt.n_times * 100.0,
            buy_hold_return_pct=buy_hold,
            rejected_orders=int(counts[nb.REJECTED_CASH]),
            unfilled_orders=int(counts[nb.EXPIRED] + counts[nb.NO_BAR]),
            stats=trade_acc,
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
    """Generate the strategy's signals and backtest them: (result, signals). The same as run_backtest of
    those signals, without looking their bars and symbols up again."""
    mkt = market if isinstance(market, Market) else Market.from_bars(market)
    rows = strategy.signal_rows(mkt)
    return _backtest(mkt, rows, config or BacktestConfig()), rows.frame
