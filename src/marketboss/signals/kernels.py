"""The signals' kernels (nb.py: ids, exit prices) as signal generation and exits call them, compiled ahead of
time by `make` (marketboss.aot: a command loads them without numba, else they go through numba): their argument
types and a typed function per kernel."""

from __future__ import annotations

import numpy as np

from marketboss.aot import Arr, Kernels, Spec

_F = Arr("float64", 1)

#: Each compiled kernel's argument types: those signal_ids and exits.with_exits call it with.
SIGNATURES: dict[str, tuple[Spec, ...]] = {
    "id_text": (Arr("uint64", 1), Arr("int64", 1), Arr("int64", 1), Arr("uint8", 1), Arr("uint8", 2)),
    "exit_prices": (_F, _F, "float64", _F),
}

KERNELS = Kernels(__name__, __file__, SIGNATURES)


def id_text(keys: np.ndarray, ts: np.ndarray, codes: np.ndarray, prefix: np.ndarray, out: np.ndarray) -> None:
    """nb.id_text."""
    KERNELS.call("id_text", keys, ts, codes, prefix, out)


def exit_prices(ref: np.ndarray, up: np.ndarray, pct: float, out: np.ndarray) -> None:
    """nb.exit_prices."""
    KERNELS.call("exit_prices", ref, up, float(pct), out)
