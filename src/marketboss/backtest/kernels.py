"""The backtest kernels a command runs, through the module `make` compiles ahead of time from nb.py when it is
present and was built from the current kernel sources, else through nb.py itself.

Why: nb.py's kernels go through numba, whose import and cache load cost each command ~0.8 s before the first
bar is simulated; the ahead-of-time module (numba.pycc, built by `build` below from scripts/compile_kernels.py)
loads in milliseconds and needs no numba at run time. Both run the same nb.py functions: the module exports,
per kernel, a forwarder to nb.py's function compiled for the one signature in SIGNATURES (numba compiles the
call as nb.py declares the kernel: its error model and fastmath flags). The compiled code checks no types, so
arguments are checked here; any other arguments (numba would compile another specialisation) go to nb.py.
MARKETBOSS_AOT=off sends every call to nb.py.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import tempfile
import warnings
from functools import cache
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple, cast

import numpy as np

from marketboss.backtest.arrays import Equity, Fills, Orders, Prices, RoundTrips, Rules, TradeAcc

HERE = Path(__file__).parent
#: The files whose code the module holds: a change to any of them leaves the module stale (unused).
SOURCES = (HERE / "nb.py", HERE / "arrays.py", HERE.parent / "orders" / "nb.py", HERE.parent / "orders" / "codes.py",
           Path(__file__))  # fmt: skip


class Arr(NamedTuple):
    """A C-contiguous array argument of this dtype and dimension count."""

    dtype: str
    ndim: int


#: A scalar argument ("float64", "bool", "int64"), an array, or a named tuple (of the kernel's own class) of these.
Spec = str | Arr | tuple[Any, ...]

_I, _F, _B, _K, _F2 = Arr("int64", 1), Arr("float64", 1), Arr("bool", 1), Arr("int8", 1), Arr("float64", 2)
_PRICES = Prices._make((_I, _F2, _F2, _F2, _F2, _I))
_ORDERS = Orders._make((_I, _I, _B, _F, _F, _K, _I, "bool", _K, _F, _F, _F, _B, _F, _F))
_RULES = Rules._make(("float64",) * 5 + ("bool",) * 3)
_FILLS = Fills._make((_I, _I, _I, _I, _B, _F, _F, _F, _K))

#: Each compiled kernel's argument types: those engine.py calls it with.
SIGNATURES: dict[str, tuple[Spec, ...]] = {
    "schedule": (_I, _F2, _B, _I, _I, _I, "bool", _K),
    "simulate": (_PRICES, _ORDERS, _RULES),
    "mark": (_F2, _FILLS, "float64", Equity._make((_F, _F, _F))),
    "round_trips": (_PRICES, _FILLS),
    "trade_stats": (_F, _F, _F, _B),
    "equity_stats": ("float64", _F),
}


def schedule(times: np.ndarray, close: np.ndarray, full: np.ndarray, signal_time: np.ndarray, signal_bar: np.ndarray,
             symbol: np.ndarray, at_close: bool, kind: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """nb.schedule."""
    out = _call("schedule", times, close, full, signal_time, signal_bar, symbol, at_close, kind)
    return cast(tuple[np.ndarray, np.ndarray, np.ndarray, bool], out)


def simulate(prices: Prices, orders: Orders, rules: Rules) -> Fills:
    """nb.simulate."""
    return cast(Fills, _call("simulate", prices, orders, rules))


def mark(close: np.ndarray, fills: Fills, cash0: float, out: Equity) -> tuple[int, Any]:
    """nb.mark."""
    return cast(tuple[int, Any], _call("mark", close, fills, cash0, out))


def round_trips(prices: Prices, fills: Fills) -> RoundTrips:
    """nb.round_trips."""
    return cast(RoundTrips, _call("round_trips", prices, fills))


def trade_stats(pnl: np.ndarray, ret: np.ndarray, days: np.ndarray, closed: np.ndarray) -> TradeAcc:
    """nb.trade_stats."""
    return cast(TradeAcc, _call("trade_stats", pnl, ret, days, closed))


def equity_stats(initial: float, equity: np.ndarray) -> tuple[float, float, float, float, float, int, int]:
    """nb.equity_stats."""
    return cast(tuple[float, float, float, float, float, int, int], _call("equity_stats", initial, equity))


def _call(name: str, *args: Any) -> Any:
    module = compiled()
    if module is not None and all(map(_fits, SIGNATURES[name], args)):
        return getattr(module, name)(*args)
    return getattr(import_module("marketboss.backtest.nb"), name)(*args)


def _fits(spec: Spec, value: Any) -> bool:
    """Whether `value` is of the type `spec` stands for (what the compiled code assumes without checking)."""
    if isinstance(spec, Arr):
        return (isinstance(value, np.ndarray) and value.ndim == spec.ndim and value.dtype == spec.dtype
                and value.flags.c_contiguous and value.flags.aligned)  # fmt: skip
    if isinstance(spec, tuple):
        return type(value) is type(spec) and all(map(_fits, spec, value))
    if spec == "float64":
        return isinstance(value, float)
    if spec == "bool":
        return isinstance(value, bool | np.bool_)
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def module_name() -> str:
    """The compiled module's name for the current sources: `_aot_` and their digest."""
    digest = hashlib.sha256()
    for path in SOURCES:
        digest.update(path.read_bytes())
    return f"_aot_{digest.hexdigest()[:16]}"


@cache
def compiled() -> ModuleType | None:
    """The ahead-of-time module built from the current sources, or None (not built, built from others, or
    MARKETBOSS_AOT=off)."""
    if os.environ.get("MARKETBOSS_AOT", "").lower() in ("off", "0", "false", "no"):
        return None
    try:
        return import_module(f"marketboss.backtest.{module_name()}")
    except ImportError:
        return None


def build(directory: Path = HERE) -> Path:
    """Compile the module into `directory` (numba.pycc and a C compiler; `make` runs this), removing the
    modules of earlier sources. Returns the module's file."""
    from numba import types

    with warnings.catch_warnings():  # pycc is "pending deprecation" with no replacement released (numba 0.68)
        warnings.filterwarnings("ignore", message="The 'pycc' module is pending deprecation")
        from numba.pycc import CC

    nb = import_module("marketboss.backtest.nb")
    name = module_name()
    cc = CC(name)
    cc.target_cpu = "host"  # built where it runs, like numba's own cache
    for kernel, spec in SIGNATURES.items():
        cc.export(kernel, tuple(_numba_type(types, s) for s in spec))(_forwarder(getattr(nb, kernel)))
    with tempfile.TemporaryDirectory(prefix=".aot-build-", dir=directory) as tmp:
        cc.output_dir = tmp
        cc.compile()
        target = directory / cc.output_file
        os.replace(Path(tmp) / cc.output_file, target)  # whole or absent: a running command may look for it
    for old in directory.glob("_aot_*"):
        if old != target:
            old.unlink()
    return target


def _numba_type(types: Any, spec: Spec) -> Any:
    if isinstance(spec, Arr):
        return types.Array(getattr(types, "boolean" if spec.dtype == "bool" else spec.dtype), spec.ndim, "C")
    if isinstance(spec, tuple):  # as numba.typeof types the kernel's named tuple
        fields = [_numba_type(types, s) for s in spec]
        if all(f == fields[0] for f in fields):
            return types.NamedUniTuple(fields[0], len(fields), type(spec))
        return types.NamedTuple(fields, type(spec))
    return getattr(types, "boolean" if spec == "bool" else spec)


def _forwarder(kernel: Any) -> Any:
    """A function of the kernel's parameters that calls it (numba.pycc compiles a fixed-arity function)."""
    params = ", ".join(inspect.signature(kernel.py_func).parameters)
    scope = {"kernel": kernel}
    exec(f"def forward({params}):\n    return kernel({params})\n", scope)
    return scope["forward"]
