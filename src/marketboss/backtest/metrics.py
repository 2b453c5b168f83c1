"""Performance metrics: the one implementation the CLI, the dashboard and the paper comparison all use.

Conventions follow empyrical's definitions exactly (tests check agreement to 1e-9): simple per-bar returns,
risk-free rate 0, sample standard deviation (ddof=1), Sortino's downside deviation as the root mean square of
the negative returns over all bars, CAGR = growth ** (periods_per_year / n_returns) - 1, max drawdown against
the running peak including the starting value. Annualisation follows the bar frequency (periods_per_year,
from marketboss.data.stats.bars_per_year). Undefined ratios are NaN (written to JSON as null).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import polars as pl

from marketboss.backtest.arrays import TradeAcc
from marketboss.backtest.kernels import equity_stats, trade_stats
from marketboss.data.market import Market
from marketboss.data.schema import TIMESTAMP_DTYPE
from marketboss.data.stats import bars_per_year

#: (key, label) in display order: tables in the CLI, the dashboard and `runs compare` use this.
METRICS: tuple[tuple[str, str], ...] = (
    ("start", "Start"),
    ("end", "End"),
    ("initial_equity", "Initial equity $"),
    ("final_equity", "Final equity $"),
    ("pnl", "P&L $"),
    ("total_return_pct", "Return %"),
    ("buy_hold_return_pct", "Buy & hold return %"),
    ("cagr_pct", "CAGR %"),
    ("annual_volatility_pct", "Volatility (ann.) %"),
    ("sharpe", "Sharpe"),
    ("sortino", "Sortino"),
    ("calmar", "Calmar"),
    ("max_drawdown_pct", "Max drawdown %"),
    ("max_drawdown_duration_days", "Max drawdown duration (days)"),
    ("exposure_pct", "Exposure %"),
    ("n_trades", "Trades (closed)"),
    ("win_rate_pct", "Win rate %"),
    ("profit_factor", "Profit factor"),
    ("expectancy", "Expectancy $/trade"),
    ("avg_trade_pct", "Avg trade %"),
    ("best_trade_pct", "Best trade %"),
    ("worst_trade_pct", "Worst trade %"),
    ("avg_trade_duration_days", "Avg trade duration (days)"),
    ("open_trades", "Open trades at end"),
    ("n_fills", "Fills"),
    ("commissions", "Commissions $"),
    ("rejected_orders", "Rejected orders (cash)"),
    ("unfilled_orders", "Unfilled orders"),
)


# ------------------------------------------------------------------------------ return-series statistics


@dataclass(frozen=True)
class ReturnStats:
    """The per-bar simple returns of an equity curve (its start value first), summarised in one compiled
    pass (nb.equity_stats); every ratio below is derived from these and nothing else."""

    n: int
    mean: float
    std: float  # sample (ddof=1); exactly 0 when all returns are equal
    downside: float  # root mean square of min(r, 0)
    growth: float  # product of (1 + r)
    max_drawdown: float  # negative fraction
    dd_start: int  # longest underwater spell, as indices of [start value, equity...]
    dd_end: int

    @classmethod
    def of(cls, equity: np.ndarray, initial: float) -> ReturnStats:
        return cls.from_kernel(int(equity.shape[0]), equity_stats(float(initial), np.ascontiguousarray(equity)))

    @classmethod
    def from_kernel(cls, n: int, stats: tuple[float, float, float, float, float, int, int]) -> ReturnStats:
        """From nb.equity_stats' tuple, or the same tuple gathered by the simulation kernel as it ran."""
        mean, std, down, growth, mdd, start, end = stats
        return cls(n, mean, std, down, growth, mdd, int(start), int(end))

    def annual_volatility(self, ppy: float) -> float:
        return self.std * float(np.sqrt(ppy)) if self.n >= 2 else NAN

    def sharpe(self, ppy: float) -> float:
        return _ratio(self.mean, self.std) * float(np.sqrt(ppy)) if self.n >= 2 else NAN

    def sortino(self, ppy: float) -> float:
        return _ratio(self.mean * ppy, self.downside * float(np.sqrt(ppy))) if self.n >= 2 else NAN

    def cagr(self, ppy: float) -> float:
        if self.n < 1:
            return NAN
        with np.errstate(invalid="ignore", over="ignore"):
            return float(np.float64(self.growth) ** (ppy / self.n) - 1.0)

    def calmar(self, ppy: float) -> float:
        if not self.max_drawdown < 0:
            return NAN
        out = self.cagr(ppy) / abs(self.max_drawdown)
        return NAN if np.isinf(out) else out


NAN = float("nan")
_EPOCH = datetime(1970, 1, 1)


def _ratio(num: float, den: float) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.divide(np.float64(num), np.float64(den)))


# ------------------------------------------------------------------------------------------- metrics


def _epoch_us(timestamps: Sequence[datetime] | pl.Series | np.ndarray) -> np.ndarray:
    if isinstance(timestamps, np.ndarray) and timestamps.dtype == np.int64:
        return timestamps
    s = timestamps if isinstance(timestamps, pl.Series) else pl.Series(list(timestamps))
    if s.dtype != TIMESTAMP_DTYPE:
        s = s.cast(pl.Datetime("us")) if not isinstance(s.dtype, pl.Datetime) else s
        s = s.dt.replace_time_zone("UTC") if s.dtype.time_zone is None else s.dt.convert_time_zone("UTC")  # type: ignore[attr-defined]
    return s.dt.epoch("us").to_numpy()


def periods_per_year(ts_us: np.ndarray) -> float:
    """The bar-frequency rule of marketboss.data.stats applied to a bare series of timestamps."""
    ts = pl.Series("timestamp", ts_us).cast(pl.Datetime("us")).cast(TIMESTAMP_DTYPE)
    return bars_per_year(pl.DataFrame({"timestamp": ts, "symbol": "equity"}))


def _iso(us: int) -> str:
    """Seconds resolution, as polars' strftime writes it; Python's datetime is faster for one value, and
    polars covers the years it cannot (before 1, after 9999)."""
    try:
        return (_EPOCH + timedelta(microseconds=us)).isoformat(timespec="seconds") + "Z"
    except OverflowError:
        return pl.Series([us]).cast(pl.Datetime("us")).dt.strftime("%Y-%m-%dT%H:%M:%SZ")[0]


def equity_metrics(
    timestamps: Sequence[datetime] | pl.Series | np.ndarray,
    equity: Sequence[float] | np.ndarray,
    *,
    initial: float | None = None,
    periods_per_year: float | None = None,
    stats: ReturnStats | None = None,
) -> dict[str, Any]:
    """Return, risk and drawdown of an equity curve (a backtest's or the paper account's equity log).

    `initial` is the starting cash, before the first timestamp (a backtest's); without it the first equity
    value is the start (a paper equity log). `periods_per_year` defaults to the frequency of `timestamps`
    (epoch microseconds, datetimes or a polars Datetime series). `stats` are the curve's ReturnStats when
    already known (a backtest gathers them while it simulates), instead of a pass over the curve.
    """
    eq = np.asarray(equity, dtype=np.float64)
    ts = _epoch_us(timestamps)
    if eq.shape[0] == 0 or eq.shape[0] != ts.shape[0]:
        raise ValueError(f"need one equity value per timestamp ({eq.shape[0]} vs {ts.shape[0]})")
    ppy = periods_per_year if periods_per_year is not None else _ppy_default(ts)
    if initial is None:  # the first value is the start, not a return

        def at(i: int) -> int:
            return int(ts[i])

        start_value, eq = float(eq[0]), eq[1:]
    else:  # the start comes before the first timestamp: date it at the first bar

        def at(i: int) -> int:
            return int(ts[max(i - 1, 0)])

        start_value = float(initial)
    st = stats if stats is not None else ReturnStats.of(eq, start_value)
    final = float(eq[-1]) if eq.shape[0] else start_value
    return {
        "start": _iso(int(ts[0])),
        "end": _iso(int(ts[-1])),
        "periods": st.n,
        "periods_per_year": float(ppy),
        "initial_equity": start_value,
        "final_equity": final,
        "pnl": final - start_value,
        "total_return_pct": (final / start_value - 1.0) * 100.0 if start_value > 0 else math.nan,  # (unfunded)
        "cagr_pct": st.cagr(ppy) * 100.0 if start_value > 0 else math.nan,
        "annual_volatility_pct": st.annual_volatility(ppy) * 100.0,
        "sharpe": st.sharpe(ppy),
        "sortino": st.sortino(ppy),
        "calmar": st.calmar(ppy),
        "max_drawdown_pct": st.max_drawdown * 100.0,
        "max_drawdown_duration_bars": st.dd_end - st.dd_start,
        "max_drawdown_duration_days": (at(st.dd_end) - at(st.dd_start)) / 86_400e6,
    }


def _ppy_default(ts: np.ndarray) -> float:
    return periods_per_year(ts) if ts.shape[0] > 1 else 252.0


def trade_metrics(
    trades: pl.DataFrame,
    fills: pl.DataFrame,
    *,
    exposure_pct: float | None = None,
    buy_hold_return_pct: float | None = None,
    rejected_orders: int = 0,
    unfilled_orders: int = 0,
) -> dict[str, Any]:
    """Trade statistics over closed round trips (trades.jsonl rows with closed = true); open ones are counted."""
    columns = ("pnl", "return_pct", "duration_days", "closed")
    arrays = [trades[c].to_numpy() for c in columns] if trades.height else [np.empty(0)] * 3 + [np.empty(0, bool)]
    commissions = float(fills["commission"].to_numpy().sum()) if fills.height else 0.0  # as engine.outcome sums
    return trade_metrics_of(trade_stats(*arrays), trades.height, fills.height, commissions, exposure_pct=exposure_pct,
                            buy_hold_return_pct=buy_hold_return_pct, rejected_orders=rejected_orders,
                            unfilled_orders=unfilled_orders)  # fmt: skip


def trade_metrics_of(
    stats: TradeAcc,
    n_round_trips: int,
    n_fills: int,
    commissions: float,
    *,
    exposure_pct: float | None = None,
    buy_hold_return_pct: float | None = None,
    rejected_orders: int = 0,
    unfilled_orders: int = 0,
) -> dict[str, Any]:
    """trade_metrics of counts, without the tables: `n_round_trips` open ones included, the fills' count and
    commissions (a backtest's arrays have them: engine.outcome)."""
    n, n_win, wins, losses, total, total_ret, best, worst, days = stats
    losses = abs(losses)  # +0.0 without losers: winners alone give +inf, not -inf
    nan = float("nan")
    return {
        "n_trades": n,
        "open_trades": int(n_round_trips - n),
        "win_rate_pct": n_win / n * 100.0 if n else nan,
        "profit_factor": _ratio(wins, losses) if n and (losses > 0 or wins > 0) else nan,
        "expectancy": total / n if n else nan,
        "avg_trade_pct": total_ret / n if n else nan,
        "best_trade_pct": best if n else nan,
        "worst_trade_pct": worst if n else nan,
        "avg_trade_duration_days": days / n if n else nan,
        "n_fills": int(n_fills),
        "commissions": float(commissions),
        "exposure_pct": nan if exposure_pct is None else float(exposure_pct),
        "buy_hold_return_pct": nan if buy_hold_return_pct is None else float(buy_hold_return_pct),
        "rejected_orders": int(rejected_orders),
        "unfilled_orders": int(unfilled_orders),
    }


# ----------------------------------------------------------------------- benchmark, calendar and rolling returns


def buy_and_hold_equity(market: Market, cash: float, at: np.ndarray | None = None) -> np.ndarray:
    """The equity of `cash` split equally across the market's symbols, each share bought at the symbol's first
    close and held to its last: cash until that first close, then close / first close of it, kept at the last
    close after the symbol's last bar. Valued at the market's time indices `at` (default: every time).

    The benchmark line of the reports and the source of the scalar buy_hold_return_pct (its last value), so
    the two always agree."""
    n = market.n_times if at is None else int(at.shape[0])
    growth = np.zeros(n)
    for s in range(market.n_symbols):
        rows = market.rows(s)
        first = market.close[rows[0], s]
        if rows.shape[0] == market.n_times:  # a bar at every time: the row is the time
            close = market.close[:, s] if at is None else market.close[at, s]
        else:
            own = np.searchsorted(rows, np.arange(n) if at is None else at, side="right") - 1  # last bar <= t
            close = np.where(own >= 0, market.close[rows[np.maximum(own, 0)], s], first)
        growth += close / first
    return growth * (float(cash) / market.n_symbols)


def buy_and_hold_pct(market: Market) -> float:
    """Return % of the equal-weight buy and hold of every symbol in the data, first close to last close: the
    last value of buy_and_hold_equity."""
    return float((buy_and_hold_equity(market, 1.0, at=np.array([market.n_times - 1]))[0] - 1.0) * 100.0)


Period = Literal["year", "month"]


def calendar_returns(
    timestamps: pl.Series, curves: dict[str, np.ndarray], initial: float, every: Period = "year"
) -> pl.DataFrame:
    """Return % per calendar year (or month, UTC) of equity curves that start from `initial` before the first
    timestamp: columns year (and month), then one per curve, named as in `curves`. A period's return runs from
    the previous period's last value (the first period's from `initial`) to its own last value."""
    keys = [pl.col("timestamp").dt.year().alias("year")]
    if every == "month":
        keys.append(pl.col("timestamp").dt.month().alias("month"))
    frame = pl.DataFrame([timestamps.alias("timestamp"), *(pl.Series(k, v, pl.Float64) for k, v in curves.items())])
    ends = frame.group_by(keys, maintain_order=True).agg(pl.col(k).last() for k in curves)
    return ends.with_columns(
        ((pl.col(k) / pl.col(k).shift(1).fill_null(float(initial)) - 1.0) * 100.0) for k in curves
    )


def yearly_returns(timestamps: pl.Series, equity: np.ndarray, benchmark: np.ndarray, initial: float) -> pl.DataFrame:
    """Return % per calendar year of a run (strategy_pct), of its buy-and-hold benchmark (buy_hold_pct) and the
    strategy's lead over the benchmark in percentage points (difference_pct)."""
    out = calendar_returns(timestamps, {"strategy_pct": equity, "buy_hold_pct": benchmark}, initial)
    return out.with_columns((pl.col("strategy_pct") - pl.col("buy_hold_pct")).alias("difference_pct"))


def rolling_window(bars_per_year: float) -> int:
    """Bars in a rolling one-year window: the data's bars per year (252 for daily US equities)."""
    return max(1, round(bars_per_year))


def rolling_returns(equity: np.ndarray, initial: float, window: int) -> np.ndarray:
    """Return % over the last `window` bars at every bar (the start value counts as the bar before the first),
    NaN until `window` bars have passed."""
    values = np.concatenate(([float(initial)], np.asarray(equity, dtype=np.float64)))
    out = np.full(values.shape[0] - 1, np.nan)
    if window < values.shape[0]:
        out[window - 1 :] = (values[window:] / values[:-window] - 1.0) * 100.0
    return out


@dataclass(frozen=True)
class VersusBuyAndHold:
    """A run beside the equal-weight buy and hold of the same market, as the report, the CLI and the dashboard
    show it: the benchmark line, yearly returns of both, and both curves' rolling one-year returns."""

    benchmark: np.ndarray  # buy_and_hold_equity at every bar of the run
    yearly: pl.DataFrame  # yearly_returns: year, strategy_pct, buy_hold_pct, difference_pct
    window: int  # bars in the rolling window (one year of the data's bars)
    rolling: np.ndarray  # the run's rolling return %, NaN for the first window - 1 bars
    rolling_benchmark: np.ndarray

    @classmethod
    def of(cls, equity: pl.DataFrame, market: Market, initial: float) -> VersusBuyAndHold:
        """`equity`: a backtest's equity frame on `market` (one row per market time), started from `initial`."""
        values = equity["equity"].to_numpy()
        bench = buy_and_hold_equity(market, initial)
        window = rolling_window(market.bars_per_year)
        return cls(bench, yearly_returns(equity["timestamp"], values, bench, initial), window,
                   rolling_returns(values, initial, window), rolling_returns(bench, initial, window))  # fmt: skip


def json_safe(metrics: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinities are not JSON: they become null."""
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, float) and not np.isfinite(v):
            out[k] = None
        elif isinstance(v, dict):
            out[k] = json_safe(v)
        else:
            out[k] = v
    return out
