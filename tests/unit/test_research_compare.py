"""Comparing strategies on the same bars: engine metrics in and out of sample, the best by an out-of-sample
metric, and one-line reasons for strategies that cannot run (an unregistered name, an ml model not trained)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from marketboss.backtest import BacktestConfig, Costs
from marketboss.data.market import Market
from marketboss.errors import MarketBossError
from marketboss.research import LocalBackend, Window, evaluate
from marketboss.research.compare import TABLE_METRICS, compare, split_index
from marketboss.strategies import create

CONFIG = BacktestConfig(costs=Costs(commission=0.001))


@pytest.fixture(scope="module")
def market(daily_bars: pl.DataFrame) -> Market:
    return Market.from_bars(daily_bars)


def test_the_best_out_of_sample_strategy_is_selected(market: Market, workdir: Path) -> None:
    names = ["ma_crossover", "momentum", "mean_reversion"]
    result = compare(market, names, {"ma_crossover": {"fast": "5", "slow": "20"}}, CONFIG, "sharpe",
                     backend=LocalBackend(1))
    split = split_index(market)
    assert split == market.n_times - round(0.3 * market.n_times)
    assert [o.strategy for o in result.outcomes] == names and all(o.error is None for o in result.outcomes)
    for o in result.outcomes:
        assert o.params is not None and o.in_sample is not None and o.out_of_sample is not None
        strat = create(o.strategy, o.params)
        oos = evaluate(market, strat, Window(split, market.n_times), CONFIG).metrics
        assert o.out_of_sample["sharpe"] == oos["sharpe"] and o.out_of_sample["start"] == oos["start"]
        assert o.in_sample["end"] < o.out_of_sample["start"]  # the windows do not overlap
    assert result.outcomes[0].params is not None and result.outcomes[0].params["fast"] == 5
    sharpes = [o.out_of_sample["sharpe"] for o in result.outcomes if o.out_of_sample]
    assert result.best is not None and result.best.out_of_sample is not None
    assert result.best.out_of_sample["sharpe"] == max(sharpes)
    table = result.table()
    assert table["strategy"].to_list() == names and table["selected"].sum() == 1
    assert table.filter(pl.col("selected"))["strategy"][0] == result.best.strategy
    assert {f"oos_{k}" for k in TABLE_METRICS} <= set(table.columns)


def test_strategies_that_cannot_run_get_a_one_line_reason_and_the_rest_are_compared_none_selected(
    market: Market, workdir: Path
) -> None:
    result = compare(market, ["ml", "nope", "mean_reversion", "ma_crossover"],
                     {"mean_reversion": {"exit_z": "9"}}, CONFIG, "total_return_pct", backend=LocalBackend(1))
    errors = {o.strategy: o.error for o in result.outcomes}
    assert errors["ma_crossover"] is None
    assert errors["nope"] is not None and errors["nope"].startswith("unknown strategy 'nope'")
    assert errors["mean_reversion"] is not None and "exit_z (9.0) must be below entry_z" in errors["mean_reversion"]
    assert errors["ml"] is not None and "model" in errors["ml"]  # no trained model in this empty directory
    assert all("\n" not in (e or "") for e in errors.values())
    assert result.best is None  # a selection among the others is not what was asked
    assert not result.table()["selected"].any()
    assert result.table().filter(pl.col("strategy") == "nope")["status"][0] == errors["nope"]


def test_split_and_argument_errors(market: Market) -> None:
    assert split_index(market, oos_start=int(market.times[100])) == 100
    assert split_index(market, oos_start=int(market.times[100]) - 1) == 100  # the first bar at or after
    with pytest.raises(MarketBossError, match="between 0 and 1"):
        split_index(market, 1.5)
    with pytest.raises(MarketBossError, match="each side needs at least 2"):
        split_index(market, oos_start=int(market.times[-1]))
    with pytest.raises(MarketBossError, match="--param for 'momentum', which is not in --strategies"):
        compare(market, ["ma_crossover"], {"momentum": {"lookback": "5"}})
    with pytest.raises(MarketBossError, match="distinct strategy names"):
        compare(market, ["ma_crossover", "ma_crossover"])


def test_no_defined_metric_means_no_selection(market: Market) -> None:
    """A strategy that never trades out of sample has no Sharpe: nothing is selected."""
    quiet = {"mean_reversion": {"entry_z": "50", "exit_z": "49"}}
    result = compare(market, ["mean_reversion"], quiet, CONFIG, backend=LocalBackend(1))
    assert result.outcomes[0].error is None and result.best is None
    assert result.outcomes[0].out_of_sample is not None
    assert np.isnan(result.outcomes[0].out_of_sample["sharpe"])
