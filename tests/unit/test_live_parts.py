"""The live loop's parts that need no server: the bar grid it walks, minute bars aggregated into its bars, where
its market-data stream is, and its status file."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import polars as pl
import pytest

from marketboss.broker.bars import LiveBar, data_stream_url
from marketboss.data.schema import BAR_DTYPES
from marketboss.errors import InputError
from marketboss.execution.intended import net_positions, order_bounds
from marketboss.execution.live import US, LiveConfig, LiveLoop, Slot, _aggregate
from marketboss.execution.live_status import LiveStatus, read_status, write_status


def _us(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * US)


class _Grid:
    """LiveLoop's grid walk alone (no broker): _next_slot over the NYSE grid of a timeframe."""

    def __init__(self, timeframe: str):
        from marketboss.data.calendar import Timeframe

        self.tf = Timeframe.parse(timeframe)
        self._grid: list[Slot] = []

    next_slot = LiveLoop._next_slot


@pytest.mark.parametrize(
    ("timeframe", "after", "start", "end"),
    [
        ("1Min", "2024-03-05T14:30:00Z", "2024-03-05T14:31:00Z", "2024-03-05T14:32:00Z"),
        ("5Min", "2024-03-05T20:55:00Z", "2024-03-06T14:30:00Z", "2024-03-06T14:35:00Z"),  # the close -> next open
        ("1Hour", "2024-11-29T17:30:00Z", "2024-12-02T14:30:00Z", "2024-12-02T15:30:00Z"),  # early close 13:00 ET
        ("1Day", "2024-03-29T04:00:00Z", "2024-04-01T04:00:00Z", "2024-04-01T20:00:00Z"),  # Good Friday skipped
    ],
)
def test_the_grid_walks_bar_by_bar_over_sessions_holidays_and_early_closes(
    timeframe: str, after: str, start: str, end: str
) -> None:
    g = _Grid(timeframe)
    slot = g.next_slot(_us(after))
    assert (slot.start, slot.end) == (_us(start), _us(end))
    assert g.next_slot(_us(after)) == slot  # asking again, or about an earlier bar, gives the same answer
    earlier = g.next_slot(_us(after) - 7 * 86_400 * US)
    assert earlier.start < slot.start


def test_the_early_close_ends_the_last_bar_of_its_session() -> None:
    g = _Grid("1Hour")
    slot = g.next_slot(_us("2024-11-29T16:30:00Z"))  # the day after Thanksgiving closes at 13:00 ET (18:00Z)
    assert (slot.start, slot.end) == (_us("2024-11-29T17:30:00Z"), _us("2024-11-29T18:00:00Z"))


def test_minute_bars_aggregate_into_the_slots_bar() -> None:
    slot = Slot(_us("2024-03-05T14:30:00Z"), _us("2024-03-05T14:35:00Z"))
    bars = [LiveBar("MSFT", slot.start + i * 60 * US, 10 + i, 12 + i, 9 - i, 11 + i, 100, 0.0) for i in range(5)]
    bars.append(LiveBar("AAPL", slot.start + 120 * US, 50, 51, 49, 50.5, 7, 0.0))
    bars.append(bars[1])  # a repeat (after a reconnect) counts once
    got = _aggregate(bars, slot)
    assert got.columns == ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
    rows = {r["symbol"]: r for r in got.iter_rows(named=True)}
    assert (rows["MSFT"]["open"], rows["MSFT"]["high"], rows["MSFT"]["low"], rows["MSFT"]["close"]) == (10, 16, 5, 15)
    assert rows["MSFT"]["volume"] == 500 and rows["AAPL"]["volume"] == 7
    assert got["timestamp"].to_list() == [datetime(2024, 3, 5, 14, 30, tzinfo=UTC)] * 2
    assert _aggregate([], slot).schema == got.schema


class _Stream:
    """A market-data stream that delivers bars at given delays (seconds after it starts), as Alpaca's does."""

    live = True

    def __init__(self, arrivals: list[tuple[float, LiveBar]]):
        self.t0 = time.perf_counter()
        self.arrivals = sorted(arrivals, key=lambda a: a[0])

    def get(self, timeout: float) -> LiveBar | None:
        if not self.arrivals:
            time.sleep(max(0.0, timeout))
            return None
        wait = self.t0 + self.arrivals[0][0] - time.perf_counter()
        if wait > timeout:
            time.sleep(max(0.0, timeout))
            return None
        time.sleep(max(0.0, wait))
        at, bar = self.arrivals.pop(0)
        return bar._replace(received=self.t0 + at)


def test_a_5min_bar_waits_for_each_symbols_last_minute_and_fetches_a_symbol_without_one() -> None:
    """In real time the slot's last minute comes a moment after it closes, its earlier minutes long before: the
    bar is every minute of it, not the four the stream had at the close. A symbol with no trade in the last minute
    comes from REST once the others are complete (--settle), long before --grace."""
    slot = Slot(_us("2024-03-05T14:30:00Z"), _us("2024-03-05T14:35:00Z"))

    def minute(sym: str, i: int) -> LiveBar:
        return LiveBar(sym, slot.start + i * 60 * US, 10 + i, 11 + i, 9 + i, 10.5 + i, 100, 0.0)

    loop = LiveLoop(LiveConfig(symbols=("AAPL", "MSFT", "JPM"), timeframe="5Min", signals_output=Path("s"),
                               status_output=Path("t"), grace=5.0, settle=0.3),
                    cast(Any, SimpleNamespace(describe=lambda: "s")), cast(Any, None),
                    cast(Any, SimpleNamespace(cfg=SimpleNamespace(equity_output=Path("e")))), mode="local",
                    broker_display="x")  # fmt: skip
    loop._buffer = [minute(s, i) for s in ("AAPL", "MSFT", "JPM") for i in range(4)]  # came before the close
    stream = _Stream([(0.6, minute("AAPL", 4)), (0.65, minute("MSFT", 4))])
    loop._stream = cast(Any, stream)
    fetched: list[list[str]] = []
    rest = pl.DataFrame({"timestamp": [datetime(2024, 3, 5, 14, 30, tzinfo=UTC)], "symbol": ["JPM"], "open": [1.0],
                         "high": [1.0], "low": [1.0], "close": [1.0], "volume": [1]}).cast(BAR_DTYPES)  # fmt: skip
    loop._fetch = lambda symbols, start, end: fetched.append(symbols) or rest  # type: ignore[method-assign]
    got = loop._collect(slot, stream.t0, wait=True)
    waited = time.perf_counter() - stream.t0
    rows = {r["symbol"]: r for r in got.iter_rows(named=True)}
    assert (rows["AAPL"]["open"], rows["AAPL"]["close"], rows["AAPL"]["volume"]) == (10, 14.5, 500)
    assert (rows["MSFT"]["high"], rows["MSFT"]["close"]) == (15, 14.5)
    assert fetched == [["JPM"]] and rows["JPM"]["close"] == 1.0 and loop.summary.gaps == 1
    assert 0.9 <= waited < 2.0  # the last minutes, then --settle for JPM's, not --grace
    assert loop._buffer == []


def test_the_data_stream_is_beside_the_data_url_except_alpacas_own() -> None:
    assert data_stream_url("http://127.0.0.1:8765/", "iex", is_local=True) == "ws://127.0.0.1:8765/v2/iex"
    assert data_stream_url("https://broker.example:9000", "sip") == "wss://broker.example:9000/v2/sip"
    for alpaca in (None, "https://data.alpaca.markets", "https://data.sandbox.alpaca.markets"):
        assert data_stream_url(alpaca, "iex") is None  # alpaca-py's default: wss://stream.data.alpaca.markets


def test_the_status_file_round_trips_and_a_damaged_one_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    assert read_status(path) is None
    st = LiveStatus("s", ["AAPL"], "1Min", "http://x", "local", 1, "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z",
                    positions=[{"symbol": "AAPL", "qty": 3.0}])  # fmt: skip
    st.stream.connections = 2
    write_status(path, st)
    assert read_status(path) == st
    for bad in ("{", "[1, 2]", json.dumps({"strategy": "s"})):
        path.write_text(bad)
        with pytest.raises(InputError) as err:
            read_status(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_live_config_names_its_mistake() -> None:
    from marketboss.errors import MarketBossError
    from marketboss.execution.live import LiveConfig

    with pytest.raises(MarketBossError, match="timeframe '2Minutes' is not valid"):
        LiveConfig(symbols=("AAPL",), timeframe="2Minutes", signals_output=Path("s"), status_output=Path("t"))


def _signals(*rows: tuple[str, str, str, float | None, float | None]) -> pl.DataFrame:
    """(id, time, symbol and action, quantity, target weight) -> a signals frame's columns the bounds read."""
    return pl.DataFrame(
        [{"id": i, "timestamp": datetime.fromisoformat(t).replace(tzinfo=UTC), "symbol": sa.split()[0],
          "action": sa.split()[1], "quantity": q, "target_weight": w} for i, t, sa, q, w in rows]
    )  # fmt: skip


def test_each_orders_bound_is_the_strategys_position_once_it_and_the_bars_orders_before_it_fill() -> None:
    t0, t1 = "2024-03-05T14:30", "2024-03-05T14:31"
    signals = _signals(
        ("a", t0, "AAA SELL", 10, None),  # the warm-up: short 10
        ("b", t0, "BBB BUY", 10, None),
        ("c", t1, "AAA BUY", 20, None),  # the flip: long 10 after it
        ("d", t1, "BBB BUY", 5, None), ("e", t1, "BBB BUY", 5, None),  # scaling in: 15, then 20
        ("f", t1, "CCC BUY", None, 0.5), ("g", t1, "CCC SELL", 3, None),  # a weight on the bar: no bound
    )
    bounds = order_bounds(signals, _us(t1 + ":00Z"))
    assert bounds == {"c": 10.0, "d": 15.0, "e": 20.0}
    assert order_bounds(signals, _us("2024-03-05T14:32:00Z")) == {}
    # an event strategy's holdings come from its run (its exits sold what its orders bought)
    assert order_bounds(signals, _us(t1 + ":00Z"), {"AAA": 0.0})["c"] == 20.0
    assert order_bounds(signals, _us(t1 + ":00Z"), {})["d"] == 5.0


def test_net_positions_sum_a_backtests_fills_by_side() -> None:
    fills = pl.DataFrame({"symbol": ["A", "A", "B"], "side": ["BUY", "SELL", "SELL"], "qty": [10.0, 4.0, 2.0]})
    assert net_positions(fills) == {"A": 6.0, "B": -2.0}
