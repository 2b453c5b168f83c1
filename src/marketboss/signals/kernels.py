"""The signals' kernels (nb.py: ids, the tick grid, exit prices, Signal's rules) as signal generation, exits and
the readers call them, compiled ahead of time by `make` (marketboss.aot: a command loads them without numba, else
they go through numba): their argument types and a typed function per kernel."""

from __future__ import annotations

import numpy as np

from marketboss.aot import Arr, Kernels, Spec

_F = Arr("float64", 1)

#: Each compiled kernel's argument types: those signal_ids and exits.with_exits call it with.
SIGNATURES: dict[str, tuple[Spec, ...]] = {
    "id_text": (Arr("uint64", 1), Arr("int64", 1), Arr("int64", 1), Arr("uint8", 1), Arr("uint8", 2)),
    "exit_prices": (_F, _F, "float64", _F),
    "ticks": (_F, _F),
    "rules_pass": (Arr("bool", 1), Arr("int8", 1), Arr("int8", 1), Arr("float64", 2), Arr("float64", 2),
                   Arr("bool", 2), Arr("bool", 1)),
}
#: The columns of rules_pass's values, in order (its code reads them by position).
RULE_FIELDS = ("quantity", "target_weight", "price", "limit_price", "stop_price", "trail_percent", "take_profit",
               "stop_loss")

KERNELS = Kernels(__name__, __file__, SIGNATURES)


def id_text(keys: np.ndarray, ts: np.ndarray, codes: np.ndarray, prefix: np.ndarray, out: np.ndarray) -> None:
    """nb.id_text."""
    KERNELS.call("id_text", keys, ts, codes, prefix, out)


def ticks(prices: np.ndarray) -> np.ndarray:
    """nb.ticks: each price on the tick grid."""
    out = np.empty(prices.shape[0])
    KERNELS.call("ticks", np.ascontiguousarray(prices, dtype=np.float64), out)
    return out


def exit_prices(ref: np.ndarray, up: np.ndarray, pct: float, out: np.ndarray) -> None:
    """nb.exit_prices."""
    KERNELS.call("exit_prices", ref, up, float(pct), out)


def rules_pass(buy: np.ndarray, kind: np.ndarray, tif: np.ndarray, values: np.ndarray, ranges: np.ndarray,
               needs: np.ndarray) -> np.ndarray:
    """nb.rules_pass: per row, whether it passes."""
    out = np.empty(buy.shape[0], dtype=np.bool_)
    KERNELS.call("rules_pass", buy, kind, tif, values, ranges, needs, out)
    return out
