"""An order that takes a position through zero (long 10, sell 20), which Alpaca refuses as one order ("insufficient
qty available") and the backtest fills: the executor sends it as two, the position's shares first and the rest
once they filled, and records them as the one order the signal asked for. A crash between the two sends only the
rest on the rerun. A long-short strategy paper-trades as it backtests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from marketboss.broker.base import OrderRequest
from marketboss.data.io import read_jsonl_records, write_bars
from marketboss.data.synth import synth_bars
from marketboss.execution.executor import Executor
from tests.integration.executor_fixtures import broker, broker_orders, executor
from tests.integration.test_examples_paper import paper_and_backtest
from tests.integration.test_executor_orders import close_of, gap_bars, r2, sdk, signal, write


def test_a_flip_goes_as_the_close_then_the_rest_and_is_recorded_as_one_order(tmp_path: Path) -> None:
    data, bars = gap_bars(tmp_path)
    buy, flip = signal(bars, "JPM", 2, qty=10), signal(bars, "JPM", 4, "SELL", qty=25)
    with broker(tmp_path, data) as lb:
        executor(tmp_path, lb, write(tmp_path, [buy, flip]), data).run()
        positions = sdk(lb).positions()
        orders = {o["client_order_id"]: o for o in broker_orders(lb)}
    assert positions["JPM"].qty == -15
    close, rest = orders[f"mb-{flip.id}-close"], orders[f"mb-{flip.id}"]
    assert (close["side"], float(close["qty"]), close["status"]) == ("sell", 10.0, "filled")
    assert (rest["side"], float(rest["qty"]), rest["status"]) == ("sell", 15.0, "filled")
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [(t["signal_id"], t["side"], t["qty"], t["status"]) for t in trades] == [
        (buy.id, "BUY", 10.0, "filled"), (flip.id, "SELL", 25.0, "filled")]  # fmt: skip
    average = (10 * float(close["filled_avg_price"]) + 15 * float(rest["filled_avg_price"])) / 25
    assert trades[1]["filled_price"] == pytest.approx(average, rel=1e-12)


def test_a_resting_order_through_zero_goes_as_the_positions_close(tmp_path: Path) -> None:
    """A gtc stop selling 11 of the 10 AAPL held (a strategy's stop sized from its own shares where the account
    bought fewer): sent whole, the broker refused it ("insufficient qty") and the position stayed unprotected
    through the gap; now the stop sells the 10 held when the gap reaches it, the cut said in the log."""
    data, bars = gap_bars(tmp_path)
    stop = r2(close_of(bars, "AAPL", 4) * 0.95)
    buy = signal(bars, "AAPL", 2, qty=10)
    protect = signal(bars, "AAPL", 4, "SELL", qty=11, order_type="stop", stop_price=stop, time_in_force="gtc")
    with broker(tmp_path, data) as lb:
        executor(tmp_path, lb, write(tmp_path, [buy, protect]), data).run()
        positions = sdk(lb).positions()
        orders = {o["client_order_id"]: o for o in broker_orders(lb)}
    sent = orders[f"mb-{protect.id}"]
    assert (sent["type"], float(sent["qty"]), sent["status"]) == ("stop", 10.0, "filled")
    assert positions == {}
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [(t["signal_id"], t["qty"], t["status"]) for t in trades][-1] == (protect.id, 10.0, "filled")


def test_a_crash_between_a_flips_two_orders_sends_only_the_rest_on_the_rerun(tmp_path: Path) -> None:
    data, bars = gap_bars(tmp_path)
    buy, flip = signal(bars, "JPM", 2, qty=10), signal(bars, "JPM", 4, "SELL", qty=25)
    path = write(tmp_path, [buy, flip])
    with broker(tmp_path, data) as lb:
        first = executor(tmp_path, lb, path, data)
        crash_before_sending(first, f"mb-{flip.id}")
        with pytest.raises(KeyboardInterrupt):
            first.run()
        assert sdk(lb).positions() == {}  # the close filled, the rest was never sent
        executor(tmp_path, lb, path, data).run()
        positions = sdk(lb).positions()
        ours = [o for o in broker_orders(lb) if flip.id in o["client_order_id"]]
    assert positions["JPM"].qty == -15
    assert sorted((o["client_order_id"], float(o["qty"])) for o in ours) == [
        (f"mb-{flip.id}", 15.0), (f"mb-{flip.id}-close", 10.0)]  # fmt: skip
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [(t["signal_id"], t["qty"], t["status"]) for t in trades][-1] == (flip.id, 25.0, "filled")


def crash_before_sending(ex: Executor, client_order_id: str) -> None:
    """The process dies just before it sends the order with this client order id."""
    submit = ex._submit_once

    def dying(req: OrderRequest, resumed: bool) -> Any:
        if req.client_order_id == client_order_id:
            raise KeyboardInterrupt
        return submit(req, resumed)

    ex._submit_once = dying  # type: ignore[method-assign]


def test_a_long_short_strategy_paper_trades_its_flips_as_it_backtests(tmp_path: Path) -> None:
    write_bars(synth_bars(["AAPL"], "2022-01-01", "2022-06-30", "1Day", seed=3),
               tmp_path / "data" / "market_data.jsonl")  # fmt: skip
    paper, fills = paper_and_backtest(tmp_path, "--strategy", "ma_crossover", "--param", "long_only=false",
                                      "--param", "fast=5", "--param", "slow=15")  # fmt: skip
    assert (fills["qty"] == 20).sum() >= 5  # flips: short 10 to long 10 and back
    assert paper.height == fills.height == len(read_jsonl_records(tmp_path / "data/paper_trading_trades.jsonl"))
    cols = ["signal_id", "side", "qty"]
    assert paper.select(cols).equals(fills.select(cols))
    assert paper["filled_price"].to_list() == pytest.approx(fills["price"].to_list(), rel=1e-9)


def test_an_order_is_cut_to_the_strategys_position_after_it_and_skipped_when_the_account_is_there(
    tmp_path: Path,
) -> None:
    """The live loop's bounds (execution/intended.py): the strategy's warm-up left it short 10 of JPM and long 10
    of MSFT, the account flat. Its flip of JPM (buy 20, to long 10) buys 10; its sale of MSFT (to flat) sells
    nothing; an order without a bound goes whole."""
    data, bars = gap_bars(tmp_path)
    flip, close, plain = (signal(bars, "JPM", 2, qty=20), signal(bars, "MSFT", 2, "SELL", qty=10),
                          signal(bars, "AAPL", 2, qty=5))  # fmt: skip
    path = write(tmp_path, [flip, close, plain])
    with broker(tmp_path, data) as lb:
        ex = executor(tmp_path, lb, path, data, replay=False)
        ex.open_session()
        try:
            ex.execute([flip, close, plain], park_after=0.0, bounds={flip.id: 10.0, close.id: 0.0})
        finally:
            ex.close_session()
        orders = {o["client_order_id"]: o for o in broker_orders(lb)}
    assert float(orders[f"mb-{flip.id}"]["qty"]) == 10 and orders[f"mb-{flip.id}"]["side"] == "buy"
    assert f"mb-{close.id}" not in orders and float(orders[f"mb-{plain.id}"]["qty"]) == 5
    trades = {t["signal_id"]: t for t in read_jsonl_records(tmp_path / "trades.jsonl")}
    assert trades[close.id]["status"] == "skipped" and "the strategy 0 once this fills" in trades[close.id]["reason"]


def test_a_crash_after_a_flips_rest_was_sent_follows_the_rest_on_the_rerun_as_the_live_loop_sends_it(
        tmp_path: Path) -> None:  # fmt: skip
    """The live loop sends a flip decided at the close as its close, left working, then its rest at the next bar
    once the close filled. Killed just after the rest was sent: the rerun finds both orders and follows the rest,
    the close known (before: it left the close working as if the rest were still to go; the rest's fill went
    unrecorded, and the sizing that counts queued orders took that close for a further short)."""
    data, bars = gap_bars(tmp_path)
    buy, flip = signal(bars, "JPM", 2, qty=10), signal(bars, "JPM", 4, "SELL", qty=25)
    path = write(tmp_path, [buy, flip])
    with broker(tmp_path, data) as lb:
        first = executor(tmp_path, lb, path, data)
        first.open_session()
        first.execute([buy])
        first.execute([flip], park_after=0.0)  # its close left working
        assert [w.closing for w in first.working.values()] == [True]
        assert first.updates is not None
        (close_id,) = first.working
        deadline = time.monotonic() + 60  # its fill said on the order stream, which the next bar's execute reads
        while not ((got := first.updates.wait(close_id, 0, 0.5)) and got[1].is_terminal):
            assert time.monotonic() < deadline
        submit = first._submit_once

        def dying(req: OrderRequest, resumed: bool) -> Any:
            sent = submit(req, resumed)
            if req.client_order_id == f"mb-{flip.id}":
                raise KeyboardInterrupt  # killed once the rest was sent
            return sent

        first._submit_once = dying  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            first.execute([], park_after=0.0)  # the next bar: the close filled, its rest goes
        first.close_session()  # its files and lock, as the process's death lets them go (nothing is sent)
        sent = {o["client_order_id"]: o for o in broker_orders(lb)}
        assert (sent[f"mb-{flip.id}-close"]["status"], float(sent[f"mb-{flip.id}"]["qty"])) == ("filled", 15.0)
        again = executor(tmp_path, lb, path, data)
        again.open_session()
        try:
            again.execute([buy, flip], park_after=0.0)
            deadline = time.monotonic() + 60
            while again.working and time.monotonic() < deadline:
                again.follow(poll=True)
                time.sleep(0.05)
        finally:
            again.close_session()
        assert len([o for o in broker_orders(lb) if flip.id in o["client_order_id"]]) == 2  # nothing sent again
        assert sdk(lb).positions()["JPM"].qty == -15
    trades = read_jsonl_records(tmp_path / "trades.jsonl")
    assert [(t["signal_id"], t["qty"], t["status"]) for t in trades][-1] == (flip.id, 25.0, "filled")


@pytest.mark.parametrize("exits", [["stop_loss_pct=2"], ["take_profit_pct=8", "stop_loss_pct=4"], ["trail_percent=6"]],
                         ids=["stop", "bracket", "trailing"])  # fmt: skip
def test_a_flips_exits_go_on_the_position_it_opens_in_paper_as_in_the_backtest(tmp_path: Path,
                                                                                exits: list[str]) -> None:  # fmt: skip
    """A long-short strategy's exits on each entry, the flips' too (short 10 to long 10: the 10 past zero): the
    backtest sets them on the shares the flip opens, the executor sends them with its rest (a bracket, or an
    exit placed once it filled), and the two trade the same legs. Before, a flip's exits were dropped by both:
    almost every position of a long-short strategy is opened by a flip, and went unprotected."""
    write_bars(synth_bars(["AAPL"], "2022-01-01", "2022-12-31", "1Day", seed=3),
               tmp_path / "data" / "market_data.jsonl")  # fmt: skip
    params = [a for p in ["long_only=false", "fast=5", "slow=15", *exits] for a in ("--param", p)]
    paper, fills = paper_and_backtest(tmp_path, "--strategy", "ma_crossover", *params)
    after = fills.select(pl.when(pl.col("side") == "BUY").then(pl.col("qty")).otherwise(-pl.col("qty")).cum_sum())
    before = after.to_series().shift(1, fill_value=0.0)
    flipped = set(fills.filter(before * after.to_series() < 0)["signal_id"])  # through zero: long to short or back
    leg_fills = fills.filter(pl.col("leg").is_not_null())
    assert len(flipped) >= 3 and leg_fills.filter(pl.col("signal_id").is_in(flipped)).height >= 1
    cols = ["signal_id", "side", "qty", "leg"]
    assert paper.sort(cols, nulls_last=True).select(cols).equals(fills.sort(cols, nulls_last=True).select(cols))
