"""No request, however malformed, gets a 500 or corrupts the books.

Hypothesis sends sequences of requests (bad JSON, wrong types, huge bodies, unknown ids and symbols, odd methods
and query strings, clock moves) to a real server; after each sequence the account must still reconcile with its
own fill history: positions are the signed sum of fills, cash is the starting cash plus the fills' cash flows,
equity is cash plus positions, and a cash account never holds a short.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketboss.local_broker.process import LocalBroker
from tests.integration.conftest import StartBroker, admin_client, check_books

SYMBOLS = st.sampled_from(["AAPL", "MSFT", "JPM", "aapl", "NOPE", "", "A" * 300, "../v2", "%00", "BRK.B", "ÄPPL"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
JSON = st.recursive(
    SCALARS, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=8
)
NUMBERS = st.one_of(
    st.integers(-3, 300), st.integers(), st.floats(), st.decimals(allow_nan=False).map(str), st.text(max_size=8), JSON
)
PRICES = st.one_of(st.floats(0.5, 400).map(lambda x: round(x, 2)), NUMBERS)
ORDER = st.fixed_dictionaries(
    {},
    optional={
        "symbol": st.one_of(SYMBOLS, JSON),
        "qty": NUMBERS,
        "notional": NUMBERS,
        "side": st.one_of(st.sampled_from(["buy", "sell", "SELL", "hold"]), JSON),
        "type": st.one_of(st.sampled_from(["market", "limit", "stop", "stop_limit", "trailing_stop", "x"]), JSON),
        "time_in_force": st.one_of(st.sampled_from(["day", "gtc", "ioc", "fok", "opg", "cls", "z"]), JSON),
        "limit_price": PRICES,
        "stop_price": PRICES,
        "extended_hours": st.one_of(st.booleans(), JSON),
        "client_order_id": st.one_of(st.sampled_from(["c1", "c2", "c3"]), st.text(max_size=140), JSON),
        "order_class": st.one_of(st.sampled_from(["simple", "bracket", "oto", "oco", "mleg", ""]), JSON),
        "take_profit": st.one_of(st.fixed_dictionaries({"limit_price": PRICES}), JSON),
        "stop_loss": st.one_of(st.fixed_dictionaries({"stop_price": PRICES}, optional={"limit_price": PRICES}), JSON),
    },
)
SANE_ORDER = st.fixed_dictionaries(
    {
        "symbol": st.sampled_from(["AAPL", "MSFT", "JPM"]),
        "qty": st.integers(1, 40),
        "side": st.sampled_from(["buy", "sell"]),
        "type": st.sampled_from(["market", "limit"]),
        "time_in_force": st.sampled_from(["day", "gtc", "ioc", "fok"]),
        "limit_price": st.floats(150, 500).map(lambda x: round(x, 2)),
    }
).map(lambda o: o if o["type"] == "limit" else {k: v for k, v in o.items() if k != "limit_price"})


def dumps(value: Any) -> bytes:
    """Any generated value as JSON text, NaN, Infinity and integers beyond 64 bits included."""
    return json.dumps(value, allow_nan=True).encode()


def oversized() -> bytes:
    return b"x" * ((1 << 20) + 5)


BODIES = st.one_of(
    ORDER.map(dumps),
    SANE_ORDER.map(dumps),
    JSON.map(dumps),
    st.binary(max_size=100),
    st.sampled_from([b"{" * 5000, b'{"qty": 1e999}', b'{"symbol": "AAPL"', b"\xff\xfe"]),
    st.builds(oversized),
)
QUERY_KEYS = ["status", "limit", "after", "until", "direction", "nested", "symbols", "side", "timeframe", "start",
              "end", "page_token", "sort", "feed", "page_size", "date", "activity_types", "qty", "percentage",
              "cancel_orders", "client_order_id", "category", "asset_class", "exchange", "adjustment",
              "currency", "period", "date_end", "intraday_reporting", "pnl_reset", "extended_hours"]  # fmt: skip
QUERY_VALUES = st.one_of(
    st.sampled_from(["open", "all", "closed", "asc", "desc", "true", "1Day", "1Week", "5Min", "AAPL,MSFT", "2024-11-04",
                     "2024-11-04T14:30:00Z", "-1", "0", "501", "1e9", "FILL", "DIV", "nan", "buy", "50", "1D", "1W",
                     "1M", "1A", "9999A", "1H", "15Min", "1Min", "continuous"]),
    st.text(max_size=30),
    st.integers().map(str),
)  # fmt: skip
QUERIES = st.dictionaries(st.sampled_from(QUERY_KEYS), QUERY_VALUES, max_size=5)
IDS = st.one_of(st.uuids().map(str), st.text(min_size=1, max_size=40).map(lambda t: quote(t, safe="")))
PATHS = st.one_of(
    st.sampled_from(["/v2/account", "/v2/orders", "/v2/orders:by_client_order_id", "/v2/positions", "/v2/clock",
                     "/v2/calendar", "/v2/assets", "/v2/account/activities", "/v2/stocks/bars",
                     "/v2/stocks/bars/latest", "/v2/stocks/quotes/latest", "/v2/stocks/trades/latest", "/", "/v2",
                     "/v1/account", "/v2/orders/", "/admin/nothing", "/v2/account/portfolio/history",
                     "/v2/account/configurations", "/v2/watchlists", "/v2/stocks/trades", "/v2/stocks/quotes",
                     "/v2/stocks/snapshots"]),
    IDS.map(lambda i: f"/v2/orders/{i}"),
    IDS.map(lambda i: f"/v2/watchlists/{i}"),
    st.tuples(IDS, SYMBOLS).map(lambda p: f"/v2/watchlists/{p[0]}/{quote(p[1], safe='')}"),
    st.tuples(SYMBOLS, st.sampled_from(["trades", "quotes", "snapshot"])).map(
        lambda p: f"/v2/stocks/{quote(p[0], safe='')}/{p[1]}"
    ),
    st.one_of(SYMBOLS, IDS).map(lambda s: f"/v2/positions/{quote(s, safe='')}"),
    st.one_of(SYMBOLS, IDS).map(lambda s: f"/v2/assets/{quote(s, safe='')}"),
    st.text(max_size=12).map(lambda t: f"/v2/account/activities/{quote(t, safe='')}"),
    st.tuples(SYMBOLS, st.sampled_from(["bars", "quotes", "trades"])).map(
        lambda p: f"/v2/stocks/{quote(p[0], safe='')}/{p[1]}/latest"
    ),
    st.text(max_size=30).map(lambda t: "/v2/" + quote(t)),
)  # fmt: skip
METHODS = st.sampled_from(["GET", "GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"])
REPLACE = st.fixed_dictionaries(
    {},
    optional={"qty": NUMBERS, "time_in_force": st.one_of(st.sampled_from(["day", "gtc", "ioc", "x"]), JSON),
              "limit_price": PRICES, "stop_price": PRICES, "trail": NUMBERS,
              "client_order_id": st.one_of(st.sampled_from(["c1", "c2", "r1"]), JSON)},
)  # fmt: skip
OCO = st.fixed_dictionaries(
    {"symbol": st.sampled_from(["AAPL", "MSFT"]), "qty": st.integers(1, 40), "side": st.sampled_from(["buy", "sell"]),
     "type": st.just("limit"), "time_in_force": st.sampled_from(["day", "gtc"]), "order_class": st.just("oco"),
     "take_profit": st.fixed_dictionaries({"limit_price": PRICES}),
     "stop_loss": st.fixed_dictionaries({"stop_price": PRICES}, optional={"limit_price": PRICES})},
)  # fmt: skip
CONFIGS = st.dictionaries(
    st.sampled_from(["no_shorting", "suspend_trade", "fractional_trading", "max_margin_multiplier", "pdt_check",
                     "dtbp_check", "trade_confirm_email", "bogus"]),
    st.one_of(st.booleans(), st.sampled_from(["1", "2", "4", "entry", "exit", "both", "all", "none"]), SCALARS),
    max_size=3,
)  # fmt: skip
WATCHLIST = st.fixed_dictionaries(
    {}, optional={"name": st.one_of(st.sampled_from(["a", "b"]), st.text(max_size=70), JSON),
                  "symbols": st.one_of(st.lists(SYMBOLS, max_size=4), JSON), "symbol": st.one_of(SYMBOLS, JSON)}
)  # fmt: skip
CLOCK = st.one_of(
    st.sampled_from([{"advance": "next_bar"}, {"advance": "bar_end"}, {"advance": "next_open"}, {"seconds": 3600}]),
    JSON,
)
REQUESTS = st.one_of(
    st.tuples(st.just("POST"), st.just("/v2/orders"), st.just({}), BODIES),
    st.tuples(st.just("POST"), st.just("/v2/orders"), st.just({}), SANE_ORDER.map(dumps)),
    st.tuples(METHODS, PATHS, QUERIES, st.one_of(st.just(b""), BODIES)),
    st.tuples(st.just("POST"), st.just("/admin/clock"), st.just({}), CLOCK.map(dumps)),
    st.tuples(st.just("POST"), st.just("/v2/orders"), st.just({}), OCO.map(dumps)),
    st.tuples(st.just("PATCH"), IDS.map(lambda i: f"/v2/orders/{i}"), st.just({}), REPLACE.map(dumps)),
    st.tuples(st.just("REPLACE-OPEN"), st.just(""), st.just({}), REPLACE.map(dumps)),
    st.tuples(st.just("PATCH"), st.just("/v2/account/configurations"), st.just({}), CONFIGS.map(dumps)),
    st.tuples(st.sampled_from(["POST", "PUT"]), st.just("/v2/watchlists"), st.just({}), WATCHLIST.map(dumps)),
    st.tuples(st.sampled_from(["POST", "PUT", "DELETE"]), st.just("WATCHLIST"), st.just({}), WATCHLIST.map(dumps)),
)


@pytest.fixture(scope="module", params=[1, 2, 4], ids=["cash-account", "margin-account", "day-trading-margin"])
def fuzzed(request: pytest.FixtureRequest, module_broker_factory: StartBroker) -> LocalBroker:
    return module_broker_factory(multiplier=request.param, partial_fill_rate=0.3, spread_bps=5)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(requests=st.lists(REQUESTS, min_size=1, max_size=6))
def test_no_request_breaks_the_server_or_the_books(
    fuzzed: LocalBroker, requests: list[tuple[str, str, dict[str, str], bytes]]
) -> None:
    with admin_client(fuzzed) as http:
        for method, path, query, body in requests:
            if method == "REPLACE-OPEN":  # replace a live order, when there is one
                live = http.get("/v2/orders", params={"status": "open"}).json()
                method, path = "PATCH", f"/v2/orders/{live[0]['id'] if live else uuid.uuid4()}"
            elif path == "WATCHLIST":  # change an existing watchlist, when there is one
                lists = http.get("/v2/watchlists").json()
                path = f"/v2/watchlists/{lists[0]['id'] if lists else uuid.uuid4()}"
            r = http.request(method, path, params=query, content=body or None)
            assert r.status_code < 500, (method, path, query, body[:200], r.status_code, r.text[:300])
            if r.status_code >= 400 and method != "HEAD":
                err = r.json()
                assert isinstance(err["code"], int) and 10_000_000 <= err["code"] <= 99_999_999
                assert isinstance(err["message"], str) and err["message"]
        check_books(http, fuzzed.config.multiplier)
