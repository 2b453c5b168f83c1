"""Per-symbol summary of bars: the guide's market-data statistics (count, range, mean and volatility of returns)."""

from __future__ import annotations

import polars as pl


def bars_per_year(df: pl.DataFrame) -> float:
    """Annualisation follows the bar frequency: median bars per session times 252 sessions."""
    if df.is_empty():
        return 252.0
    per_day = (
        df.group_by("symbol", pl.col("timestamp").dt.convert_time_zone("America/New_York").dt.date().alias("d"))
        .len()
        .get_column("len")
        .median()
    )
    return 252.0 * float(per_day or 1.0)  # type: ignore[arg-type]


def summary(df: pl.DataFrame) -> pl.DataFrame:
    ann = bars_per_year(df)
    ret = pl.col("close").pct_change().over("symbol", order_by="timestamp")
    return (
        df.with_columns(ret.alias("ret"))
        .group_by("symbol")
        .agg(
            pl.len().alias("bars"),
            pl.col("timestamp").min().alias("first"),
            pl.col("timestamp").max().alias("last"),
            pl.col("close").last().alias("last_close"),
            pl.col("ret").mean().alias("mean_return"),
            pl.col("ret").std().alias("volatility"),
        )
        .with_columns(
            (pl.col("mean_return") * ann).alias("annual_return"),
            (pl.col("volatility") * ann**0.5).alias("annual_volatility"),
        )
        .sort("symbol")
    )
