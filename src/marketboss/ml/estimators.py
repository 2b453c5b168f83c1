"""The two model types behind one small interface: fit, predict, built-in importance, save and load.

LightGBM models are saved as LightGBM's text model (readable, version-tolerant); ridge as a joblib pickle of
a scikit-learn pipeline (standardise, then ridge). Both run single-threaded by default: the machines this
runs on are small and shared, and the data sets are small enough that threads would not pay.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

ModelType = Literal["lightgbm", "ridge"]
MODEL_FILES: dict[str, str] = {"lightgbm": "model.txt", "ridge": "model.joblib"}

LIGHTGBM_DEFAULTS: dict[str, Any] = {
    "objective": "regression",
    "learning_rate": 0.05,
    "num_boost_round": 100,
    "num_leaves": 15,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
}
RIDGE_DEFAULTS: dict[str, Any] = {"alpha": 1.0}
#: The LightGBM objectives (and their aliases) that forecast a real-valued return, of either sign: binary or
#: multiclass read the return as a class, gamma, poisson and tweedie want positive labels (binary "trained" and
#: forecast probabilities, every one above the threshold: long everything).
RETURN_OBJECTIVES = ("regression", "regression_l2", "l2", "mean_squared_error", "mse", "l2_root",
                     "root_mean_squared_error", "rmse", "regression_l1", "l1", "mean_absolute_error", "mae", "huber",
                     "fair", "quantile")  # fmt: skip


class Estimator(Protocol):
    importance_kind: str

    def fit(self, X: np.ndarray, y: np.ndarray) -> None: ...

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def importance(self) -> np.ndarray:
        """The model's own importance per feature, as fractions summing to 1."""
        ...

    def save(self, directory: Path) -> str:
        """Write the model file into `directory`; returns its name."""
        ...


def default_params(model_type: ModelType) -> dict[str, Any]:
    return dict(LIGHTGBM_DEFAULTS if model_type == "lightgbm" else RIDGE_DEFAULTS)


def _fractions(v: np.ndarray) -> np.ndarray:
    v = np.abs(np.asarray(v, dtype=np.float64))
    total = v.sum()
    return v / total if total > 0 else v


class LightGBM:
    importance_kind = "gain"

    def __init__(self, features: list[str], params: dict[str, Any], seed: int, threads: int):
        self.features = features
        self.params = params
        self.seed = seed
        self.threads = threads
        self.booster: Any = None

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        import lightgbm as lgb

        p = dict(self.params)
        rounds = int(p.pop("num_boost_round"))
        p |= {"verbosity": -1, "seed": self.seed, "num_threads": self.threads, "deterministic": True,
              "force_col_wise": True}  # fmt: skip
        data = lgb.Dataset(X, y, feature_name=self.features, free_raw_data=True, params={"verbosity": -1})
        self.booster = lgb.train(p, data, num_boost_round=rounds)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(X, num_threads=self.threads), dtype=np.float64)

    def importance(self) -> np.ndarray:
        return _fractions(self.booster.feature_importance(importance_type="gain"))

    def save(self, directory: Path) -> str:
        name = MODEL_FILES["lightgbm"]
        self.booster.save_model(str(directory / name))
        return name

    @classmethod
    def load(cls, path: Path, threads: int = 1) -> LightGBM:
        import lightgbm as lgb

        booster = lgb.Booster(model_file=str(path))
        model = cls(list(booster.feature_name()), {}, 0, threads)
        model.booster = booster
        return model


class Ridge:
    importance_kind = "coefficient"

    def __init__(self, features: list[str], params: dict[str, Any]):
        self.features = features
        self.params = params
        self.pipeline: Any = None

    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        from sklearn.linear_model import Ridge as SkRidge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.pipeline = make_pipeline(StandardScaler(), SkRidge(alpha=float(self.params["alpha"])))
        self.pipeline.fit(X, y)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.pipeline.predict(X), dtype=np.float64)

    def importance(self) -> np.ndarray:
        """|coefficient| on standardised features."""
        return _fractions(self.pipeline[-1].coef_)

    def save(self, directory: Path) -> str:
        import joblib

        name = MODEL_FILES["ridge"]
        joblib.dump({"features": self.features, "params": self.params, "pipeline": self.pipeline}, directory / name)
        return name

    @classmethod
    def load(cls, path: Path) -> Ridge:
        import joblib

        obj = joblib.load(path)
        model = cls(list(obj["features"]), dict(obj["params"]))
        model.pipeline = obj["pipeline"]
        return model


def refusal(model_type: ModelType, params: dict[str, Any]) -> str | None:
    """Why the model's library refuses these parameters (None: it takes them): each a finite value, and the model
    fitted on a few rows of noise with them, so that a bad one is said before any data is read (it was
    LightGBM's or scikit-learn's own error, "unexpected", after the features were built; an infinite learning
    rate trained a model of infinite forecasts)."""
    for key, value in params.items():
        if isinstance(value, float) and not math.isfinite(value):
            return f"{key}={value}: a finite number"
    x = np.random.default_rng(0).normal(size=(256, 2))
    est = make(model_type, ["a", "b"], default_params(model_type) | params, 0, 1)
    try:
        with _stderr_silenced():  # LightGBM's C++ prints its refusal ("[LightGBM] [Fatal] ...") as it raises it
            est.fit(x, x[:, 0])
    except Exception as exc:  # the library's own words: a bad value, or a value of the wrong type
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """The process's stderr (its file descriptor: what C++ code writes to) sent to /dev/null meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def make(model_type: ModelType, features: list[str], params: dict[str, Any], seed: int, threads: int) -> Estimator:
    if model_type == "lightgbm":
        return LightGBM(features, params, seed, threads)
    return Ridge(features, params)


def load(model_type: str, path: Path, threads: int = 1) -> LightGBM | Ridge:
    return LightGBM.load(path, threads) if model_type == "lightgbm" else Ridge.load(path)
