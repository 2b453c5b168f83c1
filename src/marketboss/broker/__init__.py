"""Venues as adapters: the executor speaks to the Broker port; alpaca.py is the only alpaca-py trading user."""

from marketboss.broker.base import (
    Account,
    Asset,
    AuthError,
    Broker,
    BrokerError,
    Clock,
    DuplicateOrder,
    NotFound,
    Order,
    OrderRejected,
    OrderRequest,
    Position,
    TransientError,
)

__all__ = [
    "Account",
    "Asset",
    "AuthError",
    "Broker",
    "BrokerError",
    "Clock",
    "DuplicateOrder",
    "NotFound",
    "Order",
    "OrderRejected",
    "OrderRequest",
    "Position",
    "TransientError",
]
