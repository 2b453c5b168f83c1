"""Drift and decay: is the model still looking at the world it was trained on, and does it still predict?

- PSI (population stability index) per feature: the training distribution's deciles are the bins;
  sum over bins of (recent - train) * ln(recent / train). Rule of thumb: < 0.1 stable, > 0.25 shifted.
- KS: the two-sample Kolmogorov-Smirnov statistic, the largest gap between the two empirical CDFs.
- Rolling IC: the model's IC on rows it never saw (after its training data ends) whose outcome is known.

"Recent" means new: rows after the model's training data ends. Retraining on the data a model was trained
on would give the same model, so drift is only judged once enough new rows have arrived.

`decide` turns these and the model's age into "retrain" or "keep", with the reasons in words.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from marketboss.ml import nb
from marketboss.ml.metrics import ic

PSI_BINS = 10
PSI_FLOOR = 1e-4  # an empty bin counts as this share, so the log stays finite


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = PSI_BINS) -> float:
    e = expected[np.isfinite(expected)]
    a = actual[np.isfinite(actual)]
    if not len(e) or not len(a):
        return float("nan")
    edges = np.unique(np.quantile(e, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    pe = np.bincount(np.searchsorted(edges, e, side="right"), minlength=edges.shape[0] + 1) / len(e)
    pa = np.bincount(np.searchsorted(edges, a, side="right"), minlength=edges.shape[0] + 1) / len(a)
    pe, pa = np.maximum(pe, PSI_FLOOR), np.maximum(pa, PSI_FLOOR)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def ks(a: np.ndarray, b: np.ndarray) -> float:
    a = np.sort(a[np.isfinite(a)])
    b = np.sort(b[np.isfinite(b)])
    if not len(a) or not len(b):
        return float("nan")
    return float(nb.ks_statistic(a, b))


def feature_drift(
    reference: np.ndarray, recent: np.ndarray, features: Sequence[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """({feature: PSI}, {feature: KS}) between the training rows and recent rows (columns = features)."""
    p = {f: psi(reference[:, i], recent[:, i]) for i, f in enumerate(features)}
    k = {f: ks(reference[:, i], recent[:, i]) for i, f in enumerate(features)}
    return p, k


def rolling_ic(pred: np.ndarray, y: np.ndarray, t: np.ndarray, window: int, min_samples: int) -> float | None:
    """IC over the rows of the last `window` distinct times; None with fewer than min_samples rows."""
    if not len(t):
        return None
    times = np.unique(t)
    keep = t >= times[max(0, times.shape[0] - window)]
    if int(keep.sum()) < min_samples:
        return None
    value = ic(pred[keep], y[keep])
    return None if np.isnan(value) else value


class Thresholds(BaseModel):
    """When to retrain; validated up front."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_age_days: float = Field(30.0, gt=0, description="retrain a model older than this")
    psi: float = Field(0.25, gt=0, description="a feature has drifted when its PSI exceeds this")
    ks: float = Field(0.3, gt=0, le=1, description="... or its KS statistic exceeds this")
    min_drifted: int = Field(3, ge=1, description="retrain when at least this many features drifted")
    ic: float = Field(0.0, ge=-1, le=1, description="decay: rolling IC below this")
    window: int = Field(60, ge=5, description="the last bars (after training) compared with the training rows")
    min_drift_samples: int = Field(50, ge=10, description="new rows needed before drift counts")
    ic_window: int = Field(60, ge=5, description="bars of new, labelled rows in the rolling IC")
    min_ic_samples: int = Field(50, ge=10, description="rows needed before the rolling IC counts")


#: `marketboss retrain`'s command-line option for each threshold (every field has one; the scheduler builds the
#: command from these, and the CLI names the option in its errors).
THRESHOLD_OPTIONS = {
    "max_age_days": "--max-age-days", "psi": "--psi-threshold", "ks": "--ks-threshold",
    "min_drifted": "--min-drifted", "ic": "--ic-threshold", "window": "--window", "ic_window": "--ic-window",
    "min_ic_samples": "--min-ic-samples", "min_drift_samples": "--min-drift-samples",
}  # fmt: skip


def drifted(psi_: dict[str, float], ks_: dict[str, float], th: Thresholds) -> list[str]:
    """Features whose PSI or KS crosses its threshold, worst PSI first."""
    out = [f for f in psi_ if (psi_[f] or 0.0) > th.psi or (ks_.get(f) or 0.0) > th.ks]
    return sorted(out, key=lambda f: -(psi_[f] or 0.0))


def decide(
    psi_: dict[str, float],
    ks_: dict[str, float],
    n_recent: int,
    rolling: float | None,
    age_days: float,
    th: Thresholds,
) -> tuple[str, list[str]]:
    """("retrain" | "keep", reasons): every check is reported, crossed or not. Drift counts only with at
    least min_drift_samples recent rows."""
    crossed, fine = [], []
    if age_days > th.max_age_days:
        crossed.append(f"age: model is {age_days:.1f} days old (max {th.max_age_days:g})")
    else:
        fine.append(f"age {age_days:.1f} days <= {th.max_age_days:g}")
    bad = drifted(psi_, ks_, th)
    listed = ", ".join(f"{f} (PSI {psi_[f]:.2f}, KS {ks_.get(f, float('nan')):.2f})" for f in bad[:5])
    if n_recent < th.min_drift_samples:
        fine.append(f"drift: {n_recent} new row(s) since training, {th.min_drift_samples} needed to judge")
    elif len(bad) >= th.min_drifted:
        crossed.append(f"drift: {len(bad)} feature(s) over PSI {th.psi:g} or KS {th.ks:g}: {listed}")
    else:
        worst = max(psi_, key=lambda f: psi_[f] if np.isfinite(psi_[f]) else -1.0)
        fine.append(f"drift: {len(bad)} feature(s) over the thresholds (need {th.min_drifted}); "
                    f"max PSI {psi_[worst]:.2f} ({worst})")  # fmt: skip
    if rolling is None:
        fine.append("rolling IC: not enough new labelled rows yet")
    elif rolling < th.ic:
        crossed.append(f"decay: rolling IC {rolling:.3f} < {th.ic:g} over the last {th.ic_window} bars")
    else:
        fine.append(f"rolling IC {rolling:.3f} >= {th.ic:g}")
    return ("retrain", crossed) if crossed else ("keep", fine)
