"""State in SQLite: account, orders, fills, positions and the clock survive a restart, even a kill -9."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from alpaca.trading.enums import OrderStatus, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from marketboss.errors import MarketBossError
from marketboss.local_broker.process import LocalBroker, local_broker
from tests.integration.conftest import FAST, admin_client, set_clock, trading_client, wait_order


def snapshot(b: LocalBroker) -> dict[str, Any]:
    with admin_client(b) as http:
        return {
            "account": http.get("/v2/account").json(),
            "positions": http.get("/v2/positions").json(),
            "orders": http.get("/v2/orders", params={"status": "all", "nested": "true"}).json(),
            "fills": http.get("/v2/account/activities").json(),
            "clock": http.get("/v2/clock").json(),
        }


def trade(b: LocalBroker) -> str:
    """Fills on two days, a short, a cancelled order and one left open; returns the open order's id."""
    client, http = trading_client(b), admin_client(b)
    wait_order(client, client.submit_order(MarketOrderRequest(symbol="AAPL", qty=10, side="buy",
                                                              time_in_force=TimeInForce.DAY)).id)  # fmt: skip
    set_clock(http, advance="next_bar")
    wait_order(client, client.submit_order(MarketOrderRequest(symbol="MSFT", qty=4, side="sell",
                                                              time_in_force=TimeInForce.DAY)).id)  # fmt: skip
    gone = client.submit_order(LimitOrderRequest(symbol="JPM", qty=1, side="buy", limit_price=1,
                                                 time_in_force=TimeInForce.GTC))  # fmt: skip
    client.cancel_order_by_id(gone.id)
    set_clock(http, timestamp="2024-11-09T15:00:00Z")  # Saturday: the next order waits, queued
    left = client.submit_order(LimitOrderRequest(symbol="JPM", qty=2, side="buy", limit_price=10_000,
                                                 time_in_force="day", client_order_id="left-open"))  # fmt: skip
    return str(left.id)


def test_everything_survives_a_clean_restart(tmp_path: Path, broker_data: Path) -> None:
    db = tmp_path / "state.sqlite"
    with local_broker(broker_data, db, **FAST) as b:
        open_id = trade(b)
        before = snapshot(b)
    assert before["positions"] and len(before["orders"]) == 4 and len(before["fills"]) == 2
    with local_broker(broker_data, db, **FAST) as b:
        assert snapshot(b) == before
        client = trading_client(b)
        assert client.get_order_by_id(open_id).status == OrderStatus.ACCEPTED
        set_clock(admin_client(b), advance="next_open")
        assert wait_order(client, open_id).filled_qty == "2"  # the open order still works after the restart


def test_committed_state_survives_kill_9(tmp_path: Path, broker_data: Path) -> None:
    db = tmp_path / "state.sqlite"
    with local_broker(broker_data, db, **FAST) as b:
        trade(b)
        before = snapshot(b)
        b.process.send_signal(signal.SIGKILL)
        b.process.wait()
    with local_broker(broker_data, db, **FAST) as b:
        assert snapshot(b) == before


def test_one_server_per_database(tmp_path: Path, broker_data: Path) -> None:
    db = tmp_path / "state.sqlite"
    with local_broker(broker_data, db, **FAST):
        with pytest.raises(MarketBossError) as second, local_broker(broker_data, db, **FAST):
            pass
        assert "in use by another broker server" in str(second.value)
