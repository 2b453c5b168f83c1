"""Event-driven strategies: ctx's actions trade as their signals do, the run never shows a bar beyond the current
one, the compiled path trades as the plain one, and the orders backtest (as signals) to the very same fills."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import Field

from marketboss.backtest import BacktestConfig, Costs, events, load_run, run_backtest, run_strategy
from marketboss.backtest.costs import FillMode
from marketboss.backtest.events import run_events
from marketboss.backtest.metrics import trade_metrics
from marketboss.data.io import write_bars
from marketboss.data.market import Market, SymbolBars
from marketboss.data.synth import synth_bars
from marketboss.errors import InputError, MarketBossError
from marketboss.indicators import sma
from marketboss.research.backends import LocalBackend
from marketboss.research.compare import CompareTask, run_compare_task
from marketboss.research.grid import combinations
from marketboss.research.sweep import METRICS, bar_step_cost, plan_tasks, sweep
from marketboss.research.windows import Window, time_slice
from marketboss.signals import read_signals, read_signals_frame, write_signals
from marketboss.strategies import registry
from marketboss.strategies.base import StrategyError
from marketboss.strategies.causal import cuts
from marketboss.strategies.events import (
    CANCEL,
    CANCEL_EXITS,
    OUT_GTC,
    OUT_KIND,
    OUT_LIMIT,
    OUT_QTY,
    OUT_SIDE,
    OUT_STOP,
    OUT_SYMBOL,
    OUT_WEIGHT,
    CompiledOnBar,
    Context,
    EventParams,
    EventStrategy,
    PlacedOrder,
    entry_args,
)
from tests.unit.cli_app import cli

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
from breakeven_stop import BreakevenParams, BreakevenStop
from pairs_events import PairsEvents, PairsParams
from rsi_bracket_events import RsiBracketEvents, RsiBracketParams
from time_trailing_stop import TimeTrailingParams, TimeTrailingStop

FILL_COLUMNS = ["timestamp", "signal_id", "symbol", "side", "qty", "price", "commission", "leg"]


def market_of(close: list[float], spread: float = 1.0) -> Market:
    """Daily bars of one symbol opening at the previous close, high and low `spread` beyond open and close."""
    c = np.array(close)
    o = np.concatenate([[c[0]], c[:-1]])
    start = np.datetime64("2024-01-02T05:00", "us")
    bars = pl.DataFrame({"timestamp": start + np.arange(len(c)) * np.timedelta64(1, "D"), "symbol": "AAA",
                         "open": o, "high": np.maximum(o, c) + spread, "low": np.minimum(o, c) - spread, "close": c,
                         "volume": 1000.0})  # fmt: skip
    return Market.from_bars(bars.with_columns(pl.col("timestamp").dt.replace_time_zone("UTC")))


class Script(EventStrategy[EventParams]):
    """Calls ctx actions at given bars: {bar: fn(ctx)}; records what it saw."""

    name: ClassVar[str] = "script"
    summary: ClassVar[str] = "test"

    def __init__(self, params: EventParams, steps: dict[int, Any]):
        super().__init__(params)
        self.steps = steps

    def start(self, ctx: Context) -> None:
        self.seen: list[tuple[float, float, int]] = []
        self.placed: dict[int, PlacedOrder | None] = {}

    def on_bar(self, ctx: Context) -> None:
        self.seen.append((ctx.position(), ctx.cash, len(ctx.open_orders)))
        if ctx.t in self.steps:
            self.placed[ctx.t] = self.steps[ctx.t](ctx)


def run(close: list[float], steps: dict[int, Any], cfg: BacktestConfig | None = None, spread: float = 1.0,
        **params: Any) -> tuple[Any, pl.DataFrame, Script]:
    """The event run, checked against the backtest of its signals: the same fills."""
    m = market_of(close, spread)
    strat = Script(EventParams(**params), steps)
    result, signals = run_events(m, strat, cfg)
    again = run_backtest(m, signals, cfg)
    assert again.fills.select(FILL_COLUMNS).equals(result.fills.select(FILL_COLUMNS))
    return result, signals, strat


FLAT = [100.0] * 12


def test_buy_and_sell_quantities_fill_at_the_next_open_and_show_in_the_account() -> None:
    close = [100.0, 101, 102, 103, 104, 105, 106, 107]
    result, signals, strat = run(close, {1: lambda c: c.buy(5), 4: lambda c: c.sell(2)})
    assert result.fills["qty"].to_list() == [5, 2]
    assert result.fills["price"].to_list() == [101.0, 104.0]  # the opens of bars 2 and 5
    assert [p for p, _, _ in strat.seen] == [0, 0, 5, 5, 5, 3, 3, 3]
    assert strat.seen[2][1] == pytest.approx(100_000 - 5 * 101)
    assert strat.seen[1][2] == 0 and signals["action"].to_list() == ["BUY", "SELL"]


def test_long_only_cuts_a_sale_to_the_position_and_long_short_goes_short() -> None:
    result, _, _ = run(FLAT, {1: lambda c: c.buy(3), 3: lambda c: c.sell(10)})
    assert result.fills["qty"].to_list() == [3, 3]
    result, _, strat = run(FLAT, {1: lambda c: c.buy(3), 3: lambda c: c.sell(10)}, long_only=False)
    assert result.fills["qty"].to_list() == [3, 10] and strat.seen[-1][0] == -7


def test_a_long_only_sale_that_finds_nothing_held_when_it_triggers_opens_no_short() -> None:
    """A gtc limit sale placed while holding 5 (ctx.sell cuts to the position when placed), the position closed
    before its price comes: when it triggers nothing is held, so a long-only strategy's run does not trade it
    (status long_only), where it used to open a short; as its signals trade in a long-only account (as a file,
    without a strategy, they trade whole). Long-short, it shorts."""
    close = [100.0, 100, 100, 100, 100, 100, 100, 110, 110, 110]
    steps = {1: lambda c: c.buy(5), 3: lambda c: c.sell(5, limit_price=108.0, time_in_force="gtc"),
             4: lambda c: c.close()}
    m = market_of(close)
    result, signals = run_events(m, Script(EventParams(), steps))
    assert result.orders["status"].to_list() == ["filled", "long_only", "filled"] and result.config.long_only
    assert result.fills.select("side", "qty", "price").rows() == [("BUY", 5, 100.0), ("SELL", 5, 100.0)]
    assert set(result.trades["side"]) == {"LONG"} and result.equity["positions_value"][-1] == 0
    again = run_backtest(m, signals, BacktestConfig(long_only=True))
    assert again.fills.select(FILL_COLUMNS).equals(result.fills.select(FILL_COLUMNS))
    assert run_backtest(m, signals).trades["side"].to_list() == ["LONG", "SHORT"]  # a signals file: whole
    result, _, strat = run(close, steps, long_only=False)
    assert result.fills.select("side", "qty", "price").rows()[-1] == ("SELL", 5, 108.0) and strat.seen[-1][0] == -5


def test_target_weight_and_close() -> None:
    close = [100.0, 100, 100, 100, 100, 100, 100]
    result, signals, strat = run(close, {1: lambda c: c.target_weight(0.5), 3: lambda c: c.close()})
    assert result.fills["qty"].to_list() == [500, 500]
    assert signals["target_weight"].to_list() == [0.5, 0.0] and signals["quantity"].null_count() == 2
    assert strat.seen[3][0] == 500 and strat.seen[-1][0] == 0


def test_a_bracket_closes_the_position_at_its_stop() -> None:
    close = [100.0, 100, 100, 99, 97, 94, 90, 90]
    result, _, strat = run(close, {1: lambda c: c.buy(10, stop_loss=95.0, take_profit=110.0)}, spread=0.0)
    assert result.fills["leg"].to_list() == [None, "stop_loss"]
    assert result.fills["price"][1] == 95.0
    assert strat.seen[-1][0] == 0


def test_a_resting_order_against_the_position_ends_its_exits_as_it_goes_live() -> None:
    """A gtc stop sale of the position (far below: it never triggers) placed while a bracket works: the
    bracket's legs end when the sale goes live, as the paper executor cancels them before sending it (Alpaca's
    legs hold the shares it sells); the take-profit the price reaches later does not trade. Before, the legs
    worked on until the sale filled: the backtest sold at the take-profit, paper held."""
    close = [100.0, 100, 100, 100, 100, 100, 115, 115]
    steps = {1: lambda c: c.buy(10, stop_loss=90.0, take_profit=110.0),
             3: lambda c: c.sell(10, stop_price=50.0, time_in_force="gtc")}  # fmt: skip
    result, _, strat = run(close, steps, spread=0.0)
    assert result.fills.select("side", "leg").rows() == [("BUY", None)]
    assert strat.seen[-1][0] == 10  # still held: its exits ended, its stop sale waits
    result, _, _ = run(close, {1: steps[1]}, spread=0.0)  # without the sale, the take-profit trades
    assert result.fills.select("side", "leg", "price").rows() == [("BUY", None, 100.0), ("SELL", "take_profit", 110.0)]


def test_the_parameters_exit_percents_bracket_an_entry_placed_without_one() -> None:
    close = [100.0, 100, 104, 108, 112, 112]
    result, signals, _ = run(close, {1: lambda c: c.buy(10)}, take_profit_pct=10.0, stop_loss_pct=5.0)
    assert signals["take_profit"].to_list() == [110.0] and signals["stop_loss"].to_list() == [95.0]
    assert result.fills["leg"].to_list() == [None, "take_profit"] and result.fills["price"][1] == 110.0


def test_the_parameters_exits_go_on_what_opens_or_adds_to_a_position_not_on_what_only_reduces_it() -> None:
    """Long-short: a sale of part of the long, and a target weight still long, reduce it (no bracket, as the
    backtest and the broker would drop it); a sale past the position opens a short (its bracket: stop above,
    target below); a buy adds to the long."""
    steps = {1: lambda c: c.buy(10), 2: lambda c: c.sell(4), 3: lambda c: c.target_weight(0.003),
             4: lambda c: c.buy(2), 5: lambda c: c.sell(20)}  # fmt: skip
    _, signals, _ = run(FLAT, steps, long_only=False, take_profit_pct=10.0, stop_loss_pct=5.0)
    assert signals.select("action", "take_profit", "stop_loss").rows() == [
        ("BUY", 110.0, 95.0), ("SELL", None, None), ("SELL", None, None), ("BUY", 110.0, 95.0),
        ("SELL", 90.0, 105.0)]  # fmt: skip


def test_working_order_types_fill_by_the_order_rules() -> None:
    close = [100.0, 100, 98, 96, 99, 103, 106, 103, 100, 100]
    steps = {
        1: lambda c: c.buy(1, limit_price=97.0, time_in_force="gtc"),
        2: lambda c: c.buy(2, stop_price=104.0, time_in_force="gtc"),
        3: lambda c: c.sell(1, order_type="trailing_stop", trail_percent=2.0, time_in_force="gtc"),
        4: lambda c: c.buy(1, stop_price=102.0, limit_price=110.0, time_in_force="gtc"),
    }
    result, signals, _ = run(close, steps)
    assert signals["order_type"].to_list() == ["limit", "stop", "trailing_stop", "stop_limit"]
    assert sorted(result.orders["status"].to_list()) == ["filled"] * 4
    assert result.fills.filter(pl.col("qty") == 2)["price"].to_list() == [104.0]  # the stop, not the open


def test_a_day_order_ends_with_its_session_and_leaves_the_open_orders() -> None:
    result, _, strat = run(FLAT, {2: lambda c: c.buy(1, limit_price=50.0)})
    assert [n for _, _, n in strat.seen[2:5]] == [0, 0, 0]  # seen before it is placed; it ends with bar 3
    assert result.orders["status"].to_list() == ["day_ended"]
    result, _, strat = run(FLAT, {2: lambda c: c.buy(1, limit_price=50.0, time_in_force="gtc")})
    assert [n for _, _, n in strat.seen[2:5]] == [0, 1, 1] and result.orders["status"].to_list() == ["open"]


def test_cancel_stops_an_order_before_it_trades_and_the_signals_say_so_at_its_bar() -> None:
    close = [100.0, 100, 100, 100, 100, 90, 90, 90]

    def place(c: Context) -> None:
        c.buy(1, limit_price=95.0, time_in_force="gtc")
        c.buy(2, limit_price=92.0, time_in_force="gtc")

    def cancel(c: Context) -> None:
        c.cancel(c.open_orders[0])

    # run() checks that the signals backtest to the same fills: without its cancel the 95 limit would fill
    result, signals, strat = run(close, {1: place, 3: cancel})
    assert result.orders["status"].to_list() == ["canceled", "filled"]
    assert result.fills["qty"].to_list() == [2]
    assert signals["action"].to_list() == ["BUY", "BUY", "CANCEL"]
    assert signals["cancels"].to_list() == [None, None, signals["id"][0]]
    assert signals["timestamp"][2] == market_of(close).timestamps()[3]  # the bar it was decided on
    assert [n for _, _, n in strat.seen[1:5]] == [0, 2, 2, 1]  # each bar's seen before its own orders
    result, signals, _ = run(close, {1: place, 3: lambda c: c.cancel_all()})
    assert result.fills.height == 0 and result.orders["status"].to_list() == ["canceled", "canceled"]
    assert signals["action"].to_list() == ["BUY", "BUY", "CANCEL", "CANCEL"]
    assert signals["id"].n_unique() == 4  # two cancels of one symbol on one bar: ids apart


def test_an_order_canceled_on_its_own_bar_was_never_sent_and_is_left_out() -> None:
    result, signals, _ = run(FLAT, {2: lambda c: c.cancel(c.buy(1, limit_price=99.0)), 4: lambda c: c.buy(1)})
    assert result.orders["status"].to_list() == ["canceled", "filled"]
    assert signals["action"].to_list() == ["BUY"] and "cancels" not in signals.columns


def test_a_limit_canceled_two_bars_later_writes_both_lines_and_the_file_backtests_to_the_event_run(
    tmp_path: Path,
) -> None:
    close = [100.0, 100, 100, 100, 100, 90, 90, 90]
    m = market_of(close)
    strat = Script(EventParams(), {1: lambda c: c.buy(1, limit_price=95.0, time_in_force="gtc"),
                                   3: lambda c: c.cancel(c.open_orders[0]), 4: lambda c: c.buy(1)})  # fmt: skip
    result, signals = run_events(m, strat)
    path = tmp_path / "signals.jsonl"
    write_signals(path, signals)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(x["action"], x.get("cancels")) for x in lines] == [("BUY", None), ("CANCEL", lines[0]["id"]),
                                                                ("BUY", None)]  # fmt: skip
    assert "quantity" in lines[1] and lines[1]["quantity"] is None and "order_type" not in lines[1]
    again = run_backtest(m, read_signals_frame(path), source=str(path))
    assert again.fills.select(FILL_COLUMNS).equals(result.fills.select(FILL_COLUMNS))
    assert again.equity.equals(result.equity) and again.orders.equals(result.orders)
    assert again.orders["status"].to_list() == ["canceled", "filled"]
    # the cancel is what keeps the limit from filling at bar 5 (low 89): without it the file trades it
    without = run_backtest(m, read_signals_frame(path).filter(pl.col("action") != "CANCEL").drop("cancels"))
    assert without.fills.height == 2


@pytest.mark.parametrize(("change", "field", "reason"), [
    ({"quantity": 1}, "quantity", "a CANCEL trades nothing"),
    ({"limit_price": 90.0, "order_type": "limit"}, "order_type", "a CANCEL trades nothing"),
    ({"cancels": None}, "cancels", "missing"),
    ({"cancels": "sig-nosuchorder"}, "cancels", "no order on an earlier line"),
    ({"symbol": "BBB"}, "cancels", "of AAA, not BBB"),
    ({"action": "BUY", "quantity": 1}, "cancels", "only a CANCEL cancels"),
])
def test_a_bad_cancel_line_is_refused_naming_file_line_and_field(tmp_path: Path, change: dict[str, Any],
                                                                 field: str, reason: str) -> None:
    order = {"id": "sig-a1", "timestamp": "2024-01-03T05:00:00Z", "symbol": "AAA", "action": "BUY",
             "quantity": 1, "strategy": "s", "price": 100.0, "target_weight": None, "order_type": "limit",
             "limit_price": 95.0}  # fmt: skip
    cancel = {"id": "sig-c1", "timestamp": "2024-01-05T05:00:00Z", "symbol": "AAA", "action": "CANCEL",
              "quantity": None, "strategy": "s", "price": None, "target_weight": None, "cancels": "sig-a1"}
    path = tmp_path / "signals.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in (order, {**cancel, **change})) + "\n")
    for read in (read_signals, read_signals_frame):
        with pytest.raises(InputError, match=reason) as exc:
            read(path)
        assert exc.value.line == 2 and exc.value.field is not None and exc.value.field.startswith(field)
        assert str(path) in str(exc.value)


def test_a_frame_whose_cancel_names_no_order_is_refused_by_the_backtest() -> None:
    m = market_of(FLAT)
    ts = m.timestamps()
    frame = pl.DataFrame({"id": ["sig-c1"], "timestamp": [ts[3]], "symbol": ["AAA"], "action": ["CANCEL"],
                          "quantity": [None], "strategy": ["s"], "price": [None], "target_weight": [None],
                          "cancels": ["sig-gone"]},
                         schema_overrides={"quantity": pl.Float64, "price": pl.Float64,
                                           "target_weight": pl.Float64})  # fmt: skip
    with pytest.raises(InputError, match="no such order") as exc:
        run_backtest(m, frame, source="f.jsonl")
    assert exc.value.field == "cancels"


def test_bad_orders_are_refused_with_the_bar_and_field() -> None:
    with pytest.raises(InputError, match="stop_loss"):
        run(FLAT, {2: lambda c: c.buy(1, stop_loss=120.0)})
    with pytest.raises(MarketBossError, match="unknown order field"):
        run(FLAT, {2: lambda c: c.buy(1, sl=90.0)})
    with pytest.raises(MarketBossError, match="time_in_force 'GTC'"):
        run(FLAT, {2: lambda c: c.buy(1, limit_price=90.0, time_in_force="GTC")})
    with pytest.raises(MarketBossError, match="long_only"):
        run(FLAT, {2: lambda c: c.target_weight(-0.5)})
    with pytest.raises(MarketBossError, match="fill close"):
        run(FLAT, {}, BacktestConfig(fill=FillMode.CLOSE))
    # before: a bool bought 1 share, a text was read as a number, a NaN leg meant none (and dropped the defaults)
    for step, said in [(lambda c: c.buy(True), "quantity True: buy takes a number of shares"),
                       (lambda c: c.sell("10"), "quantity '10': sell takes a number of shares"),
                       (lambda c: c.buy(1, stop_loss=float("nan")), "stop_loss nan: a finite number, or leave it out"),
                       (lambda c: c.buy(1, limit_price="90"), "limit_price '90': a finite number")]:  # fmt: skip
        with pytest.raises(MarketBossError, match=f"^{re.escape(said)}"):
            run(FLAT, {2: step})
    result, _, _ = run(FLAT, {2: lambda c: c.buy(np.int64(2), stop_loss=np.float64(90.0))}, stop_loss_pct=5.0)
    assert result.fills["qty"].to_list() == [2]  # numpy's numbers are numbers


@pytest.mark.parametrize(("step", "field", "said"), [
    (lambda c: c.buy(1e12), "quantity", "(AAA BUY): 1e+12 is out of range: must be > 0 and <= 1e+09"),
    (lambda c: c.sell(2e9), "quantity", "(AAA SELL): 2e+09 is out of range: must be > 0 and <= 1e+09"),
    (lambda c: c.target_weight(5.0), "target_weight", "(AAA BUY): 5 is out of range: must be >= -1 and <= 1"),
])  # fmt: skip
def test_an_order_past_the_signal_files_limits_is_refused_as_its_reader_would(step: Any, field: str, said: str
                                                                             ) -> None:
    """The run's signals are written and read back: an order the reader would refuse is refused at the run, naming
    the bar and the field (the reader's own rules: signals.valid_orders)."""
    with pytest.raises(InputError) as caught:
        run(FLAT, {2: lambda c: c.buy(5), 3: step}, long_only=False)
    assert caught.value.field == field  # and the strategy's line that placed it
    where = f"(test_events.py, line {step.__code__.co_firstlineno}, in <lambda>)"
    assert str(caught.value).endswith(f"order at 2024-01-05 05:00:00+00:00 {said} {where}")
    with pytest.raises(InputError) as in_sweep:  # a sweep's run, which makes no signals frame, refuses it alike
        events.event_outcome(market_of(FLAT, 1.0), Script(EventParams(long_only=False), {2: lambda c: c.buy(5),
                                                                                          3: step}))  # fmt: skip
    assert str(in_sweep.value) == str(caught.value)


@pytest.mark.parametrize(("step", "said"), [
    (lambda c: c.buy(float("nan")), "quantity nan: buy takes a positive, finite number of shares"),
    (lambda c: c.buy(-10), "quantity -10: buy takes a positive, finite number of shares"),
    (lambda c: c.sell(-0.5), "quantity -0.5: sell takes a positive, finite number of shares"),
    (lambda c: c.sell(np.inf), "quantity inf: sell takes a positive, finite number of shares"),
    (lambda c: c.target_weight(np.nan), "target_weight nan: a weight is a finite number (a fraction of equity)"),
    (lambda c: c.target_weight(True), "target_weight True: a weight is a finite number (a fraction of equity)"),
    (lambda c: c.target_weight("0.5"), "target_weight '0.5': a weight is a finite number (a fraction of equity)"),
    (lambda c: c.cancel("x"), "cancel takes an order ctx.buy, sell, target_weight or close returned (or one of "
                              "ctx.open_orders), not 'x'"),
    (lambda c: c.cancel(None), "cancel takes an order ctx.buy, sell, target_weight or close returned (or one of "
                               "ctx.open_orders), not None"),
])  # fmt: skip
def test_an_action_given_no_size_or_order_is_an_error_naming_the_value(step: Any, said: str) -> None:
    """They placed nothing and said nothing (ctx.buy(nan), ctx.buy(-10)), or failed in ctx's code (cancel('x'):
    AttributeError: 'str' object has no attribute 'row')."""
    with pytest.raises(MarketBossError) as caught:
        run(FLAT, {2: lambda c: c.buy(5), 3: step})
    assert str(caught.value) == said
    result, _, _ = run(FLAT, {2: lambda c: c.buy(5), 3: lambda c: c.sell(5), 5: lambda c: c.sell(1),
                              6: lambda c: c.sell(c.position(0))})  # fmt: skip
    assert result.fills["qty"].to_list() == [5, 5]  # a sale cut to a flat position, or of 0, is nothing to do


def test_ctx_names_what_is_valid_when_given_an_unknown_symbol_or_indicator() -> None:
    """Every ctx method taking a symbol (a name or an index) or an indicator's name refuses an unknown one alike."""
    market = Market.from_bars(synth_bars(["AAPL", "MSFT"], "2024-01-01", "2024-02-01", "1Day", seed=1))
    ctx = Context(market, EventParams(), {"rsi": np.full((market.n_times, 2), 50.0)}, t=3, positions_now=[5.0, 0.0],
                  cash=1000.0)  # fmt: skip
    assert ctx.value("rsi", "MSFT") == ctx.value("rsi", 1) == ctx.value("rsi", np.int64(1)) == 50.0
    assert ctx.position("AAPL") == ctx.position(0) == 5.0 and ctx.price(1) == market.close[3, 1]
    unknown = "unknown symbol 'TSLA' (the data has AAPL, MSFT)"
    out_of_range = "symbol index {} out of range: the data has 2 symbol(s), 0 to 1 (AAPL, MSFT)"
    calls = [lambda s: ctx.price(s), lambda s: ctx.position(s), lambda s: ctx.history(s), lambda s: ctx.value("rsi", s),
             lambda s: ctx.indicator("rsi", s), lambda s: ctx.buy(1, s), lambda s: ctx.sell(1, s),
             lambda s: ctx.target_weight(0.1, s), lambda s: ctx.close(s), lambda s: ctx.cancel_all(s)]  # fmt: skip
    for i, call in enumerate(calls):
        for symbol, said in (("TSLA", unknown), (2, out_of_range.format(2)), (-1, out_of_range.format(-1)),
                             (np.int64(7), out_of_range.format(7)), (True, "unknown symbol True (the data has "
                                                                           "AAPL, MSFT)")):  # fmt: skip
            with pytest.raises(MarketBossError) as caught:
                call(symbol)
            assert str(caught.value) == said, (i, symbol)
    for read in (lambda: ctx.value("nope", 0), lambda: ctx.value("nope", "AAPL"), lambda: ctx.indicator("nope", 0)):
        with pytest.raises(MarketBossError) as caught:
            read()
        assert str(caught.value) == "no indicator 'nope' (the strategy's indicators: rsi)"
    with pytest.raises(MarketBossError, match=r"^name the symbol: the data has several \(AAPL, MSFT\)$"):
        ctx.price()
    assert ctx.placed == []  # nothing was placed by a refused call
    bare = Context(market, EventParams(), {}, t=3, positions_now=[0.0, 0.0])
    with pytest.raises(MarketBossError, match=r"^no indicator 'rsi' \(the strategy's indicators: none\)$"):
        bare.value("rsi", 0)
    names = [f"S{i:02d}" for i in range(12)]
    wide = Market.from_bars(synth_bars(names, "2024-01-01", "2024-01-10", "1Day", seed=1))
    with pytest.raises(MarketBossError) as caught:
        Context(wide, EventParams(), {}, t=0, positions_now=[0.0] * 12).buy(1, "TSLA")
    assert str(caught.value) == f"unknown symbol 'TSLA' (the data has {', '.join(names[:10])}, ... (12 in all))"


class _Peeking(EventStrategy[EventParams]):
    name: ClassVar[str] = "peeking"
    summary: ClassVar[str] = "test"

    def indicators(self, bars: SymbolBars) -> dict[str, np.ndarray]:
        return {"mean": np.full(len(bars), bars.close.mean())}  # uses every bar: a look into the future

    def on_bar(self, ctx: Context) -> None:
        pass


def test_an_indicator_that_looks_ahead_is_refused() -> None:
    with pytest.raises(MarketBossError, match="'mean' looks ahead"):
        run_events(market_of([100.0 + i for i in range(20)]), _Peeking(EventParams()))


class _PeekAtCut(EventStrategy[EventParams]):
    """Its value at bar t is the next bar's close on the second symbol only, from the 3/4 cut's bar on: seen only
    by a check of that symbol at that cut."""

    name: ClassVar[str] = "peek_at_cut"
    summary: ClassVar[str] = "test"

    def indicators(self, bars: SymbolBars) -> dict[str, np.ndarray]:
        ahead = np.r_[bars.close[1:], np.nan]
        late = np.arange(len(bars)) >= 14
        return {"x": np.where(late, ahead, bars.close) if bars.symbol == "S01" else bars.close}

    def on_bar(self, ctx: Context) -> None:
        pass


def test_indicators_are_checked_as_exposures_are_on_two_symbols_at_two_cuts() -> None:
    """One rule for both (strategies.causal): the first two symbols, at the first half and three quarters."""
    market = Market.from_bars(synth_bars(["S00", "S01", "S02"], "2024-01-01", "2024-01-31", "1Day", seed=2))
    assert market.n_times == 21 and cuts(21) == [10, 15]
    with pytest.raises(MarketBossError, match="'x' looks ahead: its values on the first 15 bars of S01"):
        run_events(market, _PeekAtCut(EventParams()))


class _MarketPeek(EventStrategy[EventParams]):
    """A whole-market indicator: the close `shift` bars on (a peek when shift > 0), with another per symbol."""

    name: ClassVar[str] = "market_peek"
    summary: ClassVar[str] = "test"
    shift = 0
    extra: ClassVar[dict[str, Callable[[Market], np.ndarray]]] = {}

    def market_indicators(self, market: Market) -> dict[str, np.ndarray]:
        close = market.close
        ahead = np.full(close.shape, np.nan)
        ahead[: close.shape[0] - self.shift] = close[self.shift :]
        return {"ahead": ahead, **{name: make(market) for name, make in self.extra.items()}}

    def indicators(self, bars: SymbolBars) -> dict[str, np.ndarray]:
        return {"own": bars.close}

    def on_bar(self, ctx: Context) -> None:
        self.seen = (ctx.value("ahead", 0), ctx.value("own", 0))


def test_market_indicators_are_read_as_indicators_and_checked_as_a_whole_markets_exposures() -> None:
    """market_indicators' (time x symbol) arrays are read through ctx.value beside indicators()' own; one that
    looks a bar ahead is refused (the market's first half and three quarters), as is a wrong shape or a name
    given twice; the market it is given is read-only."""
    market = Market.from_bars(synth_bars(["S00", "S01", "S02"], "2024-01-01", "2024-01-31", "1Day", seed=2))
    ok = _MarketPeek(EventParams())
    run_events(market, ok)
    assert ok.seen == (market.close[-1, 0], market.close[-1, 0])
    peek = _MarketPeek(EventParams())
    peek.shift = 1
    with pytest.raises(MarketBossError, match=r"market indicator 'ahead' looks ahead: its values on the first 10 "):
        run_events(market, peek)
    for extra, message in (({"own": lambda m: m.close}, r"indicator 'own' comes from both indicators\(\) and "
                                                        r"market_indicators\(\): give each name once"),
                           ({"flat": lambda m: m.close[:, 0]}, r"market indicator 'flat' has shape \(21,\), expected "
                                                               r"\(21, 3\)")):
        bad = _MarketPeek(EventParams())
        bad.extra = extra  # type: ignore[misc]
        with pytest.raises(MarketBossError, match=message):
            run_events(market, bad)
    writer = _MarketPeek(EventParams())
    writer.market_indicators = lambda m: m.close.__setitem__((0, 0), 1.0)  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="read-only"):  # the CLI says a plug-in's own error in one line
        run_events(market, writer)


class _Given(EventStrategy[EventParams]):
    """market_indicators: what `give` makes of the market."""

    name: ClassVar[str] = "given"
    summary: ClassVar[str] = "test"
    give: Callable[[Market], dict[Any, Any]] = staticmethod(lambda m: {})

    def market_indicators(self, market: Market) -> dict[str, np.ndarray]:
        return self.give(market)

    def on_bar(self, ctx: Context) -> None:
        self.seen = ctx.indicator("x", 0)


@pytest.mark.parametrize(("give", "message"), [
    (lambda m: {"x": m.close, **({"late": m.close} if m.n_times > 20 else {})},
     r"market indicator 'late' is missing when the market is cut to its first 10 bars"),
    (lambda m: {"x": m.close + 1j}, r"market indicator 'x' is a ndarray of complex numbers: give a \(time x "),
    (lambda m: {"x": np.full(m.close.shape, "1.5")}, r"market indicator 'x' is a ndarray of no numbers"),
    (lambda m: {1: m.close}, r"indicator name 1 is a int: name indicators by strings"),
])
def test_a_market_indicator_is_numbers_under_a_name_whatever_the_bars(give: Any, message: str) -> None:
    """Each name every time (a missing one was said to look ahead), numbers (text was parsed, complex numbers cut to
    their real part with numpy's warning), named by a string (an int's error blamed on_bar)."""
    market = Market.from_bars(synth_bars(["S00", "S01"], "2024-01-01", "2024-01-31", "1Day", seed=2))
    strategy = _Given(EventParams())
    strategy.give = give  # type: ignore[method-assign]
    with pytest.raises(MarketBossError, match=message):
        run_events(market, strategy)


def test_ctx_indicator_is_a_view_on_bar_cannot_write_through() -> None:
    market = Market.from_bars(synth_bars(["S00", "S01"], "2024-01-01", "2024-01-31", "1Day", seed=2))
    strategy = _Given(EventParams())
    strategy.give = lambda m: {"x": m.close * 1.0}  # type: ignore[method-assign]
    run_events(market, strategy)
    with pytest.raises(ValueError, match="read-only"):
        strategy.seen[-1] = 0.0


# ------------------------------------------------------------------------------------- random strategies


class SpyParams(EventParams):
    seed: int = Field(0, description="mixes the decisions")


class Spy(EventStrategy[SpyParams]):
    """Records everything it is shown and decides from it alone, with every action of ctx."""

    name: ClassVar[str] = "spy"
    summary: ClassVar[str] = "test"
    params_model = SpyParams

    def indicators(self, bars: SymbolBars) -> dict[str, np.ndarray]:
        return {"sma": sma(bars.close, 5)}

    def start(self, ctx: Context) -> None:
        self.log: list[tuple[Any, ...]] = []

    def on_bar(self, ctx: Context) -> None:
        t = ctx.t
        for s in range(len(ctx.symbols)):
            h = ctx.history(s)
            assert h.close.shape[0] == t + 1 and ctx.indicator("sma", s).shape[0] == t + 1
            seen = (t, s, float(np.nansum(h.close)), float(np.nansum(h.high)), ctx.value("sma", s), ctx.position(s),
                    round(ctx.cash, 6), round(ctx.equity, 6), len(ctx.open_orders))  # fmt: skip
            self.log.append(repr(seen))
            px = ctx.price(s)
            if np.isnan(px):
                continue
            pick = (zlib.crc32(repr(seen).encode()) + self.params.seed) % 23
            pos = ctx.position(s)
            tif = "gtc" if pick % 2 else "day"
            if pick == 0:
                ctx.buy(3, s)
            elif pick == 1 and pos:
                ctx.sell(2, s)
            elif pick == 2:
                ctx.target_weight(0.2, s)
            elif pick == 3 and pos:
                ctx.close(s)
            elif pick == 4:
                ctx.buy(2, s, limit_price=round(px * 0.98, 2), time_in_force=tif)
            elif pick == 5:
                ctx.buy(2, s, stop_price=round(px * 1.01, 2), time_in_force=tif, stop_loss=round(px * 0.95, 2))
            elif pick == 6 and pos > 0:
                ctx.sell(pos, s, order_type="trailing_stop", trail_percent=3.0, time_in_force=tif)
            elif pick == 7:
                ctx.buy(1, s, take_profit=round(px * 1.03, 2), stop_loss=round(px * 0.97, 2))
            elif pick == 8:
                ctx.buy(1, s, trail_percent=2.5)
            elif pick == 9 and ctx.open_orders:
                ctx.cancel(ctx.open_orders[0])
            elif pick == 10:
                ctx.buy(1, s, stop_price=round(px * 1.005, 2), limit_price=round(px * 1.02, 2), time_in_force=tif)


@pytest.fixture(scope="module")
def random_bars() -> pl.DataFrame:
    bars = synth_bars(["AAA", "BBB"], "2023-01-01", "2023-12-31", "1Day", seed=5)
    # a sparse symbol: every third bar of CCC is missing
    ccc = synth_bars(["CCC"], "2023-01-01", "2023-12-31", "1Day", seed=6)
    return pl.concat([bars, ccc.filter(pl.int_range(pl.len()) % 3 != 1)]).sort("timestamp", "symbol")


COSTS = BacktestConfig(cash=20_000, costs=Costs(commission=0.001, slippage_bps=3))


class GapBuyer(EventStrategy[EventParams]):
    """Buys CCC with a bracket on the first bar where CCC has none (a sparse symbol)."""

    name: ClassVar[str] = "gap_buyer"
    summary: ClassVar[str] = "test"

    def start(self, ctx: Context) -> None:
        self.done = False

    def on_bar(self, ctx: Context) -> None:
        if not self.done and ctx.t > 5 and np.isnan(ctx.price("CCC")):
            self.done = True
            ctx.buy(1, "CCC", take_profit=1e6, stop_loss=1.0)


def test_an_order_on_a_bar_its_symbol_lacks_is_sent_without_a_price(random_bars: pl.DataFrame) -> None:
    """Its signal carries no price (null: a NaN price made the run refuse its own order as not finite) and it
    fills at the symbol's next bar's open."""
    market = Market.from_bars(random_bars)
    result, signals = run_events(market, GapBuyer(EventParams()), COSTS)
    assert signals.height == 1 and signals["price"].null_count() == 1 and signals["take_profit"].item() == 1e6
    ccc = market.symbol_index("CCC")
    decided = int(np.searchsorted(market.times, signals["timestamp"].cast(pl.Int64).item()))
    fill_bar = decided + 1 + int(np.argmax(~np.isnan(market.close[decided + 1 :, ccc])))
    assert result.fills["price"].to_list()[:1] == [pytest.approx(market.open[fill_bar, ccc], rel=1e-3)]


class Chase(EventStrategy[EventParams]):
    """At each bar: cancel symbol t % 3's open orders (every one every 7th bar), then a gtc limit buy under the close
    for each flat symbol, and a sale of a held one every 5 bars; plain and compiled alike."""

    name: ClassVar[str] = "chase"
    summary: ClassVar[str] = "test"

    def on_bar(self, ctx: Context) -> None:
        ctx.cancel_all(None if ctx.t % 7 == 0 else ctx.t % len(ctx.symbols))
        for s in range(len(ctx.symbols)):
            px = ctx.price(s)
            if np.isnan(px):
                continue
            if ctx.position(s) == 0:
                ctx.buy(1, s, limit_price=px * 0.99, time_in_force="gtc")
            elif ctx.t % 5 == 0:
                ctx.sell(ctx.position(s), s)

    def compiled(self) -> CompiledOnBar:
        return CompiledOnBar(_chase_on_bar, np.zeros(1), max_orders=8)


@njit(cache=True)
def _chase_on_bar(t, open_, high, low, close, ind, position, cash, equity, args, mem, out):  # type: ignore[no-untyped-def]
    n_s = close.shape[1]
    out[0, :] = np.nan
    out[0, OUT_SYMBOL], out[0, OUT_KIND] = -1.0 if t % 7 == 0 else t % n_s, CANCEL
    n = 1
    for s in range(n_s):
        if np.isnan(close[t, s]):
            continue
        if position[s] == 0.0 or t % 5 == 0:
            out[n, :] = np.nan
            out[n, OUT_SYMBOL], out[n, OUT_KIND], out[n, OUT_GTC] = s, 0.0, 0.0
            if position[s] == 0.0:
                out[n, OUT_SIDE], out[n, OUT_QTY], out[n, OUT_KIND] = 1.0, 1.0, 1.0
                out[n, OUT_LIMIT], out[n, OUT_GTC] = close[t, s] * 0.99, 1.0
            else:
                out[n, OUT_SIDE], out[n, OUT_QTY] = -1.0, position[s]
            n += 1
    return n


def test_a_compiled_cancel_cancels_as_the_plain_one(random_bars: pl.DataFrame) -> None:
    """A compiled on_bar's CANCEL row (one symbol's open orders, or all) trades as ctx.cancel_all: the same
    orders, cancels and fills, and the signals backtest to them."""
    m = Market.from_bars(random_bars)
    plain, sig_plain = run_events(m, Chase(EventParams()), COSTS, compiled=False)
    fast, sig_fast = run_events(m, Chase(EventParams()), COSTS, compiled=True)
    cancels = sig_plain.filter(pl.col("action") == "CANCEL")
    assert cancels["symbol"].n_unique() == 3 and plain.fills.height > 20
    assert fast.fills.equals(plain.fills) and fast.orders.equals(plain.orders) and sig_fast.equals(sig_plain)
    assert run_backtest(m, sig_fast, COSTS).fills.select(FILL_COLUMNS).equals(plain.fills.select(FILL_COLUMNS))


class StopBesideBuy(EventStrategy[EventParams]):
    """On bar 30, a market buy of 10 and beside it a gtc sell stop of 10 (nothing held yet); on bar 60 a sale of
    15 of the 10 held; long-only, plain and compiled."""

    name: ClassVar[str] = "stop_beside_buy"
    summary: ClassVar[str] = "test"

    def on_bar(self, ctx: Context) -> None:
        if ctx.t == 30:
            ctx.buy(10, 0)
            self.stop = ctx.sell(10, 0, stop_price=ctx.price(0) * 0.95, time_in_force="gtc")
        if ctx.t == 60:
            self.sale = ctx.sell(15, 0)

    def compiled(self) -> CompiledOnBar:
        return CompiledOnBar(_stop_beside_buy, np.zeros(1))


@njit(cache=True)
def _stop_beside_buy(t, open_, high, low, close, ind, position, cash, equity, args, mem, out):  # type: ignore[no-untyped-def]
    if t != 30 and t != 60:
        return 0
    out[0:2, :] = np.nan
    out[0, OUT_SYMBOL], out[0, OUT_SIDE], out[0, OUT_QTY], out[0, OUT_KIND], out[0, OUT_GTC] = 0, 1.0, 10.0, 0.0, 0.0
    out[1, OUT_SYMBOL], out[1, OUT_SIDE], out[1, OUT_QTY], out[1, OUT_KIND], out[1, OUT_GTC] = 0, -1.0, 10.0, 2.0, 1.0
    out[1, OUT_STOP] = close[t, 0] * 0.95
    if t == 60:
        out[0, OUT_SIDE], out[0, OUT_QTY] = -1.0, 15.0
        return 1
    return 2


def test_a_long_only_sale_is_cut_to_the_shares_held_when_placed_plain_and_compiled(random_bars: pl.DataFrame
                                                                                   ) -> None:  # fmt: skip
    """A long-only sale in shares is cut to the shares held after its bar, none placed when none are held (the
    paper executor skips it): the compiled rows as ctx.sell. Before, a compiled stop beside its buy stayed and
    traded the buy's shares in the backtest alone."""
    m = Market.from_bars(random_bars)
    plain_strategy = StopBesideBuy(EventParams())
    (plain, sig_plain), (fast, sig_fast) = (run_events(m, s, COSTS, compiled=c)
                                            for s, c in ((plain_strategy, False), (StopBesideBuy(EventParams()), True)))
    assert plain_strategy.stop is None and plain_strategy.sale.quantity == 10
    assert sig_plain["action"].to_list() == ["BUY", "SELL"] and sig_plain["quantity"].to_list() == [10, 10]
    assert sig_fast.equals(sig_plain) and fast.fills.equals(plain.fills) and fast.orders.equals(plain.orders)


class OffGrid(EventStrategy[EventParams]):
    """Buys each flat symbol with a bracket priced to a fraction of a cent (5.123% under and 10.123% over the
    close)."""

    name: ClassVar[str] = "off_grid"
    summary: ClassVar[str] = "test"

    def on_bar(self, ctx: Context) -> None:
        for s in range(len(ctx.symbols)):
            px = ctx.price(s)
            if ctx.position(s) == 0 and not np.isnan(px) and not ctx.open_orders:
                o = ctx.buy(3, s, stop_loss=px * 0.94877, take_profit=px * 1.10123)
                assert o is not None and o.stop_loss == round(px * 0.94877, 2)  # what it trades, it sees


def test_order_prices_are_rounded_to_the_grid_the_broker_takes_plain_and_compiled(random_bars: pl.DataFrame) -> None:
    """A strategy's prices finer than a cent trade and are written rounded to it (signals.nb.tick), plain and
    compiled alike: every price the runs write, the local broker accepts (its sub-penny check), and the legs
    fill at the rounded prices."""
    from marketboss.local_broker.orders import price_field

    m = Market.from_bars(random_bars)
    runs = [run_events(m, Chase(EventParams()), COSTS, compiled=c) for c in (False, True)]
    runs.append(run_events(m, OffGrid(EventParams()), BacktestConfig(cash=20_000)))  # no slippage
    for _, sig in runs:
        for f in ("limit_price", "take_profit", "stop_loss"):
            for v in sig[f].drop_nulls() if f in sig.columns else []:
                assert price_field({f: v}, f) == Decimal(str(v)), (f, v)
    assert runs[0][1].equals(runs[1][1]) and runs[0][1]["limit_price"].drop_nulls().len() > 20
    bracket, sig = runs[2]
    targets = bracket.fills.filter(pl.col("leg") == "take_profit").join(sig, left_on="signal_id", right_on="id")
    assert (targets["price"] >= targets["take_profit"]).all()  # at the target, or the open that gapped over it
    assert (targets["price"] == targets["take_profit"]).sum() > 0


def test_a_compiled_cancel_of_exits_ends_them_as_ctx_cancel_of_the_filled_entry(random_bars: pl.DataFrame) -> None:
    """examples/breakeven_stop.py both ways: the compiled CANCEL_EXITS row ends a position's bracket legs as the
    plain ctx.cancel(entry) does, with the same CANCEL lines naming the filled entries, the same fills (no leg
    after its cancel), and its signals backtest to them."""
    m = Market.from_bars(random_bars)
    make = lambda: BreakevenStop(BreakevenParams(lookback=5, arm_pct=1.0))  # noqa: E731
    plain, sig_plain = run_events(m, make(), COSTS, compiled=False)
    fast, sig_fast = run_events(m, make(), COSTS, compiled=True)
    cancels = sig_fast.filter(pl.col("action") == "CANCEL")
    assert cancels.height >= 5 and cancels["symbol"].n_unique() == 3
    filled = plain.orders.filter(pl.col("status") == "filled")["signal_id"]
    assert cancels["cancels"].is_in(filled.to_list()).all()  # each names an entry that had filled
    for c in cancels.iter_rows(named=True):
        legs = fast.fills.filter((pl.col("signal_id") == c["cancels"]) & pl.col("leg").is_not_null())
        assert (legs["timestamp"] <= c["timestamp"]).all()
    assert fast.fills.equals(plain.fills) and fast.orders.equals(plain.orders) and sig_fast.equals(sig_plain)
    assert run_backtest(m, sig_fast, COSTS).fills.select(FILL_COLUMNS).equals(plain.fills.select(FILL_COLUMNS))


class Patient(EventStrategy[EventParams]):
    """A gtc limit buy 3% under the close of each flat symbol with no order open, and a gtc limit sale 2% over it
    of a held one every 4th bar with none open; compiled, the open orders per symbol are its 13th parameter."""

    name: ClassVar[str] = "patient"
    summary: ClassVar[str] = "test"

    def on_bar(self, ctx: Context) -> None:
        for s in range(len(ctx.symbols)):
            px, waiting = ctx.price(s), sum(o.symbol == s for o in ctx.open_orders)
            if np.isnan(px) or waiting:
                continue
            if ctx.position(s) == 0:
                ctx.buy(1, s, limit_price=px * 0.97, time_in_force="gtc")
            elif ctx.t % 4 == 0:
                ctx.sell(ctx.position(s), s, limit_price=px * 1.02, time_in_force="gtc")

    def compiled(self) -> CompiledOnBar:
        return CompiledOnBar(_patient_on_bar, np.zeros(1))


@njit(cache=True)
def _patient_on_bar(t, open_, high, low, close, ind, position, cash, equity, args, mem, out, open_orders):  # type: ignore[no-untyped-def]
    n = 0
    for s in range(close.shape[1]):
        px = close[t, s]
        if np.isnan(px) or open_orders[s] > 0 or (position[s] != 0.0 and t % 4 != 0):
            continue
        out[n, :] = np.nan
        out[n, OUT_SYMBOL], out[n, OUT_KIND], out[n, OUT_GTC] = s, 1.0, 1.0
        if position[s] == 0.0:
            out[n, OUT_SIDE], out[n, OUT_QTY], out[n, OUT_LIMIT] = 1.0, 1.0, px * 0.97
        else:
            out[n, OUT_SIDE], out[n, OUT_QTY], out[n, OUT_LIMIT] = -1.0, position[s], px * 1.02
        n += 1
    return n


def test_a_compiled_on_bar_may_take_the_open_orders_per_symbol(random_bars: pl.DataFrame) -> None:
    """A 13-parameter compiled on_bar is given each symbol's open orders as ctx.open_orders shows them: it trades
    as the plain one, whose limit orders wait for bars (an order each bar, without the count)."""
    m = Market.from_bars(random_bars)
    plain, sig_plain = run_events(m, Patient(EventParams()), COSTS, compiled=False)
    fast, sig_fast = run_events(m, Patient(EventParams()), COSTS, compiled=True)
    assert plain.fills.height > 10 and sig_plain.height < m.n_times  # few orders: each waits for its price
    assert fast.fills.equals(plain.fills) and fast.orders.equals(plain.orders) and sig_fast.equals(sig_plain)


def test_a_compiled_run_has_room_for_an_order_per_symbol_in_one_bar() -> None:
    """out's rows default to two per symbol: the RSI example's compiled on_bar, which writes an order for each
    oversold symbol, wrote past the 16 rows it used to have on 40 symbols (a crash: "double free or
    corruption")."""
    m = Market.from_bars(synth_bars([f"S{i:02d}" for i in range(40)], "2023-01-01", "2023-06-30", "1Day", seed=4))
    strategy = RsiBracketEvents(RsiBracketParams(n=3, oversold=70))
    fast, sig_fast = run_events(m, strategy, COSTS, compiled=True)
    plain, sig_plain = run_events(m, strategy, COSTS, compiled=False)
    assert sig_fast["timestamp"].value_counts()["count"].max() > 16
    assert sig_fast.equals(sig_plain) and fast.fills.equals(plain.fills)


@njit(cache=True)
def _overflowing_on_bar(t, open_, high, low, close, ind, position, cash, equity, args, mem, out):  # type: ignore[no-untyped-def]
    return out.shape[0] + 1 if t == 3 else 0


class Overflowing(EventStrategy[EventParams]):
    name: ClassVar[str] = "overflowing"
    summary: ClassVar[str] = "test"

    def compiled(self) -> CompiledOnBar:
        return CompiledOnBar(_overflowing_on_bar, np.zeros(1), max_orders=4)


def test_a_compiled_on_bar_returning_more_orders_than_out_holds_is_refused(random_bars: pl.DataFrame) -> None:
    with pytest.raises(MarketBossError, match=r"returned more orders than out holds \(4\) at bar 3: set "
                                              r"CompiledOnBar.max_orders"):  # fmt: skip
        run_events(Market.from_bars(random_bars), Overflowing(EventParams()), COSTS)


@njit(cache=True)
def _row_on_bar(t, open_, high, low, close, ind, position, cash, equity, args, mem, out):  # type: ignore[no-untyped-def]
    if t != 3:
        return 0
    out[0, :] = np.nan
    out[0, OUT_SYMBOL], out[0, OUT_SIDE], out[0, OUT_QTY], out[0, OUT_KIND], out[0, OUT_GTC] = args[0], args[2], \
        1.0, args[1], args[3]
    return 1 if args.shape[0] == 4 else args[4]  # a float: the count a test gives (or no count)


class RowWriter(EventStrategy[EventParams]):
    """Writes one order row at bar 3: its symbol, kind, side and gtc from `row` (and the count it returns)."""

    name: ClassVar[str] = "row_writer"
    summary: ClassVar[str] = "test"
    row: ClassVar[tuple[float, ...]] = (0.0, 0.0, 1.0, 0.0)

    def compiled(self) -> CompiledOnBar:
        return CompiledOnBar(_row_on_bar, np.array(self.row))


@pytest.mark.parametrize(("row", "said"), [
    ((-1.0, 0.0), "OUT_SYMBOL -1 is not a symbol's index (0 to 0; -1 with a cancel: every symbol's)"),
    ((0.5, 0.0), "OUT_SYMBOL 0.5 is not a symbol's index"),
    ((np.nan, CANCEL), "OUT_SYMBOL nan is not a symbol's index"),
    ((-3.0, CANCEL), "OUT_SYMBOL -3 is not a symbol's index"),
    ((1.0, CANCEL_EXITS), "OUT_SYMBOL 1 is not a symbol's index"),
    ((0.0, 5.0), "OUT_KIND 5 is not an order type (0 market, 1 limit, 2 stop, 3 stop_limit, 4 trailing_stop) nor "
                 "CANCEL (-1) or CANCEL_EXITS (-2)"),
    ((0.0, -3.0), "OUT_KIND -3 is not an order type"),
    ((0.0, np.nan), "OUT_KIND nan is not an order type"),
    ((0.0, 1.5), "OUT_KIND 1.5 is not an order type"),
    ((0.0, 0.0, np.nan, 0.0), "OUT_SIDE nan is not +1 (buy) nor -1 (sell)"),  # before: a sale
    ((0.0, 0.0, 2.0, 0.0), "OUT_SIDE 2 is not +1 (buy) nor -1 (sell)"),  # before: a buy
    ((0.0, 0.0, 1.0, 2.0), "OUT_GTC 2 is not 1 (gtc) nor 0 (day)"),  # before: gtc
])  # fmt: skip
def test_a_compiled_order_row_the_kernel_cannot_take_is_refused_naming_the_bar_and_column(
    row: tuple[float, ...], said: str
) -> None:
    """Taken as they were, a symbol index past the data's was read out of bounds (an IndexError, or a crash for a
    negative one), a kind that is no order type failed in polars, a fractional one was cut to an integer."""
    strategy = RowWriter(EventParams())
    strategy.row = row if len(row) == 4 else (*row, 1.0, 0.0)
    with pytest.raises(StrategyError) as caught:
        run_events(market_of(FLAT), strategy, compiled=True)
    assert str(caught.value).startswith(f"row_writer: order row 0 of compiled on_bar at bar 3 (2024-01-05 "
                                        f"05:00:00+00:00): {said}")
    for kind in (CANCEL, CANCEL_EXITS):  # of symbol -1: every symbol's open orders, or exits
        strategy.row = (-1.0, kind, np.nan, np.nan)
        assert run_events(market_of(FLAT), strategy, compiled=True)[1].height == 0
    strategy.row = (0.0, 0.0, 1.0, np.nan)  # NaN gtc: a day order
    assert run_events(market_of(FLAT), strategy, compiled=True)[1]["time_in_force"].to_list() == ["day"]


def test_a_compiled_on_bar_returning_a_negative_count_is_refused() -> None:
    strategy = RowWriter(EventParams())
    strategy.row = (0.0, 0.0, 1.0, 0.0, -1.0)  # before: taken as no order
    with pytest.raises(StrategyError, match=r"^row_writer: compiled on_bar returned -1 at bar 3: it returns the "
                                            r"number of orders it wrote to out \(0 for none\)$"):  # fmt: skip
        run_events(market_of(FLAT), strategy, compiled=True)


@pytest.mark.parametrize("count", [0.5, np.nan])
def test_a_compiled_on_bar_returning_no_whole_count_is_refused(count: float) -> None:
    """Before, 0.5 was taken as 0 orders without a word."""
    strategy = RowWriter(EventParams())
    strategy.row = (0.0, 0.0, 1.0, 0.0, count)
    with pytest.raises(StrategyError, match=r"^row_writer: compiled on_bar returned a number that is no whole count "
                                            r"at bar 3: it returns the number of orders"):  # fmt: skip
        run_events(market_of(FLAT), strategy, compiled=True)


@njit(cache=True)
def _huge_on_bar(t, open_, high, low, close, ind, position, cash, equity, args, mem, out):  # type: ignore[no-untyped-def]
    if t != 4:
        return 0
    out[0, :] = np.nan
    out[0, OUT_SYMBOL], out[0, OUT_SIDE], out[0, OUT_QTY], out[0, OUT_KIND], out[0, OUT_GTC] = 0, 1.0, 5e9, 0.0, 0.0
    return 1


class Huge(EventStrategy[EventParams]):
    name: ClassVar[str] = "huge"
    summary: ClassVar[str] = "test"

    def compiled(self) -> CompiledOnBar:
        return CompiledOnBar(_huge_on_bar, np.zeros(1))


def test_a_compiled_order_past_the_signal_files_limits_names_the_function_that_placed_it(
    random_bars: pl.DataFrame,
) -> None:
    """Numba keeps no line: the error names the compiled on_bar's file and function (it named nothing)."""
    with pytest.raises(InputError, match=r"5e\+09 is out of range: must be > 0 and <= 1e\+09 \(test_events.py, in "
                                         r"_huge_on_bar\)"):  # fmt: skip
        run_events(Market.from_bars(random_bars), Huge(EventParams()), COSTS, compiled=True)


class Weights(EventStrategy[EventParams]):
    """Every 4th bar, AAA to a target weight of 0 (flat already: no order), 0.6, 0.2 and 0 in turn; compiled, its
    rows say OUT_SIDE +1 whatever the move."""

    name: ClassVar[str] = "weights"
    summary: ClassVar[str] = "test"

    def on_bar(self, ctx: Context) -> None:
        if ctx.t % 4 == 0:
            ctx.target_weight((0.0, 0.6, 0.2, 0.0)[ctx.t // 4 % 4], 0)

    def compiled(self) -> CompiledOnBar:
        return CompiledOnBar(_weights_on_bar, np.zeros(1))


@njit(cache=True)
def _weights_on_bar(t, open_, high, low, close, ind, position, cash, equity, args, mem, out):  # type: ignore[no-untyped-def]
    if t % 4 != 0:
        return 0
    out[0, :] = np.nan
    out[0, OUT_SYMBOL], out[0, OUT_SIDE], out[0, OUT_KIND], out[0, OUT_GTC] = 0.0, 1.0, 0.0, 0.0
    out[0, OUT_WEIGHT] = (0.0, 0.6, 0.2, 0.0)[t // 4 % 4]
    return 1


def test_a_compiled_target_weight_row_trades_the_move_to_its_target_as_ctx_target_weight() -> None:
    """Its side is the move's, whatever OUT_SIDE says, and a row at its target places nothing. Before, the sales
    (OUT_SIDE +1 where the move was down) were skipped: the compiled run never sold."""
    m = market_of([100.0 + (t % 7) for t in range(40)])
    plain, sig_plain = run_events(m, Weights(EventParams()), compiled=False)
    fast, sig_fast = run_events(m, Weights(EventParams()), compiled=True)
    assert sig_fast.equals(sig_plain) and fast.fills.equals(plain.fills)
    assert set(plain.fills["side"]) == {"BUY", "SELL"} and set(plain.orders["status"]) == {"filled"}
    assert sig_plain.height == 7  # 10 rows, 3 of them at bars where AAA is flat already


@pytest.mark.parametrize("make", [lambda: TimeTrailingStop(TimeTrailingParams(lookback=5, hold_bars=4)),
                                  lambda: BreakevenStop(BreakevenParams(lookback=5, arm_pct=1.0))],
                         ids=["time_trailing_stop", "breakeven_stop"])  # fmt: skip
def test_per_symbol_memory_fits_a_market_of_any_size(make: Any) -> None:
    """The examples keep their compiled memory per symbol (CompiledOnBar.per_symbol: a (memory x symbol) array):
    on 150 symbols, where their fixed 128 numbers (two for each of 64 symbols) made them refuse the market, the
    compiled run trades as the plain one, the last symbols too."""
    m = Market.from_bars(synth_bars([f"S{i:03d}" for i in range(150)], "2023-01-01", "2023-04-30", "1Day", seed=4))
    rich = COSTS.model_copy(update={"cash": 10_000_000.0})  # cash for every symbol's entries
    fast, sig_fast = run_events(m, make(), rich, compiled=True)
    plain, sig_plain = run_events(m, make(), rich, compiled=False)
    assert sig_fast.equals(sig_plain) and fast.fills.equals(plain.fills)
    last = set(sig_plain.filter(pl.col("symbol") >= "S140")["action"])
    assert {"BUY", "SELL"} <= last  # the exits the memory decides (the time stop's close, the moved stop)


class Refusing(EventStrategy[EventParams]):
    name: ClassVar[str] = "refusing"
    summary: ClassVar[str] = "test"

    def start(self, ctx: Context) -> None:
        raise MarketBossError(f"refusing trades no market of {len(ctx.symbols)} symbols")

    def compiled(self) -> CompiledOnBar:
        return CompiledOnBar(_overflowing_on_bar, np.zeros(1))


def test_the_compiled_path_calls_start_too(random_bars: pl.DataFrame) -> None:
    """start(ctx) runs before a compiled run as before a plain one: a strategy may refuse a market there."""
    for compiled in (False, True):
        with pytest.raises(MarketBossError, match="refusing trades no market of 3 symbols"):
            run_events(Market.from_bars(random_bars), Refusing(EventParams()), COSTS, compiled=compiled)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_random_event_orders_backtest_as_signals_to_the_same_fills(random_bars: pl.DataFrame, seed: int) -> None:
    m = Market.from_bars(random_bars)
    result, signals = run_events(m, Spy(SpyParams(seed=seed, long_only=seed % 2 == 0)), COSTS)
    again = run_backtest(m, signals, COSTS)
    assert result.fills.height > 0
    assert again.fills.select(FILL_COLUMNS).equals(result.fills.select(FILL_COLUMNS))
    assert again.equity.equals(result.equity)
    assert again.metrics["total_return_pct"] == result.metrics["total_return_pct"]


def _perturbed(bars: pl.DataFrame, t: Any, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    factor = pl.Series(np.exp(rng.normal(0, 0.2, bars.height)))
    later = bars["timestamp"] > t
    return bars.with_columns(pl.when(later).then(pl.col(c) * factor).otherwise(pl.col(c)).alias(c)
                             for c in ("open", "high", "low", "close"))  # fmt: skip


def _decided_by(signals: pl.DataFrame, t: Any) -> pl.DataFrame:
    return signals.filter(pl.col("timestamp") <= t)


LOOKAHEAD_CASES = [
    ("spy", lambda: Spy(SpyParams(seed=3, long_only=False)), False),
    ("time_trailing_stop", lambda: TimeTrailingStop(TimeTrailingParams(lookback=5, hold_bars=4, trail_percent=3)),
     False),
    ("time_trailing_stop compiled", lambda: TimeTrailingStop(TimeTrailingParams(lookback=5, hold_bars=4)), True),
    ("rsi_bracket_events", lambda: RsiBracketEvents(RsiBracketParams(n=5, oversold=45)), False),
    ("breakeven_stop", lambda: BreakevenStop(BreakevenParams(lookback=5, arm_pct=1.0)), False),
    ("breakeven_stop compiled", lambda: BreakevenStop(BreakevenParams(lookback=5, arm_pct=1.0)), True),
    ("rsi_bracket_events compiled", lambda: RsiBracketEvents(RsiBracketParams(n=5, oversold=45)), True),
    ("open orders counted, compiled", lambda: Patient(EventParams()), True),  # counted where the kernel stopped
    ("pairs_events", lambda: PairsEvents(PairsParams(window=10, entry_z=1.0, hold_bars=5)), False),  # the market's
    ("pairs_events, sparse leg", lambda: PairsEvents(PairsParams(a="CCC", window=10, entry_z=1.0)), False),
]


@pytest.mark.parametrize(("case", "make", "compiled"), LOOKAHEAD_CASES, ids=[c[0] for c in LOOKAHEAD_CASES])
@settings(max_examples=8, deadline=None)
@given(cut=st.floats(min_value=0.05, max_value=0.95), seed=st.integers(0, 2**32 - 1))
def test_an_event_strategy_never_sees_a_bar_beyond_the_current_one(
    random_bars: pl.DataFrame, case: str, make: Any, compiled: bool, cut: float, seed: int
) -> None:
    """Changing every bar after time t changes nothing the strategy saw, decided or traded up to t."""
    times = random_bars["timestamp"].unique().sort()
    t = times[int(cut * (len(times) - 1))]
    changed = _perturbed(random_bars, t, seed)
    runs = []
    for bars in (random_bars, changed):
        strat = make()
        result, signals = run_events(Market.from_bars(bars), strat, COSTS, compiled=compiled)
        runs.append((strat, result, signals))
    (a, ra, _), (b, rb, _) = runs
    # every order decided up to t (the signals leave out those canceled later, maybe after t: not compared)
    assert _decided_by(ra.orders.drop("status"), t).equals(_decided_by(rb.orders.drop("status"), t))
    assert ra.fills.filter(pl.col("timestamp") <= t).equals(rb.fills.filter(pl.col("timestamp") <= t))
    assert ra.equity.filter(pl.col("timestamp") <= t).equals(rb.equity.filter(pl.col("timestamp") <= t))
    if isinstance(a, Spy):
        n = 3 * int((times <= t).sum())  # three symbols a bar, in time order
        assert a.log[:n] == b.log[:n]
        assert a.log != b.log  # the perturbation does reach what it sees after t (the test could fail)


# the examples' legs come from the shared exit parameters, in the compiled twins too: each combination of them
TRAILING_EXITS: list[dict[str, Any]] = [{"trail_percent": 2}, {"trail_percent": None, "take_profit_pct": 4},
                                        {"trail_percent": None, "stop_loss_pct": 2}]  # fmt: skip
BREAKEVEN_EXITS: list[dict[str, Any]] = [
    {"stop_loss_pct": 2}, {"stop_loss_pct": 4, "take_profit_pct": None},
    {"stop_loss_pct": None, "take_profit_pct": None, "trail_percent": 3}]  # fmt: skip


@pytest.mark.parametrize("make", [
    lambda seed: TimeTrailingStop(TimeTrailingParams(lookback=3 + seed % 7, hold_bars=1 + seed % 5,
                                                     **TRAILING_EXITS[seed % 3])),
    lambda seed: RsiBracketEvents(RsiBracketParams(n=3 + seed % 9, oversold=35 + seed % 20, quantity=1 + seed % 4)),
    lambda seed: BreakevenStop(BreakevenParams(lookback=3 + seed % 7, arm_pct=0.5 + seed % 4,
                                               **BREAKEVEN_EXITS[seed % 3])),
], ids=["time_trailing_stop", "rsi_bracket_events", "breakeven_stop"])
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_the_compiled_path_trades_as_the_plain_one(random_bars: pl.DataFrame, make: Any, seed: int) -> None:
    m = Market.from_bars(random_bars)
    plain, sig_plain = run_events(m, make(seed), COSTS, compiled=False)
    fast, sig_fast = run_events(m, make(seed), COSTS, compiled=True)
    assert plain.fills.height > 0
    assert fast.fills.equals(plain.fills) and sig_fast.equals(sig_plain) and fast.orders.equals(plain.orders)
    assert run_backtest(m, sig_fast, COSTS).fills.select(FILL_COLUMNS).equals(plain.fills.select(FILL_COLUMNS))


@pytest.mark.parametrize("make, exits", [
    *((lambda e: TimeTrailingStop(TimeTrailingParams(lookback=5, hold_bars=4, **e)), e) for e in TRAILING_EXITS),
    *((lambda e: BreakevenStop(BreakevenParams(lookback=5, arm_pct=1.0, **e)), e) for e in BREAKEVEN_EXITS),
])  # fmt: skip
def test_the_examples_legs_are_the_exit_parameters_plain_and_compiled(random_bars: pl.DataFrame, make: Any,
                                                                      exits: dict[str, Any]) -> None:  # fmt: skip
    """Their entries carry the legs the shared exit parameters name (no parameter of their own repeats one):
    a leg on every entry when its parameter is set, on none when it is not, compiled as plain."""
    m = Market.from_bars(random_bars)
    strategy = make(exits)
    plain, sig_plain = run_events(m, strategy, COSTS, compiled=False)
    fast, sig_fast = run_events(m, strategy, COSTS, compiled=True)
    assert fast.fills.equals(plain.fills) and sig_fast.equals(sig_plain)
    entries = sig_plain.filter(pl.col("action") == "BUY")
    assert entries.height > 3
    p = strategy.params
    for leg, pct in (("stop_loss", p.stop_loss_pct), ("take_profit", p.take_profit_pct),
                     ("trail_percent", p.trail_percent)):  # fmt: skip
        assert entries[leg].null_count() == (0 if pct is not None else entries.height), leg


@pytest.mark.parametrize("make", [lambda **k: RsiBracketEvents(RsiBracketParams(n=5, oversold=40, **k)),
                                  lambda **k: TimeTrailingStop(TimeTrailingParams(lookback=5, hold_bars=4, **k)),
                                  lambda **k: BreakevenStop(BreakevenParams(lookback=5, arm_pct=1.0, **k))],
                         ids=["rsi_bracket_events", "time_trailing_stop", "breakeven_stop"])  # fmt: skip
@pytest.mark.parametrize("params", [{"sizing": "weight", "weight": 0.2}, {"long_only": False}], ids=str)
def test_the_compiled_examples_size_as_the_parameters_say(random_bars: pl.DataFrame, make: Any,
                                                          params: dict[str, Any]) -> None:  # fmt: skip
    """Their compiled buys take the size ctx.buy(symbol=s) does (entry_args): sizing=weight places target-weight
    entries (their compiled twins bought `quantity` shares whatever the sizing), and long-short changes
    nothing of what they place."""
    m = Market.from_bars(random_bars)
    plain, sig_plain = run_events(m, make(**params), COSTS, compiled=False)
    fast, sig_fast = run_events(m, make(**params), COSTS, compiled=True)
    assert fast.fills.equals(plain.fills) and sig_fast.equals(sig_plain) and plain.fills.height > 5
    buys = sig_plain.filter(pl.col("action") == "BUY")
    assert buys["target_weight"].null_count() == (0 if "weight" in params else buys.height)


class BuyEvery(EventStrategy[EventParams]):
    """Every 7th bar, ctx.buy(symbol=s) of every symbol, whether it has a bar then or not; its twin writes
    entry_args' rows."""

    name: ClassVar[str] = "buy_every"

    def on_bar(self, ctx: Context) -> None:
        if ctx.t % 7 == 1:
            for s in range(len(ctx.symbols)):
                ctx.buy(symbol=s)

    def compiled(self) -> CompiledOnBar:
        return CompiledOnBar(_buy_every, np.array(entry_args(self.params)))


@njit(cache=True)
def _buy_every(t, open_, high, low, close, ind, position, cash, equity, args, mem, out):  # type: ignore[no-untyped-def]
    if t % 7 != 1:
        return 0
    for s in range(close.shape[1]):
        out[s, :] = np.nan
        out[s, OUT_SYMBOL], out[s, OUT_SIDE], out[s, OUT_KIND], out[s, OUT_GTC] = s, 1.0, 0.0, 0.0
        out[s, OUT_QTY], out[s, OUT_WEIGHT] = args[0], args[1]
    return close.shape[1]


def test_a_buy_sized_by_weight_is_a_target_weight_in_both_paths(random_bars: pl.DataFrame) -> None:
    """ctx.buy() under sizing=weight moves to the weight as ctx.target_weight and a compiled entry_args row do:
    none where the symbol has no bar to size it by (CCC, every third bar), none when the position is there
    (before, the plain path placed both: 5 signals against the compiled path's 4, on a late-listed symbol)."""
    m = Market.from_bars(random_bars)
    strategy = BuyEvery(EventParams(sizing="weight", weight=0.2))
    plain, sig_plain = run_events(m, strategy, COSTS, compiled=False)
    fast, sig_fast = run_events(m, strategy, COSTS, compiled=True)
    assert fast.fills.equals(plain.fills) and sig_fast.equals(sig_plain)
    ccc = m.symbol_index("CCC")
    decided = np.searchsorted(m.times, sig_plain.filter(pl.col("symbol") == "CCC")["timestamp"].dt.epoch("us"))
    absent = np.flatnonzero(np.isnan(m.close[:, ccc]) & (np.arange(m.n_times) % 7 == 1))
    assert absent.shape[0] > 3 and not np.isin(absent, decided).any() and decided.shape[0] > 3


@pytest.mark.parametrize("compiled", [False, True])
def test_a_negative_target_weight_of_a_long_only_strategy_is_refused_in_both_paths(compiled: bool) -> None:
    """Before, the compiled row sold the position to flat without a word, where ctx.target_weight refused it."""

    class Shorting(EventStrategy[EventParams]):
        name: ClassVar[str] = "shorting"

        def on_bar(self, ctx: Context) -> None:
            if ctx.t == 3:
                ctx.target_weight(-0.2, 0)

        def compiled(self) -> CompiledOnBar:
            return CompiledOnBar(_short_weight, np.zeros(1))

    said = ("order row 0 of compiled on_bar at bar 3 (2024-01-05 05:00:00+00:00): OUT_WEIGHT -0.2 is a negative "
            "target weight: long_only strategies do not short") if compiled else "target_weight -0.2: long_only "
    with pytest.raises(MarketBossError, match=re.escape(said)):
        run_events(market_of(FLAT), Shorting(EventParams()), compiled=compiled)
    assert run_events(market_of(FLAT), Shorting(EventParams(long_only=False)), compiled=compiled)[1].height == 1


@njit(cache=True)
def _short_weight(t, open_, high, low, close, ind, position, cash, equity, args, mem, out):  # type: ignore[no-untyped-def]
    if t != 3:
        return 0
    out[0, :] = np.nan
    out[0, OUT_SYMBOL], out[0, OUT_SIDE], out[0, OUT_KIND], out[0, OUT_GTC], out[0, OUT_WEIGHT] = 0, -1.0, 0, 0, -0.2
    return 1


@pytest.mark.parametrize("compiled", [False, True])
def test_a_book_that_grows_row_by_row_trades_as_one_with_room(random_bars: pl.DataFrame, compiled: bool,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    m = Market.from_bars(random_bars)

    def run() -> tuple[Any, pl.DataFrame]:
        make = RsiBracketEvents(RsiBracketParams(n=5, oversold=45)) if compiled else Spy(SpyParams(seed=7))
        return run_events(m, make, COSTS, compiled=compiled)

    roomy, sig_roomy = run()
    monkeypatch.setattr(events, "START_ROWS", 1)
    grown, sig_grown = run()
    assert roomy.orders.height > 10
    assert grown.fills.equals(roomy.fills) and grown.orders.equals(roomy.orders) and sig_grown.equals(sig_roomy)


def test_the_kernel_runs_ahead_of_a_strategy_trading_often_in_bounded_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """A strategy placing an order every few bars while its trailing stops work: each run ahead of it is thrown
    away at its next order. Unbounded, the kernel ran to the end of the data each time: the bars it ran ahead
    grew with the data times the orders (157, then 370 times the bars on 1,560 and 3,510 minute bars)."""
    entry_points = events._entry_points
    busy_bars = [0]

    def counting(book: events.Book) -> events.KernelCalls:
        calls = entry_points(book)

        def advance(state: events.KernelState, t: int) -> None:
            ints = book.sim.ints
            busy = ints[events.nb.I_WORK] + ints[events.nb.I_EXITS] > 0
            calls.advance(state, t)
            busy_bars[0] += int(book.ran_to[0]) - t if busy else 0

        return calls._replace(advance=advance)

    monkeypatch.setattr(events, "_entry_points", counting)
    per_bar = []
    for end in ("2024-01-05", "2024-01-12"):
        m = Market.from_bars(synth_bars([f"S{i}" for i in range(10)], "2024-01-02", end, "1Min", seed=3))
        busy_bars[0] = 0
        result, signals = run_events(m, TimeTrailingStop(TimeTrailingParams()), COSTS, compiled=False)
        assert signals.height > m.n_times / 2  # an order every other bar
        assert run_backtest(m, signals, COSTS).fills.select(FILL_COLUMNS).equals(result.fills.select(FILL_COLUMNS))
        per_bar.append(busy_bars[0] / m.n_times)
    assert max(per_bar) < 32 and per_bar[1] < 1.25 * per_bar[0], per_bar


def test_a_compiled_run_leaves_no_cache_file_for_its_loop(random_bars: pl.DataFrame) -> None:
    """numba cannot find a loop compiled for one on_bar function again in another process (the function's type
    is not the same there): cached, every process and strategy added a file that was never read."""
    from numba import njit

    cache_dirs = [Path(events.__file__).parent / "__pycache__", *[Path(d) for d in
                  [os.environ.get("NUMBA_CACHE_DIR")] if d]]  # fmt: skip

    def loop_files() -> set[Path]:
        return {f for d in cache_dirs if d.exists() for f in d.rglob("*events._loop-*")}

    before = loop_files()
    strat = RsiBracketEvents(RsiBracketParams(n=5, oversold=45))
    spec = strat.compiled()
    assert spec is not None
    fresh = njit(spec.on_bar.py_func)  # a function this process has not compiled a loop for
    strat.compiled = lambda: dataclasses.replace(spec, on_bar=fresh)
    result, _ = run_events(Market.from_bars(random_bars), strat, COSTS, compiled=True)
    assert result.fills.height > 0
    assert loop_files() == before


def test_a_market_of_read_only_arrays_runs_compiled_as_a_writable_one(random_bars: pl.DataFrame) -> None:
    """The compiled loop's kernel callbacks are typed for the prices they get (read-only arrays: another type)."""
    m = Market.from_bars(random_bars)
    fields = ("times", "open", "high", "low", "close", "volume")
    frozen = {f: getattr(m, f).copy() for f in fields}
    for a in frozen.values():
        a.flags.writeable = False
    strat = RsiBracketEvents(RsiBracketParams(n=5, oversold=45))
    writable, _ = run_events(m, strat, COSTS, compiled=True)
    read_only, _ = run_events(dataclasses.replace(m, **frozen), strat, COSTS, compiled=True)
    assert writable.fills.height > 0 and read_only.fills.equals(writable.fills)


def test_signals_and_run_strategy_take_an_event_strategy(random_bars: pl.DataFrame) -> None:
    m = Market.from_bars(random_bars)
    strat = TimeTrailingStop(TimeTrailingParams())
    result, sig = run_strategy(m, strat)
    assert strat.signals(m).equals(sig)  # the default account: the same orders
    assert sig["id"].is_unique().all() and sig["strategy"].unique().to_list() == ["time_trailing_stop"]
    assert result.fills.height > 0


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example registered by name for this test only (plug-in loading by path is another module's)."""
    monkeypatch.setitem(registry._REGISTRY, TimeTrailingStop.name, TimeTrailingStop)


@pytest.mark.usefixtures("registered")
def test_a_sweep_runs_an_event_strategy_per_combination(random_bars: pl.DataFrame) -> None:
    m = Market.from_bars(random_bars)
    combos = combinations("time_trailing_stop", {"hold_bars": [2, 6], "trail_percent": [2.0, 8.0]})
    res = sweep(m, combos, COSTS)
    assert res.summary.height == 4
    for row in res.summary.iter_rows(named=True):
        params = TimeTrailingParams(hold_bars=row["hold_bars"], trail_percent=row["trail_percent"])
        one, _ = run_events(m, TimeTrailingStop(params), COSTS)
        for key in METRICS:  # the sweep's run makes no table, and the same metrics
            assert row[key] == one.metrics[key] or (np.isnan(row[key]) and np.isnan(one.metrics[key])), key
        mine = res.rows.filter(pl.col("combo") == row["combo"])
        assert mine["pnl"].sum() == pytest.approx(one.trades["pnl"].sum())
        assert mine["n_fills"].sum() == one.fills.height
        for sym in m.symbols:  # each symbol's row is its own trades' and fills'
            got = mine.filter(pl.col("symbol") == sym).row(0, named=True)
            trades, fills = (f.filter(pl.col("symbol") == sym) for f in (one.trades, one.fills))
            assert got["pnl"] == pytest.approx(trades["pnl"].sum())
            want = trade_metrics(trades, fills)
            for key in ("n_trades", "open_trades", "win_rate_pct", "profit_factor", "expectancy", "avg_trade_pct",
                        "best_trade_pct", "worst_trade_pct", "avg_trade_duration_days", "n_fills", "commissions"):
                assert got[key] == pytest.approx(want[key], rel=1e-12, nan_ok=True), (sym, key)
    assert res.summary["final_equity"].n_unique() > 1


@pytest.mark.usefixtures("registered")
def test_an_event_sweep_is_cut_by_what_its_runs_cost_not_by_its_bar_steps() -> None:
    """The backends' units are the MA kernel's bar-steps: counted alike, an event sweep that would take a minute
    in this process was one chunk there, where the same bar-steps of the MA crossover are one chunk of a second."""
    assert bar_step_cost("ma_crossover") == 1.0 < bar_step_cost("mean_reversion") < bar_step_cost("time_trailing_stop")

    class PlainTrailing(TimeTrailingStop):  # its on_bar alone: 5-20x the compiled run's cost a bar
        name = "plain_trailing"
        compiled = EventStrategy.compiled

    registry._REGISTRY[PlainTrailing.name] = PlainTrailing
    try:
        assert bar_step_cost("plain_trailing") > 5 * bar_step_cost("time_trailing_stop")
    finally:
        del registry._REGISTRY[PlainTrailing.name]
    window, backend = Window(0, 2520), LocalBackend(workers=4)
    event = plan_tasks(combinations("time_trailing_stop", {"hold_bars": list(range(2, 42))}), COSTS, window, 100,
                       backend)  # fmt: skip
    ma = plan_tasks(combinations("ma_crossover", {"fast": list(range(2, 42))}, {"slow": 60}), COSTS, window, 100,
                    backend)  # fmt: skip
    assert len(ma) == 1 and len(event) == 6  # 40 x 100 x 2,520 bar-steps x 30 over CHUNK_WORK (5e7)
    assert sorted(len(t.params) for t in event) == [6, 6, 7, 7, 7, 7]  # every combination, in even chunks


@pytest.mark.usefixtures("registered")
def test_a_sweep_on_a_window_runs_an_event_strategy_on_the_windows_bars(random_bars: pl.DataFrame) -> None:
    """The window cut once for every combination: each combination is the event run on the window's bars, and a
    symbol without a bar there gets a row of nulls, as in the vectorised sweep (DDD starts after the window)."""
    late = synth_bars(["DDD"], "2023-09-01", "2023-12-31", "1Day", seed=8)
    m = Market.from_bars(pl.concat([random_bars, late]).sort("timestamp", "symbol"))
    window = Window(20, int(np.searchsorted(m.times, late["timestamp"].dt.epoch("us")[0])))
    combos = combinations("time_trailing_stop", {"hold_bars": [2, 6], "trail_percent": [2.0, 8.0]})
    res = sweep(m, combos, COSTS, window=window)
    assert time_slice(m, 0, m.n_times) is m  # the whole market: no copy
    cut = time_slice(m, window.start, window.end)
    assert cut.symbols == ("AAA", "BBB", "CCC")
    for row in res.summary.iter_rows(named=True):
        params = TimeTrailingParams(hold_bars=row["hold_bars"], trail_percent=row["trail_percent"])
        one, _ = run_events(cut, TimeTrailingStop(params), COSTS)
        assert row["final_equity"] == one.metrics["final_equity"]
        mine = res.rows.filter(pl.col("combo") == row["combo"])
        assert mine.filter(pl.col("symbol") == "DDD")["n_fills"].to_list() == [None]
        assert mine["n_fills"].sum() == one.fills.height > 0


@pytest.mark.usefixtures("registered")
def test_the_cli_writes_an_event_strategys_signals_that_backtest_to_its_own_fills(
    daily_bars: pl.DataFrame, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = workdir / "bars.jsonl"
    write_bars(daily_bars, data)
    params = ["--param", "hold_bars=5", "--param", "trail_percent=3"]
    assert cli("signals", "generate", "--data", str(data), "--strategy", "time_trailing_stop", *params,
               "--output", "sig.jsonl") == 0
    assert cli("backtest", "--data", str(data), "--signals", "sig.jsonl", "--commission", "0.001",
               "--output-dir", "runs/file") == 0
    assert cli("backtest", "--data", str(data), "--strategy", "time_trailing_stop", *params, "--commission", "0.001",
               "--output-dir", "runs/event") == 0
    from_file, event = load_run(workdir / "runs" / "file"), load_run(workdir / "runs" / "event")
    assert event.fills.height > 0 and from_file.fills.equals(event.fills)
    assert from_file.metrics["final_equity"] == event.metrics["final_equity"]
    capsys.readouterr()
    assert cli("backtest", "--data", str(data), "--strategy", "time_trailing_stop", "--fill", "close") != 0
    err = capsys.readouterr().err.strip()
    assert "--fill close" in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.usefixtures("registered")
def test_compare_evaluates_an_event_strategy_on_each_window(random_bars: pl.DataFrame) -> None:
    m = Market.from_bars(random_bars)
    params = {"hold_bars": 4, "trail_percent": 3.0}
    out = run_compare_task(CompareTask("time_trailing_stop", params, COSTS, 120), m)
    assert out.error is None and out.in_sample is not None and out.out_of_sample is not None
    oos, _ = run_events(time_slice(m, 120, m.n_times), TimeTrailingStop(TimeTrailingParams(**params)), COSTS)
    assert out.out_of_sample["final_equity"] == oos.metrics["final_equity"]
    assert out.in_sample["n_fills"] > 0 and out.in_sample["final_equity"] != out.out_of_sample["final_equity"]


def test_what_a_strategy_reads_of_the_market_it_cannot_write_to() -> None:
    """`c /= c[-20]`, meant as `c = c / c[-20]`: refused (numpy: read-only), where it changed the run's prices and
    the Market's for every later run. exposure()'s bars of a one-symbol market are views of it too."""
    market = Market.from_bars(synth_bars(["AAA"], "2022-01-03", "2022-06-30", "1Day", seed=3))
    before = market.close.copy()

    class Scales(EventStrategy[EventParams]):
        name = "scales"

        def on_bar(self, ctx: Context) -> None:
            if ctx.t > 30:
                c = ctx.history(0).close
                c /= c[-20]

    with pytest.raises(ValueError, match="read-only"):
        run_events(market, Scales())
    bars = market.symbol_bars(0)
    for a in (bars.times, bars.close, bars.open):
        with pytest.raises(ValueError, match="read-only"):
            a *= 2
    assert np.array_equal(market.close, before)


def test_orders_that_never_traded_count_as_unfilled() -> None:
    """A day limit whose session ended and a gtc one still working at the end are unfilled orders (before: only
    expired and no-bar ones, so `Unfilled orders 0` beside a list of day_ended rejections)."""
    market = Market.from_bars(synth_bars(["AAA", "BBB"], "2022-01-03", "2022-03-31", "1Day", seed=3))

    class Lowball(EventStrategy[EventParams]):
        name = "lowball"

        def on_bar(self, ctx: Context) -> None:
            if ctx.t in (5, 6):
                ctx.buy(10, 0, limit_price=round(ctx.price(0) * 0.5, 2), time_in_force="gtc" if ctx.t == 6 else "day")

    result, _ = run_events(market, Lowball())
    assert result.orders["status"].to_list() == ["day_ended", "open"] and result.metrics["unfilled_orders"] == 2


class DipParams(EventParams):
    dip: float = Field(3.0, gt=0, lt=50)
    hold_bars: int = Field(5, ge=1)


class GtcDip(EventStrategy[DipParams]):
    """A gtc limit buy `dip`% under the close when flat and without an open order, a close after `hold_bars`:
    its decisions read only the bar's close and its own account (a run from any bar starts where it would)."""

    name: ClassVar[str] = "gtc_dip"
    summary: ClassVar[str] = "test"
    params_model = DipParams

    def start(self, ctx: Context) -> None:
        self.entered = [-1] * len(ctx.symbols)

    def on_bar(self, ctx: Context) -> None:
        for s in range(len(ctx.symbols)):
            if np.isnan(ctx.price(s)):
                continue
            if ctx.position(s) == 0:
                self.entered[s] = -1
                if not any(o.symbol == s for o in ctx.open_orders):
                    ctx.buy(10, s, limit_price=round(ctx.price(s) * (1 - self.params.dip / 100), 2),
                            time_in_force="gtc")  # fmt: skip
            elif self.entered[s] < 0:
                self.entered[s] = ctx.t
            elif ctx.t - self.entered[s] == self.params.hold_bars:
                ctx.close(s)


def _utc(market: Market, bar: int) -> datetime:
    return datetime.fromtimestamp(int(market.times[bar]) / 1e6, UTC)


def test_trade_from_runs_the_bars_before_as_a_warm_up_whose_orders_are_never_sent() -> None:
    """The live loop's start (trade_from): the strategy runs on every bar, but the orders it places before that bar
    are canceled as placed, so it reaches it flat and without working orders, as the account does. Its gtc orders
    of the warm-up, which the whole run still has working there, are gone; from that bar on it trades as a run
    on the market cut there (its decisions read only the bar and its account)."""
    m = Market.from_bars(synth_bars(["AAA", "BBB", "CCC"], "2023-01-01", "2023-12-31", "1Day", seed=4))
    k = 120
    strategy = GtcDip(DipParams())
    result, signals = run_events(m, strategy, trade_from=_utc(m, k))
    cut, cut_signals = run_events(time_slice(m, k, m.n_times), strategy)
    assert signals.height >= 10 and signals.equals(cut_signals)
    assert result.fills.equals(cut.fills) and result.trades.equals(cut.trades)
    assert result.equity["equity"][:k].to_list() == [result.config.cash] * k  # nothing traded before it
    whole = run_events(m, strategy)[1].filter(pl.col("timestamp") >= _utc(m, k))
    assert whole["id"].to_list() != signals["id"].to_list()  # the whole run's warm-up orders change what follows
    assert set(result.orders["status"][: len(result.orders) - signals.height]) == {"canceled"}


def test_a_warm_up_order_is_returned_and_never_open() -> None:
    """ctx.buy before trade_from returns its order (a strategy may keep it, cancel it: nothing happens), not among
    the open orders at the next bar; the same order at trade_from is sent and works."""
    m = market_of(FLAT)
    steps = {1: lambda c: c.buy(1, limit_price=101.0, time_in_force="gtc"), 2: lambda c: c.cancel(c.orders[0]),
             3: lambda c: c.buy(2, limit_price=90.0, time_in_force="gtc")}  # fmt: skip
    strategy = Script(EventParams(), steps)
    result, signals = run_events(m, strategy, trade_from=_utc(m, 3))
    assert isinstance(strategy.placed[1], PlacedOrder) and [n for _, _, n in strategy.seen[:5]] == [0, 0, 0, 0, 1]
    assert signals["quantity"].to_list() == [2] and result.orders["status"].to_list() == ["canceled", "open"]


@pytest.mark.parametrize("make", [lambda: Chase(EventParams()), lambda: RsiBracketEvents(RsiBracketParams()),
                                  lambda: TimeTrailingStop(TimeTrailingParams(lookback=5, hold_bars=4))])
def test_trade_from_the_compiled_path_trades_as_the_plain_one(random_bars: pl.DataFrame, make: Any) -> None:
    m = Market.from_bars(random_bars)
    start = _utc(m, m.n_times // 2)
    plain, sig_plain = run_events(m, make(), COSTS, compiled=False, trade_from=start)
    fast, sig_fast = run_events(m, make(), COSTS, compiled=True, trade_from=start)
    assert sig_plain.height and sig_plain["timestamp"].min() >= start  # type: ignore[operator]
    assert run_events(m, make(), COSTS)[1]["timestamp"].min() < start  # type: ignore[operator]
    assert fast.fills.equals(plain.fills) and fast.orders.equals(plain.orders) and sig_fast.equals(sig_plain)
    assert run_backtest(m, sig_fast, COSTS).fills.select(FILL_COLUMNS).equals(plain.fills.select(FILL_COLUMNS))


def test_orders_canceled_from_outside_are_canceled_at_their_bar_and_the_strategy_decides_again() -> None:
    """The live loop's restart after its stop canceled the working orders (run_events' `canceled`): the run cancels
    them after the last bar begun by then, as if the strategy had, so it places what it would (a gtc dip buyer: a
    new limit at the next bar). Before, its run kept them working, and it waited on orders the account no longer
    had. A cancel is a no-op for an order filled by then; the plain and compiled paths agree."""
    m = Market.from_bars(synth_bars(["AAA", "BBB"], "2023-01-01", "2023-12-31", "1Day", seed=4))
    strategy = GtcDip(DipParams(dip=8.0))  # far: its limits work for days
    _, signals = run_events(m, strategy)
    k = 40
    working = signals.filter(pl.col("timestamp") < _utc(m, k))
    stop = _utc(m, k) + (_utc(m, k + 1) - _utc(m, k)) / 2  # between bars k and k + 1, as a stop after bar k
    result, again = run_events(m, strategy, canceled={i: stop for i in working["id"]})
    status = dict(result.orders.select("signal_id", "status").iter_rows())
    lost = [i for i in working["id"] if status[i] == "canceled"]
    assert lost  # those still working at k
    new = again.filter(pl.col("timestamp") == _utc(m, k + 1))
    assert new.height == len(lost) and set(new["action"]) == {"BUY"}  # placed again at once
    assert again.filter(pl.col("timestamp") < _utc(m, k))["id"].to_list() == working["id"].to_list()
    chased = Chase(EventParams()).signals(m)
    placed = chased.filter(pl.col("timestamp").is_between(_utc(m, k - 3), _utc(m, k)))
    cancels = {i: stop for i in placed["id"]}  # the last bars' orders: some still working at the stop
    fast, sig_fast = run_events(m, Chase(EventParams()), COSTS, compiled=True, canceled=cancels)
    plain, sig_plain = run_events(m, Chase(EventParams()), COSTS, compiled=False, canceled=cancels)
    assert sig_fast.equals(sig_plain) and fast.fills.equals(plain.fills) and fast.orders.equals(plain.orders)
    assert not sig_plain.equals(run_events(m, Chase(EventParams()), COSTS)[1])


@pytest.mark.parametrize("compiled", [False, True])
def test_exits_canceled_from_outside_end_at_their_bar_and_the_signals_say_so(compiled: bool) -> None:
    """The live loop's restart after `--on-stop cancel-all` canceled a filled entry's exits: run_events' `canceled`
    ends them after the last bar begun by then (nb.cancel_row), so the position is held on without them, as in the
    account; the signals get a CANCEL line naming the entry, and their backtest is the run's, fill for fill. Before,
    a cancel of a filled order did nothing: its exit filled later in the run alone."""
    m = Market.from_bars(synth_bars(["AAA", "BBB"], "2023-01-01", "2023-12-31", "1Day", seed=4))
    make = lambda: RsiBracketEvents(RsiBracketParams(n=5, oversold=35.0))  # noqa: E731
    base, _ = run_events(m, make(), COSTS, compiled=compiled)
    entries = {r["signal_id"]: r["timestamp"] for r in base.fills.filter(pl.col("leg").is_null()).iter_rows(named=True)}
    late = [r for r in base.fills.filter(pl.col("leg").is_not_null()).iter_rows(named=True)
            if (r["timestamp"] - entries[r["signal_id"]]).days >= 5]  # fmt: skip
    assert late
    sid, entered = late[0]["signal_id"], entries[late[0]["signal_id"]]
    stop = entered + timedelta(hours=12)  # after the entry's fill bar
    result, signals = run_events(m, make(), COSTS, compiled=compiled, canceled={sid: stop})
    assert result.fills.filter((pl.col("signal_id") == sid) & pl.col("leg").is_not_null()).height == 0
    symbol = late[0]["symbol"]
    after = result.fills.filter((pl.col("symbol") == symbol) & (pl.col("timestamp") > entered))
    assert after.height == 0  # held on: the strategy buys only when flat
    cancel = signals.filter(pl.col("action") == "CANCEL")
    assert cancel["cancels"].to_list() == [sid] and cancel["timestamp"].to_list() == [entered]
    assert run_backtest(m, signals, COSTS).fills.select(FILL_COLUMNS).equals(result.fills.select(FILL_COLUMNS))


def test_a_strategys_cancel_of_a_filled_bracket_order_ends_its_exits_and_keeps_the_position() -> None:
    """ctx.cancel of an order that has filled cancels what of it works, its bracket legs (the rule a CANCEL line
    follows in the backtest of the signals and at the broker): the position stays, the take-profit it would have
    hit two bars later never fills, and the CANCEL line is at the bar it was decided."""
    close = [100.0, 100.0, 101.0, 102.0, 103.0, 110.0, 111.0, 112.0]
    steps = {0: lambda c: c.buy(5, take_profit=108.0, stop_loss=90.0), 3: lambda c: c.cancel(c.orders[0])}
    kept, _, _ = run(close, {0: steps[0]})
    assert kept.fills["leg"].to_list() == [None, "take_profit"]
    result, signals, strat = run(close, steps)
    assert result.fills["leg"].to_list() == [None] and [p for p, _, _ in strat.seen][-1] == 5
    assert signals["action"].to_list() == ["BUY", "CANCEL"] and signals["cancels"][1] == signals["id"][0]
    again, twice, _ = run(close, {**steps, 4: lambda c: c.cancel(c.orders[0])})  # nothing left: no second line
    assert again.fills.equals(result.fills) and twice.equals(signals)


class Peeking(EventStrategy[EventParams]):
    """Reads the market, or trades, in start(ctx): `what` names the read."""

    name = "peeking"
    what = "price"

    def indicators(self, bars: SymbolBars) -> dict[str, np.ndarray]:
        return {"c": np.array(bars.close)}

    def start(self, ctx: Context) -> None:
        reads: dict[str, Callable[[], Any]] = {
            "price": lambda: ctx.price(0), "value": lambda: ctx.value("c", 0), "time": lambda: ctx.time,
            "buy": lambda: ctx.buy(1, 0), "target_weight": lambda: ctx.target_weight(0.5, 0)}  # fmt: skip
        if self.what == "nothing":  # what start may read: no bar, the symbols, the cash
            self.seen = (len(ctx.history(0).close), len(ctx.indicator("c", 0)), ctx.symbols, ctx.cash, ctx.equity)
        else:
            reads[self.what]()

    def on_bar(self, ctx: Context) -> None:
        if ctx.t == 0:
            ctx.buy(1, 0)


@pytest.mark.parametrize("what", ["price", "value", "time", "buy", "target_weight"])
def test_start_reads_no_bar_and_places_no_order(random_bars: pl.DataFrame, what: str) -> None:
    """start(ctx) runs before the first bar (ctx.t -1): ctx.price, value and time read the data's last bar there
    before (a strategy picked its symbols by their final closes), and an order placed there was recorded
    canceled at bar 0. Each is one error now; the bars' history and indicators are empty."""
    strategy = Peeking(EventParams())
    strategy.what = what
    with pytest.raises(MarketBossError, match=r"^start\(ctx\) runs before the first bar: it has no bar to read"):
        run_events(Market.from_bars(random_bars), strategy, COSTS)
    strategy.what = "nothing"
    result, _ = run_events(Market.from_bars(random_bars), strategy, COSTS)
    assert strategy.seen[:2] == (0, 0) and strategy.seen[3] == strategy.seen[4] == COSTS.cash
    assert result.fills.height == 1  # the run itself reads its bars


class WaitsForABar(EventStrategy[EventParams]):
    """At bar 5 a buy of BBB (it fills at BBB's next bar), at bar 6 one of AAA (filled at bar 7): the open
    orders it sees at bars 6 to 9."""

    name = "waits_for_a_bar"

    def start(self, ctx: Context) -> None:
        self.seen: list[int] = []

    def on_bar(self, ctx: Context) -> None:
        if ctx.t == 5:
            ctx.buy(1, "BBB")
        if ctx.t == 6:
            ctx.buy(1, "AAA")
        if 6 <= ctx.t <= 9:
            self.seen.append(len(ctx.open_orders))


def test_an_order_waiting_for_its_symbols_next_bar_shows_nothing_of_whether_it_comes() -> None:
    """A symbol without a bar after bar 5: its order stays open, as where the symbol trades again at bar 10, and
    expires at the end of the data (before, it left the open orders at the next fill of another symbol: the
    strategy saw at bar 7 whether BBB had a bar to come)."""
    days = [datetime(2024, 2, 5, 21, tzinfo=UTC) + timedelta(days=i) for i in range(16)]

    def bars(symbol: str, rows: list[int]) -> pl.DataFrame:
        return pl.DataFrame({"timestamp": [days[i] for i in rows], "symbol": symbol, "open": 100.0, "high": 101.0,
                             "low": 99.0, "close": 100.0, "volume": 1.0}).with_columns(
            pl.col("timestamp").dt.cast_time_unit("us"))  # fmt: skip

    seen, statuses = [], []
    for bbb in (list(range(6)) + list(range(10, 16)), list(range(6))):
        strategy = WaitsForABar(EventParams())
        result, _ = run_events(Market.from_bars(pl.concat([bars("AAA", list(range(16))), bars("BBB", bbb)])),
                               strategy, COSTS)  # fmt: skip
        seen.append(strategy.seen)
        statuses.append(result.orders["status"].to_list())
    assert seen[0] == seen[1] == [2, 1, 1, 1]
    assert statuses == [["filled", "filled"], ["expired", "filled"]]


def test_rebalance_on_an_event_strategy_says_it_is_for_exposure_strategies() -> None:
    """Whatever its sizing (with sizing=quantity it said "it needs sizing=weight", and with that, this)."""
    for sizing in ("quantity", "weight"):
        with pytest.raises(ValueError, match="rebalance is for exposure strategies: an event strategy places its own"):
            EventParams(rebalance="monthly", sizing=sizing)
