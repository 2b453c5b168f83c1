"""ML features and target: causal (nothing at t moves when later bars change), and what their names say."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketboss.data.market import Market
from marketboss.data.synth import synth_bars
from marketboss.ml.features import FEATURES, WARMUP, market_features, market_targets, samples


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return synth_bars(["AAPL", "MSFT", "JPM"], "2021-01-01", "2022-06-30", "1Day", seed=3)


@settings(max_examples=20, deadline=None)
@given(cut=st.floats(min_value=0.05, max_value=0.9), seed=st.integers(0, 2**32 - 1))
def test_no_feature_at_t_changes_when_later_bars_change(bars: pl.DataFrame, cut: float, seed: int) -> None:
    times = bars["timestamp"].unique().sort()
    t = times[int(cut * (len(times) - 1))]
    rng = np.random.default_rng(seed)
    later = bars["timestamp"] > t
    factor = pl.Series(np.exp(rng.normal(0, 0.1, bars.height)))
    vol = pl.Series(rng.integers(1, 10, bars.height))
    prices = ("open", "high", "low", "close")
    changed = bars.with_columns(
        *(pl.when(later).then(pl.col(c) * factor).otherwise(pl.col(c)).alias(c) for c in prices),
        pl.when(later).then(pl.col("volume") * vol).otherwise(pl.col("volume")).alias("volume"),
    )
    a, b = Market.from_bars(bars), Market.from_bars(changed)
    fa, fb = market_features(a), market_features(b)
    k = int(np.searchsorted(a.times, t.timestamp() * 1e6, side="right"))  # rows up to and including t
    assert np.array_equal(fa[:k], fb[:k], equal_nan=True)
    assert not np.array_equal(fa[k:], fb[k:], equal_nan=True)  # the change does reach later features


def _rolling(x: np.ndarray, n: int, fn: object) -> np.ndarray:
    out = np.full(x.shape[0], np.nan)
    for i in range(n - 1, x.shape[0]):
        out[i] = fn(x[i - n + 1 : i + 1])  # type: ignore[operator]
    return out


def test_features_match_their_definitions(bars: pl.DataFrame) -> None:
    m = Market.from_bars(bars.filter(pl.col("symbol") == "MSFT"))
    X = market_features(m)[:, 0, :]
    c, h, lo, v = m.close[:, 0], m.high[:, 0], m.low[:, 0], m.volume[:, 0]
    col = {f: X[:, i] for i, f in enumerate(FEATURES)}
    lr = np.r_[np.nan, np.diff(np.log(c))]
    for lag in (1, 5, 10, 20, 60):
        expect = np.r_[np.full(lag, np.nan), np.log(c[lag:] / c[:-lag])]
        np.testing.assert_allclose(col[f"ret_{lag}"], expect, rtol=1e-9, atol=1e-14)
    sma10, sma50 = _rolling(c, 10, np.mean), _rolling(c, 50, np.mean)
    np.testing.assert_allclose(col["ma_ratio_10"], c / sma10 - 1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(col["ma_ratio_50"], c / sma50 - 1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(col["ma_ratio_10_50"], sma10 / sma50 - 1, rtol=1e-9, atol=1e-12)
    vol20 = np.r_[np.nan, _rolling(lr[1:], 20, np.std)]
    np.testing.assert_allclose(col["vol_20"], vol20, rtol=1e-6)
    rng = (h - lo) / c
    np.testing.assert_allclose(col["range_1"], rng, rtol=1e-12)
    np.testing.assert_allclose(col["range_20"], _rolling(rng, 20, np.mean), rtol=1e-9)
    lv = np.log1p(v)
    z = (lv - _rolling(lv, 20, np.mean)) / _rolling(lv, 20, np.std)
    np.testing.assert_allclose(col["volume_z_20"], z, rtol=1e-9, atol=1e-12)
    assert np.nanmin(col["rsi_14"]) > 0 and np.nanmax(col["rsi_14"]) < 100
    assert np.isnan(X[WARMUP - 1]).any() and np.isfinite(X[WARMUP]).all()


def test_target_is_the_forward_return_of_the_symbols_own_bars_with_gaps(bars: pl.DataFrame) -> None:
    """A symbol missing some bars: its label looks h of *its* bars ahead; `end` names that market row."""
    gappy = bars.filter(~((pl.col("symbol") == "JPM") & (pl.int_range(pl.len()).over("symbol") % 7 == 3)))
    m = Market.from_bars(gappy)
    y, end = market_targets(m, 5)
    s = m.symbol_index("JPM")
    rows = m.rows(s)
    c = m.close[rows, s]
    np.testing.assert_allclose(y[rows[:-5], s], c[5:] / c[:-5] - 1, rtol=1e-12)
    assert np.array_equal(end[rows[:-5], s], rows[5:])
    assert np.isnan(y[rows[-5:], s]).all() and (end[rows[-5:], s] == -1).all()
    assert (end[rows[:-5], s] - rows[:-5] > 5).any()  # the gap stretches some labels over more market rows
    smp = samples(m, 5)
    assert np.isfinite(smp.X).all() and np.isfinite(smp.y).all() and (smp.end > smp.t).all()
    assert np.all(np.diff(smp.t) >= 0)
    unlabelled = samples(m, 5, labelled=False)
    assert len(unlabelled) > len(smp) and unlabelled.t.max() == m.n_times - 1
