"""Training: a planted signal is found (first by importance, positive IC), noise is not; versions on disk
follow the metadata contract, load back, and refuse a feature mismatch."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from marketboss.data.market import Market
from marketboss.data.synth import synth_bars
from marketboss.errors import MarketBossError
from marketboss.ml import registry
from marketboss.ml.features import FEATURES, Samples, market_features, samples
from marketboss.ml.train import TrainConfig, bars_sha256, cross_validate, train

FAST = {"num_boost_round": 40, "min_data_in_leaf": 20}  # small and quick, single-threaded (threads=1 default)
NAMES = [f"x{i}" for i in range(6)]


def _panel(n_times: int, n_symbols: int, planted: float, seed: int) -> Samples:
    """Rows of n_symbols per time; y = planted * x2 + noise (x2 is the only feature that matters)."""
    rng = np.random.default_rng(seed)
    n = n_times * n_symbols
    X = rng.normal(size=(n, len(NAMES)))
    y = 0.01 * (planted * X[:, 2] + rng.normal(size=n))
    t = np.repeat(np.arange(n_times), n_symbols)
    return Samples(X, y, t, np.tile(np.arange(n_symbols), n_times), t + 5)


@pytest.mark.parametrize("model_type", ["lightgbm", "ridge"])
def test_a_planted_feature_ranks_first_and_gives_a_positive_ic(model_type: str) -> None:
    cfg = TrainConfig(model_type=model_type, folds=4, params=FAST if model_type == "lightgbm" else {})
    res = cross_validate(_panel(400, 4, 0.6, seed=1), cfg, NAMES)
    assert all(f["ic"] > 0.2 and f["rank_ic"] > 0.2 and f["hit_rate"] > 0.55 for f in res.per_fold)
    assert res.summary["ic"]["mean"] > 0.3
    assert int(np.argmax(res.permutation)) == 2 and res.permutation[2] > 5 * np.abs(np.delete(res.permutation, 2)).max()
    est = cfg.estimator(NAMES)
    smp = _panel(400, 4, 0.6, seed=1)
    est.fit(smp.X, smp.y)
    own = est.importance()
    assert int(np.argmax(own)) == 2 and own.sum() == pytest.approx(1.0)


def test_pure_noise_gives_an_ic_near_zero() -> None:
    cfg = TrainConfig(folds=5, params=FAST)
    res = cross_validate(_panel(1000, 4, 0.0, seed=2), cfg, NAMES)
    assert abs(res.summary["ic"]["mean"]) < 0.05 and abs(res.summary["rank_ic"]["mean"]) < 0.05
    assert abs(res.summary["hit_rate"]["mean"] - 0.5) < 0.04
    assert all(abs(f["ic"]) < 0.1 for f in res.per_fold)


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return synth_bars(["AAPL", "MSFT", "JPM"], "2021-01-01", "2022-12-31", "1Day", seed=4)


CREATED = datetime(2025, 3, 1, 21, 0, tzinfo=UTC)


def test_a_trained_version_follows_the_metadata_contract(bars: pl.DataFrame, tmp_path: Path) -> None:
    res = train(bars, TrainConfig(horizon=5, folds=3, params=FAST), "demo", tmp_path, source="x.jsonl", now=CREATED)
    d = tmp_path / "demo"
    assert res.version == "20250301T210000Z" and res.path == d / res.version
    assert (d / "latest").read_text().strip() == res.version
    assert sorted(p.name for p in res.path.iterdir()) == ["drift_reference.npz", "metadata.json", "model.txt"]
    meta = json.loads((res.path / "metadata.json").read_text())
    for key in ("name", "version", "created_at", "model_type", "features", "target", "horizon", "params",
                "train_start", "train_end", "data_sha256", "cv", "metrics", "feature_importance", "library_versions",
                "n_samples", "feature_version"):  # fmt: skip
        assert key in meta, key
    assert (meta["name"], meta["model_type"], meta["horizon"]) == ("demo", "lightgbm", 5)
    assert meta["target"] == "fwd_return_5"
    assert meta["created_at"] == "2025-03-01T21:00:00Z" and meta["features"] == list(FEATURES)
    assert meta["train_start"] == "2021-01-04T05:00:00Z" and meta["train_end"] == "2022-12-30T05:00:00Z"
    assert meta["data_sha256"] == bars_sha256(bars) and len(meta["data_sha256"]) == 64
    assert meta["params"]["num_boost_round"] == 40 and meta["params"]["num_leaves"] == 15
    cv = meta["cv"]
    assert (cv["scheme"], cv["folds"], cv["purge"], cv["embargo"]) == ("purged_walk_forward", 3, 5, 5)
    assert len(cv["per_fold"]) == 3 and all({"mse", "ic", "rank_ic", "hit_rate"} <= set(f) for f in cv["per_fold"])
    assert set(meta["metrics"]) == {"mse", "ic", "rank_ic", "hit_rate"}
    ics = [f["ic"] for f in cv["per_fold"]]
    assert meta["metrics"]["ic"]["mean"] == pytest.approx(np.mean(ics))
    assert meta["metrics"]["ic"]["std"] == pytest.approx(np.std(ics, ddof=1))
    assert set(meta["feature_importance"]) == {"gain", "permutation"}
    assert set(meta["feature_importance"]["gain"]) == set(FEATURES)
    assert {"lightgbm", "scikit-learn", "numpy", "python"} <= set(meta["library_versions"])
    m = Market.from_bars(bars)
    assert meta["n_samples"] == len(samples(m, 5))

    loaded = registry.load(tmp_path, "demo", None, FEATURES)
    X = market_features(m)[-1]
    assert loaded.version == res.version and np.isfinite(loaded.predict(X)).all()
    assert loaded.reference().shape == (meta["n_samples"], len(FEATURES))


def test_versions_accumulate_and_loading_refuses_a_feature_mismatch(bars: pl.DataFrame, tmp_path: Path) -> None:
    cfg = TrainConfig(model_type="ridge", folds=3)
    first = train(bars, cfg, "m", tmp_path, now=CREATED)
    same_second = train(bars, cfg, "m", tmp_path, now=CREATED)
    later = train(bars, cfg, "m", tmp_path, now=CREATED + timedelta(days=1))
    assert [first.version, same_second.version, later.version] == registry.versions(tmp_path, "m")
    assert same_second.version == "20250301T210000Z-001"
    assert registry.latest_version(tmp_path, "m") == later.version
    assert (first.path / "model.joblib").exists()  # earlier versions stay
    assert not (tmp_path / "m" / ".staging").exists()  # nothing half-built left behind, nor the staging directory
    np.testing.assert_allclose(
        registry.load(tmp_path, "m", first.version, FEATURES).predict(np.ones((2, len(FEATURES)))),
        registry.load(tmp_path, "m", later.version, FEATURES).predict(np.ones((2, len(FEATURES)))),
    )  # same data, same config: the same model
    with pytest.raises(MarketBossError, match=r"do not match the data's features; the data adds"):
        registry.load(tmp_path, "m", None, [*FEATURES, "new_feature"])
    with pytest.raises(MarketBossError, match=r"\(order differs\)"):
        registry.load(tmp_path, "m", None, list(reversed(FEATURES)))
    # a definition changed, its name kept (FEATURE_VERSION moved on): refused too (before: used as it was)
    with pytest.raises(MarketBossError, match=r"trained on features of feature_version 1, whose definitions have "
                                              r"changed since \(now 2\): retrain it"):
        registry.load(tmp_path, "m", None, FEATURES, feature_version=2)
    with pytest.raises(MarketBossError, match="has no version 'v9'"):
        registry.load(tmp_path, "m", "v9", FEATURES)
    assert registry.resolve_name(tmp_path, None) == "m"
    with pytest.raises(MarketBossError, match=r"no model 'x' in .* \(models there: m\)"):
        registry.resolve_name(tmp_path, "x")


def test_bad_training_settings_are_refused_before_any_work() -> None:
    with pytest.raises(ValueError, match=r"purge .* must be at least the horizon"):
        TrainConfig(horizon=10, purge=5)
    with pytest.raises(ValueError, match="unknown lightgbm parameter"):
        TrainConfig(params={"n_estimators": 5})
    with pytest.raises(MarketBossError, match="model name"):
        registry.check_name("../evil")


def test_too_little_data_is_one_clear_error(bars: pl.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(MarketBossError, match=r"only .* labelled rows"):
        train(bars.head(150), TrainConfig(), "tiny", tmp_path)
    assert not (tmp_path / "tiny").exists() or not registry.versions(tmp_path, "tiny")
