"""The probabilistic and deflated Sharpe ratios (Bailey & López de Prado, 2012 and 2014).

Picking the best of N backtests inflates its Sharpe ratio: even N strategies with no skill produce a best
Sharpe ratio around sqrt(V) * E[max of N standard normals]. The deflated Sharpe ratio is the probability that
the true Sharpe ratio exceeds that expected maximum, given the estimate's sample length, skewness and
kurtosis. Sharpe ratios here are per bar (not annualised), as the formulas require.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
#: The standard normal, from the standard library (scipy.stats took 0.56 s to import: `walkforward` on 10
#: symbols x 5 years took 1.71 s with it, 1.22 s without; the two agree to 2e-15).
_NORMAL = NormalDist()


@dataclass(frozen=True)
class SharpeEstimate:
    """A per-bar Sharpe ratio with what its uncertainty depends on."""

    sharpe: float
    n: int  # returns
    skew: float
    kurtosis: float  # not excess: 3 for normal returns

    @classmethod
    def of(cls, returns: np.ndarray) -> SharpeEstimate:
        r = np.asarray(returns, dtype=np.float64)
        n = int(r.shape[0])
        if n < 2:
            return cls(math.nan, n, math.nan, math.nan)
        sd = float(r.std(ddof=1))
        if sd == 0.0:
            return cls(math.nan, n, math.nan, math.nan)
        z = (r - r.mean()) / r.std()
        return cls(float(r.mean()) / sd, n, float((z**3).mean()), float((z**4).mean()))


def probabilistic_sharpe(est: SharpeEstimate, benchmark: float = 0.0) -> float:
    """P(true Sharpe > benchmark) given the estimate (PSR)."""
    sr = est.sharpe
    if not math.isfinite(sr) or est.n < 2:
        return math.nan
    var = 1.0 - est.skew * sr + (est.kurtosis - 1.0) / 4.0 * sr * sr
    if var <= 0.0:
        return math.nan
    return _NORMAL.cdf((sr - benchmark) * math.sqrt(est.n - 1) / math.sqrt(var))


def expected_max_sharpe(n_trials: int, trial_variance: float) -> float:
    """E[max Sharpe] of n_trials skill-less strategies whose Sharpe estimates vary by trial_variance."""
    if n_trials <= 1 or not trial_variance > 0.0:
        return 0.0
    a = _NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
    b = _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(trial_variance) * ((1.0 - EULER_GAMMA) * a + EULER_GAMMA * b))


def deflated_sharpe(est: SharpeEstimate, n_trials: int, trial_variance: float) -> float:
    """P(true Sharpe > the best of n_trials skill-less trials' expected Sharpe) (DSR)."""
    return probabilistic_sharpe(est, expected_max_sharpe(n_trials, trial_variance))


def bar_returns(equity: np.ndarray, initial: float) -> np.ndarray:
    """Per-bar simple returns of an equity curve starting from `initial`, as backtest.nb.equity_stats computes
    them."""
    return equity / np.concatenate(([initial], equity[:-1])) - 1.0
