"""The tables the Models section shows from a version's metadata and a drift decision (read by
marketboss.ml.registry, the one reader of models/): cv.per_fold (or cv.folds, when it is a list rather than the
number of folds) holds {fold, mse, ic, rank_ic, hit_rate, ...} per fold; metrics is {metric: {mean, std}} (any
nesting is shown flattened); feature_importance is {kind: {feature: value}} (e.g. gain or coefficient, and
permutation) or a flat {feature: value}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from marketboss.errors import InputError

FOLD_METRICS = ("mse", "ic", "rank_ic", "hit_rate")


def folds_frame(meta: dict[str, Any], source: Path) -> pl.DataFrame:
    """Per-fold cross-validation results as a table (empty when the metadata has none)."""
    cv = meta.get("cv")
    if not isinstance(cv, dict):
        return pl.DataFrame()
    rows = cv.get("folds") if isinstance(cv.get("folds"), list) else cv.get("per_fold")
    if not isinstance(rows, list) or not rows:
        return pl.DataFrame()
    recs = []
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise InputError(source, f"cv fold {i} is not an object", field="cv.folds")
        recs.append({"fold": r.get("fold", i), **{k: number(r.get(k)) for k in FOLD_METRICS}})
    return pl.DataFrame(recs, schema={"fold": pl.Int64, **dict.fromkeys(FOLD_METRICS, pl.Float64)}, strict=False)


def number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def importance(meta: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{kind: {feature: value}}; a flat {feature: value} is one kind, "importance"."""
    fi = meta.get("feature_importance")
    if isinstance(fi, list):  # [{"feature": ..., "importance" | "gain" | ...: ...}]
        kinds: dict[str, dict[str, float]] = {}
        for r in fi:
            if isinstance(r, dict) and "feature" in r:
                for k, v in r.items():
                    if k != "feature" and number(v) is not None:
                        kinds.setdefault(k, {})[str(r["feature"])] = float(v)
        return kinds
    if not isinstance(fi, dict) or not fi:
        return {}
    if all(isinstance(v, dict) for v in fi.values()):
        return {str(k): {str(f): float(x) for f, x in v.items() if number(x) is not None} for k, v in fi.items()}
    return {"importance": {str(f): float(x) for f, x in fi.items() if number(x) is not None}}


def flat_metrics(meta: dict[str, Any]) -> dict[str, Any]:
    """metadata.metrics with nested objects flattened to "a.b" keys, for one table."""
    out: dict[str, Any] = {}

    def walk(prefix: str, obj: Any) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = obj

    walk("", meta.get("metrics") or {})
    return out


def drift_frame(decision: dict[str, Any]) -> pl.DataFrame:
    """PSI and KS per feature of one decision, most drifted (by PSI) first."""
    psi, ks = decision.get("psi") or {}, decision.get("ks") or {}
    features = sorted(set(psi) | set(ks))
    return pl.DataFrame(
        {"feature": features, "psi": [number(psi.get(f)) for f in features],
         "ks": [number(ks.get(f)) for f in features]},
        schema={"feature": pl.String, "psi": pl.Float64, "ks": pl.Float64},
    ).sort("psi", "feature", descending=[True, False], nulls_last=True)
