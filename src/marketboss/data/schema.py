"""The bar contract and its validation rules, vectorised so that a million bars validate in milliseconds.

Every rule reports the source line of the offending row, so the error can name file, line and field.
"""

from __future__ import annotations

import polars as pl

BAR_COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
TIMESTAMP_DTYPE = pl.Datetime("us", "UTC")
LINE = "_line"

#: In-memory dtypes; volume is a share count.
BAR_DTYPES: dict[str, pl.DataType] = {
    "timestamp": TIMESTAMP_DTYPE,
    "symbol": pl.String(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Int64(),
}


def _rule(mask: pl.Expr, field: str, reason: pl.Expr) -> pl.Expr:
    return pl.when(mask).then(pl.struct(field=pl.lit(field), reason=reason))


def _fmt(e: pl.Expr) -> pl.Expr:
    return e.round(6).cast(pl.String)


def validation_errors(df: pl.DataFrame, order_by: str = LINE) -> pl.DataFrame:
    """Rows that break a rule, as (_line, field, reason), first broken rule per row, in line order.

    `df` holds the parsed columns (timestamp may be null where it did not parse) and `_line`;
    sortedness is judged in the order of `order_by` (file order unless the caller sorted on purpose).
    """
    prev_ts = pl.col("timestamp").shift(1).over("symbol", order_by=order_by)
    maxoc = pl.max_horizontal("open", "close")
    minoc = pl.min_horizontal("open", "close")
    rules = [
        _rule(pl.col("timestamp").is_null(), "timestamp", pl.lit("missing or not an ISO-8601 timestamp")),
        _rule(pl.col("symbol").is_null() | (pl.col("symbol") == ""), "symbol", pl.lit("missing symbol")),
        _rule(
            pl.col("symbol") != pl.col("symbol").str.to_uppercase(),
            "symbol",
            pl.format("symbol '{}' must be upper-case", pl.col("symbol")),
        ),
        *[
            pl.when(pl.col(c).is_null())
            .then(pl.struct(field=pl.lit(c), reason=pl.lit("missing")))
            .when(pl.col(c).is_nan())
            .then(pl.struct(field=pl.lit(c), reason=pl.lit("not a number (NaN)")))
            for c in (*PRICE_COLUMNS, "volume")
        ],
        *[_rule(pl.col(c) <= 0, c, pl.format("price must be > 0, got {}", _fmt(pl.col(c)))) for c in PRICE_COLUMNS],
        _rule(
            pl.col("high") < maxoc,
            "high",
            pl.format("high {} is below max(open, close) = {}", _fmt(pl.col("high")), _fmt(maxoc)),
        ),
        _rule(
            pl.col("low") > minoc,
            "low",
            pl.format("low {} is above min(open, close) = {}", _fmt(pl.col("low")), _fmt(minoc)),
        ),
        _rule(pl.col("volume") < 0, "volume", pl.format("volume must be >= 0, got {}", _fmt(pl.col("volume")))),
        _rule(
            pl.struct("symbol", "timestamp").is_duplicated()
            & (pl.col(LINE) != pl.col(LINE).min().over("symbol", "timestamp")),
            "timestamp",
            pl.format("duplicate bar for {} at {}", pl.col("symbol"), pl.col("timestamp").dt.to_string("%+")),
        ),
        _rule(
            pl.col("timestamp") < prev_ts,
            "timestamp",
            pl.format(
                "bars for {} are not sorted: {} comes after {}",
                pl.col("symbol"),
                pl.col("timestamp").dt.to_string("%+"),
                prev_ts.dt.to_string("%+"),
            ),
        ),
    ]
    checked = df.select(pl.col(LINE), pl.coalesce(rules).alias("err"))
    return checked.filter(pl.col("err").is_not_null()).unnest("err").sort(LINE)


def parse_timestamps(col: pl.Expr) -> pl.Expr:
    """ISO-8601 strings (Z, offset, or a bare date) to UTC datetimes; unparseable becomes null."""
    s = col.str.strip_chars()
    return pl.coalesce(
        s.str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_unit="us", time_zone="UTC", strict=False),
        s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_unit="us", time_zone="UTC", strict=False),
        s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="us", strict=False).dt.convert_time_zone("UTC"),
        s.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%:z", time_unit="us", strict=False).dt.convert_time_zone("UTC"),
        s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False).dt.replace_time_zone("UTC"),
        s.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us", strict=False).dt.replace_time_zone("UTC"),
        s.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
    )


def finalize(df: pl.DataFrame) -> pl.DataFrame:
    """Validated rows to the in-memory contract: contract dtypes, time-then-symbol order."""
    out = df.select(
        pl.col("timestamp"),
        pl.col("symbol"),
        *[pl.col(c).cast(pl.Float64) for c in PRICE_COLUMNS],
        pl.col("volume").round(0).cast(pl.Int64),
    )
    return out.sort("timestamp", "symbol", maintain_order=True)
