"""The local broker applies the readers' rules: one symbol grammar, ASCII numbers, no repeated JSON keys."""

from __future__ import annotations

import pytest

from tests.integration.conftest import admin_client


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"symbol":"AAPL","qty":"\xd9\xa1","side":"buy","type":"market","time_in_force":"day"}', "invalid qty"),
        (b'{"symbol":"AAPL","qty":"1_0","side":"buy","type":"market","time_in_force":"day"}', "invalid qty"),
        (b'{"symbol":"AAPL","qty":true,"side":"buy","type":"market","time_in_force":"day"}', "qty must be a number"),
        (b'{"symbol":"AAPL","qty":"1","side":"buy","side":"sell","type":"market","time_in_force":"day"}',
         "duplicate key 'side'"),
        (b'{"symbol":"../X","qty":"1","side":"buy","type":"market","time_in_force":"day"}', "invalid symbol"),
        (b'{"symbol":"A B/../C","qty":"1","side":"buy","type":"market","time_in_force":"day"}', "invalid symbol"),
        (b'{"symbol":"AAPL","qty":"1e999999","side":"buy","type":"market","time_in_force":"day"}', "invalid qty"),
    ],
)  # fmt: skip
def test_the_broker_refuses_what_the_readers_refuse(broker: object, body: bytes, message: str) -> None:
    with admin_client(broker) as http:  # type: ignore[arg-type]
        r = http.post("/v2/orders", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert message in r.json()["message"]
        assert http.get("/v2/orders", params={"status": "all"}).json() == []
        bad = http.delete("/v2/positions/AAPL", params={"qty": "١"})
        assert bad.status_code == 422 and "invalid qty" in bad.json()["message"]
