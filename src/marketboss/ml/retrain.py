"""Check a model against recent data and retrain it when drift, decay or age say so; record every decision.

Each decision is one line appended (flushed and fsynced) to models/<name>/decisions.jsonl:

    {"timestamp": "...Z", "model": "demo", "decision": "retrain" | "keep", "reasons": ["..."],
     "model_version": "<current or null>", "new_version": "<trained or null>", "psi": {feature: x},
     "ks": {feature: x}, "rolling_ic": x | null, "model_age_days": x | null, "thresholds": {...},
     "recent_start": "...Z" | null, "recent_end": "...Z" | null, "n_recent": n, "n_ic": n}

The recent window is the last `window` bars after the model's training data; n_recent counts its rows,
n_ic the labelled rows after training that the rolling IC could use.

A retrain fits a new version with the current version's training configuration on all the data given;
earlier versions stay where they are. The dashboard reads this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from marketboss.data.io import JsonlAppender, format_ts
from marketboss.data.market import Market
from marketboss.errors import MarketBossError
from marketboss.logging import get_logger
from marketboss.ml import drift, registry
from marketboss.ml.features import FEATURE_VERSION, FEATURES, market_features, samples
from marketboss.ml.registry import LoadedModel
from marketboss.ml.train import TrainConfig, train

log = get_logger(__name__)


@dataclass(frozen=True)
class DriftCheck:
    psi: dict[str, float]
    ks: dict[str, float]
    rolling_ic: float | None
    age_days: float
    recent_start: str | None
    recent_end: str | None
    n_recent: int
    n_ic: int


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def check(model: LoadedModel, market: Market, th: drift.Thresholds, now: datetime) -> DriftCheck:
    """PSI/KS of the last `window` bars after the model's training data against its training rows; IC on
    the labelled rows after its training data."""
    X3 = market_features(market)
    after = int(parse_ts(str(model.metadata["train_end"])).timestamp() * 1_000_000)
    first_new = int(np.searchsorted(market.times, after, side="right"))
    lo = max(first_new, market.n_times - th.window)
    recent = X3[lo:].reshape(-1, X3.shape[2])
    recent = recent[np.isfinite(recent).all(axis=1)]
    psi, ks = drift.feature_drift(model.reference(), recent, model.features) if len(recent) else ({}, {})
    smp = samples(market, model.horizon, features=X3)
    new = smp.take(np.flatnonzero(smp.t >= first_new))
    pred = model.predict(new.X) if len(new) else np.empty(0)
    rolling = drift.rolling_ic(pred, new.y, new.t, th.ic_window, th.min_ic_samples)
    age = (now - parse_ts(str(model.metadata["created_at"]))).total_seconds() / 86400.0
    start, end = (_iso(market.times[lo]), _iso(market.times[-1])) if lo < market.n_times else (None, None)
    return DriftCheck(psi, ks, rolling, age, start, end, int(recent.shape[0]), len(new))


def _scope(bars: pl.DataFrame, meta: dict[str, Any], name: str) -> pl.DataFrame:
    """The bars of the model's own scope, which its drift is checked on and it is retrained on: its symbols, from
    its first training bar on (its window grows with the data). Before, the whole data file: a model trained on
    two symbols from 2020 was checked against, and retrained on, every symbol of the file from its first bar."""
    symbols, start = meta.get("symbols"), meta.get("train_start")
    out = bars
    if isinstance(symbols, list) and symbols:
        out = out.filter(pl.col("symbol").is_in(symbols))
    if isinstance(start, str):
        out = out.filter(pl.col("timestamp") >= parse_ts(start))
    if out.is_empty():
        raise MarketBossError(f"model {name}: the data has no bars of its symbols ({', '.join(symbols or [])}) from "
                              f"its first training bar ({start}) on")  # fmt: skip
    return out


def _iso(us: int | np.integer) -> str:
    return format_ts(datetime.fromtimestamp(int(us) / 1e6, UTC))


def _round(d: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if not np.isfinite(v) else round(float(v), 6)) for k, v in d.items()}


def retrain(
    bars: pl.DataFrame,
    models_dir: Path,
    name: str,
    *,
    if_needed: bool = True,
    thresholds: drift.Thresholds | None = None,
    first_config: TrainConfig | None = None,
    source: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Decide (and retrain when needed, or always without if_needed); returns the record appended to
    models/<name>/decisions.jsonl. A model that does not exist yet is trained with `first_config`."""
    th = thresholds or drift.Thresholds()
    now = now or datetime.now(UTC)
    registry.check_name(name)
    record: dict[str, Any] = {
        "timestamp": format_ts(now), "model": name, "decision": "retrain", "reasons": [], "model_version": None,
        "new_version": None, "psi": {}, "ks": {}, "rolling_ic": None, "model_age_days": None,
        "thresholds": th.model_dump(), "recent_start": None, "recent_end": None, "n_recent": 0, "n_ic": 0,
    }  # fmt: skip
    cfg = first_config or TrainConfig()
    if not registry.versions(models_dir, name):
        record["reasons"] = ["no model yet"]
    else:
        meta = registry.metadata(models_dir, name)
        record["model_version"] = meta["version"]
        cfg = TrainConfig.model_validate(meta.get("train_config") or {})
        bars = _scope(bars, meta, name)
        market = Market.from_bars(bars)
        registry.check_bar_frequency({"name": name, **meta}, market.bars_per_year)
        if meta.get("features") != list(FEATURES) or meta.get("feature_version") != FEATURE_VERSION:
            record["reasons"] = [f"features changed (feature_version {meta.get('feature_version')} -> "
                                 f"{FEATURE_VERSION})"]  # fmt: skip
        else:
            model = registry.load(models_dir, name, meta["version"], FEATURES)
            c = check(model, market, th, now)
            decision, reasons = drift.decide(c.psi, c.ks, c.n_recent, c.rolling_ic, c.age_days, th)
            record |= {
                "decision": decision, "reasons": reasons, "psi": _round(c.psi), "ks": _round(c.ks),
                "rolling_ic": None if c.rolling_ic is None else round(c.rolling_ic, 6),
                "model_age_days": round(c.age_days, 3), "recent_start": c.recent_start, "recent_end": c.recent_end,
                "n_recent": c.n_recent, "n_ic": c.n_ic,
            }  # fmt: skip
            if not if_needed and decision == "keep":
                record["decision"] = "retrain"
                record["reasons"] = ["requested (without --if-needed)", *reasons]
    if record["decision"] == "retrain":
        result = train(bars, cfg, name, models_dir, source=source, now=now)
        record["new_version"] = result.version
    with JsonlAppender(registry.model_dir(models_dir, name) / registry.DECISIONS) as out:
        out.append(record)
    log.info("retrain_decision", model=name, decision=record["decision"], reasons=record["reasons"],
             model_version=record["model_version"], new_version=record["new_version"])  # fmt: skip
    return record
