"""Walk-forward: folds, choices made on training bars only, out-of-sample windows stitched; deflated Sharpe."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketboss.backtest import BacktestConfig, Costs, equity_metrics, run_strategy
from marketboss.data.market import Market
from marketboss.data.synth import synth_bars
from marketboss.errors import MarketBossError
from marketboss.research import LocalBackend, combinations, evaluate, sweep
from marketboss.research.dsr import (
    SharpeEstimate,
    deflated_sharpe,
    expected_max_sharpe,
    probabilistic_sharpe,
)
from marketboss.research.selection import best_index
from marketboss.research.walkforward import plan_folds, walk_forward
from marketboss.strategies import create

SERIAL = LocalBackend(workers=1)
CONFIG = BacktestConfig(costs=Costs(commission=0.001))


@pytest.fixture(scope="module")
def market() -> Market:
    return Market.from_bars(synth_bars(["AAPL", "MSFT", "JPM", "XOM"], "2019-01-01", "2022-12-31", "1Day", seed=3))


def test_rolling_and_anchored_folds() -> None:
    rolling = plan_folds(1000, 400, 150)
    assert [(f.train.start, f.train.end, f.test.start, f.test.end) for f in rolling] == [
        (0, 400, 400, 550), (150, 550, 550, 700), (300, 700, 700, 850), (450, 850, 850, 1000)]
    anchored = plan_folds(1010, 400, 150, anchored=True)
    assert {f.train.start for f in anchored} == {0}
    assert anchored[-1].test.end == 1010 and anchored[-1].test.bars == 10  # a shorter last window
    with pytest.raises(MarketBossError, match="not enough bars for one fold: the data has 300"):
        plan_folds(300, 400, 150)
    with pytest.raises(MarketBossError, match="at least 2 bars"):
        plan_folds(300, 100, 1)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(4, 3000), train=st.integers(2, 500), test=st.integers(2, 300), anchored=st.booleans())
def test_test_windows_tile_the_bars_after_the_first_training_window(n: int, train: int, test: int,
                                                                     anchored: bool) -> None:
    if train + 2 > n:
        return
    folds = plan_folds(n, train, test, anchored)
    assert folds[0].test.start == train and folds[-1].test.end <= n
    for a, b in itertools.pairwise(folds):
        assert a.test.end == b.test.start
    for f in folds:
        assert f.train.end == f.test.start and f.test.bars >= 2  # training ends where testing begins
        assert f.train.bars == (f.train.end if anchored else train)


def test_the_deflated_sharpe_ratio_matches_bailey_and_lopez_de_prado() -> None:
    """Their worked example: annualised Sharpe 2.5 over 1,250 days, skew -3, kurtosis 10, after 100 trials
    whose Sharpe ratios vary by 0.5 (annualised): expected maximum 0.1132 a day, DSR 0.9004."""
    est = SharpeEstimate(2.5 / math.sqrt(250), 1250, -3.0, 10.0)
    assert expected_max_sharpe(100, 0.5 / 250) == pytest.approx(0.1132, abs=1e-4)
    assert deflated_sharpe(est, 100, 0.5 / 250) == pytest.approx(0.9004, abs=1e-3)
    assert deflated_sharpe(est, 1, 0.5 / 250) == probabilistic_sharpe(est)  # one trial: nothing to deflate
    more = [deflated_sharpe(est, n, 0.5 / 250) for n in (2, 10, 100, 1000)]
    assert more == sorted(more, reverse=True)  # more trials, less confidence


def test_sharpe_estimate_of_normal_returns() -> None:
    r = np.random.default_rng(4).normal(0.001, 0.01, 200_000)
    est = SharpeEstimate.of(r)
    assert est.sharpe == pytest.approx(0.1, abs=0.01)
    assert (est.skew, est.kurtosis) == (pytest.approx(0, abs=0.05), pytest.approx(3, abs=0.05))
    assert math.isnan(SharpeEstimate.of(np.zeros(10)).sharpe)


def test_each_fold_chooses_on_its_training_bars_and_trades_the_next(market: Market) -> None:
    combos = combinations("ma_crossover", ["fast=5:20:5", "slow=30:90:30"])
    result = walk_forward(market, combos, 300, 120, CONFIG, backend=SERIAL)
    folds = plan_folds(market.n_times, 300, 120)
    assert result.folds.height == len(folds) == 6  # (1008 - 300) / 120: five full test windows and a shorter one
    oos_parts = []
    for f, row in zip(folds, result.folds.iter_rows(named=True), strict=True):
        train = sweep(market, combos, CONFIG, window=f.train, backend=SERIAL).summary
        i = best_index(train["sharpe"].to_numpy(), "sharpe")
        assert i is not None and (row["fast"], row["slow"]) == (train["fast"][i], train["slow"][i])
        assert row["is_sharpe"] == train["sharpe"][i] and row["trials"] == len(combos.params)
        chosen = combinations("ma_crossover", [f"fast={row['fast']}", f"slow={row['slow']}"])
        test = sweep(market, chosen, CONFIG, window=f.test, backend=SERIAL, keep_equity=True)
        assert row["oos_sharpe"] == test.summary["sharpe"][0]
        assert row["test_start"] == market.timestamps()[f.test.start]
        assert 0.0 <= row["is_dsr"] <= 1.0
        assert test.equity is not None
        oos_parts.append(test.equity[0])
    # stitched: each window's returns compounded onto the last window's end
    level, stitched = CONFIG.cash, []
    for part in oos_parts:
        stitched.append(part * level / CONFIG.cash)
        level = stitched[-1][-1]
    np.testing.assert_allclose(result.equity["equity"].to_numpy(), np.concatenate(stitched), rtol=1e-12)
    assert result.equity["timestamp"].to_list() == market.timestamps()[300:].to_list()
    expected = equity_metrics(market.times[300:], np.concatenate(stitched), initial=CONFIG.cash,
                              periods_per_year=252.0)
    assert result.summary["oos_sharpe"] == pytest.approx(expected["sharpe"], rel=1e-9)
    assert 0.0 <= result.summary["oos_dsr"] <= result.summary["oos_psr"] <= 1.0


def test_backtest_sweep_and_walk_forward_in_sample_report_the_same_return(market: Market) -> None:
    """One account everywhere: a fold's in-sample figures are the sweep's summary on its training bars, which is
    the backtest of the chosen parameters on those bars; over all bars the sweep is `marketboss backtest`."""
    combos = combinations("ma_crossover", ["fast=5,10", "slow=30,60"])
    result = walk_forward(market, combos, 400, 200, CONFIG, backend=SERIAL)
    fold = result.folds.row(0, named=True)
    strat = create("ma_crossover", {"fast": fold["fast"], "slow": fold["slow"]})
    train = plan_folds(market.n_times, 400, 200)[0].train
    backtest = evaluate(market, strat, train, CONFIG).metrics
    one = combinations("ma_crossover", [f"fast={fold['fast']}", f"slow={fold['slow']}"])
    swept = sweep(market, one, CONFIG, window=train, backend=SERIAL).summary.row(0, named=True)
    assert fold["is_total_return_pct"] == swept["total_return_pct"] == pytest.approx(backtest["total_return_pct"],
                                                                                     rel=1e-12)  # fmt: skip
    assert fold["is_sharpe"] == pytest.approx(backtest["sharpe"], rel=1e-12)
    whole, _ = run_strategy(market, strat, CONFIG)
    full = sweep(market, one, CONFIG, backend=SERIAL).summary.row(0, named=True)
    assert full["total_return_pct"] == pytest.approx(whole.metrics["total_return_pct"], rel=1e-12)
    assert full["final_equity"] == pytest.approx(whole.metrics["final_equity"], rel=1e-12)


def test_a_folds_choice_never_sees_its_test_bars(market: Market) -> None:
    combos = combinations("momentum", ["lookback=20:80:20"])
    base = walk_forward(market, combos, 400, 150, CONFIG, backend=SERIAL)
    cut = 400 + 150  # fold 0 trains on [0, 400) and tests on [400, 550)
    arrays = {f: getattr(market, f).copy() for f in ("open", "high", "low", "close", "volume")}
    for a in arrays.values():
        a[400:] *= np.random.default_rng(1).uniform(0.7, 1.3, a[400:].shape)
    shaken = Market(market.symbols, market.times, **arrays, bars_per_year=market.bars_per_year)
    other = walk_forward(shaken, combos, 400, 150, CONFIG, backend=SERIAL)
    keep = ["lookback", "is_sharpe", "is_total_return_pct", "is_dsr"]
    assert base.folds.head(1).select(keep).equals(other.folds.head(1).select(keep))
    assert base.folds["oos_sharpe"][0] != other.folds["oos_sharpe"][0]  # the test bars did change
    assert base.equity["timestamp"][0] == market.timestamps()[400] and cut < market.n_times


def test_walk_forward_needs_a_rankable_metric(market: Market) -> None:
    with pytest.raises(MarketBossError, match="cannot rank strategies"):
        walk_forward(market, combinations("momentum", ["lookback=20"]), 300, 100, metric="n_trades")


def test_the_folds_table_has_typed_windows(market: Market) -> None:
    result = walk_forward(market, combinations("momentum", ["lookback=20,40"]), 500, 250, CONFIG, anchored=True,
                          metric="calmar", backend=SERIAL)
    assert result.folds.schema["train_start"] == pl.Datetime("us", "UTC")
    assert result.folds["train_start"].n_unique() == 1
    assert {"is_calmar", "oos_calmar", "is_sharpe", "oos_sharpe"} <= set(result.folds.columns)
    assert result.summary["metric"] == "calmar" and result.summary["anchored"] is True
