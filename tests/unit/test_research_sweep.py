"""The sweep kernel: every combination is the backtest of that strategy and those parameters on every symbol in
one account, every metric; each symbol's row is its part of that account; the fused MA pass finds exactly the
crossover's changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketboss.backtest import BacktestConfig, Costs, FillMode, run_strategy, trade_metrics
from marketboss.data.market import Market, SymbolBars
from marketboss.data.synth import synth_bars
from marketboss.research import SUMMARY_METRICS, LocalBackend, Window, combinations, evaluate, nb, sweep
from marketboss.research.sweep import METRICS
from marketboss.strategies import create
from marketboss.strategies.nb import state_changes

SERIAL = LocalBackend(workers=1)


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return synth_bars(["AAPL", "MSFT", "JPM"], "2021-01-01", "2022-12-31", "1Day", seed=21)


@pytest.fixture(scope="module")
def market(bars: pl.DataFrame) -> Market:
    return Market.from_bars(bars)


def assert_metrics_equal(row: dict[str, Any], expected: dict[str, Any], where: str, keys: tuple[str, ...] = METRICS
                         ) -> None:  # fmt: skip
    for key in keys:
        a, b = row[key], expected[key]
        if b is None or (isinstance(b, float) and np.isnan(b)):
            assert a is None or np.isnan(a), f"{where}: {key} {a} != {b}"
        else:
            assert a == pytest.approx(b, rel=1e-9, abs=1e-9), f"{where}: {key} {a} != {b}"


CONFIGS = {
    "next_open, qty, long-only": (BacktestConfig(costs=Costs(commission=0.001, slippage_bps=2)), {}),
    "close, weight, long-short": (
        BacktestConfig(cash=50_000, fill=FillMode.CLOSE,
                       costs=Costs(commission=0.0005, commission_per_share=0.01, commission_min=1.0, spread_bps=4)),
        {"sizing": "weight", "weight": 0.5, "long_only": "false"},
    ),
    "next_open, fractional weight, ema": (
        BacktestConfig(fractional=True, costs=Costs(slippage_bps=5)),
        {"sizing": "weight", "weight": 0.9, "ma": "ema"},
    ),
    "all in with a bracket on each entry": (
        BacktestConfig(costs=Costs(commission=0.002)),
        {"sizing": "weight", "weight": 0.33, "stop_loss_pct": "4", "take_profit_pct": "8"},
    ),
    "trailing stop on each entry, long-short": (
        BacktestConfig(costs=Costs(commission=0.001, slippage_bps=3)),
        {"sizing": "weight", "weight": 0.5, "long_only": "false", "trail_percent": "3"},
    ),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_each_combination_is_the_backtest_of_that_strategy_on_every_symbol_in_one_account(
    bars: pl.DataFrame, market: Market, name: str
) -> None:
    config, fixed = CONFIGS[name]
    combos = combinations("ma_crossover", ["fast=5:20:5", "slow=10:60:25"], fixed)
    assert combos.skipped == 3  # fast 10, 15 and 20 are not below slow 10
    result = sweep(market, combos, config, backend=SERIAL)
    assert result.summary.height == len(combos.params) and result.rows.height == len(combos.params) * 3
    assert result.summary["n_trades"].sum() > 0
    for summary in result.summary.iter_rows(named=True):
        strategy = create("ma_crossover", {"fast": summary["fast"], "slow": summary["slow"], **fixed})
        expected, _ = run_strategy(market, strategy, config)
        where = f"{name} {summary['fast']}/{summary['slow']}"
        assert_metrics_equal(summary, expected.metrics, where)
        rows = result.rows.filter(pl.col("combo") == summary["combo"])
        for row in rows.iter_rows(named=True):  # each symbol's part of the account
            trades = expected.trades.filter(pl.col("symbol") == row["symbol"])
            fills = expected.fills.filter(pl.col("symbol") == row["symbol"])
            mine = trade_metrics(trades, fills)
            assert_metrics_equal(row, mine, f"{where} {row['symbol']}", keys=SYMBOL_TRADE_KEYS)
            assert row["pnl"] == pytest.approx(trades["pnl"].sum(), rel=1e-9, abs=1e-9)
        assert rows["pnl"].sum() == pytest.approx(summary["pnl"], rel=1e-9, abs=1e-6)  # the parts make the whole
        if "stop_loss_pct" in fixed or "trail_percent" in fixed:
            assert expected.fills["leg"].is_not_null().any()  # the exits traded


#: A symbol row's columns that trade_metrics of its round trips and fills gives.
SYMBOL_TRADE_KEYS = ("n_trades", "open_trades", "win_rate_pct", "profit_factor", "expectancy", "avg_trade_pct",
                     "best_trade_pct", "worst_trade_pct", "avg_trade_duration_days", "n_fills", "commissions")


@pytest.mark.parametrize(("strategy", "grid"), [
    ("momentum", ["lookback=10:50:20", "mode=tsmom,breakout"]),
    ("mean_reversion", ["window=10,30", "entry_z=1.5:2.5:1", "mode=zscore,rsi"]),
])
def test_other_strategies_go_through_their_exposures_and_the_same_kernels(
    market: Market, strategy: str, grid: list[str]
) -> None:
    config = BacktestConfig(costs=Costs(commission=0.001))
    result = sweep(market, combinations(strategy, grid), config, backend=SERIAL)
    assert result.summary["n_fills"].sum() > 0
    for row in result.summary.filter(pl.col("combo") % 3 == 0).iter_rows(named=True):
        params = {k: row[k] for k in result.combos.keys}
        expected, _ = run_strategy(market, create(strategy, params), config)
        assert_metrics_equal(row, expected.metrics, f"{strategy} {params}")


def test_a_window_equals_the_engine_on_that_window_with_the_strategys_state_carried_in(market: Market) -> None:
    config = BacktestConfig(costs=Costs(commission=0.001))
    held = create("ma_crossover", {"fast": 5, "slow": 30}).exposures(market)[:, 0]  # AAPL
    start = next(t for t in range(150, 300) if held[t - 1] == 1 and held[t] == 1)  # long since before the start
    window = Window(start, start + 220)
    for strategy, grid in (("ma_crossover", ["fast=5,10", "slow=30"]), ("momentum", ["lookback=20,40"]),
                           ("ma_crossover", ["fast=5", "slow=30", "stop_loss_pct=3", "take_profit_pct=6"])):
        result = sweep(market, combinations(strategy, grid), config, window=window, backend=SERIAL)
        for row in result.summary.iter_rows(named=True):
            strat = create(strategy, {k: row[k] for k in result.combos.keys})
            expected = evaluate(market, strat, window, config)
            assert_metrics_equal(row, expected.metrics, f"{strategy} {grid}")
            if strategy == "ma_crossover" and row["fast"] == 5:
                first = expected.fills.filter(pl.col("symbol") == "AAPL").row(0, named=True)
                assert (first["side"], first["timestamp"]) == ("BUY", market.timestamps()[start + 1])


def test_a_rebalancing_combination_is_its_backtest_whether_the_grid_or_the_class_sets_it(market: Market) -> None:
    """Rebalancing restates every held symbol's weight on each due bar: trades the kernel's events (changes of held
    state) do not hold, which a combination rebalancing (a grid's choice, or a class's default:
    examples/momentum_rotation.py's monthly) now trades as its backtest does, in a window too. Before, the grid
    refused it and a class's default was dropped: its rows were not its backtest's."""
    config = BacktestConfig(costs=Costs(commission=0.001))
    rotation = str(Path(__file__).resolve().parents[2] / "examples/momentum_rotation.py")
    window = Window(100, market.n_times)
    for strategy, grid, fixed in (("momentum", ["rebalance=weekly,monthly,none"], {"sizing": "weight", "weight": 0.3}),
                                  (f"{rotation}:MomentumRotation", ["top_k=1,2"], {})):  # fmt: skip
        for win in (None, window):
            result = sweep(market, combinations(strategy, grid, fixed), config, window=win, backend=SERIAL)
            for row in result.summary.iter_rows(named=True):
                strat = create(strategy, {**fixed, **{k: row[k] for k in result.combos.keys}})
                expected = evaluate(market, strat, win, config)
                assert_metrics_equal(row, expected.metrics, f"{strategy} {row}")
                parts = result.rows.filter(pl.col("combo") == row["combo"])
                assert parts["pnl"].sum() == pytest.approx(row["pnl"], rel=1e-9, abs=1e-6)
            if strategy == "momentum":  # weekly restating trades more than none
                fills = dict(zip(result.summary["rebalance"].to_list(), result.summary["n_fills"].to_list(),
                                 strict=True))  # fmt: skip
                assert fills["weekly"] > fills[None] > 0


def test_a_long_only_combination_short_of_cash_is_its_backtest_and_never_goes_short(market: Market) -> None:
    """100 shares a signal with $20,000: buys cash cannot pay for are rejected, and a long-only combination's sales
    of those shares do not trade (its backtest: a sale is cut to the shares held), where they used to open shorts.
    Each combination, long-only or not, is the backtest of its own parameters (the crossover's fused pass, another
    strategy's exposures, a window's evaluate alike); long-short ones still short."""
    config = BacktestConfig(cash=20_000, costs=Costs(commission=0.001))
    window = Window(100, market.n_times)
    for strategy, grid in (("ma_crossover", ["fast=5,10", "slow=30"]), ("momentum", ["lookback=10,30"])):
        fixed = {"sizing": "quantity", "quantity": 100}
        combos = combinations(strategy, [*grid, "long_only=true,false"], fixed)
        result = sweep(market, combos, config, backend=SERIAL, keep_equity=True)
        in_window = sweep(market, combos, config, window=window, backend=SERIAL)
        assert result.equity is not None
        for summary, windowed in zip(result.summary.iter_rows(named=True), in_window.summary.iter_rows(named=True),
                                     strict=True):  # fmt: skip
            strat = create(strategy, {k: summary[k] for k in combos.keys} | fixed)
            expected, _ = run_strategy(market, strat, config)
            where = f"{strategy} {strat.describe()}"
            assert_metrics_equal(summary, expected.metrics, where)
            assert_metrics_equal(windowed, evaluate(market, strat, window, config).metrics, f"{where} in {window}")
            assert expected.metrics["rejected_orders"] > 0
            statuses, sides = set(expected.orders["status"]), set(expected.trades["side"])
            if summary["long_only"]:
                assert sides == {"LONG"} and "long_only" in statuses, where
                assert result.equity[summary["combo"]].min() >= 0 and summary["max_drawdown_pct"] > -100
            else:
                assert "SHORT" in sides and "long_only" not in statuses, where


def test_the_summary_counts_the_symbols_that_made_money(market: Market) -> None:
    config = BacktestConfig(costs=Costs(commission=0.001))
    result = sweep(market, combinations("ma_crossover", ["fast=5,10", "slow=40"]), config, backend=SERIAL)
    assert result.summary.columns == ["combo", "fast", "slow", *SUMMARY_METRICS]
    for summary in result.summary.iter_rows(named=True):
        res, _ = run_strategy(market, create("ma_crossover", {"fast": summary["fast"], "slow": 40}), config)
        by_symbol = res.trades.group_by("symbol").agg(pl.col("pnl").sum())
        assert summary["symbols_profitable_pct"] == pytest.approx(100 * (by_symbol["pnl"] > 0).sum() / 3)


def test_symbols_with_gaps_and_late_starts(bars: pl.DataFrame) -> None:
    """A symbol missing bars (and starting late) trades on its own bars, in the one account; the kept equity
    curve is the backtest's."""
    holey = bars.filter(~((pl.col("symbol") == "MSFT") & ((pl.int_range(pl.len()) % 7 == 3) |
                                                          (pl.col("timestamp").dt.year() == 2021) &
                                                          (pl.col("timestamp").dt.month() < 3))))
    market = Market.from_bars(holey)
    assert not market.is_full(market.symbols.index("MSFT"))
    config = BacktestConfig(costs=Costs(commission=0.001))
    result = sweep(market, combinations("ma_crossover", ["fast=5", "slow=20"]), config, backend=SERIAL,
                   keep_equity=True)
    res, _ = run_strategy(market, create("ma_crossover", {"fast": 5, "slow": 20}), config)
    assert_metrics_equal(result.summary.row(0, named=True), res.metrics, "holey")
    assert result.equity is not None
    np.testing.assert_array_equal(result.equity[0], res.equity["equity"].to_numpy())


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.integers(-3, 3), min_size=2, max_size=160),
    fast=st.integers(1, 12),
    extra=st.integers(1, 25),
    ema=st.booleans(),
    long_only=st.booleans(),
    k0=st.integers(0, 100),
)
def test_fused_crossover_events_equal_ma_cross_then_state_changes(
    steps: list[int], fast: int, extra: int, ema: bool, long_only: bool, k0: int
) -> None:
    """Integer price steps make ties between the averages common: the held state must still change at the
    same bars as the strategy's own exposure followed by the signal rule, from any window start."""
    x = 100.0 + np.cumsum(np.asarray(steps, dtype=np.float64))
    n, slow = x.shape[0], fast + extra
    lo = 0.0 if long_only else -1.0
    rows = np.arange(n)
    bars = SymbolBars("T", rows, rows * 86_400_000_000, x, x, x, x, np.ones(n))
    expo = create("ma_crossover", {"fast": fast, "slow": slow, "ma": "ema" if ema else "sma"}).exposure(bars)
    start = min(k0, n - 1)
    window = np.ascontiguousarray(expo[start:])
    if start > 0 and np.isnan(window[0]) and not np.isnan(expo[start - 1]):
        window[0] = expo[start - 1]
    e_idx, e_before, e_after = np.empty(n, dtype=np.int64), np.empty(n), np.empty(n)
    k = state_changes(window, lo, 1.0, e_idx, e_before, e_after)
    table = np.empty((2, n))
    nb.average_table(x, n, np.array([fast, slow]), np.array([ema, ema]), table)
    sg = np.zeros((n + 7) // 8 * 8, dtype=np.int8)
    ev_k, ev_x = np.empty(n, dtype=np.int64), np.empty(n)
    count = nb.cross_events(table[0], table[1], slow, start, n, lo, sg, ev_k, ev_x)
    assert ev_k[:count].tolist() == (e_idx[:k] + start).tolist()
    assert ev_x[:count].tolist() == e_after[:k].tolist()


def test_no_bar_at_or_after_the_window_end_is_read(market: Market) -> None:
    """Bars from the window's end on can be anything: the rows do not move."""
    window = Window(50, 300)
    combos = combinations("ma_crossover", ["fast=5,10", "slow=20,40"])
    before = sweep(market, combos, window=window, backend=SERIAL).rows
    garbled = {f: getattr(market, f).copy() for f in ("open", "high", "low", "close", "volume")}
    for a in garbled.values():
        a[window.end :] *= np.random.default_rng(0).uniform(0.5, 2.0, a[window.end :].shape)
    future = Market(market.symbols, market.times, **garbled, bars_per_year=market.bars_per_year)
    after = sweep(future, combos, window=window, backend=SERIAL).rows
    assert before.equals(after)


def test_chunking_and_worker_processes_do_not_change_the_table(market: Market) -> None:
    combos = combinations("ma_crossover", ["fast=5:15:5", "slow=20:40:10"])
    one = sweep(market, combos, backend=SERIAL)
    pool = LocalBackend(workers=2, pool_work=0, chunk_work=1)  # several chunks, two spawned processes
    seen: list[int] = []
    many = sweep(market, combos, backend=pool, on_progress=seen.append)
    assert pool.ran_in == "2 processes"
    assert sum(seen) == len(combos.params) and len(seen) > 1
    assert one.rows.equals(many.rows) and one.summary.equals(many.summary)
    threads = LocalBackend(workers=2)  # a small job: in this process, the combinations on two numba threads
    threaded = sweep(market, combos, backend=threads)
    assert threads.ran_in == "this process (2 threads)"
    assert one.rows.equals(threaded.rows) and one.summary.equals(threaded.summary)
    # estimated small, found slow by its first chunk (a plain on_bar's cost a bar is a guess): the rest in processes
    slow = LocalBackend(workers=2, chunk_work=1, pool_after=0.0)
    seen.clear()
    switched = sweep(market, combos, backend=slow, on_progress=seen.append)
    assert slow.ran_in == "this process (the first task), then 2 processes"
    assert sum(seen) == len(combos.params) and one.rows.equals(switched.rows) and one.summary.equals(switched.summary)


def test_the_best_combination_is_deflated_by_the_trials_it_was_picked_from(market: Market) -> None:
    """The best by Sharpe of a grid, held to what the best of as many skill-less trials shows (research.dsr): its
    own returns (its backtest's equity) and the variance of the trials' Sharpe ratios; one combination: none."""
    from marketboss.research.dsr import SharpeEstimate, bar_returns, deflated_sharpe, expected_max_sharpe
    from marketboss.research.sweep import deflation

    config = BacktestConfig(costs=Costs(commission=0.001))
    result = sweep(market, combinations("ma_crossover", ["fast=5:20:5", "slow=30:60:15"]), config, backend=SERIAL)
    luck = deflation(result, market)
    assert luck is not None
    sharpe = result.summary["sharpe"].to_numpy()
    assert luck.sharpe == np.nanmax(sharpe) and luck.trials == int(np.isfinite(sharpe).sum()) > 1
    best = result.summary.filter(pl.col("combo") == luck.combo).row(0, named=True)
    expected, _ = run_strategy(market, create("ma_crossover", {"fast": best["fast"], "slow": best["slow"]}), config)
    per_bar = sharpe[np.isfinite(sharpe)] / np.sqrt(market.bars_per_year)
    est = SharpeEstimate.of(bar_returns(expected.equity["equity"].to_numpy(), config.cash))
    assert luck.dsr == pytest.approx(deflated_sharpe(est, luck.trials, float(per_bar.var(ddof=1))), rel=1e-9)
    assert luck.expected_max_sharpe == pytest.approx(
        expected_max_sharpe(luck.trials, float(per_bar.var(ddof=1))) * np.sqrt(market.bars_per_year), rel=1e-12)
    assert 0.0 < luck.dsr < 1.0
    one = sweep(market, combinations("ma_crossover", ["fast=5", "slow=30"]), config, backend=SERIAL)
    assert deflation(one, market) is None
