"""The backtest: bars plus signals (the very file the paper executor trades), or a strategy, through the
compiled portfolio kernels (nb.py, called through kernels.py) into equity, fills, round-trip trades and
metrics: schedule places the orders on the bar they go live, simulate fills them bar by bar, mark values every
bar and round_trips matches the trades.

Rules (see also marketboss.signals for what a signal means, marketboss.orders for the fill rules):
- one shared cash account for every symbol, nothing borrowed (backtesting.py's margin=1: gross exposure at most
  the equity): short sales credit their proceeds to cash, and a short position holds cash of twice its value
  (its proceeds and as much of the account's own, nb.COLLATERAL), so that a trade that grows a position, or
  opens one on its other side, is refused when it would leave less (or cash below zero). A quantity order the
  cash cannot cover is rejected whole, never resized. A trade that only reduces a position is never refused: the
  cover of a short that rose past its collateral fills, taking cash below zero if it must.
- market orders fill at the symbol's next bar's open (default) or at the signal bar's close (optimistic);
  limit, stop, stop-limit and trailing-stop orders work from the next bar on, tested on each bar's open,
  high and low; day orders end with their first session, gtc orders stay.
- a bracket (take_profit, stop_loss, or a trailing stop-loss) set by an entry (an order opening or adding to
  a position) trades that entry's shares, as Alpaca's legs do, so entries scaling in keep one each; an order
  that reduces or flips the position ends them all, as the paper executor cancels them before sending it.
  Its legs are one-cancels-other, the stop taken when one bar reaches both; live on the entry's bar when the
  entry filled at the bar's open, else from the next bar.
- the orders filling on one bar go in two passes: those that reduce a position first, then the rest; the
  exits before the working orders.
- a long-only strategy's run (BacktestConfig.long_only, set from its parameters: strategy_config) never shorts: a
  sale is cut to the shares held when it fills, and one that finds none does not trade (status long_only), as the
  paper executor and an event strategy's ctx.sell cut it. A signals file's run trades its sales whole.
- target-weight orders size against equity marked at the fill bar's reference price (before the fill): a
  purchase to what equity covers after commission and slippage (1.0 = all in) and to the cash left, rounded
  toward zero to whole shares unless `fractional`; quantity orders trade exactly their quantity.
- equity is marked to market at every bar's close (a symbol without a bar keeps its last close).
- no price from the future: the fill bar is after the decision bar; the last bar's orders expire unfilled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import polars as pl

from marketboss.backtest import arrays, kernels
from marketboss.backtest.costs import BacktestConfig
from marketboss.backtest.metrics import ReturnStats, buy_and_hold_pct, equity_metrics, trade_metrics_of
from marketboss.data.market import Market
from marketboss.data.schema import LINE, TIMESTAMP_DTYPE
from marketboss.errors import InputError
from marketboss.orders import EXIT_NAMES
from marketboss.signals import CANCELS, OrderArrays, SignalRows, order_arrays

if TYPE_CHECKING:  # a backtest of a signals file loads no strategy code
    from marketboss.strategies.base import Strategy

STATUS = {
    arrays.PENDING: "pending",
    arrays.FILLED: "filled",
    arrays.REJECTED_CASH: "rejected",
    arrays.SKIPPED: "skipped",
    arrays.EXPIRED: "expired",
    arrays.NO_BAR: "no_bar",
    arrays.DAY_ENDED: "day_ended",
    arrays.OPEN: "open",
    arrays.CANCELED: "canceled",
    arrays.LONG_ONLY: "long_only",
    arrays.FRACTIONAL_SHORT: "fractional_short",
}
REASONS = {
    arrays.REJECTED_CASH: "insufficient cash",
    arrays.SKIPPED: "nothing to trade: the target is already reached on the signal's side, or an exit traded it",
    arrays.EXPIRED: "no later bar of the symbol to fill at",
    arrays.NO_BAR: "no bar of the symbol at the signal time (needed by --fill close)",
    arrays.DAY_ENDED: "a day order: its session ended before its price was reached",
    arrays.OPEN: "a gtc order still working when the data ends",
    arrays.CANCELED: "canceled by the strategy before it traded",
    arrays.LONG_ONLY: "long_only: no shares held to sell (never a short)",
    arrays.FRACTIONAL_SHORT: "a fraction of a share sold short: brokers sell whole shares short (Alpaca refuses it)",
}


@dataclass(frozen=True)
class BacktestResult:
    config: BacktestConfig
    equity: pl.DataFrame  # timestamp, cash, positions_value, equity
    fills: pl.DataFrame  # timestamp, signal_id, symbol, side, qty, price, commission, signal_timestamp
    trades: pl.DataFrame  # round trips, FIFO per symbol; closed = false for those open at the end
    orders: pl.DataFrame  # every signal with its status (filled/rejected/skipped/expired/no_bar/long_only/...)
    metrics: dict[str, Any]

    @property
    def rejections(self) -> pl.DataFrame:
        """The orders not filled, each with the reason why."""
        out = self.orders.filter(pl.col("status") != "filled")
        return out.with_columns(reason=pl.col("status").replace_strict(_REASONS_BY_STATUS, return_dtype=pl.String))


_STATUS_NAMES = tuple(STATUS[i] for i in range(len(STATUS)))
_LEG_NAMES = (None, *(EXIT_NAMES[i] for i in range(1, len(EXIT_NAMES) + 1)))
#: A plain run's order fields: none (the kernels read only `kind`, empty, for the market-only path).
_PLAIN = OrderArrays(*(np.empty(0, dtype=d) for d in (np.int8, float, float, float, bool, float, float)))
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

    `source` names the signals in error messages (the file path). CANCEL lines cancel their order after
    their bar, if it is still open then."""
    mkt = market if isinstance(market, Market) else Market.from_bars(market)
    if CANCELS not in signals.columns:
        return _backtest(mkt, _rows(mkt, signals, source), config or BacktestConfig())
    is_cancel = signals["action"] == "CANCEL"
    rows = _rows(mkt, signals.filter(~is_cancel).drop(CANCELS), source)
    return _backtest(mkt, rows, config or BacktestConfig(), _cancels(mkt, rows, signals.filter(is_cancel), source))


class Cancels(NamedTuple):
    """A signals file's cancels, in time order: the order row each cancels and the bar after which it does."""

    row: np.ndarray
    bar: np.ndarray


def _cancels(market: Market, rows: SignalRows, cancels: pl.DataFrame, source: str) -> Cancels:
    index = {sid: i for i, sid in enumerate(rows.frame["id"].to_list())}
    targets = [index.get(c) for c in cancels[CANCELS].to_list()]
    if None in targets:
        i = targets.index(None)
        line = int(cancels[LINE][i]) if LINE in cancels.columns and cancels[LINE][i] is not None else None
        raise InputError(source, f"CANCEL of '{cancels[CANCELS][i]}': no such order in the signals", line=line,
                         field=CANCELS)  # fmt: skip
    bars = np.searchsorted(market.times, _epoch_us(cancels["timestamp"]), side="right") - 1
    order = np.argsort(bars, kind="stable")
    return Cancels(np.asarray(targets, dtype=np.int64)[order], bars[order])


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
    bars = np.searchsorted(market.times, ts, side="right") - 1  # the last bar at or before each signal
    return SignalRows(sig, ts, bars, _symbol_codes(market, sig, source),
                      (sig["action"] == "BUY").to_numpy(), qty, weight, order_arrays(sig))


def _backtest(mkt: Market, rows: SignalRows, cfg: BacktestConfig, cancels: Cancels | None = None) -> BacktestResult:
    fills, status, ordered = _simulate(mkt, rows, cfg, cancels)
    return result(mkt, rows, cfg, fills, status, ordered)


def signals_outcome(market: Market, signals: pl.DataFrame, config: BacktestConfig, source: str = "signals"
                    ) -> Outcome:  # fmt: skip
    """run_backtest's simulation and metrics of signals without cancels, without its tables: what a sweep's
    combination reads (backtest.events.event_outcome is an event strategy's)."""
    rows = _rows(market, signals, source)
    fills, status, _ = _simulate(market, rows, config)
    return outcome(market, config, fills, status, rows.symbol)


def _simulate(mkt: Market, rows: SignalRows, cfg: BacktestConfig, cancels: Cancels | None = None
              ) -> tuple[arrays.Fills, np.ndarray, bool]:  # fmt: skip
    """The fills, each order's status and whether they went live in signal order."""
    rules = arrays.Rules.of(cfg)
    prices = arrays.Prices(mkt.times, mkt.open, mkt.high, mkt.low, mkt.close, mkt.session_end)
    full = np.array([mkt.is_full(s) for s in range(mkt.n_symbols)])
    spec = rows.orders or _PLAIN
    exec_t, status, live, ordered = kernels.schedule(mkt.times, mkt.close, full, rows.time, rows.bar, rows.symbol,
                                                     rules.at_close, spec.kind)
    orders = arrays.Orders(exec_t, rows.symbol, rows.buy, rows.quantity, rows.weight, status, live, rows.orders is None,
                           *spec)  # fmt: skip
    if cancels is None:
        fills = kernels.simulate(prices, orders, rules)
    else:  # a signals file with cancels (an event strategy's): numba's kernel, loaded only then
        from marketboss.backtest import nb

        fills = nb.simulate_canceling(prices, orders, rules, cancels.row, cancels.bar)
    return fills, status, ordered


class Outcome(NamedTuple):
    """A simulation's outcome as arrays, before any table: what result() makes its frames of, and all a sweep's
    combination reads (its metrics and each symbol's part)."""

    equity: arrays.Equity
    trips: arrays.RoundTrips
    fills: arrays.Fills
    status: np.ndarray  # per order
    symbol: np.ndarray  # per order
    metrics: dict[str, Any]


def outcome(mkt: Market, cfg: BacktestConfig, fills: arrays.Fills, status: np.ndarray, symbol: np.ndarray) -> Outcome:
    """The equity bar by bar, the round trips and the metrics of a simulation's fills and its orders' status (and
    symbol)."""
    prices = arrays.Prices(mkt.times, mkt.open, mkt.high, mkt.low, mkt.close, mkt.session_end)
    # numpy's allocations of this size get huge pages, numba's do not: faulting in numba's pages cost
    # mark 3-4x its time on 1M bars (measured)
    eq = arrays.Equity(np.empty(mkt.n_times), np.empty(mkt.n_times), np.empty(mkt.n_times))
    exposed, returns = kernels.mark(mkt.close, fills, cfg.cash, eq)
    tr = kernels.round_trips(prices, fills)
    counts = np.bincount(status, minlength=len(STATUS))
    metrics = equity_metrics(mkt.times, eq.equity, initial=cfg.cash, periods_per_year=mkt.bars_per_year,
                             stats=ReturnStats.from_kernel(mkt.n_times, returns))
    metrics.update(
        trade_metrics_of(
            kernels.trade_stats(tr.pnl, tr.return_pct, tr.days, tr.closed),
            tr.pnl.shape[0],
            fills.row.shape[0],
            float(fills.commission.sum()),
            exposure_pct=exposed / mkt.n_times * 100.0,
            buy_hold_return_pct=buy_and_hold_pct(mkt),
            rejected_orders=int(counts[arrays.REJECTED_CASH]),
            unfilled_orders=int(counts[list(arrays.UNFILLED_STATUSES)].sum()),
        )
    )
    return Outcome(eq, tr, fills, status, symbol, metrics)


def result(mkt: Market, rows: SignalRows, cfg: BacktestConfig, fills: arrays.Fills, status: np.ndarray, ordered: bool
           ) -> BacktestResult:
    """The result tables and metrics of a simulation's fills and the orders' status (`ordered`: the orders went
    live in signal order), valued bar by bar from the fills."""
    out = outcome(mkt, cfg, fills, status, rows.symbol)
    eq, tr = out.equity, out.trips
    sig = rows.frame
    ids = sig["id"]
    all_filled = fills.row.shape[0] == sig.height
    if all_filled and ordered and bool((fills.row[1:] > fills.row[:-1]).all()):  # fill i is signal i
        signal_id, symbol, side, signal_ts = ids, sig["symbol"], sig["action"], sig["timestamp"]
    else:
        signal_id, symbol, side = ids[fills.row], pick(mkt.symbols, fills.symbol), pick(("SELL", "BUY"), fills.buy)
        signal_ts = _ts("", np.take(rows.time, fills.row))
    fills_frame = pl.DataFrame([
        _ts("timestamp", fills.time),
        signal_id.alias("signal_id"),
        symbol.alias("symbol"),
        side.alias("side"),
        pl.Series("qty", fills.qty),
        pl.Series("price", fills.price),
        pl.Series("commission", fills.commission),
        signal_ts.alias("signal_timestamp"),
        *([] if rows.orders is None else [pick(_LEG_NAMES, fills.leg).alias("leg")]),
    ])
    exit_ids = ids[np.maximum(tr.exit_row, 0)].alias("exit_signal_id")
    open_end = np.flatnonzero(tr.exit_row < 0)  # round trips still open at the end have no exit signal
    if open_end.shape[0]:
        exit_ids.scatter(open_end, None)
    trades = pl.DataFrame([
        pick(mkt.symbols, tr.symbol).alias("symbol"),
        pick(("SHORT", "LONG"), tr.long).alias("side"),
        pl.Series("qty", tr.qty),
        _ts("entry_time", tr.entry_time),
        pl.Series("entry_price", tr.entry_price),
        _ts("exit_time", tr.exit_time),
        pl.Series("exit_price", tr.exit_price),
        pl.Series("pnl", tr.pnl),
        pl.Series("return_pct", tr.return_pct),
        ids[tr.entry_row].alias("entry_signal_id"),
        exit_ids,
        pl.Series("duration_days", tr.days),
        pl.Series("bars", tr.bars),
        pl.Series("closed", tr.closed),
    ])  # the kernel records round trips in the order they close; those still open come last
    orders = pl.DataFrame([
        ids.alias("signal_id"), sig["timestamp"], sig["symbol"], sig["action"], sig["quantity"], sig["target_weight"],
        pick(_STATUS_NAMES, status).alias("status"),
    ])
    equity = pl.DataFrame([mkt.timestamps(), pl.Series("cash", eq.cash),
                           pl.Series("positions_value", eq.positions_value), pl.Series("equity", eq.equity)])
    return BacktestResult(cfg, equity, fills_frame, trades, orders, out.metrics)


def pick(values: Sequence[str | None], codes: np.ndarray) -> pl.Series:
    """values[codes[i]] for every i (codes: integers, or booleans picking values[1] when true). Indexing with the
    numpy array: Series.gather goes through a query per call, 3x slower on a few hundred rows (also on 100,000)."""
    return pl.Series(values, dtype=pl.String)[codes.view(np.int8) if codes.dtype == np.bool_ else codes]


def run_strategy(
    market: Market | pl.DataFrame, strategy: Strategy[Any], config: BacktestConfig | None = None
) -> tuple[BacktestResult, pl.DataFrame]:
    """Generate the strategy's signals and backtest them: (result, signals). The same as run_backtest of
    those signals, without looking their bars and symbols up again (an event strategy: its event run, whose
    signals backtest to the same fills)."""
    from marketboss.strategies.events import EventStrategy

    mkt = market if isinstance(market, Market) else Market.from_bars(market)
    cfg = strategy_config(config, strategy)
    if isinstance(strategy, EventStrategy):  # its orders depend on its fills: the event run is its backtest
        out: tuple[BacktestResult, pl.DataFrame] = strategy.backtest(mkt, cfg)
        return out
    rows = strategy.signal_rows(mkt)
    return _backtest(mkt, rows, cfg), rows.frame


def strategy_config(config: BacktestConfig | None, strategy: Strategy[Any]) -> BacktestConfig:
    """The config of a strategy's run: long_only when its parameters are (its sales never go through zero),
    whatever else `config` says. Every run of a strategy (run_strategy, research.windows.evaluate, the event run;
    the sweep's kernel from each combination's own parameters) goes through here."""
    cfg = config or BacktestConfig()
    if cfg.long_only or not getattr(strategy.params, "long_only", False):
        return cfg
    return cfg.model_copy(update={"long_only": True})
