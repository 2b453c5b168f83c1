"""Orders: the order types and their fill and trigger rules on bars, written once (nb.py) so that the backtest,
the sweep and the local broker fill an order the same way. The rules are documented in nb.py's docstring."""

from marketboss.orders.nb import (
    LIMIT,
    MARKET,
    NO_EXIT,
    STOP,
    STOP_LIMIT,
    STOP_LOSS,
    TAKE_PROFIT,
    TRAILING_STOP,
    bracket_exit,
    limit_fill,
    stop_fill,
    stop_limit_fill,
    trailing_fill,
    trailing_level,
    trailing_mark,
)

#: Order type names as the signal contract spells them, by code.
ORDER_TYPES = {"market": MARKET, "limit": LIMIT, "stop": STOP, "stop_limit": STOP_LIMIT, "trailing_stop": TRAILING_STOP}

__all__ = [
    "LIMIT",
    "MARKET",
    "NO_EXIT",
    "ORDER_TYPES",
    "STOP",
    "STOP_LIMIT",
    "STOP_LOSS",
    "TAKE_PROFIT",
    "TRAILING_STOP",
    "bracket_exit",
    "limit_fill",
    "stop_fill",
    "stop_limit_fill",
    "trailing_fill",
    "trailing_level",
    "trailing_mark",
]
