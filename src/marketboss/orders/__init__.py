"""Orders: the order types and their fill and trigger rules on bars, written once (nb.py) so that the backtest,
the sweep and the local broker fill an order the same way. The rules are documented in nb.py's docstring."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from marketboss.orders.codes import (
    LIMIT,
    MARKET,
    NO_EXIT,
    STOP,
    STOP_LIMIT,
    STOP_LOSS,
    TAKE_PROFIT,
    TRAILING_EXIT,
    TRAILING_STOP,
)
from marketboss.signals import ORDER_TYPE_NAMES

#: Exit (leg) names as fills spell them, by code.
EXIT_NAMES = {TAKE_PROFIT: "take_profit", STOP_LOSS: "stop_loss", TRAILING_EXIT: "trailing_stop"}
#: Order type names as the signal contract spells them, by code: the contract lists them in code order.
ORDER_TYPES = {"market": MARKET, "limit": LIMIT, "stop": STOP, "stop_limit": STOP_LIMIT, "trailing_stop": TRAILING_STOP}
if tuple(ORDER_TYPES) != ORDER_TYPE_NAMES or list(ORDER_TYPES.values()) != list(range(len(ORDER_TYPES))):
    raise ImportError("marketboss.orders' codes no longer follow the signal contract's ORDER_TYPE_NAMES")

#: The rules load nb.py (numba) on first use (PEP 562): reading the codes above needs none.
_RULES = ("bracket_exit", "buy_stop_limit", "limit_fill", "stop_fill", "stop_limit_fill", "trailing_fill",
          "trailing_level", "trailing_mark")  # fmt: skip

if TYPE_CHECKING:
    from marketboss.orders.nb import (
        bracket_exit,
        buy_stop_limit,
        limit_fill,
        stop_fill,
        stop_limit_fill,
        trailing_fill,
        trailing_level,
        trailing_mark,
    )


def __getattr__(name: str) -> Any:
    if name not in _RULES:
        raise AttributeError(f"module 'marketboss.orders' has no attribute '{name}'")
    return getattr(import_module("marketboss.orders.nb"), name)

__all__ = [
    "EXIT_NAMES",
    "LIMIT",
    "MARKET",
    "NO_EXIT",
    "ORDER_TYPES",
    "STOP",
    "STOP_LIMIT",
    "STOP_LOSS",
    "TAKE_PROFIT",
    "TRAILING_EXIT",
    "TRAILING_STOP",
    "bracket_exit",
    "buy_stop_limit",
    "limit_fill",
    "stop_fill",
    "stop_limit_fill",
    "trailing_fill",
    "trailing_level",
    "trailing_mark",
]
