"""Backtest against paper, fill by fill: the same signals, joined by signal id.

The backtest is re-run over the paper run's window, on the signals the paper run handled, starting from the
paper account's first equity: so the difference that remains is execution (slippage, partial and missed
fills, costs), not a different period or sizing. Exits compare like with like: the exit percentages the paper
run used go on the backtest's signals by the same function, and each exit's fill is joined by (signal id,
leg), the leg's own fill beside the backtest's. Shared by `marketboss reconcile` and the dashboard.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from marketboss.backtest import kernels
from marketboss.backtest.arrays import Equity, Fills
from marketboss.backtest.costs import BacktestConfig, FillMode
from marketboss.backtest.engine import BacktestResult, run_backtest
from marketboss.backtest.metrics import equity_metrics, trade_metrics
from marketboss.data.calendar import Timeframe, infer_timeframe
from marketboss.data.grid import on_grid
from marketboss.data.market import Market
from marketboss.errors import MarketBossError
from marketboss.execution.journal import journal_path, recorded_runs
from marketboss.execution.slippage import bps
from marketboss.orders.codes import NO_EXIT
from marketboss.signals import CANCELS
from marketboss.signals.exits import Exits, with_exits

#: Quantities within this fraction of each other are the same (fractional shares sized at prices a tick apart:
#: 152.861342 and 152.860875; a spread left out of the sizing, 1e-4, still counts).
SAME_QUANTITY = 1e-5
#: A fill this far from the backtest's quantity (and more than a share) left another position: the status counts it.
MATERIAL = 0.01


@dataclass(frozen=True)
class Comparison:
    backtest: BacktestResult
    paper: dict[str, Any]  # equity metrics of the paper account plus trade counts
    joined: pl.DataFrame  # one row per signal: backtest fill beside paper fill, slippage in bps and dollars
    summary: dict[str, Any]


def compare_backtest_paper(
    bars: pl.DataFrame,
    signals: pl.DataFrame,
    paper_trades: pl.DataFrame,
    paper_equity: pl.DataFrame,
    config: BacktestConfig | None = None,
    exits: Exits | None = None,
    timeframe: Timeframe | None = None,
) -> Comparison:
    """`signals` as read_signals_frame gives them; paper frames as execution.logs reads them; `exits` the exit
    percentages the paper run was given; `timeframe` the signals' bars, when longer than the data's (the bars are
    aggregated onto them, so that an order fills after the close of the bar that decided it)."""
    if timeframe is not None:
        bars = on_timeframe(bars, timeframe)
    if paper_equity.height < 1 or paper_trades.height < 1:
        raise MarketBossError("no paper trading yet: run `marketboss paper` (or scripts/run_paper_trading.py) first")
    traded = paper_trades["signal_id"].implode()
    ended = pl.col(CANCELS).is_in(traded) if CANCELS in signals.columns else pl.lit(False)  # a cancel of one
    handled = signals.filter(pl.col("id").is_in(traded) | ended)  # (the live loop's stop's: logged, not sent)
    if handled.is_empty():
        raise MarketBossError("the paper trades log shares no signal id with the signals file")
    # the log's records of these signals only (it is append-only: other runs', other files' are in it too)
    paper_trades = paper_trades.filter(pl.col("signal_id").is_in(handled["id"].implode()))
    if exits:
        handled = with_exits(handled, exits)
    start = handled["timestamp"].min()
    # to what paper saw last (its last snapshot, fill or record): a bar after it, which paper never traded on, would
    # let the backtest's exits trade there (a live session's stop-loss on the day after it ended)
    end = max(paper_equity["timestamp"].max(), paper_trades["timestamp"].max(),  # type: ignore[type-var]
              handled["timestamp"].max())  # fmt: skip
    window = bars.filter(pl.col("timestamp").is_between(start, end)).sort("timestamp", "symbol")
    start_equity = float(paper_equity["portfolio_value"][0])
    cfg = (config or BacktestConfig()).model_copy(update={"cash": start_equity})
    mkt = Market.from_bars(window)
    # a signal of a symbol the data has no bars of here traded nowhere (paper recorded the broker's refusal):
    # the backtest leaves it out too, where it stopped reconcile naming no file
    bt = run_backtest(mkt, handled.filter(pl.col("symbol").is_in(list(mkt.symbols))), cfg)
    marked = _marked(mkt, paper_trades, paper_equity)
    if marked is not None:  # the paper account valued as the backtest's, bar by bar, from its own fills
        aligned = pl.DataFrame({"timestamp": bt.equity["timestamp"], "bt": bt.equity["equity"], "paper": marked,
                                "snapshot": True})  # fmt: skip
        curve = equity_metrics(mkt.times, marked, initial=start_equity, periods_per_year=mkt.bars_per_year)
    else:  # the equity log's snapshots, each session's last carried over the days without one
        aligned = _align_daily(bt.equity, paper_equity)
        curve = equity_metrics(aligned["timestamp"], aligned["paper"].to_numpy())
    # Equity metrics on the backtest's bars (or days), so that Sharpe and drawdown compare like for like.
    paper = {**paper_metrics(paper_trades, paper_equity), **curve}
    joined = join_fills(bt.fills, paper_trades)
    slip = joined.filter(pl.col("slippage_bps").is_not_null())
    missed = joined.filter(pl.col("bt_qty").is_not_null() & pl.col("paper_qty").fill_null(0).eq(0)).height
    paper_only = joined.filter(pl.col("bt_qty").is_null() & (pl.col("paper_qty") > 0)).height
    both = joined.filter((pl.col("paper_qty") > 0) & (pl.col("bt_qty") > 0))
    apart = (pl.col("paper_qty") - pl.col("bt_qty")).abs()
    other_qty = both.filter(apart > SAME_QUANTITY * pl.col("bt_qty") + 1e-9).height
    # what the status counts: more than a share and 1% apart (a weight sized at the close that decided it, as the
    # live loop sends it, where the backtest sizes at the next open, is a share or so apart: the same trade)
    other_position = both.filter(apart > pl.max_horizontal(pl.lit(1.0), MATERIAL * pl.col("bt_qty")) + 1e-9).height
    bt_ret = float(bt.metrics["total_return_pct"])
    summary = {
        "backtest_return_pct": bt_ret,
        "paper_return_pct": paper["total_return_pct"],
        "return_difference_pct": paper["total_return_pct"] - bt_ret,
        "backtest_sharpe": bt.metrics["sharpe"],
        "paper_sharpe": paper["sharpe"],
        "backtest_max_drawdown_pct": bt.metrics["max_drawdown_pct"],
        "paper_max_drawdown_pct": paper["max_drawdown_pct"],
        "backtest_fills": bt.fills.height,
        "paper_fills": paper["filled_orders"],
        "backtest_trades": bt.metrics["n_trades"],
        "paper_trades": paper["n_trades"],
        "backtest_win_rate_pct": bt.metrics["win_rate_pct"],
        "paper_win_rate_pct": paper["win_rate_pct"],
        "missed_in_paper": missed,
        # what the backtest did not fill (refused for cash: the paper account has margin, the backtest's not)
        "filled_in_paper_only": paper_only,
        # filled in both, of another size (a weight sized from another equity or cash): the count hides it; a
        # fractional weight's shares differ in their last digits (sized at the broker's price, on its tick, where
        # the backtest sizes at the bar's open): not counted under SAME_QUANTITY of them
        "other_quantity": other_qty,
        "avg_slippage_bps": float(slip["slippage_bps"].mean()) if slip.height else float("nan"),  # type: ignore[arg-type]
        "slippage_usd": float(slip["slippage_usd"].sum()) if slip.height else 0.0,
        "backtest_commissions": bt.metrics["commissions"],
        "paper_commissions": paper["commissions"],
        "daily_return_correlation": _corr(aligned.filter(pl.col("snapshot"))),
        "status": status(paper["pnl"], bt.fills.height, paper["filled_orders"], missed, paper_only, other_position,
                         joined.filter((pl.col("bt_qty") > 0) | (pl.col("paper_qty") > 0)).height),
    }
    return Comparison(bt, paper, joined, summary)


def run_settings(trades_path: Path, given: Collection[str] = ()) -> dict[str, Any]:
    """The settings the runs on this trades log traded with, as their journal recorded them (Journal.run):
    `timeframe`, `long_only`, `spread_bps`, `slippage_bps` (the local broker's; 0 for Alpaca, whose spread is
    not known), each only when recorded. Runs that disagree on one: an error naming the option that decides,
    unless that option is `given` (the error said to give it, and giving it changed nothing)."""
    runs = recorded_runs(trades_path)
    values: dict[str, set[Any]] = {}
    for r in runs:
        costs = r.get("costs") or {}
        exits = r.get("exits")
        for name, v in (("timeframe", r.get("timeframe")), ("long_only", r.get("long_only")),
                        ("spread_bps", costs.get("spread_bps", 0.0)),
                        ("slippage_bps", costs.get("slippage_bps", 0.0)),
                        ("exits", None if exits is None else tuple(sorted(exits.items()))),
                        ("fractional", r.get("fractional"))):  # fmt: skip
            if v is not None:
                values.setdefault(name, set()).add(v)
    for name, seen in values.items():
        if len(seen) > 1 and name not in given:
            shown = " and ".join(sorted(map(_setting, seen)))
            option = ("--stop-loss-pct, --take-profit-pct or --trail-percent" if name == "exits"
                      else f"--{name.replace('_', '-')}")  # fmt: skip
            raise MarketBossError(f"{journal_path(trades_path)}: its runs traded with {name} {shown}: give "
                                  f"{option} (the one of the signals reconciled)")  # fmt: skip
    return {name: seen.pop() for name, seen in values.items() if name not in given}


def _setting(value: Any) -> str:
    """A recorded setting as a reader gives it: exits as `stop_loss_pct=5` (none: `none`), others as they are."""
    if isinstance(value, tuple):
        return ", ".join(f"{k}={v:g}" for k, v in value) or "none"
    return str(value)


@dataclass(frozen=True)
class ReconcileSettings:
    """What the backtest of a reconcile runs with: its config, the signals' bars (None: the data's), and which
    settings came from the runs' journal (the rest were given)."""

    config: BacktestConfig
    timeframe: Timeframe | None
    recorded: dict[str, Any]
    exits: Exits

    def recorded_text(self) -> str:
        """The recorded settings as the options that give them (reconcile says them; the dashboard too)."""
        return " ".join(filter(None, (_option(k, v) for k, v in self.recorded.items())))


def _option(name: str, value: Any) -> str:
    """A recorded setting as the option that gives it."""
    if name in ("long_only", "fractional"):
        return f"--{name.replace('_', '-')}" if value else ("--no-long-only" if name == "long_only" else "")
    if name == "exits":
        return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in value)
    return f"--{name.replace('_', '-')} {value}"


def reconcile_settings(trades_path: Path, commission: float = 0.0, fractional: bool | None = None, *,
                       timeframe: str | None = None, long_only: bool | None = None, spread_bps: float | None = None,
                       slippage_bps: float | None = None, exits: Exits | None = None) -> ReconcileSettings:  # fmt: skip
    """Each setting as given (None: not given), else as the runs on the trades log recorded it (run_settings), else
    its default: the one rule of `marketboss reconcile` and the dashboard's comparison (before the exits and
    fractional sizing were recorded, a bare reconcile of the demo's paper run, which put a 5% stop on its signals,
    said its fills differed). A value out of range: an error naming its option."""
    from pydantic import ValidationError

    from marketboss.backtest.costs import Costs

    given = {"timeframe": timeframe, "long_only": long_only, "spread_bps": spread_bps, "slippage_bps": slippage_bps,
             "exits": exits, "fractional": fractional}  # fmt: skip
    recorded = run_settings(trades_path, [k for k, v in given.items() if v is not None])
    got = {**given, **recorded}
    if isinstance(got["exits"], tuple):  # as recorded: (name, percent) pairs
        got["exits"] = Exits(**dict(got["exits"]))
    try:
        costs = Costs(commission=commission, slippage_bps=got["slippage_bps"] or 0.0,
                      spread_bps=got["spread_bps"] or 0.0)  # fmt: skip
    except ValidationError as exc:
        err = exc.errors()[0]
        raise MarketBossError(f"--{str(err['loc'][-1]).replace('_', '-')}: {err['msg']}") from None
    config = BacktestConfig(costs=costs, fractional=bool(got["fractional"]), long_only=bool(got["long_only"]))
    return ReconcileSettings(config, Timeframe.parse(got["timeframe"]) if got["timeframe"] else None, recorded,
                             got["exits"] or Exits())  # fmt: skip


def on_timeframe(bars: pl.DataFrame, timeframe: Timeframe) -> pl.DataFrame:
    """The bars on the signals' timeframe: a signal is stamped at its bar's start and decided at its close, so a
    backtest on shorter bars would fill it inside the bar that decided it (a 15Min bar's 13:45 signal, decided at
    14:00, at the 13:50 open of 5-minute data). Longer bars are made as the live loop makes them (data.grid.on_grid);
    shorter ones cannot be."""
    native = infer_timeframe(bars)
    if timeframe == native:
        return bars
    if timeframe.is_daily or native.is_daily or timeframe.minutes % native.minutes:
        raise MarketBossError(f"the signals' bars are {timeframe}, the data's {native}, which make no {timeframe} "
                              f"bars: give --data bars of {timeframe} or of a length that divides it")  # fmt: skip
    return on_grid(bars, timeframe).bars


#: The share of the fills (backtest's or paper's, joined by signal id and leg) that may be missed in paper or
#: filled in paper only before the status says the two differ: beyond it the comparison is of other trades, and
#: the paper account's P&L says nothing about execution.
MISMATCH_LIMIT = 0.10


def status(pnl: float, bt_fills: int, paper_fills: int, missed: int, paper_only: int, other_position: int,
           fills: int) -> str:
    """The verdict: the fills first (a run that filled nothing, or other fills than the backtest's, is not a
    positive result whatever its P&L; a fill of another quantity leaves another position), then the paper
    account's P&L."""
    if paper_fills == 0 and bt_fills > 0:
        return f"❌ Nothing filled in paper ({bt_fills} backtest fills)"
    if missed + paper_only + other_position > MISMATCH_LIMIT * fills:
        return (f"⚠️ Fills differ ({missed} missed in paper, {paper_only} filled in paper only, {other_position} at "
                f"another quantity, of {fills})")
    return "✅ Positive" if pnl >= 0 else "⚠️ Below Initial"


def _marked(mkt: Market, trades: pl.DataFrame, equity: pl.DataFrame) -> np.ndarray | None:
    """The paper account's equity at each bar's close, valued as the backtest values its own (backtest.nb.mark:
    cash from each fill's price and commission, positions at the close) from the first snapshot's cash: its equity
    log is sparse (a replay snapshots it at fills), and a curve flat between snapshots hides drawdowns. None when
    that account did not start flat (what it held is not in the logs) or traded a symbol the bars lack."""
    if "cash" not in equity.columns or equity["cash"][0] is None:
        return None
    cash0, value0 = float(equity["cash"][0]), float(equity["portfolio_value"][0])
    if abs(value0 - cash0) > 1e-6 * max(abs(value0), 1.0):
        return None
    f = trades.filter(pl.col("filled_price").is_not_null() & (pl.col("qty").cast(pl.Float64) > 0))
    index = {sym: i for i, sym in enumerate(mkt.symbols)}
    if not set(f["symbol"].to_list()) <= set(index):
        return None
    f = f.sort("timestamp", maintain_order=True)
    times = f["timestamp"].dt.epoch("us").to_numpy()
    bar = np.maximum(np.searchsorted(mkt.times, times, side="right") - 1, 0)  # the bar it filled in
    n = f.height
    fills = Fills(np.arange(n, dtype=np.int64), bar.astype(np.int64), times.astype(np.int64),
                  np.array([index[s] for s in f["symbol"].to_list()], dtype=np.int64),
                  (f["side"].str.to_uppercase() == "BUY").to_numpy(),
                  f["qty"].cast(pl.Float64).to_numpy(), f["filled_price"].cast(pl.Float64).to_numpy(),
                  f["commission"].cast(pl.Float64).fill_null(0.0).to_numpy(), np.full(n, NO_EXIT, dtype=np.int8))
    out = Equity(np.empty(mkt.n_times), np.empty(mkt.n_times), np.empty(mkt.n_times))
    kernels.mark(mkt.close, fills, cash0, out)
    return out.equity


def paper_metrics(trades: pl.DataFrame, equity: pl.DataFrame) -> dict[str, Any]:
    """The paper account's equity metrics (from its equity log), order counts and round-trip statistics."""
    m = equity_metrics(equity["timestamp"], equity["portfolio_value"].to_numpy())
    filled = trades.filter(pl.col("qty").cast(pl.Float64).fill_null(0) > 0)
    round_trips = trade_metrics(paper_round_trips(filled), pl.DataFrame())
    return {
        **m,
        "n_trades": round_trips["n_trades"],
        "win_rate_pct": round_trips["win_rate_pct"],
        "filled_orders": filled.height,
        "orders_by_status": dict(trades.group_by("status").len().iter_rows()),
        "commissions": float(trades["commission"].cast(pl.Float64).fill_null(0).sum()),
        "last_update": equity["timestamp"].max(),
    }


def paper_round_trips(filled: pl.DataFrame) -> pl.DataFrame:
    """Paper fills matched into round trips by the backtest's own kernel (FIFO per symbol), so that paper and
    backtest win rates mean the same thing: each fill is replayed at its own price (a one-price bar at its
    timestamp, filled at that bar's close; fills of a symbol at one timestamp share their average price) with
    cash enough for all of them. Paper commissions are left out."""
    f = _with_leg(filled).filter(pl.col("filled_price").is_not_null() & (pl.col("qty").cast(pl.Float64) > 0)).select(
        "timestamp", "symbol", pl.col("side").str.to_uppercase().alias("action"),
        pl.col("qty").cast(pl.Float64).alias("quantity"), pl.col("filled_price").cast(pl.Float64).alias("price"),
        pl.coalesce(pl.concat_str(pl.col("signal_id").cast(pl.String), "leg", separator=":"),
                    pl.col("signal_id").cast(pl.String), pl.int_range(pl.len()).cast(pl.String)).alias("id"),
    )  # fmt: skip
    if f.is_empty():
        return pl.DataFrame()
    vwap = (pl.col("quantity") * pl.col("price")).sum() / pl.col("quantity").sum()
    bars = (
        f.group_by("timestamp", "symbol")
        .agg(vwap.alias("close"), pl.col("quantity").sum().cast(pl.Int64).alias("volume"))
        .with_columns(open=pl.col("close"), high=pl.col("close"), low=pl.col("close"))
        .sort("timestamp", "symbol")
    )
    signals = f.select(
        "id",
        "timestamp",
        "symbol",
        "action",
        "quantity",
        pl.lit(None, pl.String).alias("strategy"),
        "price",
        pl.lit(None, pl.Float64).alias("target_weight"),
    )
    cash = float((f["quantity"] * f["price"]).sum()) + 1.0
    config = BacktestConfig(cash=cash, fill=FillMode.CLOSE, fractional=True)
    return run_backtest(bars, signals, config, source="paper trades").trades


def _with_leg(df: pl.DataFrame) -> pl.DataFrame:
    """The `leg` column (null: the order itself), also for logs and fills from before exits existed."""
    leg = pl.col("leg").cast(pl.String) if "leg" in df.columns else pl.lit(None, pl.String)
    return df.with_columns(leg.alias("leg"))


def join_fills(bt_fills: pl.DataFrame, paper: pl.DataFrame) -> pl.DataFrame:
    """One row per (signal id, leg): an order's fills, and each of its exits' fills, backtest beside paper."""
    bt = _with_leg(bt_fills).group_by("signal_id", "leg").agg(
        pl.col("symbol").first(),
        pl.col("side").first().str.to_uppercase().alias("bt_side"),
        pl.col("qty").sum().alias("bt_qty"),
        ((pl.col("qty") * pl.col("price")).sum() / pl.col("qty").sum()).alias("bt_price"),
    )
    pp = _with_leg(paper).select(
        "signal_id",
        "leg",
        pl.col("symbol").alias("paper_symbol"),
        pl.col("side").alias("paper_side"),
        pl.col("qty").cast(pl.Float64).alias("paper_qty"),
        pl.col("filled_price").cast(pl.Float64).alias("paper_price"),
        "status",
    )
    j = bt.join(pp, on=["signal_id", "leg"], how="full", coalesce=True, nulls_equal=True)
    sign = pl.when(pl.coalesce("bt_side", "paper_side") == "BUY").then(1.0).otherwise(-1.0)
    return j.with_columns(
        pl.coalesce("symbol", "paper_symbol").alias("symbol"),
        bps(sign, pl.col("bt_price"), pl.col("paper_price")).alias("slippage_bps"),
        (sign * (pl.col("paper_price") - pl.col("bt_price")) * pl.col("paper_qty")).alias("slippage_usd"),
    ).drop("paper_symbol")


def _align_daily(bt_equity: pl.DataFrame, paper_equity: pl.DataFrame) -> pl.DataFrame:
    """Both curves at each session's last value, on the backtest's days within the paper run; the paper value
    of a day without a snapshot is the last one before it (the account reports only when snapshotted)."""

    def daily(df: pl.DataFrame, col: str) -> pl.DataFrame:
        day = pl.col("timestamp").dt.convert_time_zone("America/New_York").dt.date().alias("day")
        return df.sort("timestamp").group_by(day).agg(pl.col("timestamp").last(), pl.col(col).last()).sort("day")

    bt = daily(bt_equity, "equity")
    pp = daily(paper_equity, "portfolio_value")
    days = bt.filter(pl.col("day").is_between(pp["day"].min(), pp["day"].max()))
    snap = pp.select("day", pl.lit(True).alias("snapshot"))
    out = (
        days.join_asof(pp.select("day", "portfolio_value"), on="day", strategy="backward")
        .join(snap, on="day", how="left")
        .select(
            "timestamp",
            pl.col("equity").alias("bt"),
            pl.col("portfolio_value").alias("paper"),
            pl.col("snapshot").fill_null(False),
        )
    )
    if out.height < 2:  # a run inside one session: the snapshots themselves
        out = pp.select("timestamp", pl.lit(None, pl.Float64).alias("bt"), pl.col("portfolio_value").alias("paper"),
                        pl.lit(True).alias("snapshot"))  # fmt: skip
    return out


def _corr(days: pl.DataFrame) -> float:
    """Correlation of returns between consecutive days the paper account reported, against the backtest's
    returns over the same spans (days without a paper snapshot would pair a real move with a flat one)."""
    r = days.select(pl.col("bt").pct_change().alias("a"), pl.col("paper").pct_change().alias("b")).drop_nulls()
    if r.height < 3 or r["a"].std() == 0 or r["b"].std() == 0:
        return float("nan")
    return float(np.corrcoef(r["a"].to_numpy(), r["b"].to_numpy())[0, 1])
