"""Strategies: validated parameters, the registry, reference indicators, sizing and no look-ahead."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from marketboss.data.market import Market, SymbolBars
from marketboss.data.synth import synth_bars
from marketboss.errors import MarketBossError
from marketboss.strategies import Strategy, StrategyParams, create, describe_params, strategies
from marketboss.strategies.base import signals_from_exposures


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return synth_bars(["AAPL", "MSFT"], "2021-01-01", "2022-06-30", "1Day", seed=5)


@pytest.fixture(scope="module")
def market(bars: pl.DataFrame) -> Market:
    return Market.from_bars(bars)


def one_symbol(close: list[float] | np.ndarray) -> Market:
    c = np.asarray(close, dtype=float)
    n = c.shape[0]
    ts = pl.Series(np.datetime64("2024-01-02T05:00", "us") + np.arange(n) * np.timedelta64(1, "D"))
    return Market.from_bars(pl.DataFrame({
        "timestamp": ts.dt.replace_time_zone("UTC"), "symbol": "T", "open": c, "high": c * 1.01,
        "low": c * 0.99, "close": c, "volume": np.full(n, 1000),
    }))


def test_registry_lists_the_builtins_with_their_parameters() -> None:
    table = strategies()
    assert {"ma_crossover", "momentum", "mean_reversion"} <= set(table)
    params = {name: default for name, _, default, _ in describe_params(table["ma_crossover"])}
    assert params["fast"] == 10 and params["slow"] == 30 and params["ma"] == "sma"
    assert params["sizing"] == "quantity" and params["quantity"] == 10 and params["long_only"] is True


@pytest.mark.parametrize(
    ("name", "pairs", "message"),
    [
        ("nope", [], "unknown strategy 'nope': choose one of"),
        ("ma_crossover", ["fats=5"], "has no parameter 'fats'; valid: sizing"),
        ("ma_crossover", ["fast=abc"], "invalid parameter fast='abc'"),
        ("ma_crossover", ["fast=40"], "fast (40) must be below slow (30)"),
        ("ma_crossover", ["ma=wma"], "invalid parameter ma='wma'"),
        ("momentum", ["lookback=1"], "greater than or equal to 2"),
        ("mean_reversion", ["exit_z=3"], "exit_z (3.0) must be below entry_z"),
        ("mean_reversion", ["sizing=weight", "weight=2"], "less than or equal to 1"),
        ("ma_crossover", ["fast"], "must look like key=value"),
    ],
)
def test_bad_parameters_are_one_line_errors_listing_the_valid_ones(name: str, pairs: list[str], message: str) -> None:
    with pytest.raises(MarketBossError) as exc:
        create(name, pairs)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_params_are_typed_and_frozen() -> None:
    strat = create("ma_crossover", ["fast=5", "slow=12", "ma=ema", "long_only=false", "quantity=3"])
    p = strat.params
    assert (p.fast, p.slow, p.ma, p.long_only, p.quantity) == (5, 12, "ema", False, 3.0)
    with pytest.raises(ValidationError):
        p.fast = 6  # type: ignore[misc]


def _sma(x: np.ndarray, n: int) -> np.ndarray:
    return np.array([np.nan if i < n - 1 else x[i - n + 1 : i + 1].mean() for i in range(len(x))])


def _ema(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    a = 2 / (n + 1)
    for i in range(n - 1, len(x)):
        out[i] = x[:n].mean() if i == n - 1 else out[i - 1] + a * (x[i] - out[i - 1])
    return out


@pytest.mark.parametrize(("ma", "ref"), [("sma", _sma), ("ema", _ema)])
def test_ma_crossover_signals_at_the_bars_where_the_averages_cross(market: Market, ma: str, ref: Any) -> None:
    strat = create("ma_crossover", ["fast=5", "slow=20", f"ma={ma}", "long_only=false"])
    sig = strat.signals(market)
    for s, sym in enumerate(market.symbols):
        c = market.symbol_bars(s).close
        diff = np.sign(ref(c, 5) - ref(c, 20))
        crosses = [i for i in range(20, len(c)) if diff[i] != diff[i - 1] and diff[i - 1] != 0]
        mine = sig.filter(pl.col("symbol") == sym)
        times = market.symbol_bars(s).times
        assert mine["timestamp"].dt.epoch("us").to_list() == [int(times[i]) for i in crosses]
        # long-short: the first cross enters one unit, each later one flips (two units).
        assert mine["quantity"].to_list() == [10.0] + [20.0] * (len(crosses) - 1)
        assert mine["action"].to_list() == ["BUY" if diff[i] > 0 else "SELL" for i in crosses]
        assert mine["price"].to_list() == [c[i] for i in crosses]


def test_long_only_weight_sizing_targets_weight_then_zero(market: Market) -> None:
    sig = create("ma_crossover", ["sizing=weight", "weight=0.25"]).signals(market)
    assert sig["quantity"].null_count() == sig.height
    for sym in market.symbols:
        mine = sig.filter(pl.col("symbol") == sym)
        assert mine["target_weight"].to_list()[:4] == [0.25, 0.0, 0.25, 0.0]
        assert mine["action"].to_list()[:4] == ["BUY", "SELL", "BUY", "SELL"]


def test_tsmom_follows_the_sign_of_the_lookback_return(market: Market) -> None:
    strat = create("momentum", ["lookback=20", "long_only=false"])
    for s in range(market.n_symbols):
        b = market.symbol_bars(s)
        e = strat.exposure(b)
        expected = np.sign(b.close[20:] / b.close[:-20] - 1)
        assert np.isnan(e[:20]).all()
        np.testing.assert_array_equal(e[20:], expected)


def test_breakout_enters_above_the_prior_high_and_exits_below_the_prior_low() -> None:
    close = [10.0] * 10 + [12.0, 12.5, 12.2, 12.1, 9.0, 9.0]
    sig = create("momentum", ["mode=breakout", "lookback=5", "exit_lookback=3", "sizing=quantity"]).signals(
        one_symbol(close)
    )
    assert sig["action"].to_list() == ["BUY", "SELL"]
    day = lambda i: np.datetime64("2024-01-02T05:00", "us") + np.timedelta64(i, "D")  # noqa: E731
    assert sig["timestamp"].dt.replace_time_zone(None).to_list() == [day(10).item(), day(14).item()]


def test_zscore_buys_the_dip_and_exits_near_the_mean() -> None:
    close = [100.0 + (i % 2) * 0.5 for i in range(30)] + [95.0, 96.0, 100.2, 100.4]
    sig = create("mean_reversion", ["window=20", "entry_z=2", "exit_z=0.5"]).signals(one_symbol(close))
    assert sig["action"].to_list() == ["BUY", "SELL"]
    assert sig["target_weight"].to_list() == [0.15, 0.0]
    assert sig["price"].to_list() == [95.0, 100.2]


CONFIGS = [
    ("ma_crossover", ["fast=5", "slow=20", "long_only=false"]),
    ("ma_crossover", ["fast=3", "slow=9", "ma=ema", "sizing=weight"]),
    ("momentum", ["lookback=15", "long_only=false"]),
    ("momentum", ["mode=breakout", "lookback=10", "long_only=false"]),
    ("mean_reversion", ["window=10", "long_only=false"]),
    ("mean_reversion", ["mode=rsi", "rsi_period=7", "long_only=false", "sizing=quantity"]),
]


@pytest.mark.parametrize(("name", "pairs"), CONFIGS)
@settings(max_examples=15, deadline=None)
@given(cut=st.floats(min_value=0.05, max_value=0.95), seed=st.integers(0, 2**32 - 1))
def test_a_strategy_never_looks_ahead(bars: pl.DataFrame, name: str, pairs: list[str], cut: float, seed: int) -> None:
    """Changing every bar after time t leaves every signal up to t unchanged."""
    strat = create(name, pairs)
    times = bars["timestamp"].unique().sort()
    t = times[int(cut * (len(times) - 1))]
    rng = np.random.default_rng(seed)
    later = bars["timestamp"] > t
    factor = pl.Series(np.exp(rng.normal(0, 0.2, bars.height)))
    changed = bars.with_columns(
        pl.when(later).then(pl.col(c) * factor).otherwise(pl.col(c)).alias(c) for c in ("open", "high", "low", "close")
    )
    before = strat.signals(Market.from_bars(bars)).filter(pl.col("timestamp") <= t)
    after_change = strat.signals(Market.from_bars(changed))
    assert after_change.filter(pl.col("timestamp") <= t).equals(before)
    # and the perturbation does reach the decisions after t (the test could fail)
    assert not after_change.equals(strat.signals(Market.from_bars(bars))) or before.height == 0 or cut > 0.9


class _Alternate(Strategy[StrategyParams]):
    """A cross-sectional strategy (like the ML one): one exposure matrix for the whole market."""

    name: ClassVar[str] = "alternate"
    summary: ClassVar[str] = "test"
    params_model = StrategyParams

    def exposures(self, market: Market) -> np.ndarray:
        e = np.zeros((market.n_times, market.n_symbols))
        e[::10, 0] = 1.0
        e[5::10, 0] = 0.0
        e[:, 1:] = np.nan
        return e

    def exposure(self, bars: SymbolBars) -> np.ndarray:
        raise AssertionError("not used")


def test_a_strategy_can_supply_a_whole_exposure_matrix(market: Market) -> None:
    strat = _Alternate(StrategyParams(sizing="weight", weight=0.5))
    sig = strat.signals(market)
    assert set(sig["symbol"]) == {market.symbols[0]}
    assert sig["action"].to_list()[:3] == ["BUY", "SELL", "BUY"]
    same = signals_from_exposures(market, strat.exposures(market), "alternate", strat.params_json(), strat.params)
    assert same.equals(sig)


def test_monthly_rebalancing_restores_drifted_weights_on_each_months_first_bar(market: Market) -> None:
    from marketboss.backtest import BacktestConfig, run_strategy

    base = {"fast": 5, "slow": 30, "sizing": "weight", "weight": 0.3}
    plain = create("ma_crossover", base).signals(market)
    res, sig = run_strategy(market, create("ma_crossover", {**base, "rebalance": "monthly"}), BacktestConfig())
    extra = sig.join(plain.select("timestamp", "symbol"), on=["timestamp", "symbol"], how="anti")
    assert extra.height > 0 and plain.height + extra.height == sig.height  # the strategy's own signals unchanged
    local = extra["timestamp"].dt.convert_time_zone("America/New_York")
    months = market.timestamps().dt.convert_time_zone("America/New_York").dt.strftime("%Y-%m")
    firsts = set(market.timestamps().filter(months != months.shift(1)).slice(1).to_list())
    assert set(extra["timestamp"].to_list()) <= firsts and local.dt.day().max() <= 7  # each month's first bar
    assert set(extra["target_weight"].to_list()) <= {0.3}  # a held target, restated
    # after a rebalancing fill, every rebalanced position is its target weight of equity, to a share
    fills = res.fills.join(extra.select(pl.col("id").alias("signal_id")), on="signal_id")
    assert fills.height > 0
    signed = pl.when(pl.col("side") == "BUY").then(pl.col("qty")).otherwise(-pl.col("qty"))
    for when in fills["timestamp"].unique().to_list():
        upto = res.fills.filter(pl.col("timestamp") <= when).group_by("symbol").agg(signed.sum().alias("pos"))
        bar = market.timestamps().to_list().index(when)
        opens = {sym: market.open[bar, market.symbol_index(sym)] for sym in market.symbols}
        cash = res.equity["cash"][bar]
        equity = cash + sum(p * opens[s] for s, p in upto.iter_rows())
        for sym in fills.filter(pl.col("timestamp") == when)["symbol"].to_list():
            pos = dict(upto.iter_rows())[sym]
            assert abs(pos * opens[sym] - 0.3 * equity) <= opens[sym] + 1e-6, (when, sym)


def test_rebalancing_needs_weight_sizing() -> None:
    with pytest.raises(MarketBossError, match="needs sizing=weight"):
        create("ma_crossover", {"rebalance": "monthly"})
