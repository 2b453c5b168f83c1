"""Exits by percentage: --stop-loss-pct, --take-profit-pct and --trail-percent turned into the signal's own
bracket fields, once, so that the backtest and the paper executor trade the very same absolute prices.

The legs go on every signal that carries none: they are a bracket on the position an order opens or increases,
and both the backtest and the executor drop them on an order that reduces a position (a sell closing a long
must not leave a buy-to-cover stop behind)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import polars as pl

from marketboss.data.schema import LINE
from marketboss.errors import InputError, MarketBossError
from marketboss.signals import ORDER_DEFAULTS, ORDER_FIELDS, ORDER_SCHEMA, TRAIL_ALONE
from marketboss.signals.kernels import exit_prices

#: Percent bounds: a fraction such as 0.05 (meaning 5%) is refused rather than read as a 0.05% stop.
MIN_PCT, MAX_PCT = 0.1, 50.0


@dataclass(frozen=True)
class Exits:
    """Per-entry exits in percent of the reference price (None: that leg is absent)."""

    stop_loss_pct: float | None = None
    take_profit_pct: float | None = None
    trail_percent: float | None = None

    def __post_init__(self) -> None:
        for name in ("stop_loss_pct", "take_profit_pct", "trail_percent"):
            v = getattr(self, name)
            if v is not None and not MIN_PCT <= v <= MAX_PCT:
                raise ValueError(f"{name} is a percent in [{MIN_PCT:g}, {MAX_PCT:g}] (5 means 5%), got {v:g}")
        if self.stop_loss_pct is not None and self.trail_percent is not None:
            raise ValueError("give one stop: a stop-loss or a trailing stop")
        if self.take_profit_pct is not None and self.trail_percent is not None:
            raise ValueError(TRAIL_ALONE)

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.stop_loss_pct, self.take_profit_pct, self.trail_percent))


def with_exits(
    signals: pl.DataFrame, exits: Exits, source: str = "signals", entries: np.ndarray | None = None
) -> pl.DataFrame:
    """`signals` with the exits' legs on every signal without legs of its own (only on `entries`, a mask, when
    the caller knows which signals open or add to a position), priced from its reference (the limit, else the
    stop, else the price the strategy saw) and rounded to the tick. A trailing stop order gets none. A signal
    without a reference price is an InputError naming its line."""
    if not exits:
        return signals
    df = signals
    for f in ORDER_FIELDS:
        if f not in df.columns:
            df = df.with_columns(pl.lit(ORDER_DEFAULTS.get(f), dtype=ORDER_SCHEMA[f]).alias(f))
    ref = df.select(pl.coalesce("limit_price", "stop_price", "price")).to_series()
    orders = df["action"] != "CANCEL"  # a cancel trades nothing: no exits
    if (ref.is_null() & orders).any():
        i = int((ref.is_null() & orders).arg_max() or 0)
        line = df[LINE][i] if LINE in df.columns else None
        raise InputError(source, "no price to place the exits from (needed by the exit percentages)", line=line,
                         field="price")  # fmt: skip
    bare = df.select((pl.col("order_type") != "trailing_stop") & pl.col("take_profit").is_null()
                     & pl.col("stop_loss").is_null() & pl.col("trail_percent").is_null()).to_series().to_numpy()
    bare &= orders.to_numpy()
    if entries is not None:
        bare &= entries
    refs = ref.to_numpy()
    up = np.where((df["action"] == "BUY").to_numpy(), 1.0, -1.0)
    legs = []
    for name, pct, sign in (("take_profit", exits.take_profit_pct, 1.0), ("stop_loss", exits.stop_loss_pct, -1.0)):
        if pct is not None:
            prices = np.empty(df.height)
            exit_prices(refs, up * sign, pct, prices)
            legs.append(pl.when(pl.Series(bare)).then(pl.Series(prices)).otherwise(pl.col(name)).alias(name))
    if exits.trail_percent is not None:
        legs.append(pl.when(pl.Series(bare)).then(pl.lit(exits.trail_percent)).otherwise(pl.col("trail_percent"))
                    .alias("trail_percent"))  # fmt: skip
    return df.with_columns(legs)


#: What Alpaca takes as a fractional order: a simple order (no bracket, OTO or OCO) of these types, day only.
FRACTIONAL_ORDER_TYPES = ("market", "limit")


def fractional_refusal(order_type: str, time_in_force: str, order_class: str = "simple") -> str | None:
    """Why Alpaca refuses an order of a fractional quantity (None: it takes it), in its words: the one rule the
    local broker applies and the commands check up front (Alpaca's fractional trading: day orders; brackets,
    OCO, OTO and trailing stops never)."""
    if order_class != "simple":
        return f"fractional orders cannot be {order_class} orders"
    if order_type not in FRACTIONAL_ORDER_TYPES or time_in_force != "day":
        return f"fractional orders must be {' or '.join(FRACTIONAL_ORDER_TYPES)} day orders"
    return None


def exits_refusal(exits: str) -> str:
    """Why --fractional cannot place a target-weight order with these exits: said alike of a strategy's exit
    parameters (live, before it starts) and of a signal's exits (check_fractional)."""
    return (f"--fractional: a target-weight order with exits ({exits}) cannot be placed: its exits go as a bracket, "
            f"an OCO or a gtc stop or trailing stop, and Alpaca takes fractional orders only as simple "
            f"{' or '.join(FRACTIONAL_ORDER_TYPES)} day orders (drop --fractional or the exits)")


def check_fractional_params(params: Iterable[object]) -> None:
    """exits_refusal of the first of these strategy parameters sized by weight with exit percents, under
    --fractional: said before a live session starts, and before a sweep, walk-forward or comparison runs
    combinations whose backtests `backtest --fractional` refuses (check_fractional, of their signals)."""
    for p in params:
        if getattr(p, "sizing", None) != "weight":
            continue  # whole quantities: --fractional changes nothing
        given = [f"{k}={v:g}" for k in ("stop_loss_pct", "take_profit_pct", "trail_percent")
                 if (v := getattr(p, k, None)) is not None]  # fmt: skip
        if given:
            raise MarketBossError(exits_refusal(", ".join(given)))


#: A signal's exits as the executor sends them: bracket / OTO legs, an OCO, or a stop or trailing stop, all gtc
#: (they work until they trade, as the backtest's do), none of which Alpaca takes for a fractional quantity.
EXIT_FIELDS = ("take_profit", "stop_loss", "trail_percent")


def check_fractional(signals: pl.DataFrame, source: str, weights: bool = True) -> None:
    """An order of a fraction of a share goes to Alpaca only as a simple market or limit day order: one with
    exits, or of another type or time in force, would be refused at the broker for every entry while the
    backtest traded it. A signal of a fractional quantity (0.5 shares, or half an exposure unit of 5) is such an
    order always; with --fractional (`weights`) a target-weight signal is too, sized in fractions of a share.
    Refused up front (an InputError naming the first such signal's line and field), before anything is sent or
    written."""
    df = signals
    for f in ("quantity", "target_weight", *ORDER_FIELDS):
        if f not in df.columns:
            df = df.with_columns(pl.lit(ORDER_DEFAULTS.get(f), dtype=ORDER_SCHEMA.get(f, pl.Float64)).alias(f))
    trail_leg = pl.col("trail_percent").is_not_null() & (pl.col("order_type") != "trailing_stop")
    exit_of = {"take_profit": pl.col("take_profit").is_not_null(), "stop_loss": pl.col("stop_loss").is_not_null(),
               "trail_percent": trail_leg}  # fmt: skip
    part = pl.col("quantity").is_not_null() & (pl.col("quantity") != pl.col("quantity").floor())
    chosen = part | pl.col("target_weight").is_not_null() if weights else part
    fractional = df.filter(chosen & (pl.col("action") != "CANCEL"))
    if fractional.is_empty():
        return
    refused = [(t, tif) for t, tif in fractional.select("order_type", "time_in_force").unique().iter_rows()
               if fractional_refusal(t, tif) is not None]  # fmt: skip
    kind = pl.concat_str("order_type", "time_in_force", separator=" ")
    bad = fractional.filter(pl.any_horizontal(*exit_of.values()) | kind.is_in([f"{t} {tif}" for t, tif in refused]))
    if bad.is_empty():
        return
    row = bad.row(0, named=True)
    exit_field = next((f for f, e in exit_of.items() if bad.head(1).select(e).item()), None)
    if row["quantity"] is not None:  # a fractional quantity: no flag makes it whole
        what = f"a fractional quantity ({row['quantity']:g} shares)"
        if exit_field is not None:
            field, why = exit_field, (f"{what} with exits ({exit_field}) cannot be placed: "
                                      f"{fractional_refusal('market', 'day', 'bracket')} at Alpaca, which takes them "
                                      f"only as simple {' or '.join(FRACTIONAL_ORDER_TYPES)} day orders (size in "
                                      "whole shares, or drop the exits)")  # fmt: skip
        else:
            field = "order_type" if row["order_type"] not in FRACTIONAL_ORDER_TYPES else "time_in_force"
            why = (f"{what} as a {row['time_in_force']} {row['order_type']} order cannot be placed: "
                   f"{fractional_refusal(row['order_type'], row['time_in_force'])} at Alpaca (size in whole shares)")
    elif exit_field is not None:
        field = exit_field
        why = exits_refusal(exit_field)
    else:
        field = "order_type" if row["order_type"] not in FRACTIONAL_ORDER_TYPES else "time_in_force"
        why = (f"--fractional: a target-weight {row['time_in_force']} {row['order_type']} order cannot be placed: "
               f"{fractional_refusal(row['order_type'], row['time_in_force'])} at Alpaca (drop --fractional)")
    line = row.get(LINE)
    where = source if line is not None else f"{source}: signal {row.get('id')} ({row['symbol']})"
    raise InputError(where, why, line=line, field=field)
