"""The Python API's answers to a notebook's plain mistakes: one line naming what is wrong and what is valid, as
the commands give (before: pydantic's multi-line errors, a TypeError from inside the sweep, and a bars frame with
a NaN price backtested to a NaN equity)."""

from __future__ import annotations

import warnings

import polars as pl
import pytest

from marketboss import MarketBossError, run, sweep
from marketboss.data.market import Market
from marketboss.data.synth import synth_bars
from marketboss.errors import InputError
from marketboss.research.backends import LocalBackend
from marketboss.signals import checked_frame
from marketboss.strategies import registry
from marketboss.strategies.momentum import Momentum


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return synth_bars(["AAA", "BBB"], "2021-01-01", "2021-12-31", "1Day", seed=4)


def _row(bars: pl.DataFrame, i: int, column: str, value: pl.Expr) -> pl.DataFrame:
    return bars.with_columns(pl.when(pl.int_range(pl.len()) == i).then(value).otherwise(pl.col(column)).alias(column))


def test_a_bars_frame_is_held_to_a_files_rules(bars: pl.DataFrame) -> None:
    with pytest.raises(InputError, match=r"^bars frame: field 'open': row 4: missing$"):
        run("ma_crossover", _row(bars, 3, "open", pl.lit(None, pl.Float64)))
    with pytest.raises(InputError, match=r"^bars frame: field 'high': row 6: high .* is below max\(open, close\)"):
        run("ma_crossover", _row(bars, 5, "high", pl.col("low") - 50.0))
    with pytest.raises(InputError, match=r"field 'volume': no column volume: bars have timestamp, symbol, open"):
        run("ma_crossover", bars.drop("volume"))
    with pytest.raises(InputError, match="columns of the wrong type"):
        run("ma_crossover", bars.with_columns(pl.lit("x").alias("close")))
    expected = run("ma_crossover", bars).metrics["final_equity"]
    text_times = bars.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    shuffled = bars.sample(fraction=1.0, shuffle=True, seed=1)
    for same in (bars.to_pandas(), text_times, shuffled):
        assert run("ma_crossover", same).metrics["final_equity"] == expected


def test_a_bad_parameter_is_one_line_however_the_strategy_is_given(bars: pl.DataFrame) -> None:
    for attempt in (lambda: Momentum(lookbak=5), lambda: run(Momentum, bars, {"lookbak": 5}),
                    lambda: run("momentum", bars, {"lookbak": 5})):  # fmt: skip
        with pytest.raises(MarketBossError, match=r"^strategy 'momentum' has no parameter 'lookbak'; valid: .*lookback"
                           ):  # fmt: skip
            attempt()
    with pytest.raises(MarketBossError, match=r"^strategy 'momentum': invalid parameter lookback=0: .*; valid:"):
        run(Momentum, bars, {"lookback": 0})


def test_a_strategys_parameter_given_as_a_setting_says_where_it_goes(bars: pl.DataFrame) -> None:
    with pytest.raises(MarketBossError, match=r"^'lookback' is a parameter of strategy 'momentum': give it in "
                                              r"params= \(params=\{'lookback': 5\}\); keywords are the backtest's "
                                              r"settings: cash"):  # fmt: skip
        run(Momentum, bars, lookback=5)
    with pytest.raises(MarketBossError, match=r"^no backtest setting 'commission': .*; settings: cash, costs"):
        run(Momentum, bars, commission=0.001)
    with pytest.raises(MarketBossError, match=r"^backtest setting 'cash': Input should be greater than 0"):
        run(Momentum, bars, cash=-1)


def test_a_sweep_warns_of_the_combinations_it_skips_and_refuses_what_it_cannot_sweep(bars: pl.DataFrame) -> None:
    with pytest.warns(UserWarning, match=r"^2 of 4 parameter combinations skipped as invalid \(e\.g\. fast \(50\) must "
                                         r"be below slow \(20\)\)"):  # fmt: skip
        swept = sweep("ma_crossover", bars, grid={"fast": [5, 50], "slow": [20, 30]})
    assert swept.summary.height == 2 and swept.combos.skipped == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none skipped: no warning
        assert sweep("ma_crossover", bars, grid={"fast": [5, 10], "slow": [20, 30]}).summary.height == 4
    with pytest.raises(MarketBossError, match=r"grid: each parameter takes a list of values, fast=5 is one value"):
        sweep("ma_crossover", bars, grid={"fast": 5})
    with pytest.raises(MarketBossError, match=r"grid: .* sizing='weight' is one value"):
        sweep(Momentum, bars, grid={"sizing": "weight"})
    with pytest.raises(MarketBossError, match=r"sweep takes the strategy's class or name .*: sweep\(Momentum, "
                                              r"\.\.\.\)"):  # fmt: skip
        sweep(Momentum(), bars, grid={"lookback": [5, 10]})  # type: ignore[arg-type]
    with pytest.raises(MarketBossError, match=r"^metric 'commissions' cannot rank strategies; choose one of sharpe"):
        swept.top("commissions")


def test_a_trailing_stop_leg_goes_without_a_take_profit_wherever_it_is_given(bars: pl.DataFrame) -> None:
    """Paper could not place both (a broker gives an entry's shares to one exit order): refused in the
    parameters, a signal, and an event strategy's order alike."""
    from marketboss import Context, EventParams, EventStrategy, Signal

    with pytest.raises(MarketBossError, match=r"invalid parameter: a trailing stop goes without a take-profit"):
        run("ma_crossover", bars, {"trail_percent": 4, "take_profit_pct": 8})
    with pytest.raises(ValueError, match=r"take_profit\n.*a trailing stop goes without a take-profit"):
        Signal.model_validate({"id": "x", "timestamp": "2024-01-02T05:00:00Z", "symbol": "AAA", "action": "BUY",
                               "quantity": 1, "price": 100.0, "trail_percent": 4, "take_profit": 110.0})

    class Both(EventStrategy[EventParams]):
        def on_bar(self, ctx: Context) -> None:
            if ctx.t == 3:
                ctx.buy(1, 0, trail_percent=4.0, take_profit=round(ctx.price(0) * 1.1, 2))

    with pytest.raises(InputError, match=r"field 'take_profit': order at .* a trailing stop goes without a take-pr"):
        run(Both, bars)
    assert run("ma_crossover", bars, {"trail_percent": 4}).fills.height > 0


def test_a_quantity_is_held_to_a_signals_limit(bars: pl.DataFrame) -> None:
    """Before, quantity=1e10 made signals whose own file `backtest --signals` then refused (at most 1e9 shares)."""
    with pytest.raises(MarketBossError, match=r"invalid parameter quantity=10000000000.0: .* less than or equal to"):
        run("ma_crossover", bars, {"quantity": 1e10})
    assert run("ma_crossover", bars, {"quantity": 1e9, "sizing": "quantity"}).orders.height > 0


class _HereOnly(Momentum):
    """A class of this module as a notebook defines one: its workers cannot import __main__'s classes."""

    name = "here_only_momentum"


def test_a_sweep_of_a_class_only_this_process_knows_runs_here(bars: pl.DataFrame,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A script's class swept large enough for worker processes (or found slow after its first chunk) stopped
    there with "unknown strategy 'x'"; it runs in this process instead, and gives what a serial run gives."""
    monkeypatch.setattr(_HereOnly, "__module__", "__main__")
    pool = LocalBackend(2, pool_work=0, chunk_work=1)
    grid = {"lookback": [5, 10, 20]}
    try:
        got = sweep(_HereOnly, bars, grid, backend=pool)
    finally:
        registry._REGISTRY.pop(_HereOnly.name, None)  # registered in this process: the other tests' lists
    want = sweep("momentum", bars, grid, backend=LocalBackend(1))
    assert got.summary.drop("combo").equals(want.summary.drop("combo"))


def test_a_signals_frame_of_ones_own_is_held_to_a_files_rules(bars: pl.DataFrame) -> None:
    """A frame a user writes (no ids, text timestamps, no target_weight column) backtests as the same lines in a
    file do; a bad row is one line naming its row and field (before, a polars error after the run), and a
    strategy's own signals frame is taken as it is."""
    t = bars["timestamp"].unique().sort()
    own = pl.DataFrame({"timestamp": [t[5].isoformat(), t[20].isoformat()], "symbol": ["AAA", "AAA"],
                        "action": ["BUY", "SELL"], "quantity": [10, 10]})  # fmt: skip
    result = run(own, bars)
    assert result.fills.select("side", "qty").rows() == [("BUY", 10.0), ("SELL", 10.0)]
    assert result.fills["signal_id"].str.starts_with("sig-").all()  # derived, as a file's minimal lines' are
    with pytest.raises(InputError, match=r"^signals frame:2: field 'action': Input should be 'BUY', 'SELL' or "):
        run(own.with_columns(pl.Series("action", ["BUY", "HOLD"])), bars)
    with pytest.raises(InputError, match=r"^signals frame:1: field 'symbol': missing$"):
        run(own.drop("symbol"), bars)
    made = Momentum(lookback=20).signals(Market.from_bars(bars))
    assert checked_frame(made) is made and run(made, bars).fills.height > 0
