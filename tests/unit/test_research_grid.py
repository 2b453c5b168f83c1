"""Grids from the command line, combinations validated by the strategy's model, and ranking by a metric."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketboss.errors import MarketBossError
from marketboss.research.backends import LocalBackend, plan_chunks
from marketboss.research.grid import combinations, parse_axis
from marketboss.research.selection import best_index, ranking


def test_ranges_are_inclusive_and_lists_keep_their_order() -> None:
    assert parse_axis("fast=5:50:5") == ("fast", [5, 10, 15, 20, 25, 30, 35, 40, 45, 50])
    assert parse_axis("slow=20:200:10")[1][-1] == 200
    assert parse_axis("x=1:2") == ("x", [1, 2])
    assert parse_axis("z=1.5:2.5:0.5") == ("z", [1.5, 2, 2.5])  # exact decimal steps, no 2.4999999
    assert parse_axis("w=0.1:0.3:0.1") == ("w", [0.1, 0.2, 0.3])
    assert parse_axis("ma=ema,sma,ema") == ("ma", ["ema", "sma"])
    assert parse_axis(" quantity = 10 ") == ("quantity", [10])


def test_the_issue_grid_has_174_valid_combinations_and_16_skipped() -> None:
    c = combinations("ma_crossover", ["fast=5:50:5", "slow=20:200:10"])
    assert (len(c.params), c.skipped) == (174, 16)
    assert c.skip_reason == "fast (20) must be below slow (20)"
    assert all(p.fast < p.slow for p in c.params)
    assert c.keys == ("fast", "slow")
    assert [(p.fast, p.slow) for p in c.params[:2]] == [(5, 20), (5, 30)]  # the last axis varies fastest


def test_fixed_parameters_and_single_values_apply_to_every_combination() -> None:
    c = combinations("ma_crossover", ["quantity=5", "slow=30,40", "fast=10"], {"long_only": "false"})
    assert c.keys == ("slow", "quantity", "fast")  # swept axes first
    assert {(p.quantity, p.long_only, p.fast) for p in c.params} == {(5, False, 10)}
    assert c.dicts()[0]["slow"] == 30


@pytest.mark.parametrize(("specs", "fixed", "message"), [
    (["fast"], {}, "must look like name=a:b:step"),
    (["fast=5:x:5"], {}, "a range is start:stop or start:stop:step, in numbers"),
    (["fast=50:5:5"], {}, "need start <= stop and a positive step"),
    (["fast=5:50:0"], {}, "need start <= stop and a positive step"),
    (["fast=5,,6"], {}, "empty value in the list"),
    (["fats=5:10"], {}, "has no parameter 'fats'; valid: sizing"),
    (["fast=5", "fast=6"], {}, "--grid 'fast' is given twice"),
    (["fast=5"], {"fast": "6"}, "parameter 'fast' is given both as --grid and as --param"),
    (["fast=40:50:5", "slow=20:30:10"], {}, "no valid parameter combination: all 6 were rejected"),
    (["fast=0:1000000000"], {}, "too many"),
    # a value of no combination (a typo), not skipped with the out-of-range ones
    (["fast=5,x", "slow=20:30:10"], {}, "invalid parameter fast='x': Input should be a valid integer"),
    (["ma=sma,emaa"], {}, "invalid parameter ma='emaa': Input should be 'sma' or 'ema'"),
    (["long_only=true,maybe"], {}, "invalid parameter long_only='maybe'"),
    (["fast=5.5,10"], {}, "invalid parameter fast=5.5: Input should be a valid integer, got a number with a fraction"),
])
def test_bad_grids_are_one_line_errors(specs: list[str], fixed: dict[str, str], message: str) -> None:
    with pytest.raises(MarketBossError) as exc:
        combinations("ma_crossover", specs, fixed)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_unknown_strategy() -> None:
    with pytest.raises(MarketBossError, match="unknown strategy 'nope': choose one of"):
        combinations("nope", ["a=1"])


def test_ranking_follows_the_metric_direction_and_puts_undefined_last() -> None:
    v = np.array([0.5, np.nan, 2.0, -1.0, 2.0])
    assert ranking(v, "sharpe").tolist() == [2, 4, 0, 3, 1]  # ties keep grid order
    assert ranking(v, "annual_volatility_pct").tolist() == [3, 0, 2, 4, 1]
    assert best_index(np.array([np.nan, np.nan]), "sharpe") is None
    with pytest.raises(MarketBossError, match="cannot rank strategies; choose one of sharpe"):
        ranking(v, "n_trades")


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 2000), per=st.floats(1, 1e9), workers=st.integers(1, 64), chunk=st.floats(1, 1e8))
def test_chunks_cover_every_item_once_in_order(n: int, per: float, workers: int, chunk: float) -> None:
    backend = LocalBackend(workers, chunk_work=chunk)
    chunks = plan_chunks(n, per, backend)
    assert [i for c in chunks for i in c] == list(range(n))
    assert len(chunks) <= 4 * workers


def test_none_unsets_a_parameter_that_may_be_none_and_only_such_a_one() -> None:
    """`--param stop_loss_pct=none` unsets a plug-in's default stop; `--grid trail_percent=2,none` sweeps with and
    without (before: 'Input should be a valid number', and the grid skipped `none`)."""
    from marketboss.strategies.registry import check_params

    assert check_params("ma_crossover", ["stop_loss_pct=none", "rebalance=NULL", "sizing=weight"]).stop_loss_pct is None
    combos = combinations("ma_crossover", ["trail_percent=2,none"])
    assert [p.trail_percent for p in combos.params] == [2, None] and combos.skipped == 0
    with pytest.raises(MarketBossError, match="invalid parameter fast='none'"):
        check_params("ma_crossover", ["fast=none"])  # an int that may not be None: not turned into None
