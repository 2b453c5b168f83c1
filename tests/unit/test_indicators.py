"""marketboss.indicators: each matches its textbook definition (pandas or a direct loop), is causal (a value
never changes when later bars are appended or altered), and keeps the kind of its input."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketboss import indicators as ind
from marketboss.indicators import atr, bollinger, ema, returns, rolling_max, rolling_min, rsi, sma, zscore


def walk(n: int, seed: int = 1) -> np.ndarray:
    return 100 + np.cumsum(np.random.default_rng(seed).normal(0, 1, n))


def test_rsi_matches_wilders_definition() -> None:
    x = walk(80)
    ours = rsi(x, 14)
    d = np.diff(x)
    g, lo = np.clip(d, 0, None), np.clip(-d, 0, None)
    ag, al = g[:14].mean(), lo[:14].mean()
    expected = [100 - 100 / (1 + ag / al)]
    for i in range(14, len(d)):
        ag, al = (ag * 13 + g[i]) / 14, (al * 13 + lo[i]) / 14
        expected.append(100 - 100 / (1 + ag / al))
    assert np.isnan(ours[:14]).all()
    np.testing.assert_allclose(ours[14:], expected, rtol=1e-12)


def test_moving_averages_bands_and_extremes_match_pandas() -> None:
    x = walk(300)
    s = pd.Series(x)
    np.testing.assert_allclose(sma(x, 20), s.rolling(20).mean(), rtol=1e-10, equal_nan=True)
    # pandas' ewm(adjust=False) seeded with the first n values' mean, as ours is
    seeded = pd.Series(np.r_[np.full(9, np.nan), x[:10].mean(), x[10:]])
    np.testing.assert_allclose(ema(x, 10), seeded.ewm(span=10, adjust=False, ignore_na=True).mean(), rtol=1e-12,
                               equal_nan=True)  # fmt: skip
    assert np.isnan(ema(x, 10)[:9]).all()
    np.testing.assert_allclose(zscore(x, 20), (s - s.rolling(20).mean()) / s.rolling(20).std(ddof=0), rtol=1e-9,
                               equal_nan=True)  # fmt: skip
    bands = bollinger(x, 20, 2.5)
    np.testing.assert_allclose(bands.middle, s.rolling(20).mean(), rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(bands.upper - bands.middle, 2.5 * s.rolling(20).std(ddof=0), rtol=1e-8, equal_nan=True)
    np.testing.assert_allclose(bands.middle - bands.lower, 2.5 * s.rolling(20).std(ddof=0), rtol=1e-8, equal_nan=True)
    np.testing.assert_array_equal(rolling_max(x, 15), s.rolling(15).max())
    np.testing.assert_array_equal(rolling_min(x, 15), s.rolling(15).min())
    np.testing.assert_array_equal(rolling_max(x, 15, exclude_current=True), s.rolling(15).max().shift(1))
    np.testing.assert_array_equal(rolling_min(x, 15, exclude_current=True), s.rolling(15).min().shift(1))
    np.testing.assert_allclose(returns(x, 5), s.pct_change(5), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(returns(x, 1, log=True), np.log(s / s.shift(1)), rtol=1e-12, equal_nan=True)


def test_atr_is_wilders_average_of_the_true_range() -> None:
    c = walk(120, seed=3)
    h = c + np.abs(np.random.default_rng(4).normal(0, 1, 120))
    lo = c - np.abs(np.random.default_rng(5).normal(0, 1, 120))
    prev = np.r_[np.nan, c[:-1]]
    tr = np.nanmax(np.c_[h - lo, np.abs(h - prev), np.abs(lo - prev)], axis=1)
    expected = np.full(120, np.nan)
    expected[13] = tr[:14].mean()
    for i in range(14, 120):
        expected[i] = (expected[i - 1] * 13 + tr[i]) / 14
    np.testing.assert_allclose(atr(h, lo, c, 14), expected, rtol=1e-12, equal_nan=True)
    with pytest.raises(ValueError, match="differ in length"):
        atr(h, lo[:-1], c)


ALL: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sma": lambda x: sma(x, 5),
    "ema": lambda x: ema(x, 5),
    "rsi": lambda x: rsi(x, 5),
    "zscore": lambda x: zscore(x, 5),
    "rolling_max": lambda x: rolling_max(x, 5),
    "rolling_min_prior": lambda x: rolling_min(x, 5, exclude_current=True),
    "atr": lambda x: atr(x * 1.01, x * 0.99, x, 5),
    "bollinger_upper": lambda x: np.asarray(bollinger(x, 5).upper),
    "returns": lambda x: returns(x, 3),
}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(1.0, 1000.0, allow_nan=False), min_size=1, max_size=60),
    st.lists(st.floats(1.0, 1000.0, allow_nan=False), min_size=1, max_size=20),
)
def test_no_indicator_looks_ahead(past: list[float], future: list[float]) -> None:
    """The values up to bar t are the same whatever follows t (appended or altered)."""
    x = np.array(past)
    longer = np.r_[x, future]
    altered = np.r_[x, np.array(future)[::-1] * 1.5]
    for name, f in ALL.items():
        now = f(x)
        assert now.shape == x.shape, name
        np.testing.assert_array_equal(f(longer)[: len(x)], now, err_msg=name)
        np.testing.assert_array_equal(f(altered)[: len(x)], now, err_msg=name)


def test_a_series_in_gives_a_series_out_and_lists_are_accepted() -> None:
    s = pl.Series("close", walk(30))
    out = sma(s, 3)
    assert isinstance(out, pl.Series) and out.name == "close" and out.dtype == pl.Float64
    np.testing.assert_allclose(out.to_numpy(), sma(s.to_numpy(), 3), equal_nan=True)
    assert isinstance(bollinger(s, 5).upper, pl.Series)
    assert repr(sma([1.0, 2.0, 3.0, 4.0], 2)) == "array([nan, 1.5, 2.5, 3.5])"  # the module docstring's example


def test_gaps_and_bad_windows() -> None:
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0])
    np.testing.assert_array_equal(sma(x, 2), [np.nan, 1.5, np.nan, 3.0, 4.5, 5.5])  # a missing bar is skipped
    e = ema(x, 2)  # NaN there, the average carries on
    assert np.isnan(e[2]) and e[3] == pytest.approx((1.0 + 2.0) / 2 + 2 / 3 * (4.0 - 1.5))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="whole number"):
            sma(x, bad)  # type: ignore[arg-type]
    assert np.isnan(rsi(x[:3], 14)).all() and np.isnan(ind.atr(x, x, x, 10)).all()


@pytest.mark.parametrize("fn", [
    lambda x: sma(x, 5), lambda x: ema(x, 5), lambda x: rsi(x, 5), lambda x: zscore(x, 5),
    lambda x: rolling_max(x, 5, exclude_current=True), lambda x: rolling_min(x, 5), lambda x: returns(x, 2),
    lambda x: bollinger(x, 5).upper, lambda x: atr(x + 1.0, x - 1.0, x, 5),
])  # fmt: skip
def test_a_time_by_symbol_matrix_gives_each_columns_values(fn: Callable[[np.ndarray], np.ndarray]) -> None:
    """What a whole-market strategy's exposures(market) holds: market.close, (time x symbol). Before, numba's
    typing error (1.2 kB on a line)."""
    x = np.column_stack([walk(60, seed) for seed in range(4)])
    out = fn(x)
    assert out.shape == x.shape
    for j in range(4):
        assert np.array_equal(out[:, j], fn(x[:, j].copy()), equal_nan=True)
    with pytest.raises(ValueError, match=r"a series \(1-D\) or a \(time x symbol\) matrix, not an array of shape"):
        fn(x.reshape(2, 30, 4))


@pytest.mark.parametrize("fn", [
    lambda x: sma(x, 5), lambda x: ema(x, 5), lambda x: rsi(x, 5), lambda x: zscore(x, 5),
    lambda x: rolling_max(x, 5, exclude_current=True), lambda x: rolling_min(x, 5), lambda x: returns(x, 2),
    lambda x: bollinger(x, 5).lower, lambda x: atr(x + 1.0, x - 1.0, x, 5),
])  # fmt: skip
def test_a_matrix_column_with_missing_bars_gives_its_symbols_own_values(fn: Callable[[np.ndarray], np.ndarray]
                                                                          ) -> None:  # fmt: skip
    """A market's symbol listed later, or without a bar now and then, is NaN there: each column gives what its
    symbol's own bars give, NaN at the missing ones (before, RSI and ATR were NaN for ever after a leading NaN,
    a rolling minimum's window holding a NaN took the wrong value, a z-score was 0 there)."""
    x = np.column_stack([walk(80, seed) for seed in range(3)])
    x[:30, 1] = np.nan  # listed at bar 30
    x[[10, 11, 50], 2] = np.nan  # no bar on three days
    out = fn(x)
    for j in range(3):
        own = ~np.isnan(x[:, j])
        assert np.isnan(out[~own, j]).all()
        np.testing.assert_array_equal(out[own, j], fn(x[own, j]))
        assert not np.isnan(out[own, j][10:]).any()  # the window full, a value on every bar


@pytest.mark.parametrize("level", [0.1, 1.1, 123.456, 1e-9, 0.0])
def test_a_flat_window_has_a_z_score_of_0_and_no_width(level: float) -> None:
    """Its mean's rounding left a deviation of ~1e-17 at some levels: a z-score of -1 or +1 on a price that did
    not move."""
    x = np.r_[walk(10), np.full(25, level)]
    assert (zscore(x, 20)[-5:] == 0.0).all()
    bands = bollinger(x, 20)
    assert (bands.upper[-5:] == bands.middle[-5:]).all() and (bands.lower[-5:] == bands.middle[-5:]).all()
