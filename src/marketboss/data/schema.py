"""The bar contract and its validation rules, vectorised so that a million bars validate in milliseconds.

Every rule reports the source line of the offending row, so the error can name file, line and field.
"""

from __future__ import annotations

import polars as pl

from marketboss.data.rules import (
    MAX_PRICE,
    MAX_SYMBOL_LENGTH,
    MAX_TIMESTAMP,
    MAX_VOLUME,
    MIN_TIMESTAMP,
    SYMBOL_PATTERN,
)

BAR_COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
TIMESTAMP_DTYPE = pl.Datetime("us", "UTC")
LINE = "_line"

#: In-memory dtypes; volume is a share count.
BAR_DTYPES = pl.Schema(
    {
        "timestamp": TIMESTAMP_DTYPE,
        "symbol": pl.String(),
        "open": pl.Float64(),
        "high": pl.Float64(),
        "low": pl.Float64(),
        "close": pl.Float64(),
        "volume": pl.Int64(),
    }
)


def _fmt(e: pl.Expr) -> pl.Expr:
    return e.round(6).cast(pl.String)


def _ts(e: pl.Expr) -> pl.Expr:
    return e.dt.to_string("%+")


_MAXOC = pl.max_horizontal("open", "close")
_MINOC = pl.min_horizontal("open", "close")
_SYMBOL = pl.col("symbol")


def _one_line(text: pl.Expr) -> pl.Expr:
    """A value shown in a one-line error: its line breaks and tabs escaped as repr writes them, other control
    characters as '?'."""
    for raw, escaped in (("\\", "\\\\"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        text = text.str.replace_all(raw, escaped, literal=True)
    return text.str.replace_all(r"[\x00-\x1f\x7f]", "?")


# (field, broken-when mask, reason). Masks are cheap and run on every row; reasons are formatted only for
# rows that break a rule. `_prev_ts` (previous bar of the symbol) and `_dup` (a later bar with the same
# symbol and timestamp) are computed once beforehand.
RULES: list[tuple[str, pl.Expr, pl.Expr]] = [
    ("timestamp", pl.col("timestamp").is_null(), pl.lit("missing or not an ISO-8601 timestamp")),
    (
        "timestamp",
        (pl.col("timestamp") < MIN_TIMESTAMP) | (pl.col("timestamp") >= MAX_TIMESTAMP),
        pl.format(
            "timestamp {} is out of range ({} to {})",
            _ts(pl.col("timestamp")), pl.lit(MIN_TIMESTAMP.year), pl.lit(MAX_TIMESTAMP.year - 1),
        ),
    ),
    ("symbol", _SYMBOL.is_null() | (_SYMBOL == ""), pl.lit("missing")),
    (
        "symbol",
        (_SYMBOL.str.len_bytes() > MAX_SYMBOL_LENGTH) | ~_SYMBOL.str.contains(SYMBOL_PATTERN),
        pl.format(
            "symbol '{}' is not a symbol: upper-case letters and digits, parts joined by '.' or '/', at most {} "
            "characters", _one_line(_SYMBOL.str.slice(0, 24)), pl.lit(MAX_SYMBOL_LENGTH),
        ),
    ),
    *[(c, pl.col(c).is_null(), pl.lit("missing")) for c in (*PRICE_COLUMNS, "volume")],
    *[(c, pl.col(c).is_nan(), pl.lit("not a number (NaN)")) for c in (*PRICE_COLUMNS, "volume")],
    *[(c, pl.col(c).is_infinite(), pl.lit("not a finite number")) for c in (*PRICE_COLUMNS, "volume")],
    *[(c, pl.col(c) <= 0, pl.format("price must be > 0, got {}", _fmt(pl.col(c)))) for c in PRICE_COLUMNS],
    *[(c, pl.col(c) > MAX_PRICE, pl.format("price must be <= {}, got {}", pl.lit(f"{MAX_PRICE:g}"), _fmt(pl.col(c))))
      for c in PRICE_COLUMNS],
    ("volume", pl.col("volume") > MAX_VOLUME, pl.format("volume must be <= {}", pl.lit(f"{MAX_VOLUME:g}"))),
    (
        "high",
        pl.col("high") < _MAXOC,
        pl.format("high {} is below max(open, close) = {}", _fmt(pl.col("high")), _fmt(_MAXOC)),
    ),
    (
        "low",
        pl.col("low") > _MINOC,
        pl.format("low {} is above min(open, close) = {}", _fmt(pl.col("low")), _fmt(_MINOC)),
    ),
    ("volume", pl.col("volume") < 0, pl.format("volume must be >= 0, got {}", _fmt(pl.col("volume")))),
    (
        "timestamp",
        pl.col("_dup"),
        pl.format("duplicate bar for {} at {}", _SYMBOL, _ts(pl.col("timestamp"))),
    ),
    (
        "timestamp",
        pl.col("timestamp") < pl.col("_prev_ts"),
        pl.format(
            "bars for {} are not sorted: {} comes after {}", _SYMBOL, _ts(pl.col("timestamp")), _ts(pl.col("_prev_ts"))
        ),
    ),
]


def validation_errors(df: pl.DataFrame, order_by: str = LINE) -> pl.DataFrame:
    """Rows that break a rule, as (_line, field, reason), first broken rule per row, in line order.

    `df` holds the parsed columns (timestamp may be null where it did not parse) and `_line`;
    sortedness and duplicates are judged in the order of `order_by` (file order unless the caller
    sorted on purpose).
    """
    ctx = df.sort(order_by).with_columns(
        pl.col("timestamp").shift(1).over("symbol", order_by=order_by).alias("_prev_ts"),
        # rows are in `order_by` order here, so "not the first distinct" is "a later duplicate"
        (~pl.struct("symbol", "timestamp").is_first_distinct()).alias("_dup"),
    )
    masks = [mask.fill_null(False).alias(f"_m{i}") for i, (_, mask, _) in enumerate(RULES)]
    flagged = ctx.with_columns(masks).filter(pl.any_horizontal(pl.col(r"^_m\d+$")))
    if flagged.is_empty():
        return pl.DataFrame(schema={LINE: pl.Int64, "field": pl.String, "reason": pl.String})
    first_broken = pl.coalesce(
        [
            pl.when(pl.col(f"_m{i}")).then(pl.struct(field=pl.lit(field), reason=reason))
            for i, (field, _, reason) in enumerate(RULES)
        ]
    )
    out = flagged.select(pl.col(LINE).cast(pl.Int64), first_broken.alias("err")).unnest("err")
    return out.sort(LINE)


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
