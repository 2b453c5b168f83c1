"""Types of the public API that marketboss/__init__.py loads lazily."""

from marketboss import indicators
from marketboss.api import load_market, make_strategy, run, sweep
from marketboss.backtest.costs import BacktestConfig, Costs, FillMode
from marketboss.backtest.engine import BacktestResult
from marketboss.backtest.metrics import METRICS
from marketboss.data.io import read_bars, write_bars
from marketboss.data.market import Market, SymbolBars
from marketboss.data.synth import synth_bars
from marketboss.errors import MarketBossError
from marketboss.research.sweep import SweepResult
from marketboss.signals import (
    ORDER_DEFAULTS,
    ORDER_FIELDS,
    ORDER_TYPE_NAMES,
    Signal,
    read_signals,
    read_signals_frame,
    signal_id,
    write_signals,
)
from marketboss.signals.exits import Exits, with_exits
from marketboss.strategies import (
    ENTRY_POINT_GROUP,
    PluginError,
    Strategy,
    StrategyParams,
    create,
    describe_params,
    register,
    resolve,
)
from marketboss.strategies.events import CompiledOnBar, Context, EventParams, EventStrategy, PlacedOrder

__version__: str

__all__ = [
    "ENTRY_POINT_GROUP",
    "METRICS",
    "ORDER_DEFAULTS",
    "ORDER_FIELDS",
    "ORDER_TYPE_NAMES",
    "BacktestConfig",
    "BacktestResult",
    "CompiledOnBar",
    "Context",
    "Costs",
    "EventParams",
    "EventStrategy",
    "Exits",
    "FillMode",
    "Market",
    "MarketBossError",
    "PlacedOrder",
    "PluginError",
    "Signal",
    "Strategy",
    "StrategyParams",
    "SweepResult",
    "SymbolBars",
    "__version__",
    "create",
    "describe_params",
    "indicators",
    "load_market",
    "make_strategy",
    "read_bars",
    "read_signals",
    "read_signals_frame",
    "register",
    "resolve",
    "run",
    "signal_id",
    "sweep",
    "synth_bars",
    "with_exits",
    "write_bars",
    "write_signals",
]
