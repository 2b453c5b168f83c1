"""Technical indicators for strategies, models and notebooks: causal (the value at bar t uses bars up to t
only), compiled (numba loops in nb.py, through kernels.py), and NaN until their window is full.

Each takes a numpy array, a list or a polars Series of floats and returns the same kind: a Series in gives a
Series out (same name), anything else a float64 numpy array. A (time x symbol) matrix (a Market's `close`, in a
whole-market strategy's `exposures`) gives the matrix of each column's values. A NaN marks a missing bar (where a
matrix's symbol has none): it is NaN out, and the other bars' values are the series' without it, so a column gives
what its symbol's own bars give (a symbol listed later is not NaN for ever). Wilder's RSI and ATR follow his
smoothing; standard deviations are population ones (ddof 0), as Bollinger defined his bands.

    >>> from marketboss.indicators import sma, rsi
    >>> sma([1.0, 2.0, 3.0, 4.0], 2)
    array([nan, 1.5, 2.5, 3.5])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np
import polars as pl

from marketboss.indicators import kernels

__all__ = [
    "Bands",
    "atr",
    "bollinger",
    "ema",
    "returns",
    "rolling_max",
    "rolling_min",
    "rsi",
    "sma",
    "zscore",
]

Values = np.ndarray | pl.Series | Sequence[float]
V = TypeVar("V", np.ndarray, pl.Series)


def _array(x: Values) -> np.ndarray:
    a = x.to_numpy() if isinstance(x, pl.Series) else np.asarray(x)
    if a.ndim not in (1, 2):
        raise ValueError(f"a series (1-D) or a (time x symbol) matrix, not an array of shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float64)


def _like(x: Values, out: np.ndarray) -> Any:
    """`out` as the kind of x: a Series (x's name) for a Series, else the array."""
    # NaN stays NaN (not null) in the Series: what the arrays hold, and what polars' own rolling means do
    return pl.Series(x.name, out, dtype=pl.Float64, nan_to_null=False) if isinstance(x, pl.Series) else out


def _per_column(kernel: Callable[..., np.ndarray], arrays: Sequence[np.ndarray], *args: Any) -> np.ndarray:
    """kernel(*arrays, *args, out) of series (1-D); of (time x symbol) matrices, of each column alone."""
    first = arrays[0]
    if first.ndim == 1:
        return _present_bars(kernel, arrays, args)
    out = np.empty_like(first)
    for j in range(first.shape[1]):
        out[:, j] = _present_bars(kernel, [np.ascontiguousarray(a[:, j]) for a in arrays], args)
    return out


def _present_bars(kernel: Callable[..., np.ndarray], series: Sequence[np.ndarray], args: tuple[Any, ...]
                  ) -> np.ndarray:  # fmt: skip
    """The kernel of the bars where no series is NaN (a NaN marks a missing bar: a market matrix's symbol not
    trading yet, or halted), NaN at the others: a matrix's column gives what its symbol's own bars give."""
    if not any(np.isnan(s.sum()) for s in series):  # the sum: no NaN in it, faster than isnan() over the bars
        return kernel(*series, *args, np.empty_like(series[0]))
    present = ~np.isnan(series[0])
    for s in series[1:]:
        present &= ~np.isnan(s)
    out = np.full_like(series[0], np.nan)
    out[present] = kernel(*(s[present] for s in series), *args, np.empty(int(present.sum())))
    return out


def _window(n: int, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {n!r}")
    return int(n)


def sma(x: V, n: int) -> V:
    """Simple moving average of the last n values."""
    a = _array(x)
    return _like(x, _per_column(kernels.sma, [a], _window(n)))


def ema(x: V, n: int) -> V:
    """Exponential moving average, alpha = 2 / (n + 1), seeded by the simple mean of the first n values."""
    a = _array(x)
    return _like(x, _per_column(kernels.ema, [a], _window(n)))


def rsi(x: V, n: int = 14) -> V:
    """Wilder's relative strength index (0-100) over n changes; the first value is at bar n."""
    a = _array(x)
    return _like(x, _per_column(kernels.rsi, [a], _window(n)))


def zscore(x: V, n: int) -> V:
    """(x - mean) / std over the last n values (population std); 0 where the window is flat."""
    a = _array(x)
    return _like(x, _per_column(kernels.rolling_zscore, [a], _window(n)))


def rolling_max(x: V, n: int, exclude_current: bool = False) -> V:
    """Highest of the last n values; with exclude_current, of the n values before this bar (a breakout level
    the bar itself can cross)."""
    a = _array(x)
    return _like(x, _per_column(kernels.rolling_extreme, [a], _window(n), True, int(exclude_current)))


def rolling_min(x: V, n: int, exclude_current: bool = False) -> V:
    """Lowest of the last n values; with exclude_current, of the n values before this bar."""
    a = _array(x)
    return _like(x, _per_column(kernels.rolling_extreme, [a], _window(n), False, int(exclude_current)))


def atr(high: V, low: V, close: V, n: int = 14) -> V:
    """Wilder's average true range over n bars (the type of `close` decides the result's)."""
    h, lo, c = _array(high), _array(low), _array(close)
    if not h.shape == lo.shape == c.shape:
        raise ValueError(f"high, low and close differ in length: {h.shape[0]}, {lo.shape[0]}, {c.shape[0]}")
    return _like(close, _per_column(kernels.atr, [h, lo, c], _window(n)))


class Bands(NamedTuple):
    """Bollinger bands: the moving average and k population standard deviations either side."""

    middle: np.ndarray | pl.Series
    upper: np.ndarray | pl.Series
    lower: np.ndarray | pl.Series


def bollinger(x: Values, n: int = 20, k: float = 2.0) -> Bands:
    """Bollinger bands over the last n values, k standard deviations wide."""
    a = _array(x)
    n = _window(n)
    mid = _per_column(kernels.sma, [a], n)
    sd = _per_column(kernels.rolling_std, [a], n)
    return Bands(_like(x, mid), _like(x, mid + k * sd), _like(x, mid - k * sd))


def returns(x: V, periods: int = 1, log: bool = False) -> V:
    """Return over `periods` bars: x[t] / x[t - periods] - 1, or its log; NaN for the first `periods` bars."""
    return _like(x, _per_column(_returns, [_array(x)], _window(periods, "periods"), log))


def _returns(x: np.ndarray, p: int, log: bool, out: np.ndarray) -> np.ndarray:
    out[: min(p, x.shape[0])] = np.nan
    if x.shape[0] > p:
        ratio = x[p:] / x[:-p]
        out[p:] = np.log(ratio) if log else ratio - 1.0
    return out


def __dir__() -> list[str]:
    """The indicators (tab completion in a notebook): not this module's own imports."""
    return sorted(__all__)
