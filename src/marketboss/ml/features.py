"""Per-symbol features from past bars only, and the forward-return target.

Every feature at bar t is computed from that symbol's bars up to and including t (a test changes later bars
and checks that nothing at or before t moves). Features are scale-free (log returns, ratios, z-scores), so a
model trained on some symbols applies to others. FEATURE_VERSION changes whenever a definition does: a model
records the version and list it was trained on, and loading refuses a mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marketboss.data.market import Market
from marketboss.indicators import rsi, zscore
from marketboss.ml import lookbacks as lb

FEATURE_VERSION = 1
PRICE_FEATURES = (
    *(f"ret_{h}" for h in lb.RETURN_LAGS),
    f"ma_ratio_{lb.MA_FAST}",
    f"ma_ratio_{lb.MA_SLOW}",
    f"ma_ratio_{lb.MA_FAST}_{lb.MA_SLOW}",
    f"vol_{lb.VOL_SHORT}",
    f"vol_{lb.VOL_LONG}",
    "range_1",
    f"range_{lb.RANGE_WINDOW}",
)
RSI_PERIOD = 14
VOLUME_WINDOW = 20
FEATURES: tuple[str, ...] = (*PRICE_FEATURES, f"rsi_{RSI_PERIOD}", f"volume_z_{VOLUME_WINDOW}")
#: Bars of history before every feature is defined.
WARMUP = max(lb.RETURN_LAGS[-1], lb.VOL_LONG, lb.MA_SLOW)


def target_name(horizon: int) -> str:
    return f"fwd_return_{horizon}"


def symbol_features(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """(n, len(FEATURES)) for one symbol's bars in time order."""
    n = close.shape[0]
    out = np.empty((n, len(FEATURES)))
    k = len(PRICE_FEATURES)
    from marketboss.ml import nb  # numba: loaded by the commands that compute features

    nb.price_features(high, low, close, out[:, :k])
    out[:, k] = rsi(close, RSI_PERIOD)
    if n >= VOLUME_WINDOW:
        out[:, k + 1] = zscore(np.log1p(volume), VOLUME_WINDOW)
    else:
        out[:, k + 1] = np.nan
    return out


def market_features(market: Market) -> np.ndarray:
    """(time, symbol, feature); NaN where a symbol has no bar or not enough history."""
    out = np.full((market.n_times, market.n_symbols, len(FEATURES)), np.nan)
    for s in range(market.n_symbols):
        b = market.symbol_bars(s)
        out[b.rows, s, :] = symbol_features(b.high, b.low, b.close, b.volume)
    return out


def market_targets(market: Market, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(forward returns (time, symbol), label end row (time, symbol)): the label of row t spans the market
    rows [t, end], end being the row of the symbol's h-th next bar; -1 where the label is not known yet."""
    y = np.full((market.n_times, market.n_symbols), np.nan)
    end = np.full((market.n_times, market.n_symbols), -1, dtype=np.int64)
    from marketboss.ml import nb  # numba: see symbol_features

    for s in range(market.n_symbols):
        rows = market.rows(s)
        c = market.close[rows, s]
        y[rows, s] = nb.forward_returns(c, horizon, np.empty(c.shape[0]))
        if rows.shape[0] > horizon:
            end[rows[:-horizon], s] = rows[horizon:]
    return y, end


@dataclass(frozen=True)
class Samples:
    """Rows (one per symbol and bar) with every feature defined, in (time, symbol) order.

    t and s index the market's time and symbol axes; `end` is the last market row the label looks at
    (-1 when the label is unknown, i.e. y is NaN)."""

    X: np.ndarray
    y: np.ndarray
    t: np.ndarray
    s: np.ndarray
    end: np.ndarray

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def take(self, idx: np.ndarray) -> Samples:
        return Samples(self.X[idx], self.y[idx], self.t[idx], self.s[idx], self.end[idx])


def samples(market: Market, horizon: int, *, labelled: bool = True, features: np.ndarray | None = None) -> Samples:
    """Training rows (labelled: the target is known too) or prediction rows (every row with its features)."""
    X3 = market_features(market) if features is None else features
    y2, end2 = market_targets(market, horizon)
    ok = np.isfinite(X3).all(axis=2)
    if labelled:
        ok &= np.isfinite(y2)
    t, s = np.nonzero(ok)  # row-major: time then symbol
    return Samples(X3[t, s, :], y2[t, s], t.astype(np.int64), s.astype(np.int64), end2[t, s])
