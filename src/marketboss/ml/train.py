"""Training: features and forward-return target, purged walk-forward CV, importance, and a registry version.

The target is the symbol's forward return over `horizon` bars, close[t+h]/close[t]-1. Cross-validation
(marketboss.ml.cv) scores each fold's test block with MSE, IC, rank IC and hit rate; feature importance is
the model's own (LightGBM gain, ridge |coefficient|; fractions summing to 1) from the final model, and
permutation importance (the relative rise in test MSE when a feature's column is shuffled) averaged over the
test folds. The final model
is fitted on every labelled row.
"""

from __future__ import annotations

import hashlib
import math
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from marketboss import __version__
from marketboss.data.io import format_ts
from marketboss.data.market import Market
from marketboss.errors import MarketBossError
from marketboss.ml import cv, estimators, registry
from marketboss.ml.estimators import Estimator, ModelType
from marketboss.ml.features import FEATURE_VERSION, FEATURES, Samples, samples, target_name
from marketboss.ml.metrics import mse, scores, summarize

REFERENCE_ROWS = 20_000
MIN_SAMPLES = 200


class TrainConfig(BaseModel):
    """What to train; validated before any data is read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_type: ModelType = "lightgbm"
    horizon: int = Field(5, ge=1, le=1000, description="bars ahead the target return looks")
    folds: int = Field(5, ge=2, le=50)
    purge: int | None = Field(None, ge=1, description="label length purged before each test block (>= horizon)")
    embargo: int | None = Field(None, ge=0, description="further bars left out before each test block")
    params: dict[str, Any] = Field(default_factory=dict, description="overrides of the model's parameters")
    seed: int = Field(7, ge=0, le=2**31 - 1, description="LightGBM takes a 32-bit signed seed")
    threads: int = Field(1, ge=1, le=64)
    permutation_repeats: int = Field(2, ge=1, le=50)

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.purge is not None and self.purge < self.horizon:
            raise ValueError(f"purge ({self.purge}) must be at least the horizon ({self.horizon}), or labels leak")
        known = estimators.default_params(self.model_type)
        unknown = sorted(set(self.params) - set(known))
        if unknown:
            raise ValueError(f"unknown {self.model_type} parameter(s) {', '.join(unknown)}; valid: {', '.join(known)}")
        objective = self.params.get("objective")
        if self.model_type == "lightgbm" and objective is not None and objective not in estimators.RETURN_OBJECTIVES:
            raise ValueError(f"--param objective={objective}: the model forecasts a return, of either sign: a "
                             "regression objective (regression, regression_l1, huber, fair, quantile)")  # fmt: skip
        refused = estimators.refusal(self.model_type, self.params) if self.params else None
        if refused:
            given = " ".join(f"{k}={v}" for k, v in self.params.items())
            raise ValueError(f"--param {given}: {self.model_type} refuses it: {refused}")
        return self

    @property
    def purge_bars(self) -> int:
        return self.horizon if self.purge is None else self.purge

    @property
    def embargo_bars(self) -> int:
        return self.horizon if self.embargo is None else self.embargo

    def model_params(self) -> dict[str, Any]:
        return estimators.default_params(self.model_type) | self.params

    def estimator(self, features: list[str]) -> Estimator:
        return estimators.make(self.model_type, features, self.model_params(), self.seed, self.threads)


@dataclass(frozen=True)
class CVResult:
    per_fold: list[dict[str, Any]]  # fold, windows, sizes and the metrics of marketboss.ml.metrics
    summary: dict[str, dict[str, float]]
    permutation: np.ndarray  # mean relative rise in test MSE per feature


def permutation_importance(est: Estimator, X: np.ndarray, y: np.ndarray, repeats: int, rng: np.random.Generator
                           ) -> np.ndarray:  # fmt: skip
    """Rise in MSE, as a fraction of the unshuffled MSE, when each column is shuffled (mean over repeats):
    what the model loses without the feature."""
    base = mse(est.predict(X), y)
    out = np.zeros(X.shape[1])
    for f in range(X.shape[1]):
        for _ in range(repeats):
            Xp = X.copy()
            Xp[:, f] = rng.permutation(X[:, f])
            out[f] += mse(est.predict(Xp), y) / base - 1.0
    return out / repeats


def cross_validate(smp: Samples, cfg: TrainConfig, features: list[str], times_us: np.ndarray | None = None
                   ) -> CVResult:  # fmt: skip
    """Purged walk-forward CV; times_us (the market's epoch-microsecond axis) adds window timestamps."""
    rng = np.random.default_rng(cfg.seed)
    folds = cv.purged_walk_forward(smp.t, smp.end, cfg.folds, cfg.purge_bars, cfg.embargo_bars)
    per_fold, perm = [], np.zeros(smp.X.shape[1])
    for fold in folds:
        est = cfg.estimator(features)
        est.fit(smp.X[fold.train], smp.y[fold.train])
        Xt, yt = smp.X[fold.test], smp.y[fold.test]
        row: dict[str, Any] = {"fold": fold.index + 1, "n_train": int(fold.train.shape[0]),
                               "n_test": int(fold.test.shape[0])}  # fmt: skip
        if times_us is not None:
            row |= {
                "train_start": _iso(times_us[smp.t[fold.train].min()]),
                "train_end": _iso(times_us[smp.t[fold.train].max()]),
                "test_start": _iso(times_us[fold.test_start]),
                "test_end": _iso(times_us[fold.test_end]),
            }
        per_fold.append(row | scores(est.predict(Xt), yt))
        perm += permutation_importance(est, Xt, yt, cfg.permutation_repeats, rng)
    return CVResult(per_fold, summarize(per_fold), perm / len(folds))


def fit(smp: Samples, cfg: TrainConfig, features: list[str]) -> Estimator:
    est = cfg.estimator(features)
    est.fit(smp.X, smp.y)
    return est


def bars_sha256(bars: pl.DataFrame) -> str:
    """sha256 of the training bars' values (timestamp, symbol, OHLCV), whatever file format held them."""
    h = hashlib.sha256()
    h.update(bars["timestamp"].dt.epoch("us").to_numpy().astype("<i8").tobytes())
    h.update("\x1f".join(bars["symbol"].to_list()).encode())
    for c in ("open", "high", "low", "close"):
        h.update(bars[c].cast(pl.Float64).to_numpy().astype("<f8").tobytes())
    h.update(bars["volume"].cast(pl.Int64).to_numpy().astype("<i8").tobytes())
    return h.hexdigest()


def _iso(us: int | np.integer) -> str:
    return format_ts(datetime.fromtimestamp(int(us) / 1e6, UTC))


def _json_safe(obj: Any) -> Any:
    """NaN and infinities become null (JSON has neither); numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "marketboss": __version__}
    for dist in ("lightgbm", "scikit-learn", "numpy", "polars", "scipy"):
        out[dist] = dist_version(dist)
    return out


@dataclass(frozen=True)
class TrainResult:
    name: str
    version: str
    path: Path
    metadata: dict[str, Any]


def train(
    bars: pl.DataFrame,
    cfg: TrainConfig,
    name: str,
    models_dir: Path,
    *,
    source: str | None = None,
    now: datetime | None = None,
) -> TrainResult:
    """Cross-validate, fit on every labelled row and save a new version of model `name` (latest -> it)."""
    registry.check_name(name)
    market = Market.from_bars(bars)
    smp = samples(market, cfg.horizon)
    if len(smp) < MIN_SAMPLES:
        raise MarketBossError(
            f"only {len(smp)} labelled rows (need {MIN_SAMPLES}): features need "
            f"{max(60, cfg.horizon)}+ bars of history per symbol and the target {cfg.horizon} bars ahead"
        )
    features = list(FEATURES)
    result = cross_validate(smp, cfg, features, market.times)
    est = fit(smp, cfg, features)
    now = now or datetime.now(UTC)
    rng = np.random.default_rng(cfg.seed)
    keep = np.sort(rng.choice(len(smp), REFERENCE_ROWS, replace=False)) if len(smp) > REFERENCE_ROWS else slice(None)
    meta = _json_safe({
        "created_at": format_ts(now.replace(microsecond=0)),
        "model_type": cfg.model_type,
        "features": features,
        "feature_version": FEATURE_VERSION,
        "target": target_name(cfg.horizon),
        "target_definition": f"close[t+{cfg.horizon}] / close[t] - 1 of the symbol's own bars",
        "horizon": cfg.horizon,
        "params": cfg.model_params(),
        "train_start": _iso(market.times[0]),
        "train_end": _iso(market.times[-1]),
        "train_last_sample": _iso(market.times[smp.t.max()]),
        "symbols": list(market.symbols),
        "bars_per_year": market.bars_per_year,
        "n_samples": len(smp),
        "data_sha256": bars_sha256(bars),
        "data_source": source,
        "cv": {
            "scheme": cv.SCHEME,
            "folds": cfg.folds,
            "purge": cfg.purge_bars,
            "embargo": cfg.embargo_bars,
            "per_fold": result.per_fold,
        },
        "metrics": result.summary,
        "feature_importance": {
            est.importance_kind: dict(zip(features, est.importance().tolist(), strict=True)),
            "permutation": dict(zip(features, result.permutation.tolist(), strict=True)),
        },
        "train_config": cfg.model_dump(mode="json"),
        "library_versions": library_versions(),
    })  # fmt: skip
    version, path, full = registry.save(models_dir, name, est, meta, smp.X[keep], now)
    return TrainResult(name, version, path, full)
