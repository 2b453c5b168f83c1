"""Compiled kernels for the data layer (numba); the pure-numpy API lives in synth.py."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def regime_log_prices(
    p0: float,
    shocks: np.ndarray,
    regime: np.ndarray,
    drift: np.ndarray,
    vol: np.ndarray,
    kappa: np.ndarray,
    dt: np.ndarray,
) -> np.ndarray:  # pragma: no cover - compiled
    """Log closes of a regime-switching process: drift + diffusion, pulled back to the regime's start
    level when kappa > 0 (mean-reverting regimes)."""
    n = shocks.shape[0]
    out = np.empty(n)
    p = p0
    anchor = p0
    for i in range(n):
        if i == 0 or regime[i] != regime[i - 1]:
            anchor = p
        r = regime[i]
        p = p + drift[r] * dt[i] - kappa[r] * (p - anchor) * dt[i] + vol[r] * np.sqrt(dt[i]) * shocks[i]
        out[i] = p
    return out
