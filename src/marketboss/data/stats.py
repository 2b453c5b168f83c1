"""Per-symbol summary of bars: the guide's market-data statistics (count, range, mean and volatility of returns)."""

from __future__ import annotations

import numpy as np
import polars as pl

#: Bars whose dates are this many days apart (the median) or more are sparser than daily (weekly: 7): daily bars
#: are a day apart but over weekends and holidays (3-4).
SPARSE_GAP_DAYS = 5.0


def bars_per_year(df: pl.DataFrame) -> float:
    """Annualisation follows the bar frequency: median bars per session (per symbol and New York date) times 252
    sessions; for weekly or monthly bars, their number a year."""
    if df.is_empty():
        return 252.0
    ranks = df.select(
        pl.col("timestamp").rank("dense").cast(pl.Int64) - 1, pl.col("symbol").rank("dense").cast(pl.Int64) - 1
    )
    times = df["timestamp"].unique().sort().dt.epoch("us").to_numpy()
    return sessions_bars_per_year(times, ranks["timestamp"].to_numpy(), ranks["symbol"].to_numpy())


def sessions_bars_per_year(times: np.ndarray, tidx: np.ndarray, sidx: np.ndarray) -> float:
    """bars_per_year of bars given as indices into their distinct times (epoch microseconds, sorted) and symbols:
    252 sessions a year times the bars of a symbol's session (the median), or for bars sparser than daily (weekly,
    monthly) their dates' number a year.
    Each distinct time is converted to its New York date once, not each bar (a time-zone conversion per row
    cost 1.4 s on 9.7M minute bars), and bars are counted per (symbol, date) with one bincount."""
    if tidx.shape[0] == 0:
        return 252.0
    dates = pl.Series(times).cast(pl.Datetime("us", "UTC")).dt.convert_time_zone("America/New_York").dt.date()
    day = dates.rank("dense").cast(pl.Int64).to_numpy() - 1
    n_days = int(day.max()) + 1
    counts = np.bincount(sidx.astype(np.int64) * n_days + day[tidx])
    per_day = float(np.median(counts[counts > 0]))
    if per_day == 1.0 and n_days > 1:  # a bar a day at most: daily bars, or weekly, monthly ones
        epoch_days = dates.unique().sort().to_physical().to_numpy()
        span = float(epoch_days[-1] - epoch_days[0])
        if float(np.median(np.diff(epoch_days))) >= SPARSE_GAP_DAYS:  # their number a year, as they came
            return (n_days - 1) * 365.25 / span
    return 252.0 * per_day


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
