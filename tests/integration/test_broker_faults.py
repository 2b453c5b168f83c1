"""Fault injection: set at start or at run time, deterministic under a seed, and the ambiguous 5xx on
POST /v2/orders that happens either before or after the order exists."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from alpaca.trading.enums import OrderStatus

from marketboss.local_broker.config import FaultConfig
from marketboss.local_broker.process import LocalBroker
from tests.integration.conftest import StartBroker, admin_client, trading_client, wait_order

ORDER = {"symbol": "AAPL", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"}


def set_faults(http: httpx.Client, **faults: object) -> None:
    r = http.post("/admin/faults", json=faults)
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def faulty(module_broker_factory: StartBroker) -> LocalBroker:
    return module_broker_factory()


@pytest.fixture
def http(faulty: LocalBroker) -> httpx.Client:
    client = admin_client(faulty)
    set_faults(client)  # every test starts with faults off
    return client


def test_5xx_before_the_order_exists(http: httpx.Client) -> None:
    set_faults(http, error_504_rate=1.0, paths=["/v2/orders"], methods=["POST"])
    cid = f"before-{uuid.uuid4()}"
    r = http.post("/v2/orders", json={**ORDER, "client_order_id": cid})
    assert r.status_code == 504 and r.json()["code"] == 50410000
    assert http.get("/v2/orders:by_client_order_id", params={"client_order_id": cid}).status_code == 404
    assert http.get("/v2/account").status_code == 200 and http.get("/v2/orders").status_code == 200  # elsewhere: fine


def test_5xx_after_the_order_exists_and_recovery_by_client_order_id(faulty: LocalBroker, http: httpx.Client) -> None:
    set_faults(http, fail_after_commit_rate=1.0, fail_after_commit_status=504)
    cid = f"after-{uuid.uuid4()}"
    r = http.post("/v2/orders", json={**ORDER, "client_order_id": cid})
    assert r.status_code == 504 and isinstance(r.json()["code"], int)
    found = http.get("/v2/orders:by_client_order_id", params={"client_order_id": cid})
    assert found.status_code == 200  # the ambiguous case: the request failed, the order exists
    wait_order(trading_client(faulty), found.json()["id"])
    set_faults(http)
    retry = http.post("/v2/orders", json={**ORDER, "client_order_id": cid})
    assert retry.status_code == 422 and "unique" in retry.json()["message"]  # a blind retry cannot double up


def test_dropped_connections_before_and_after_the_order(http: httpx.Client, faulty: LocalBroker) -> None:
    set_faults(http, drop_after_commit_rate=1.0)
    cid = f"dropped-{uuid.uuid4()}"
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{faulty.base_url}/v2/orders", json={**ORDER, "client_order_id": cid}, headers=faulty.headers)
    assert http.get("/v2/orders:by_client_order_id", params={"client_order_id": cid}).status_code == 200
    set_faults(http, drop_rate=1.0, paths=["/v2/clock"])
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{faulty.base_url}/v2/clock", headers=faulty.headers)
    set_faults(http)
    assert http.get("/v2/clock").status_code == 200  # the server lives on


def test_added_latency(http: httpx.Client) -> None:
    set_faults(http, latency_ms=300, paths=["/v2/clock"])
    start = time.monotonic()
    assert http.get("/v2/clock").status_code == 200
    assert time.monotonic() - start >= 0.3


def test_forced_rejection(http: httpx.Client, faulty: LocalBroker) -> None:
    set_faults(http, reject_rate=1.0)
    client = trading_client(faulty)
    placed = http.post("/v2/orders", json={**ORDER, "symbol": "JPM", "client_order_id": f"rej-{uuid.uuid4()}"})
    assert placed.status_code == 200 and placed.json()["status"] == "accepted"
    rejected = wait_order(client, placed.json()["id"], ("rejected",))
    assert rejected.status == OrderStatus.REJECTED and rejected.failed_at is not None
    assert rejected.filled_qty == "0"


def statuses(b: LocalBroker, n: int) -> list[int]:
    with admin_client(b) as http:
        return [http.get("/v2/clock").status_code for _ in range(n)]


def test_faults_are_deterministic_under_a_seed(start_broker: StartBroker) -> None:
    faults = FaultConfig(error_500_rate=0.15, error_503_rate=0.15, burst_429_rate=0.1, burst_429_length=3)
    runs = [statuses(start_broker(seed=seed, faults=faults), 60) for seed in (5, 5, 6)]
    assert runs[0] == runs[1] and runs[0] != runs[2]
    assert {500, 503, 429, 200} <= set(runs[0])
    i = runs[0].index(429)
    assert runs[0][i : i + 3] == [429, 429, 429]  # a burst, not a single refusal


def test_faults_given_at_start_are_all_in_force(start_broker: StartBroker) -> None:
    faults = FaultConfig(
        error_500_rate=0.1, error_503_rate=0.1, error_504_rate=0.1, drop_rate=0.1, latency_ms=1, latency_jitter_ms=2,
        burst_429_rate=0.01, burst_429_length=2, reject_rate=0.5, fail_after_commit_rate=0.2,
        fail_after_commit_status=503, drop_after_commit_rate=0.1, paths=("/v2/nothing", "/v2/elsewhere"),
        methods=("PATCH",), seed=99,
    )  # fmt: skip
    b = start_broker(faults=faults)
    shown = admin_client(b).get("/admin/faults").json()
    assert FaultConfig.model_validate({k: v for k, v in shown.items() if k != "injected"}) == faults
    bad = admin_client(b).post("/admin/faults", json={"error_500_rate": 0.7, "drop_rate": 0.7})
    assert bad.status_code == 422 and "at most 1" in bad.json()["message"]
    assert statuses(b, 5) == [200] * 5  # the paths filter keeps /v2/clock out of it
