"""Prediction quality: the one implementation of MSE, IC, rank IC and hit rate, used by cross-validation,
drift monitoring, the CLI and the dashboard (through metadata.json)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

METRICS = ("mse", "ic", "rank_ic", "hit_rate")


def mse(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((pred - y) ** 2)) if len(y) else float("nan")


def ic(pred: np.ndarray, y: np.ndarray) -> float:
    """Information coefficient: Pearson correlation of predictions and outcomes (NaN when either is constant)."""
    if len(y) < 2:
        return float("nan")
    a = pred - pred.mean()
    b = y - y.mean()
    den = np.sqrt(np.dot(a, a) * np.dot(b, b))
    return float(np.dot(a, b) / den) if den > 0 else float("nan")


def rank_ic(pred: np.ndarray, y: np.ndarray) -> float:
    """Spearman correlation: the IC of ranks (ties share their average rank)."""
    return ic(rankdata(pred), rankdata(y)) if len(y) >= 2 else float("nan")


def hit_rate(pred: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows where the prediction has the outcome's sign."""
    return float(np.mean(np.sign(pred) == np.sign(y))) if len(y) else float("nan")


def scores(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return {"mse": mse(pred, y), "ic": ic(pred, y), "rank_ic": rank_ic(pred, y), "hit_rate": hit_rate(pred, y)}


def summarize(per_fold: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation (ddof=1) of each metric across folds."""
    out = {}
    for m in METRICS:
        v = np.array([f[m] for f in per_fold], dtype=np.float64)
        v = v[np.isfinite(v)]
        out[m] = {
            "mean": float(v.mean()) if len(v) else float("nan"),
            "std": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
        }
    return out
