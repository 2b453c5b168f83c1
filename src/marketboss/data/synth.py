"""Seeded synthetic OHLCV on the real NYSE calendar: the embedded default data.

Each symbol moves through regimes (trending, mean-reverting, volatile) held for weeks at a time, so that
trend and reversion strategies both have something to find. Symbol i draws from its own streams of the
seed, so adding symbols never changes the ones already there; each of its random quantities (regime lengths,
regimes, shocks, gaps, wicks, volume) from a stream of its own, one draw a bar (or session) in time order, so
that a later --end only adds bars: those of the same dates stay the same.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from marketboss.data.calendar import Timeframe, bar_times, check_in_calendar
from marketboss.data.kernels import regime_log_prices
from marketboss.data.rules import shown, symbol_error
from marketboss.data.schema import BAR_DTYPES
from marketboss.errors import MarketBossError

DEFAULT_SYMBOLS = (
    "AAPL", "MSFT", "AMZN", "GOOGL", "META", "NVDA", "JPM", "XOM", "JNJ", "PG",
    "V", "HD", "KO", "PEP", "WMT", "DIS", "CSCO", "INTC", "ORCL", "NKE",
)  # fmt: skip

TRADING_DAYS = 252
MINUTES_PER_SESSION = 390
# Regimes: 0 trending up, 1 trending down, 2 mean-reverting, 3 volatile. Annualised drift, vol, reversion.
DRIFT = np.array([0.35, -0.30, 0.0, 0.0])
VOL = np.array([0.16, 0.20, 0.18, 0.45])
KAPPA = np.array([0.0, 0.0, 25.0, 0.0])
REGIME_P = np.array([0.3, 0.2, 0.35, 0.15])
MEAN_REGIME_DAYS = 40
MAX_SYMBOLS = 10_000
MAX_BARS = 100_000_000  # symbols x bars: ~8 GB of columns; beyond that a laptop runs out of memory first


def symbols_from(arg: str) -> list[str]:
    """`--symbols 5` (a count) or `--symbols AAPL,MSFT` (a list)."""
    text = arg.strip()
    if text.isascii() and text.isdigit():
        n = int(text)
        if not 0 < n <= MAX_SYMBOLS:
            raise MarketBossError(f"--symbols must be a count from 1 to {MAX_SYMBOLS:,} or a comma-separated list")
        names = list(DEFAULT_SYMBOLS[:n])
        names += [f"SYN{i:03d}" for i in range(len(names), n)]
        return names
    names = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not names or len(set(names)) != len(names) or len(names) > MAX_SYMBOLS:
        raise MarketBossError(f"--symbols {shown(arg)} must be a count or a list of distinct symbols "
                              f"(at most {MAX_SYMBOLS:,})")  # fmt: skip
    for name in names:
        err = symbol_error(name)
        if err:
            raise MarketBossError(f"--symbols: {err}")
    return names


def synth_bars(
    symbols: list[str],
    start: date | str,
    end: date | str,
    timeframe: str | Timeframe = "1Day",
    seed: int = 7,
) -> pl.DataFrame:
    tf = timeframe if isinstance(timeframe, Timeframe) else Timeframe.parse(timeframe)
    check_in_calendar(start, end)
    times, session = bar_times(start, end, tf)
    if len(times) == 0:
        raise MarketBossError(f"no NYSE sessions between {start} and {end}")
    if len(times) * len(symbols) > MAX_BARS:
        raise MarketBossError(
            f"{len(symbols):,} symbols x {len(times):,} bars is over {MAX_BARS:,} bars: fewer symbols, a shorter "
            "range or a longer timeframe"
        )
    n = len(times)
    new_session = np.ones(n, dtype=bool)
    new_session[1:] = session[1:] != session[:-1]
    bar_frac = min(tf.minutes, MINUTES_PER_SESSION) / MINUTES_PER_SESSION
    dt = np.full(n, bar_frac / TRADING_DAYS)
    # Intraday: position in the session shapes volume (a U over the day).
    pos = np.arange(n) - np.maximum.accumulate(np.where(new_session, np.arange(n), 0))
    per_session = np.bincount(session)[session]
    u = np.where(per_session > 1, pos / np.maximum(per_session - 1, 1), 0.5)
    frames = [
        _one_symbol(sym, _Streams(seed, i), times, new_session, dt, bar_frac, u, tf.is_daily)
        for i, sym in enumerate(symbols)
    ]
    return pl.concat(frames).sort("timestamp", "symbol")


class _Streams:
    """Symbol i's random streams: one per quantity, each drawn once a bar (or a session) from the first."""

    def __init__(self, seed: int, i: int):
        self._seed = (seed, i)

    def __getattr__(self, name: str) -> np.random.Generator:
        rng = np.random.default_rng([*self._seed, _STREAMS.index(name)])
        setattr(self, name, rng)
        return rng


_STREAMS = ("start", "lengths", "regimes", "shocks", "gaps", "high", "low", "volume")


def _on_tick(p: np.ndarray) -> np.ndarray:
    """Prices on an exchange's tick grid, as real bars' are: cents from $1 up, 1/100 cent below (Alpaca's). A
    broker quotes on it: sized at a quote's mid, paper buys the shares the backtest buys at the bar's open."""
    return np.where(p >= 1.0, np.round(p, 2), np.round(p, 4))


def _one_symbol(
    symbol: str,
    rng: _Streams,
    times: np.ndarray,
    new_session: np.ndarray,
    dt: np.ndarray,
    bar_frac: float,
    u: np.ndarray,
    daily: bool,
) -> pl.DataFrame:
    n = len(times)
    sessions_so_far = np.cumsum(new_session)
    n_sessions = int(sessions_so_far[-1])
    # Regimes change only at session boundaries, after geometric durations.
    lengths = rng.lengths.geometric(1.0 / MEAN_REGIME_DAYS, size=n_sessions)
    per_session_regime = np.repeat(rng.regimes.choice(4, size=len(lengths), p=REGIME_P), lengths)[:n_sessions]
    regime = per_session_regime[sessions_so_far - 1].astype(np.int64)
    shocks = rng.shocks.standard_t(df=5, size=n) * np.sqrt(3 / 5)  # fat tails, unit variance
    p0 = np.log(rng.start.uniform(20, 400))
    log_close = regime_log_prices(p0, shocks, regime, DRIFT, VOL, KAPPA, dt)
    sigma_bar = VOL[regime] * np.sqrt(dt)
    prev_close = np.concatenate(([p0], log_close[:-1]))
    # Opens gap from the previous close: overnight at a session's first bar, a tick within a session.
    overnight = 0.35 * VOL[regime] / np.sqrt(TRADING_DAYS)
    gap_scale = 0.25 * sigma_bar if daily else np.where(new_session, overnight, 0.1 * sigma_bar)
    log_open = prev_close + gap_scale * rng.gaps.standard_normal(n)
    hi_ext = np.abs(rng.high.standard_normal(n)) * 0.5 * sigma_bar
    lo_ext = np.abs(rng.low.standard_normal(n)) * 0.5 * sigma_bar
    open_ = np.exp(log_open)
    close = np.exp(log_close)
    high = np.maximum(open_, close) * np.exp(hi_ext)
    low = np.minimum(open_, close) * np.exp(-lo_ext)
    move = np.abs(log_close - log_open) / np.maximum(sigma_bar, 1e-12)
    base = rng.start.uniform(2e6, 3e7) * bar_frac
    shape = 1.0 + 1.5 * (2 * u - 1) ** 2
    volume = np.round(base * shape * np.exp(0.3 * rng.volume.standard_normal(n)) * (0.6 + 0.4 * move)).astype(np.int64)
    return pl.DataFrame(
        {
            "timestamp": pl.Series(times).dt.replace_time_zone("UTC"),
            "symbol": [symbol] * n,
            "open": _on_tick(open_),
            "high": _on_tick(high),
            "low": _on_tick(low),
            "close": _on_tick(close),
            "volume": volume,
        },
        schema=BAR_DTYPES,
    ).with_columns(  # rounding may not push high/low inside the body
        pl.max_horizontal("high", "open", "close").alias("high"),
        pl.min_horizontal("low", "open", "close").alias("low"),
    )
