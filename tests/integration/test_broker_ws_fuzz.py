"""No websocket traffic, however malformed, breaks the local broker's streams or its books.

Hypothesis opens connections to the trading and market-data streams (and to paths that are none) and sends
sequences of frames: random bytes and text, JSON and MessagePack values of every shape, near-valid auth, listen
and subscribe messages with wrong types, oversized frames; each connection ends cleanly, abruptly (the socket
closed under it, no close frame) or mid-handshake. Floods of messages and a client that never reads are tried
too. Afterwards the server still answers, has logged no failure, holds no stale connection, still streams
events to a well-behaved client, and its account reconciles with its fills.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from typing import Any

import msgpack
import pytest
from alpaca.trading.requests import MarketOrderRequest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import connect

from marketboss.local_broker.process import LocalBroker
from tests.integration.conftest import StartBroker, admin_client, check_books, trading_client, wait_order
from tests.integration.stream_clients import events_of, streams_state, trade_updates, ws_url


def _pack(value: Any) -> bytes:
    """MessagePack, or a byte MessagePack never uses when the value does not fit it (a huge integer)."""
    try:
        return bytes(msgpack.packb(value, use_bin_type=True))
    except (OverflowError, ValueError):
        return b"\xc1"


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
VALUES = st.recursive(
    SCALARS, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=8
)
KEY = st.one_of(st.sampled_from(["KEY", "wrong", ""]), VALUES)
SYMBOLS = st.lists(st.one_of(st.sampled_from(["AAPL", "MSFT", "*", "nope", "", "A" * 300, "../x"]), VALUES), max_size=4)
ACTIONS = st.one_of(
    st.fixed_dictionaries(
        {
            "action": st.sampled_from(["authenticate", "auth"]),
            "data": st.one_of(st.fixed_dictionaries({"key_id": KEY, "secret_key": KEY}), VALUES),
        }
    ),
    st.fixed_dictionaries({"action": st.just("auth"), "key": KEY, "secret": KEY}),
    st.fixed_dictionaries(
        {
            "action": st.just("listen"),
            "data": st.one_of(
                st.fixed_dictionaries(
                    {"streams": st.one_of(st.lists(st.sampled_from(["trade_updates", "x"])), VALUES)}
                ),
                VALUES,
            ),
        }
    ),
    st.fixed_dictionaries(
        {"action": st.sampled_from(["subscribe", "unsubscribe", "SUBSCRIBE", "x"])},
        optional={
            "trades": st.one_of(SYMBOLS, VALUES),
            "quotes": SYMBOLS,
            "bars": st.one_of(SYMBOLS, VALUES),
            "dailyBars": SYMBOLS,
            "news": SYMBOLS,
        },
    ),
    st.dictionaries(st.text(max_size=8), VALUES, max_size=4),
)
FRAMES = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    VALUES.map(json.dumps),
    VALUES.map(lambda v: _pack(v)),
    ACTIONS.map(json.dumps),
    ACTIONS.map(lambda v: json.dumps(v).encode()),
    ACTIONS.map(lambda v: _pack(v)),
    st.just(b"{" * 70_000),  # larger than a client message may be
    st.just(b"x" * ((1 << 20) + 1)),  # larger than the server takes a frame (it closes the connection)
    st.just("[" * 5_000),
)
PATHS = st.sampled_from(["/stream", "/stream", "/v2/iex", "/v2/sip", "/v2/test", "/nope", "/v2/orders"])
ENDINGS = st.sampled_from(["close", "abrupt", "read"])


def _send_all(b: LocalBroker, path: str, msgpack_header: bool, auth_first: bool, frames: list[Any], end: str) -> None:
    headers = {"Content-Type": "application/msgpack"} if msgpack_header else None
    with contextlib.ExitStack() as stack:
        try:
            ws = stack.enter_context(
                connect(ws_url(b, path), additional_headers=headers, open_timeout=10, close_timeout=1)
            )
        except (WebSocketException, OSError):
            return  # refused at the handshake (unknown path): that is an answer
        try:
            if auth_first:
                ws.send(json.dumps({"action": "auth", "key": b.key_id, "secret": b.secret_key}))
                auth = {"action": "authenticate", "data": {"key_id": b.key_id, "secret_key": b.secret_key}}
                ws.send(json.dumps(auth))
            for f in frames:
                ws.send(f)
            if end == "read":
                deadline = time.monotonic() + 0.5
                while time.monotonic() < deadline:
                    ws.recv(timeout=0.5)
        except (WebSocketException, TimeoutError, OSError):
            pass  # the server may close a connection that misbehaves: that is an answer too
        if end == "abrupt":
            with contextlib.suppress(OSError):  # the server may have closed it already
                ws.socket.shutdown(socket.SHUT_RDWR)
                ws.socket.close()


def _half_handshake(b: LocalBroker) -> None:
    host, port = b.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")


@pytest.fixture(scope="module")
def fuzzed(module_broker_factory: StartBroker) -> LocalBroker:
    return module_broker_factory(partial_fill_rate=0.3)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(path=PATHS, msgpack_header=st.booleans(), auth_first=st.booleans(),
       frames=st.lists(FRAMES, max_size=8), end=ENDINGS)  # fmt: skip
def test_no_frame_breaks_the_streams(
    fuzzed: LocalBroker, path: str, msgpack_header: bool, auth_first: bool, frames: list[Any], end: str
) -> None:
    _send_all(fuzzed, path, msgpack_header, auth_first, frames, end)
    with admin_client(fuzzed) as http:
        assert http.get("/admin/streams").status_code == 200
    _no_failure_logged(fuzzed)


def _no_failure_logged(b: LocalBroker) -> None:
    log = b.log_path.read_text(errors="replace")
    for bad in ("stream_failed", "Exception in ASGI", "Traceback", "broker_unexpected_error", "market_feed_failed"):
        assert bad not in log, log[-3000:]


def test_floods_and_silent_clients_leave_the_server_sound(fuzzed: LocalBroker) -> None:
    b = fuzzed
    client = trading_client(b)
    # a flood of messages, read by nobody, on both streams at once
    flood = json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}})
    stack = contextlib.ExitStack()
    socks = []
    for path in ("/stream", "/v2/iex"):
        ws = stack.enter_context(connect(ws_url(b, path), open_timeout=10, close_timeout=1))
        with contextlib.suppress(ConnectionClosed):  # the data stream closes after 100 invalid messages
            ws.send(json.dumps({"action": "auth", "key": b.key_id, "secret": b.secret_key}))
            ws.send(json.dumps({"action": "subscribe", "trades": ["*"], "quotes": ["*"], "bars": ["*"]}))
            for _ in range(2_000):
                ws.send(flood)
        socks.append(ws)
    for _ in range(200):
        _half_handshake(b)
    # meanwhile the server trades and streams to a client that behaves
    with trade_updates(b) as got:
        buy = MarketOrderRequest(symbol="AAPL", qty=3, side="buy", time_in_force="day")
        orders = [client.submit_order(buy) for _ in range(5)]
        for o in orders:
            wait_order(client, o.id)
        got.wait_for(lambda items: all("fill" in events_of(items, o.id) for o in orders))
    for ws in socks:
        with contextlib.suppress(OSError):
            ws.socket.shutdown(socket.SHUT_RDWR)
            ws.socket.close()
    with contextlib.suppress(Exception):
        stack.close()
    with admin_client(b) as http:
        deadline = time.monotonic() + 15
        while (streams_state(b)["trading"], streams_state(b)["market_data"]) != (0, 0):
            assert time.monotonic() < deadline, streams_state(b)
            time.sleep(0.05)
        check_books(http, b.config.multiplier)
    _no_failure_logged(b)
