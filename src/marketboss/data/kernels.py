"""The data package's kernel (nb.py: synthetic prices) as `data synth` calls it, compiled ahead of time by `make`
(marketboss.aot: the command loads it without numba, else it goes through numba)."""

from __future__ import annotations

from typing import cast

import numpy as np

from marketboss.aot import Arr, Kernels, Spec

_F = Arr("float64", 1)

#: The compiled kernel's argument types: those synth.py calls it with.
SIGNATURES: dict[str, tuple[Spec, ...]] = {
    "regime_log_prices": ("float64", _F, Arr("int64", 1), _F, _F, _F, _F),
}

KERNELS = Kernels(__name__, __file__, SIGNATURES)


def regime_log_prices(p0: float, shocks: np.ndarray, regime: np.ndarray, drift: np.ndarray, vol: np.ndarray,
                      kappa: np.ndarray, dt: np.ndarray) -> np.ndarray:  # fmt: skip
    """nb.regime_log_prices."""
    return cast(np.ndarray, KERNELS.call("regime_log_prices", float(p0), shocks, regime, drift, vol, kappa, dt))
