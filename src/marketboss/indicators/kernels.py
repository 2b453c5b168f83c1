"""The indicators' kernels (nb.py) as their numpy/polars face calls them, compiled ahead of time by `make`
(marketboss.aot: a command loads them without numba, else they go through numba): their argument types and a
typed function per kernel."""

from __future__ import annotations

from typing import cast

import numpy as np

from marketboss.aot import Arr, Kernels, Spec

_F = Arr("float64", 1)

#: Each compiled kernel's argument types: those __init__.py calls it with.
SIGNATURES: dict[str, tuple[Spec, ...]] = {
    "sma": (_F, "int64", _F),
    "ema": (_F, "int64", _F),
    "rsi": (_F, "int64", _F),
    "rolling_zscore": (_F, "int64", _F),
    "rolling_std": (_F, "int64", _F),
    "rolling_extreme": (_F, "int64", "bool", "int64", _F),
    "atr": (_F, _F, _F, "int64", _F),
}

KERNELS = Kernels(__name__, __file__, SIGNATURES)


def sma(x: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:
    """nb.sma."""
    return cast(np.ndarray, KERNELS.call("sma", x, n, out))


def ema(x: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:
    """nb.ema."""
    return cast(np.ndarray, KERNELS.call("ema", x, n, out))


def rsi(x: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:
    """nb.rsi."""
    return cast(np.ndarray, KERNELS.call("rsi", x, n, out))


def rolling_zscore(x: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:
    """nb.rolling_zscore."""
    return cast(np.ndarray, KERNELS.call("rolling_zscore", x, n, out))


def rolling_std(x: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:
    """nb.rolling_std."""
    return cast(np.ndarray, KERNELS.call("rolling_std", x, n, out))


def rolling_extreme(x: np.ndarray, n: int, highest: bool, lag: int, out: np.ndarray) -> np.ndarray:
    """nb.rolling_extreme."""
    return cast(np.ndarray, KERNELS.call("rolling_extreme", x, n, highest, lag, out))


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:
    """nb.atr."""
    return cast(np.ndarray, KERNELS.call("atr", high, low, close, n, out))
