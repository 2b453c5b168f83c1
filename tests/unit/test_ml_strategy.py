"""The `ml` strategy: forecasts into exposures by threshold or rank, out of sample by default, no look-ahead,
and usable from `signals generate` and `backtest` like every other strategy."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketboss.data.io import write_bars
from marketboss.data.market import Market
from marketboss.data.synth import synth_bars
from marketboss.errors import MarketBossError
from marketboss.ml.train import TrainConfig, train
from marketboss.signals import read_signals_frame
from marketboss.strategies import create, strategies
from tests.unit.cli_app import cli

TRAIN_END = datetime(2022, 6, 30, 23, tzinfo=UTC)


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return synth_bars(["AAPL", "MSFT", "JPM", "XOM"], "2021-01-01", "2022-12-31", "1Day", seed=9)


@pytest.fixture(scope="module")
def models(bars: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    cfg = TrainConfig(folds=3, params={"num_boost_round": 30, "min_data_in_leaf": 20})
    train(bars.filter(pl.col("timestamp") <= TRAIN_END), cfg, "demo", root)
    return root


def _ml(models: Path, *pairs: str) -> object:
    return create("ml", [f"models_dir={models}", *pairs])


def test_ml_is_registered_and_a_missing_model_is_one_line(models: Path, tmp_path: Path) -> None:
    assert "ml" in strategies()
    with pytest.raises(MarketBossError, match=r"no model 'nope' in .* \(models there: demo\)"):
        create("ml", [f"models_dir={models}", "model=nope"])
    with pytest.raises(MarketBossError, match=r"no model in .*: train one with `marketboss train`"):
        create("ml", [f"models_dir={tmp_path}"])
    with pytest.raises(MarketBossError, match="invalid parameter mode='vote'"):
        create("ml", [f"models_dir={models}", "mode=vote"])


def test_threshold_mode_follows_the_forecast_and_trades_only_out_of_sample(models: Path, bars: pl.DataFrame) -> None:
    m = Market.from_bars(bars)
    strat = _ml(models, "threshold=0.002", "long_only=false")
    pred = strat.forecasts(m)  # type: ignore[attr-defined]
    e = strat.exposures(m)  # type: ignore[attr-defined]
    last_trained = m.times[m.times <= TRAIN_END.timestamp() * 1e6].max()
    oos = m.times >= last_trained  # from the last training bar on: its label's returns all lie later
    assert np.isnan(pred[~oos]).all() and np.isfinite(pred[oos]).all()
    assert np.array_equal(np.isnan(e), np.isnan(pred))
    ok = np.isfinite(pred)
    assert np.array_equal(e[ok], np.where(pred[ok] > 0.002, 1.0, np.where(pred[ok] < -0.002, -1.0, 0.0)))
    assert {-1.0, 0.0, 1.0} <= set(np.unique(e[ok]))
    sig = strat.signals(m)  # type: ignore[attr-defined]
    assert sig.height > 0 and (sig["timestamp"].dt.epoch("us") >= last_trained).all()
    everything = _ml(models, "out_of_sample=false").forecasts(m)  # type: ignore[attr-defined]
    assert np.isfinite(everything[60:]).all()  # in-sample too once features are warm


def test_rank_mode_longs_the_top_and_shorts_the_bottom(models: Path, bars: pl.DataFrame) -> None:
    m = Market.from_bars(bars)
    strat = _ml(models, "mode=rank", "top=1", "long_only=false")
    pred, e = strat.forecasts(m), strat.exposures(m)  # type: ignore[attr-defined]
    rows = np.flatnonzero(np.isfinite(pred).all(axis=1))
    assert rows.shape[0] > 50
    for t in rows:
        assert e[t, np.argmax(pred[t])] == 1.0 and e[t, np.argmin(pred[t])] == -1.0
        assert (e[t] == 1.0).sum() == 1 and (e[t] == -1.0).sum() == 1 and (e[t] == 0.0).sum() == 2


@settings(max_examples=10, deadline=None)
@given(cut=st.floats(min_value=0.1, max_value=0.9), seed=st.integers(0, 2**32 - 1))
def test_the_ml_strategy_never_looks_ahead(models: Path, bars: pl.DataFrame, cut: float, seed: int) -> None:
    """Changing every bar after t leaves every signal up to t unchanged (in- and out-of-sample)."""
    strat = _ml(models, "out_of_sample=false", "long_only=false", "threshold=0.001")
    times = bars["timestamp"].unique().sort()
    t = times[int(cut * (len(times) - 1))]
    factor = pl.Series(np.exp(np.random.default_rng(seed).normal(0, 0.1, bars.height)))
    changed = bars.with_columns(
        pl.when(pl.col("timestamp") > t).then(pl.col(c) * factor).otherwise(pl.col(c)).alias(c)
        for c in ("open", "high", "low", "close")
    )
    original = strat.signals(Market.from_bars(bars))  # type: ignore[attr-defined]
    after = strat.signals(Market.from_bars(changed))  # type: ignore[attr-defined]
    assert after.filter(pl.col("timestamp") <= t).equals(original.filter(pl.col("timestamp") <= t))
    assert not after.equals(original)


def test_data_the_model_cannot_trade_is_refused(models: Path, bars: pl.DataFrame) -> None:
    early = Market.from_bars(bars.filter(pl.col("timestamp") < datetime(2022, 3, 1, tzinfo=UTC)))
    with pytest.raises(MarketBossError, match="no bar from then on to trade out of sample"):
        _ml(models).exposures(early)  # type: ignore[attr-defined]
    hourly = Market.from_bars(synth_bars(["AAPL"], "2022-07-01", "2022-07-29", "1Hour", seed=1))
    with pytest.raises(MarketBossError, match="trained on bars at 252 a year; the data has 1764"):
        _ml(models).exposures(hourly)  # type: ignore[attr-defined]


def test_data_ending_at_the_models_last_bar_trades_that_bar_and_says_so(models: Path, bars: pl.DataFrame) -> None:
    """The scheduler's day: a model retrained up to the day's bar trades that bar alone out of sample, and its
    log says so (a user who trained without --end got 0 signals without a word)."""
    import io

    from marketboss.logging import configure

    upto = Market.from_bars(bars.filter(pl.col("timestamp") <= TRAIN_END))
    out = io.StringIO()
    configure("info", stream=out, fmt="json")
    try:
        e = _ml(models).exposures(upto)  # type: ignore[attr-defined]
    finally:
        configure("warning")
    assert np.isnan(e[:-1]).all() and not np.isnan(e[-1]).all()  # the last bar alone
    assert '"event": "ml_trades_its_last_bar_only"' in out.getvalue() and "earlier --end" in out.getvalue()


def test_signals_generate_and_backtest_with_the_ml_strategy(
    models: Path, bars: pl.DataFrame, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(models, workdir / "models")  # the default models dir
    write_bars(bars, workdir / "data" / "market_data.jsonl")
    assert cli("signals", "generate", "--strategy", "ml", "--param", "model=demo", "--output", "data/ml.jsonl") == 0
    sig = read_signals_frame(workdir / "data" / "ml.jsonl")
    assert sig.height > 0 and set(sig["strategy"]) == {"ml"} and sig["target_weight"].is_not_null().all()
    assert cli("backtest", "--signals", "data/ml.jsonl", "--output-dir", "runs/ml") == 0
    assert cli("backtest", "--strategy", "ml", "--output-dir", "runs/ml2") == 0  # the only model: no name needed
    metrics = [json.loads((workdir / "runs" / r / "metrics.json").read_text()) for r in ("ml", "ml2")]
    assert metrics[0]["n_fills"] > 0 and metrics[0]["final_equity"] == metrics[1]["final_equity"]
    assert "(demo 2" in capsys.readouterr().out  # the model version used is shown
    assert cli("runs", "compare", "runs/ml", "runs/ml2") == 0


def test_a_damaged_model_file_is_one_line_not_a_crash(
    models: Path, bars: pl.DataFrame, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """LightGBM aborts the whole process on a truncated model file ("terminate called"): the sha256 recorded at
    training is checked first, and the file named."""
    shutil.copytree(models, workdir / "models")
    write_bars(bars, workdir / "data" / "market_data.jsonl")
    (model_file,) = (workdir / "models" / "demo").glob("*/model.txt")
    meta = json.loads((model_file.parent / "metadata.json").read_text())
    assert len(meta["model_sha256"]) == 64
    text = model_file.read_bytes()
    model_file.write_bytes(text[: len(text) // 2])
    assert cli("signals", "generate", "--strategy", "ml", "--output", "data/ml.jsonl") == 2  # bad input
    err = capsys.readouterr().err.strip()
    assert f"{model_file.relative_to(workdir)}: not the file trained" in err and len(err.splitlines()) == 1, err
    assert not (workdir / "data" / "ml.jsonl").exists()


@pytest.mark.parametrize(("field", "value", "said"), [
    ("horizon", "five", "expected a whole number of bars >= 1"),
    ("features", "ret_1", "expected a list of feature names"),
    ("bars_per_year", None, "expected a number > 0"),
])  # fmt: skip
def test_a_damaged_metadata_field_is_one_line_naming_it(models: Path, tmp_path: Path, field: str, value: object,
                                                        said: str) -> None:  # fmt: skip
    """retrain said "unexpected ValueError: invalid literal for int()" of a horizon "five"; ml signals used it."""
    root = tmp_path / "models"
    shutil.copytree(models, root)
    (meta_path,) = root.glob("demo/*/metadata.json")
    meta = json.loads(meta_path.read_text())
    meta[field] = value
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(MarketBossError, match=rf"metadata\.json: field '{field}': {said}"):
        create("ml", [f"models_dir={root}"])
