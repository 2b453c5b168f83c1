"""What a strategy means to hold after each of a bar's orders: the bound a live order may not carry the account
past.

The live loop runs an exposure strategy from flat at the start of its warm-up history, long before the session
starts, so the strategy may hold what the account never bought: a short it took in the warm-up. (An event
strategy trades from the session's first bar, its warm-up's orders canceled as placed; a restart whose history
no longer reaches that bar is the same case.) Its next flip, 20 shares
from short 10 to long 10, would put a flat account long 20, twice what the strategy holds. Each order sized in
shares is cut to what brings the account to the strategy's position after it (executor: `bounds`), and skipped
when the account is there already. A long-only strategy's sale of a warm-up position is the same case.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

_SIGNED = pl.when(pl.col("action") == "BUY").then(pl.col("quantity")).otherwise(-pl.col("quantity"))


def net_positions(fills: pl.DataFrame) -> dict[str, float]:
    """Shares held per symbol after these fills (a backtest's: symbol, side, qty)."""
    signed = pl.when(pl.col("side") == "BUY").then(pl.col("qty")).otherwise(-pl.col("qty"))
    return dict(fills.group_by("symbol").agg(signed.sum()).iter_rows())


def order_bounds(signals: pl.DataFrame, bar_us: int, before: Mapping[str, float] | None = None) -> dict[str, float]:
    """Per order of the bar starting at `bar_us` sized in shares: the strategy's position in its symbol once it
    and the bar's orders before it have filled. `before`: what the strategy holds before the bar (an event
    strategy's, from its run); default: the sum of its earlier orders, an exposure strategy's held state (an exit
    that closed a position nets with the next order against it, there as in the backtest). A symbol with an order
    by target weight on the bar gets none: a weight is a target already."""
    orders = signals.filter(pl.col("action").is_in(["BUY", "SELL"])).with_columns(
        pl.col("timestamp").dt.epoch("us").alias("_us"), _SIGNED.alias("_signed")
    )
    bar = orders.filter(pl.col("_us") == bar_us)
    if bar.is_empty():
        return {}
    if before is None:
        before = dict(orders.filter(pl.col("_us") < bar_us).group_by("symbol").agg(pl.col("_signed").sum()).iter_rows())
    by_weight = set(bar.filter(pl.col("quantity").is_null())["symbol"])
    after = bar.select(
        "id", "symbol", pl.col("_signed").cum_sum().over("symbol").alias("after")
    ).filter(~pl.col("symbol").is_in(list(by_weight)))
    return {i: float(before.get(sym) or 0.0) + q for i, sym, q in after.iter_rows()}
