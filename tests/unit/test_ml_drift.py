"""Drift and decay: shifted data is flagged and the same distribution is not; retraining is triggered by
drift, decay or age, recorded in decisions.jsonl, and earlier versions are kept."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from marketboss.data.io import read_jsonl_records
from marketboss.data.market import Market
from marketboss.data.synth import synth_bars
from marketboss.errors import MarketBossError
from marketboss.logging import configure
from marketboss.ml import registry
from marketboss.ml.drift import Thresholds, decide, drifted, feature_drift, rolling_ic
from marketboss.ml.features import FEATURE_VERSION, FEATURES, samples
from marketboss.ml.metrics import ic
from marketboss.ml.retrain import retrain
from marketboss.ml.train import TrainConfig, train

CREATED = datetime(2025, 3, 1, 21, 0, tzinfo=UTC)
SOON = CREATED + timedelta(hours=1)


@pytest.fixture(autouse=True)
def _logs_to_this_tests_stderr() -> None:
    """retrain logs its decision; bind the logger to the stderr this test captures (not an earlier test's)."""
    configure("warning")


DECISION_FIELDS = {"timestamp", "decision", "reasons", "model_version", "new_version", "psi", "ks", "rolling_ic",
                   "model_age_days"}  # fmt: skip


def test_drift_is_detected_on_a_shifted_distribution_and_not_on_the_same_one() -> None:
    rng = np.random.default_rng(5)
    names = ["level", "spread", "steady"]
    reference = rng.normal(size=(3000, 3))
    same = rng.normal(size=(300, 3))
    shifted = same * np.array([1.0, 2.0, 1.0]) + np.array([0.8, 0.0, 0.0])  # mean shift, scale shift, unchanged
    th = Thresholds(min_drifted=1)

    psi_same, ks_same = feature_drift(reference, same, names)
    assert max(psi_same.values()) < 0.1 and max(ks_same.values()) < 0.12
    assert drifted(psi_same, ks_same, th) == []
    assert decide(psi_same, ks_same, 300, None, 1.0, th)[0] == "keep"

    psi_new, ks_new = feature_drift(reference, shifted, names)
    assert psi_new["level"] > 0.25 and ks_new["level"] > 0.25 and psi_new["spread"] > 0.25
    assert sorted(drifted(psi_new, ks_new, th)) == ["level", "spread"]
    decision, reasons = decide(psi_new, ks_new, 300, None, 1.0, th)
    assert decision == "retrain" and reasons[0].startswith("drift: 2 feature(s)") and "steady" not in reasons[0]
    # the same shift over too few new rows is not judged yet
    assert decide(psi_new, ks_new, 20, None, 1.0, th) == ("keep", [
        "age 1.0 days <= 30", "drift: 20 new row(s) since training, 50 needed to judge",
        "rolling IC: not enough new labelled rows yet"])  # fmt: skip


def test_decay_and_age_decide_with_their_reasons() -> None:
    th = Thresholds(ic=0.02, max_age_days=30)
    assert decide({}, {}, 0, -0.05, 3.0, th) == ("retrain", ["decay: rolling IC -0.050 < 0.02 over the last 60 bars"])
    assert decide({}, {}, 0, None, 31.5, th) == ("retrain", ["age: model is 31.5 days old (max 30)"])
    decision, reasons = decide({}, {}, 0, 0.05, 3.0, th)
    assert decision == "keep" and "rolling IC 0.050 >= 0.02" in reasons


def test_rolling_ic_uses_the_last_window_of_times() -> None:
    t = np.repeat(np.arange(100), 2)
    y = np.where(t < 80, -1.0, 1.0) * np.tile([1.0, -1.0], 100)  # early rows anti-, late rows well predicted
    pred = np.tile([1.0, -1.0], 100)
    assert rolling_ic(pred, y, t, window=20, min_samples=10) == pytest.approx(1.0)
    assert rolling_ic(pred, y, t, window=100, min_samples=10) == pytest.approx(ic(pred, y))
    assert rolling_ic(pred, y, t, window=3, min_samples=10) is None  # 6 rows are not enough


# ------------------------------------------------------------------------------------ retraining end to end

TRAIN_END = datetime(2022, 6, 30, 23, tzinfo=UTC)


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return synth_bars(["AAPL", "MSFT", "JPM"], "2021-01-01", "2022-12-31", "1Day", seed=8)


@pytest.fixture(scope="module")
def trained(bars: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    cfg = TrainConfig(folds=3, params={"num_boost_round": 30, "min_data_in_leaf": 20})
    train(bars.filter(pl.col("timestamp") <= TRAIN_END), cfg, "m", root, now=CREATED)
    return root


@pytest.fixture
def models(trained: Path, tmp_path: Path) -> Path:
    shutil.copytree(trained, tmp_path / "models")
    return tmp_path / "models"


def _decisions(models: Path) -> list[dict[str, object]]:
    recs = read_jsonl_records(models / "m" / "decisions.jsonl")
    assert all(set(r) >= DECISION_FIELDS for r in recs)
    return recs


def _amplified(bars: pl.DataFrame, after: datetime, k: float) -> pl.DataFrame:
    """After `after`, every price moves k times as far (in log terms) from its level at `after`: a regime
    of k-times the volatility."""
    p0 = bars.filter(pl.col("timestamp") <= after).group_by("symbol").agg(pl.col("close").last().alias("p0"))
    later = pl.col("timestamp") > after
    return bars.join(p0, on="symbol").with_columns(
        pl.when(later).then(pl.col("p0") * (pl.col(c) / pl.col("p0")) ** k).otherwise(pl.col(c)).alias(c)
        for c in ("open", "high", "low", "close")
    ).drop("p0").sort("timestamp", "symbol")


def test_drift_triggers_a_retrain_that_is_recorded_and_keeps_the_old_version(bars: pl.DataFrame, models: Path) -> None:
    old = registry.latest_version(models, "m")
    rec = retrain(_amplified(bars, TRAIN_END, 4.0), models, "m", now=SOON)
    assert rec["decision"] == "retrain" and rec["model_version"] == old
    assert any(r.startswith("drift:") for r in rec["reasons"]), rec["reasons"]
    assert set(rec["psi"]) == set(FEATURES) == set(rec["ks"])
    assert rec["psi"]["vol_20"] > 0.25 and rec["n_recent"] == 60 * 3
    assert rec["recent_end"] == "2022-12-30T05:00:00Z" and rec["model_age_days"] == pytest.approx(1 / 24, abs=1e-3)
    new = rec["new_version"]
    assert new and new != old and registry.versions(models, "m") == [old, new]
    assert registry.latest_version(models, "m") == new
    assert (models / "m" / old / "model.txt").exists()
    assert registry.metadata(models, "m", new)["train_end"] == "2022-12-30T05:00:00Z"
    assert _decisions(models) == [{**rec, "_line": 1}]


def test_decay_triggers_a_retrain_with_the_rolling_ic_recorded(bars: pl.DataFrame, models: Path) -> None:
    th = Thresholds(ic=0.99, psi=1e9, ks=1.0, ic_window=40)  # drift cannot fire; any real IC is below 0.99
    rec = retrain(bars, models, "m", thresholds=th, now=SOON)
    assert rec["decision"] == "retrain" and rec["reasons"][0].startswith("decay: rolling IC")
    # the rolling IC is the old model's IC on the labelled rows of the last 40 bars after its training data
    m = Market.from_bars(bars)
    smp = samples(m, 5)
    first_new = int(np.searchsorted(m.times, TRAIN_END.timestamp() * 1e6))
    new = smp.take(np.flatnonzero(smp.t >= first_new))
    last = new.take(np.flatnonzero(new.t >= np.unique(new.t)[-40]))
    model = registry.load(models, "m", rec["model_version"], FEATURES)
    assert rec["rolling_ic"] == pytest.approx(ic(model.predict(last.X), last.y), abs=1e-6)
    assert rec["n_ic"] == len(new)


def test_age_triggers_a_retrain_and_a_young_model_without_new_data_is_kept(bars: pl.DataFrame, models: Path) -> None:
    seen = bars.filter(pl.col("timestamp") <= TRAIN_END)
    kept = retrain(seen, models, "m", now=SOON)
    assert kept["decision"] == "keep" and kept["new_version"] is None and kept["n_recent"] == 0
    assert len(registry.versions(models, "m")) == 1
    aged = retrain(seen, models, "m", now=CREATED + timedelta(days=31))
    assert aged["decision"] == "retrain" and aged["reasons"] == ["age: model is 31.0 days old (max 30)"]
    forced = retrain(seen, models, "m", if_needed=False, now=CREATED + timedelta(days=31, hours=1))
    assert forced["decision"] == "retrain" and forced["reasons"][0] == "requested (without --if-needed)"
    assert forced["model_version"] == aged["new_version"]
    assert len(registry.versions(models, "m")) == 3
    assert [r["decision"] for r in _decisions(models)] == ["keep", "retrain", "retrain"]


def test_a_model_on_other_features_is_retrained(bars: pl.DataFrame, models: Path) -> None:
    old = registry.latest_version(models, "m")
    path = models / "m" / old / "metadata.json"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, "features": meta["features"][:-1], "feature_version": 0}))
    rec = retrain(bars, models, "m", now=SOON)
    assert rec["reasons"] == [f"features changed (feature_version 0 -> {FEATURE_VERSION})"]
    assert rec["new_version"] and registry.metadata(models, "m")["features"] == list(FEATURES)


def test_the_first_retrain_of_a_new_name_trains_it(bars: pl.DataFrame, tmp_path: Path) -> None:
    cfg = TrainConfig(model_type="ridge", folds=3)
    rec = retrain(bars, tmp_path, "fresh", first_config=cfg, now=SOON)
    assert rec["decision"] == "retrain" and rec["reasons"] == ["no model yet"] and rec["model_version"] is None
    assert registry.metadata(tmp_path, "fresh")["model_type"] == "ridge"
    assert (tmp_path / "fresh" / "decisions.jsonl").read_text().count("\n") == 1


def test_a_retrain_keeps_the_models_symbols_and_start_and_its_bar_frequency(bars: pl.DataFrame, tmp_path: Path
                                                                             ) -> None:  # fmt: skip
    """A model trained on two of the file's symbols from its second month: retrained on those, from then on, as
    the data grows (before: on every symbol of the file from its first bar, its drift scored on symbols it never
    saw); on hourly data, a daily model is refused in one line (before: retrained on them, `latest` then a model
    of another frequency that signals refused)."""
    cfg = TrainConfig(model_type="ridge", folds=3)
    start = datetime(2021, 2, 1, tzinfo=UTC)
    scope = bars.filter(pl.col("symbol").is_in(["AAPL", "MSFT"]) & pl.col("timestamp").is_between(start, TRAIN_END))
    first = train(scope, cfg, "sub", tmp_path, now=CREATED)
    rec = retrain(bars, tmp_path, "sub", if_needed=False, now=SOON)
    meta = registry.metadata(tmp_path, "sub", rec["new_version"])
    assert meta["symbols"] == ["AAPL", "MSFT"] and meta["train_start"] == first.metadata["train_start"]
    assert meta["train_end"] == "2022-12-30T05:00:00Z"  # its window grown with the data
    hourly = synth_bars(["AAPL", "MSFT"], "2022-11-01", "2022-12-30", "1Hour", seed=8)
    with pytest.raises(MarketBossError, match=r"was trained on bars at 252 a year; the data has 1764: features"):
        retrain(hourly, tmp_path, "sub", now=SOON)
    assert registry.latest_version(tmp_path, "sub") == rec["new_version"]
