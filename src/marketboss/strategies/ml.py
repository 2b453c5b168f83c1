"""ML: a trained model's forecast of each symbol's forward return, turned into exposures by threshold or rank.

The model (models/<name>/<version>/, see marketboss.ml.registry) is loaded when the strategy is created, so
a missing model or a feature mismatch is an error before any data is read. Features at bar t use bars up
to t only, so the exposure at t does too. By default only bars from the model's last training bar on are
traded: earlier bars are in-sample, and a backtest over them would flatter the model.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from marketboss.config import get_settings
from marketboss.data.market import Market
from marketboss.errors import MarketBossError
from marketboss.logging import get_logger
from marketboss.ml import registry
from marketboss.ml.features import FEATURE_VERSION, FEATURES, market_features
from marketboss.strategies.base import Strategy, StrategyParams

log = get_logger(__name__)


class MLParams(StrategyParams):
    model: str | None = Field(None, description="model name in models_dir (default: the only one there)")
    version: str = Field("latest", description="model version, or latest")
    models_dir: str | None = Field(None, description="default: models (env MARKETBOSS_MODELS_DIR)")
    mode: Literal["threshold", "rank"] = Field("threshold", description="threshold or rank the forecasts")
    threshold: float = Field(0.0, ge=0, allow_inf_nan=False,
                             description="threshold: long above +t, short below -t, flat between")  # fmt: skip
    top: int = Field(1, ge=1, description="rank: long the top N per bar (short the bottom N if long-short)")
    out_of_sample: bool = Field(True, description="trade only from the model's last training bar on")
    sizing: Literal["quantity", "weight"] = Field("weight", description="quantity or weight (of equity)")
    weight: float = Field(0.2, gt=0, le=1, allow_inf_nan=False, description="equity fraction per unit")


class ML(Strategy[MLParams]):
    name = "ml"
    summary = "a trained model's forward-return forecast (marketboss train), by threshold or rank"
    params_model = MLParams
    check_exposures = False  # causal by construction (tests/unit/test_ml_strategy.py: it never looks ahead)

    def __init__(self, params: MLParams):
        super().__init__(params)
        root = Path(params.models_dir) if params.models_dir else get_settings().models_dir
        name = registry.resolve_name(root, params.model)
        self.model = registry.load(root, name, params.version, FEATURES, feature_version=FEATURE_VERSION)

    def describe(self) -> str:
        return f"{super().describe()} ({self.model.name} {self.model.version})"

    def forecasts(self, market: Market) -> np.ndarray:
        """(time, symbol) predicted forward returns; NaN where features are missing or (by default) in-sample."""
        self._check_frequency(market)
        X3 = market_features(market)
        ok = np.isfinite(X3).all(axis=2)
        if self.params.out_of_sample:
            start = int(datetime.fromisoformat(str(self.model.metadata["train_end"]).replace("Z", "+00:00"))
                        .timestamp() * 1_000_000)  # fmt: skip
            if market.times[-1] < start:
                raise MarketBossError(
                    f"model {self.model.name} {self.model.version} was trained on bars up to "
                    f"{self.model.metadata['train_end']}; the data has no bar from then on to trade out of sample "
                    "(train with an earlier --end, or --param out_of_sample=false)"
                )
            if market.times[-1] == start:  # the day's signals of a model just retrained: the last bar alone
                log.info("ml_trades_its_last_bar_only", model=self.model.name, version=self.model.version,
                         train_end=self.model.metadata["train_end"],
                         hint="a backtest out of sample needs a model trained with an earlier --end")  # fmt: skip
            ok &= (market.times >= start)[:, None]
        pred = np.full(ok.shape, np.nan)
        if ok.any():
            pred[ok] = self.model.predict(X3[ok])
        return pred

    def exposures(self, market: Market) -> np.ndarray:
        pred = self.forecasts(market)
        ok = np.isfinite(pred)
        if self.params.mode == "threshold":
            th = self.params.threshold
            e = np.where(pred > th, 1.0, np.where(pred < -th, -1.0, 0.0))
        else:
            order = np.argsort(-np.where(ok, pred, -np.inf), axis=1, kind="stable")
            rank = np.empty_like(order)
            np.put_along_axis(rank, order, np.arange(pred.shape[1])[None, :].repeat(pred.shape[0], 0), axis=1)
            count = ok.sum(axis=1, keepdims=True)
            top = self.params.top
            e = np.where(rank < top, 1.0, np.where(rank >= np.maximum(count - top, top), -1.0, 0.0))
        e[~ok] = np.nan
        return e

    def _check_frequency(self, market: Market) -> None:
        registry.check_bar_frequency({"name": self.model.name, "version": self.model.version, **self.model.metadata},
                                     market.bars_per_year)  # fmt: skip
