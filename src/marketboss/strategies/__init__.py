"""Strategies: named classes with frozen, validated parameters that turn bars into signals."""

from marketboss.strategies.base import Strategy, StrategyParams, signals_from_exposures
from marketboss.strategies.params_text import describe_params
from marketboss.strategies.plugins import ENTRY_POINT_GROUP, PluginError
from marketboss.strategies.registry import create, register, resolve, strategies

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginError",
    "Strategy",
    "StrategyParams",
    "create",
    "describe_params",
    "register",
    "resolve",
    "signals_from_exposures",
    "strategies",
]
