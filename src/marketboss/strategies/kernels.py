"""The strategies' kernels (nb.py) as signal generation calls them, compiled ahead of time by `make`
(marketboss.aot: a command loads them without numba, else they go through numba): their argument types and a
typed function per kernel."""

from __future__ import annotations

from typing import cast

import numpy as np

from marketboss.aot import Arr, Kernels, Spec

_I, _F, _B, _F2, _B2 = Arr("int64", 1), Arr("float64", 1), Arr("bool", 1), Arr("float64", 2), Arr("bool", 2)

#: Each compiled kernel's argument types: those the built-in strategies and base.py call it with.
SIGNATURES: dict[str, tuple[Spec, ...]] = {
    "ma_cross": (_F, "int64", "int64", "bool", _I),
    "fill_steps": (_I, _F, _F),
    "band_state": (_F, "float64", "float64", "float64", "float64", _F),
    "breakout_state": (_F, _F, _F, _F, _F, _F),
    "state_changes": (_F, "float64", "float64", _I, _F, _F),
    "signal_sides": (_F, _F, "int64", "int64", _B, _I, _F),
    "rebalance_points": (_F2, _F2, _B2, _B, _I, _I, _B),
}

KERNELS = Kernels(__name__, __file__, SIGNATURES)


def ma_cross(x: np.ndarray, fast: int, slow: int, use_ema: bool, idx: np.ndarray) -> tuple[int, int]:
    """nb.ma_cross."""
    return cast(tuple[int, int], KERNELS.call("ma_cross", x, fast, slow, use_ema, idx))


def fill_steps(idx: np.ndarray, values: np.ndarray, out: np.ndarray) -> np.ndarray:
    """nb.fill_steps."""
    return cast(np.ndarray, KERNELS.call("fill_steps", idx, values, out))


def band_state(x: np.ndarray, long_in: float, long_out: float, short_in: float, short_out: float,
               out: np.ndarray) -> np.ndarray:  # fmt: skip
    """nb.band_state (thresholds as floats: the compiled signature's, and the same comparisons as integers)."""
    bands = float(long_in), float(long_out), float(short_in), float(short_out)
    return cast(np.ndarray, KERNELS.call("band_state", x, *bands, out))


def breakout_state(close: np.ndarray, entry_hi: np.ndarray, entry_lo: np.ndarray, exit_hi: np.ndarray,
                   exit_lo: np.ndarray, out: np.ndarray) -> np.ndarray:  # fmt: skip
    """nb.breakout_state."""
    return cast(np.ndarray, KERNELS.call("breakout_state", close, entry_hi, entry_lo, exit_hi, exit_lo, out))


def state_changes(exposure: np.ndarray, lo: float, hi: float, idx: np.ndarray, before: np.ndarray,
                  after: np.ndarray) -> int:  # fmt: skip
    """nb.state_changes."""
    return cast(int, KERNELS.call("state_changes", exposure, lo, hi, idx, before, after))


def signal_sides(before: np.ndarray, after: np.ndarray, buy_code: int, sell_code: int, buy: np.ndarray,
                 codes: np.ndarray, change: np.ndarray) -> None:  # fmt: skip
    """nb.signal_sides."""
    KERNELS.call("signal_sides", before, after, buy_code, sell_code, buy, codes, change)


def rebalance_points(close: np.ndarray, target: np.ndarray, changed: np.ndarray, due: np.ndarray,
                     out_t: np.ndarray, out_s: np.ndarray, out_buy: np.ndarray) -> int:  # fmt: skip
    """nb.rebalance_points."""
    return cast(int, KERNELS.call("rebalance_points", close, target, changed, due, out_t, out_s, out_buy))
