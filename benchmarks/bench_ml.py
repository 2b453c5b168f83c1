"""ML: training on the demo data, and features for 1,000,000 bars against the same features in pandas.

Targets: `train` (LightGBM, 5 purged walk-forward folds, permutation importance, save) on the demo data
(5 symbols x 1,258 daily bars) in under 5 seconds; features for a million bars in well under a second.
Run: .venv/bin/python benchmarks/bench_ml.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from common import median_time, peak_rss_mb, report
from marketboss.data.market import Market
from marketboss.data.synth import symbols_from, synth_bars
from marketboss.ml.features import market_features
from marketboss.ml.train import TrainConfig, train


def pandas_features(df: pd.DataFrame) -> pd.DataFrame:
    """The price features of marketboss.ml.features, the usual pandas way (groupby + rolling)."""
    g = df.groupby("symbol", sort=False)
    logc = np.log(df["close"])
    out = pd.DataFrame(index=df.index)
    for h in (1, 5, 10, 20, 60):
        out[f"ret_{h}"] = logc - g["close"].shift(h).pipe(np.log)
    sma10 = g["close"].rolling(10).mean().reset_index(level=0, drop=True)
    sma50 = g["close"].rolling(50).mean().reset_index(level=0, drop=True)
    out["ma_ratio_10"] = df["close"] / sma10 - 1
    out["ma_ratio_50"] = df["close"] / sma50 - 1
    out["ma_ratio_10_50"] = sma10 / sma50 - 1
    lr = out["ret_1"].groupby(df["symbol"], sort=False)
    out["vol_20"] = lr.rolling(20).std(ddof=0).reset_index(level=0, drop=True)
    out["vol_60"] = lr.rolling(60).std(ddof=0).reset_index(level=0, drop=True)
    rng = (df["high"] - df["low"]) / df["close"]
    out["range_1"] = rng
    out["range_20"] = rng.groupby(df["symbol"], sort=False).rolling(20).mean().reset_index(level=0, drop=True)
    return out


def main() -> None:
    demo = synth_bars(symbols_from("5"), "2020-01-01", "2024-12-31", "1Day", seed=7)
    with tempfile.TemporaryDirectory() as tmp:
        t_train = median_time(lambda: train(demo, TrainConfig(), "bench", Path(tmp)), repeat=3)
    report("ml_train_demo", bars=len(demo), lightgbm_s=t_train, under_5s=t_train < 5.0)

    bars = synth_bars(symbols_from("400"), "2015-01-01", "2024-12-31", "1Day", seed=1)
    market = Market.from_bars(bars)
    ours = median_time(lambda: market_features(market), repeat=3)
    pdf = bars.sort("symbol", "timestamp").to_pandas()
    theirs = median_time(lambda: pandas_features(pdf), repeat=1)
    report(
        "ml_features_1m",
        bars=len(bars),
        features=market_features(market).shape[2],
        marketboss_s=ours,
        pandas_price_features_s=theirs,
        speedup_vs_pandas=theirs / ours,
        peak_rss_mb=peak_rss_mb(),
    )


if __name__ == "__main__":
    main()
