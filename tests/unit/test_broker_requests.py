"""The port's orders as alpaca-py requests: each type with its own prices, exits as a bracket or an OTO, and what
the SDK itself refuses as an OrderRejected naming the order (never a traceback)."""

from __future__ import annotations

import pytest
from alpaca.trading.enums import OrderClass, OrderType, TimeInForce

from marketboss.broker.alpaca import _sdk_request
from marketboss.broker.base import OrderRejected, OrderRequest


def test_a_bracket_carries_its_two_exits_and_an_oto_its_one() -> None:
    bracket = _sdk_request(OrderRequest("AAPL", 10, "buy", "mb-x", "limit", "gtc", limit_price=100.0,
                                        take_profit=110.0, stop_loss=95.0))  # fmt: skip
    assert (bracket.type, bracket.order_class, bracket.time_in_force) == (OrderType.LIMIT, OrderClass.BRACKET,
                                                                          TimeInForce.GTC)  # fmt: skip
    assert (bracket.limit_price, bracket.take_profit.limit_price, bracket.stop_loss.stop_price) == (100.0, 110.0, 95.0)
    oto = _sdk_request(OrderRequest("AAPL", 10, "sell", "mb-y", stop_loss=105.0))
    assert (oto.type, oto.order_class, oto.take_profit) == (OrderType.MARKET, OrderClass.OTO, None)
    assert oto.stop_loss.stop_price == 105.0
    trailing = _sdk_request(OrderRequest("AAPL", 10, "sell", "mb-z", "trailing_stop", "gtc", trail_percent=3.0))
    assert (trailing.type, trailing.trail_percent, trailing.order_class) == (OrderType.TRAILING_STOP, 3.0, None)


def test_what_the_sdk_refuses_is_an_order_rejection_naming_the_order() -> None:
    with pytest.raises(OrderRejected, match=r"^submit order mb-bad: .*stop_price"):
        _sdk_request(OrderRequest("AAPL", 10, "buy", "mb-bad", "stop"))
