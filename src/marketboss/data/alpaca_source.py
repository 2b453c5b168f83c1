"""Real bars through alpaca-py's StockHistoricalDataClient (the SDK follows next_page_token itself)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

from marketboss.config import Settings
from marketboss.data.calendar import Timeframe
from marketboss.data.grid import GridBars, fetch_timeframe, on_grid
from marketboss.data.schema import BAR_DTYPES
from marketboss.errors import ConfigError, MarketBossError
from marketboss.logging import get_logger

log = get_logger(__name__)


def fetch_bars(
    settings: Settings,
    symbols: list[str],
    start: datetime,
    end: datetime,
    timeframe: Timeframe,
    feed: str = "iex",
    adjustment: str = "raw",
) -> GridBars:
    """The bars on MarketBoss's grid (data.grid: the regular session's; hourly ones from Alpaca's 30-minute bars,
    its own being clock hours), and how many of Alpaca's were outside the session."""
    from alpaca.common.exceptions import APIError
    from alpaca.data.historical import StockHistoricalDataClient

    if not settings.has_alpaca_credentials:
        raise ConfigError(
            "data fetch needs Alpaca credentials: set APCA_API_KEY_ID and APCA_API_SECRET_KEY (or put them in .env)"
        )
    assert settings.apca_api_key_id and settings.apca_api_secret_key
    client = StockHistoricalDataClient(
        settings.apca_api_key_id.get_secret_value(),
        settings.apca_api_secret_key.get_secret_value(),
        url_override=settings.data_url(),
    )
    request = bars_request(symbols, start, end, fetch_timeframe(timeframe), feed, adjustment)
    log.info("alpaca_fetch", symbols=symbols, start=str(start), end=str(end), timeframe=str(timeframe), feed=feed)
    try:
        barset = client.get_stock_bars(request)
    except APIError as exc:
        status = getattr(exc, "status_code", None)
        hint = " (check APCA_API_KEY_ID / APCA_API_SECRET_KEY)" if status in (401, 403) else ""
        raise MarketBossError(f"Alpaca market data refused the request: HTTP {status}{hint}") from None
    except Exception as exc:
        raise MarketBossError(f"could not reach Alpaca market data: {type(exc).__name__}") from None
    missing = sorted(set(symbols) - set(barset if isinstance(barset, dict) else barset.data))
    if missing:
        log.warning("alpaca_fetch_no_bars", symbols=missing)
    return on_grid(barset_frame(barset), timeframe)


def bars_request(
    symbols: list[str], start: datetime, end: datetime | None, timeframe: Timeframe, feed: str = "iex",
    adjustment: str = "raw",
) -> Any:
    """alpaca-py's StockBarsRequest for these bars (start and end are bar start times, both included)."""
    from alpaca.data.enums import Adjustment, DataFeed
    from alpaca.data.requests import StockBarsRequest
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

    unit = {"Min": TimeFrameUnit.Minute, "Hour": TimeFrameUnit.Hour, "Day": TimeFrameUnit.Day}[timeframe.unit]
    return StockBarsRequest(
        symbol_or_symbols=symbols,
        timeframe=TimeFrame(timeframe.amount, unit),
        start=start,
        end=end,
        feed=DataFeed(feed.lower()),
        adjustment=Adjustment(adjustment.lower()),
    )


def barset_frame(barset: Any) -> pl.DataFrame:
    """alpaca-py's BarSet (or its dict) as bars in the schema's types, sorted by time then symbol."""
    data = barset if isinstance(barset, dict) else barset.data
    rows = [
        (bar.timestamp, sym, bar.open, bar.high, bar.low, bar.close, bar.volume)
        for sym, bars in data.items()
        for bar in bars
    ]
    if not rows:  # no bar in the window (a replay from the data's first day, a new listing): columns of no type
        return pl.DataFrame(schema=BAR_DTYPES)
    df = pl.DataFrame(rows, schema=list(BAR_DTYPES), orient="row")
    return (
        df.with_columns(
            pl.col("timestamp").dt.convert_time_zone("UTC").dt.cast_time_unit("us"),
            pl.col("volume").round(0).cast(pl.Int64),
        )
        .cast(BAR_DTYPES)
        .sort("timestamp", "symbol")
    )
