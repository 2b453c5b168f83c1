"""Strategies: named classes with frozen, validated parameters that turn bars into signals."""

from marketboss.strategies.base import Strategy, StrategyParams, signals_from_exposures
from marketboss.strategies.registry import create, describe_params, register, strategies

__all__ = [
    "Strategy",
    "StrategyParams",
    "create",
    "describe_params",
    "register",
    "signals_from_exposures",
    "strategies",
]
