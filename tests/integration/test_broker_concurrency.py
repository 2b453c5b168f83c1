"""Eight clients trade at once through alpaca-py, over several bars: the server commits their requests in shared
write transactions (group commit), and the books still reconcile to the cent with the fills, every order a
client was told about exists as it was told, and all of it is there again after a restart."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, NamedTuple

import httpx
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from marketboss.local_broker.process import LocalBroker, stop
from tests.integration.conftest import (
    BROKER_SYMBOLS,
    StartBroker,
    admin_client,
    all_fills,
    check_books,
    set_clock,
    trading_client,
)

CLIENTS, ORDERS, BARS = 8, 200, 4


class Told(NamedTuple):
    """What one client was told: the orders it placed (id -> client_order_id) and the limits it cancelled."""

    placed: dict[str, str]
    canceled: set[str]
    refused: int


def _trade(b: LocalBroker, worker: int, next_bar: threading.Barrier) -> Told:
    """ORDERS orders on the shared symbols: market buys and sells of 1-3 shares (shorts included), notional buys,
    and resting limits cancelled at once; BARS times the clients meet and the clock moves to the next bar, so fills
    come at several prices. Refusals (no buying power, no shares to close) are Alpaca's 403."""
    client = trading_client(b)
    rng = random.Random(worker)
    placed: dict[str, str] = {}
    canceled: set[str] = set()
    refused = 0
    for k in range(ORDERS):
        if k and k % (ORDERS // BARS) == 0:
            next_bar.wait()
        symbol, cid, kind = rng.choice(BROKER_SYMBOLS), f"w{worker}-{k}", rng.random()
        req: Any
        if kind < 0.75:
            side = rng.choice(["buy", "sell"])
            req = MarketOrderRequest(symbol=symbol, qty=rng.randint(1, 3), side=side, time_in_force=TimeInForce.DAY,
                                     client_order_id=cid)  # fmt: skip
        elif kind < 0.85:
            req = MarketOrderRequest(symbol=symbol, notional=rng.choice([150, 333.33]), side="buy",
                                     time_in_force=TimeInForce.DAY, client_order_id=cid)  # fmt: skip
        else:
            req = LimitOrderRequest(symbol=symbol, qty=1, side="buy", limit_price=1, time_in_force=TimeInForce.GTC,
                                    client_order_id=cid)  # fmt: skip
        try:
            order = client.submit_order(req)
        except APIError as exc:
            assert exc.status_code == 403, f"{cid}: {exc.status_code} {exc}"
            refused += 1
            continue
        assert order.client_order_id == cid
        placed[str(order.id)] = cid
        if kind >= 0.85:
            client.cancel_order_by_id(order.id)
            canceled.add(str(order.id))
    return Told(placed, canceled, refused)


def _settle(http: httpx.Client) -> None:
    """Wait until no order is open (market orders fill on the matcher's next step)."""
    deadline = time.monotonic() + 30
    while http.get("/v2/orders", params={"status": "open"}).json():
        assert time.monotonic() < deadline, "orders still open 30 s after the clients stopped"
        time.sleep(0.02)


def _books(b: LocalBroker) -> dict[str, Any]:
    with admin_client(b) as http:
        return {
            "account": {k: v for k, v in http.get("/v2/account").json().items() if k != "last_equity"},
            "positions": http.get("/v2/positions").json(),
            "fills": [f.model_dump() for f in all_fills(http)],
        }


def test_eight_clients_at_once_reconcile_to_the_cent(start_broker: StartBroker, tmp_path: Any) -> None:
    db = tmp_path / "concurrent.sqlite"
    b = start_broker(db=db)
    http = admin_client(b)
    start = http.get("/v2/clock").json()["timestamp"]

    def move_clock() -> None:  # run by one client once all have arrived: their orders have filled by then
        _settle(http)
        set_clock(http, advance="next_bar")

    next_bar = threading.Barrier(CLIENTS, action=move_clock)
    with ThreadPoolExecutor(CLIENTS) as pool:
        told = [t.result() for t in [pool.submit(_trade, b, w, next_bar) for w in range(CLIENTS)]]
    assert http.get("/v2/clock").json()["timestamp"] > start
    placed = {oid: cid for t in told for oid, cid in t.placed.items()}
    canceled = set().union(*(t.canceled for t in told))
    assert len(placed) + sum(t.refused for t in told) == CLIENTS * ORDERS
    assert len(placed) > CLIENTS * ORDERS * 0.8  # the refusals are the exception, not the run

    client = trading_client(b)
    _settle(http)
    check_books(http, multiplier=2)  # positions and cash are the fills' sums, to the cent
    fills = all_fills(http)
    assert len({f.price for f in fills if f.symbol == "AAPL"}) > BARS  # bars and sides: several prices

    filled_by_order: dict[str, Decimal] = defaultdict(Decimal)
    for f in fills:
        filled_by_order[str(f.order_id)] += Decimal(str(f.qty))
    assert set(filled_by_order) <= set(placed)  # no fill of an order nobody placed
    for oid, cid in placed.items():  # every order a client was told about is there, as it was told
        o = client.get_order_by_id(oid)
        assert o.client_order_id == cid
        expected = "canceled" if oid in canceled else "filled"
        assert o.status.value == expected, f"{cid} is {o.status.value}"
        assert Decimal(o.filled_qty or "0") == filled_by_order.get(oid, Decimal(0))
    before = _books(b)
    http.close()

    stop(b.process)  # a clean stop, then the same database again: everything committed is there
    again = start_broker(db=db)
    assert _books(again) == before
    with admin_client(again) as http:
        check_books(http, multiplier=2)
