"""Real local-broker processes for integration tests: `marketboss broker serve` on a free loopback port.

    def test_x(start_broker):
        b = start_broker(fill_latency_ms=200, partial_fill_rate=1.0, faults={"error_500_rate": 0.5})
        client = TradingClient(b.key_id, b.secret_key, paper=True, url_override=b.base_url)

`start_broker(**options)` takes any BrokerConfig field (data=, db=, fill_latency_ms=, partial_fill_rate=, faults=,
always_open=, clock=, speed=, start=, rate_limit=, spread_bps=, ...). Defaults suit fast tests: stepped clock,
no latency, no partial fills, no rate limit, a fresh database per test. Every server is stopped at teardown.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.trading.client import TradingClient
from alpaca.trading.models import Order, Position, TradeAccount, TradeActivity

from marketboss.data.io import write_bars
from marketboss.data.synth import synth_bars
from marketboss.local_broker.process import LocalBroker, local_broker

BROKER_SYMBOLS = ["AAPL", "MSFT", "JPM"]
FAST: dict[str, Any] = {"fill_latency_ms": 0.0, "partial_fill_rate": 0.0, "rate_limit": 0, "clock": "stepped"}

StartBroker = Callable[..., LocalBroker]


@pytest.fixture(scope="session")
def broker_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Daily bars, Nov 2024 - Jan 2025: Thanksgiving, two early closes, Christmas, New Year, the 9 Jan closing."""
    path = tmp_path_factory.mktemp("broker-data") / "bars.jsonl"
    write_bars(synth_bars(BROKER_SYMBOLS, "2024-11-01", "2025-01-31", "1Day", seed=21), path)
    return path


def _factory(stack: ExitStack, data: Path, workdir: Path) -> StartBroker:
    count = 0

    def start(**options: Any) -> LocalBroker:
        nonlocal count
        count += 1
        opts = {**FAST, **options}
        bars = opts.pop("data", data)
        db = opts.pop("db", workdir / f"broker-{count}.sqlite")
        return stack.enter_context(local_broker(bars, db, log_path=workdir / f"broker-{count}.log", **opts))

    return start


@pytest.fixture
def start_broker(tmp_path: Path, broker_data: Path) -> Iterator[StartBroker]:
    """Factory of broker processes (each with its own database unless db= is given)."""
    with ExitStack() as stack:
        yield _factory(stack, broker_data, tmp_path)


@pytest.fixture(scope="module")
def module_broker_factory(tmp_path_factory: pytest.TempPathFactory, broker_data: Path) -> Iterator[StartBroker]:
    """The same factory, for servers shared by a module's tests (read-only checks, error cases)."""
    with ExitStack() as stack:
        yield _factory(stack, broker_data, tmp_path_factory.mktemp("module-broker"))


@pytest.fixture
def broker(start_broker: StartBroker) -> LocalBroker:
    return start_broker()


def trading_client(b: LocalBroker) -> TradingClient:
    return TradingClient(b.key_id, b.secret_key, paper=True, url_override=b.base_url)


def data_client(b: LocalBroker) -> StockHistoricalDataClient:
    return StockHistoricalDataClient(b.key_id, b.secret_key, url_override=b.base_url)


def admin_client(b: LocalBroker) -> httpx.Client:
    """Plain HTTP with the broker's keys: /admin/ endpoints and the ones alpaca-py has no method for."""
    return httpx.Client(base_url=b.base_url, headers=b.headers, timeout=10.0)


@pytest.fixture
def trading(broker: LocalBroker) -> TradingClient:
    return trading_client(broker)


@pytest.fixture
def market(broker: LocalBroker) -> StockHistoricalDataClient:
    return data_client(broker)


@pytest.fixture
def admin(broker: LocalBroker) -> Iterator[httpx.Client]:
    with admin_client(broker) as client:
        yield client


def wait_order(
    client: TradingClient, order_id: Any, statuses: tuple[str, ...] = ("filled",), timeout: float = 10.0
) -> Any:
    """Poll until the order reaches one of `statuses` (fills are asynchronous, as at Alpaca)."""
    deadline = time.monotonic() + timeout
    while True:
        order = client.get_order_by_id(order_id)
        if order.status.value in statuses:
            return order
        if time.monotonic() > deadline:
            raise AssertionError(f"order {order_id} is {order.status.value}, not {statuses}, after {timeout}s")
        time.sleep(0.01)


def set_clock(http: httpx.Client, **body: Any) -> dict[str, Any]:
    r = http.post("/admin/clock", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def all_fills(http: httpx.Client) -> list[TradeActivity]:
    out: list[TradeActivity] = []
    token = None
    while True:
        params: dict[str, Any] = {"direction": "asc", "page_size": 100, **({"page_token": token} if token else {})}
        page = http.get("/v2/account/activities", params=params).json()
        out += [TradeActivity(**a) for a in page]
        if len(page) < 100:
            return out
        token = page[-1]["id"]


def check_books(http: httpx.Client, multiplier: int) -> None:
    """The account reconciles with its own fill history (commission-free brokers): positions are the signed sums
    of fills, cash is 100,000 plus the fills' cash flows, equity is cash plus positions; alpaca-py parses it all."""
    account = TradeAccount(**http.get("/v2/account").json())
    positions = [Position(**p) for p in http.get("/v2/positions").json()]
    orders = [Order(**o) for o in http.get("/v2/orders", params={"status": "all", "limit": 500}).json()]
    fills = all_fills(http)
    cash, held = Decimal(100_000), defaultdict[str, Decimal](Decimal)
    for f in fills:
        qty, price = Decimal(str(f.qty)), Decimal(str(f.price))
        sign = 1 if f.side.value == "buy" else -1
        held[f.symbol] += sign * qty
        cash -= (sign * qty * price).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    assert {p.symbol: Decimal(p.qty) for p in positions} == {s: q for s, q in held.items() if q != 0}
    assert Decimal(account.cash) == cash
    values = [Decimal(p.market_value or "0") for p in positions]
    assert Decimal(account.equity) == cash + sum(values)
    assert Decimal(account.long_market_value) == sum(v for v in values if v > 0)
    assert Decimal(account.short_market_value) == sum(v for v in values if v < 0)
    assert Decimal(account.buying_power) >= 0
    if multiplier == 1:
        assert all(Decimal(p.qty) > 0 for p in positions)  # a cash account never goes short
    for p in positions:
        assert abs(Decimal(p.qty_available or "0")) <= abs(Decimal(p.qty))
    by_id = {str(o.id): o for o in orders}
    for o in orders:
        if o.status.value == "replaced":  # a replaced order points at its replacement, which points back
            assert o.replaced_by is not None and o.replaced_at is not None
            follower = by_id.get(str(o.replaced_by))
            assert follower is None or str(follower.replaces) == str(o.id)
        filled = Decimal(o.filled_qty or "0")
        if o.qty is not None:
            assert 0 <= filled <= Decimal(str(o.qty))
            if o.status.value == "filled":
                assert filled == Decimal(str(o.qty))
