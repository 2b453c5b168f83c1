"""MarketBoss: research, backtest and paper-trade equity strategies on Alpaca.

The public Python API (docs/strategies.md): strategy base classes and parameter models, indicators, bars,
a backtest and a parameter sweep with polars results, signals and their order fields. Each name loads its
module on first use (PEP 562), so that `import marketboss` and the CLI's `--help` stay light; type checkers
read the names from __init__.pyi (imports there would tie this package's root to every layer).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_WHERE = {
    # writing strategies
    "Strategy": "strategies", "StrategyParams": "strategies", "create": "strategies", "resolve": "strategies",
    "register": "strategies", "describe_params": "strategies",
    "PluginError": "strategies", "ENTRY_POINT_GROUP": "strategies",
    "EventStrategy": "strategies.events", "EventParams": "strategies.events", "Context": "strategies.events",
    "CompiledOnBar": "strategies.events", "PlacedOrder": "strategies.events",
    "Market": "data.market", "SymbolBars": "data.market",
    # bars
    "read_bars": "data.io", "write_bars": "data.io", "synth_bars": "data.synth",
    # running them
    "run": "api", "sweep": "api", "load_market": "api", "make_strategy": "api",
    "BacktestConfig": "backtest.costs", "Costs": "backtest.costs", "FillMode": "backtest.costs",
    "BacktestResult": "backtest.engine",
    "SweepResult": "research.sweep", "METRICS": "backtest.metrics",
    # signals and their orders
    "Signal": "signals", "read_signals": "signals", "read_signals_frame": "signals", "write_signals": "signals",
    "signal_id": "signals", "ORDER_FIELDS": "signals", "ORDER_TYPE_NAMES": "signals", "ORDER_DEFAULTS": "signals",
    "Exits": "signals.exits", "with_exits": "signals.exits",
    "MarketBossError": "errors",
}  # fmt: skip
_MODULES = ("indicators",)


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return import_module(f"marketboss.{name}")
    if name not in _WHERE:
        raise AttributeError(f"module 'marketboss' has no attribute '{name}'")
    return getattr(import_module(f"marketboss.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    """The public names (and the version): not this module's own imports."""
    return sorted(["__version__", *_WHERE, *_MODULES])


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
