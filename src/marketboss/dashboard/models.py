"""The model registry as the dashboard reads it, from the file contract alone (ARCHITECTURE.md):

    models/<name>/<version>/metadata.json   name, version, created_at, model_type, features, target, horizon,
                                            params, train_start, train_end, data_sha256, cv, metrics,
                                            feature_importance, library versions
    models/<name>/latest                    optional pointer: a symlink to the version's directory, or a file
                                            holding the version (plain text, or JSON {"version": ...})
    models/<name>/decisions.jsonl           one drift/retraining decision a line: timestamp, decision
                                            (retrain | keep), reasons [...], psi {feature: x}, ks {feature: x},
                                            rolling_ic, and optionally version, thresholds

Without a pointer the newest version by created_at is the latest. cv.per_fold (or cv.folds, when it is a list
rather than the number of folds) holds {fold, mse, ic, rank_ic, hit_rate, ...} per fold; metrics is
{metric: {mean, std}} (any nesting is shown flattened); feature_importance is {kind: {feature: value}} (e.g.
gain or coefficient, and permutation) or a flat {feature: value}. marketboss.ml writes exactly this.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from marketboss.data.io import read_jsonl_records
from marketboss.data.schema import LINE
from marketboss.errors import InputError

METADATA = "metadata.json"
DECISIONS = "decisions.jsonl"
LATEST = "latest"
DECISION_VALUES = ("retrain", "keep")
FOLD_METRICS = ("mse", "ic", "rank_ic", "hit_rate")


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    path: Path  # the version's directory
    metadata: dict[str, Any]

    @property
    def created_at(self) -> str:
        return str(self.metadata.get("created_at") or "")


def model_names(models_dir: Path) -> list[str]:
    """Model directories: those holding at least one <version>/metadata.json."""
    if not models_dir.is_dir():
        return []
    return sorted(d.name for d in models_dir.iterdir() if d.is_dir() and any(d.glob(f"*/{METADATA}")))


def version_dirs(model_dir: Path) -> list[Path]:
    return sorted(p.parent for p in model_dir.glob(f"*/{METADATA}") if p.parent.name != LATEST)


def read_metadata(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(path, f"invalid JSON ({exc.msg})", line=exc.lineno) from None
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror})") from None
    if not isinstance(meta, dict):
        raise InputError(path, "expected a JSON object")
    for field in ("version", "created_at"):
        if field in meta and not isinstance(meta[field], str | int | float):
            raise InputError(path, f"expected a string, got {type(meta[field]).__name__}", field=field)
    return meta


def pointer(model_dir: Path) -> str | None:
    """The version the `latest` pointer names, if there is one."""
    p = model_dir / LATEST
    if p.is_symlink() or p.is_dir():
        return p.resolve().name
    if not p.is_file():
        return None
    text = p.read_text().strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(p, f"invalid JSON ({exc.msg})", line=exc.lineno) from None
        value = obj.get("version") if isinstance(obj, dict) else None
        if value is None:
            raise InputError(p, "expected {\"version\": ...}", field="version")
        return str(value)
    return text or None


def load_versions(model_dir: Path) -> list[ModelVersion]:
    """Every version, newest first (created_at, then version name)."""
    out = []
    for d in version_dirs(model_dir):
        meta = read_metadata(d / METADATA)
        out.append(ModelVersion(model_dir.name, str(meta.get("version", d.name)), d, meta))
    return sorted(out, key=lambda v: (v.created_at, v.version), reverse=True)


def latest(versions: list[ModelVersion], pointed: str | None, model_dir: Path) -> ModelVersion:
    if not versions:
        raise InputError(model_dir, f"no <version>/{METADATA} in this model directory")
    if pointed is None:
        return versions[0]
    for v in versions:
        if pointed in (v.version, v.path.name):
            return v
    raise InputError(model_dir / LATEST, f"points to version '{pointed}', which has no {METADATA}")


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
        recs.append({"fold": r.get("fold", i), **{k: _num(r.get(k)) for k in FOLD_METRICS}})
    return pl.DataFrame(recs, schema={"fold": pl.Int64, **dict.fromkeys(FOLD_METRICS, pl.Float64)}, strict=False)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def importance(meta: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{kind: {feature: value}}; a flat {feature: value} is one kind, "importance"."""
    fi = meta.get("feature_importance")
    if isinstance(fi, list):  # [{"feature": ..., "importance" | "gain" | ...: ...}]
        kinds: dict[str, dict[str, float]] = {}
        for r in fi:
            if isinstance(r, dict) and "feature" in r:
                for k, v in r.items():
                    if k != "feature" and _num(v) is not None:
                        kinds.setdefault(k, {})[str(r["feature"])] = float(v)
        return kinds
    if not isinstance(fi, dict) or not fi:
        return {}
    if all(isinstance(v, dict) for v in fi.values()):
        return {str(k): {str(f): float(x) for f, x in v.items() if _num(x) is not None} for k, v in fi.items()}
    return {"importance": {str(f): float(x) for f, x in fi.items() if _num(x) is not None}}


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


def read_decisions(path: Path) -> list[dict[str, Any]]:
    """Decision records, oldest first; a bad line is an InputError naming it."""
    out = []
    for rec in read_jsonl_records(path):
        line = int(rec.pop(LINE))
        if not isinstance(rec.get("timestamp"), str):
            raise InputError(path, "missing or not a string", line=line, field="timestamp")
        if rec.get("decision") not in DECISION_VALUES:
            raise InputError(path, f"expected one of {', '.join(DECISION_VALUES)}, got {rec.get('decision')!r}",
                             line=line, field="decision")
        reasons = rec.get("reasons", [])
        if not isinstance(reasons, list):
            raise InputError(path, "expected a list of strings", line=line, field="reasons")
        for field in ("psi", "ks"):
            if not isinstance(rec.get(field, {}), dict):
                raise InputError(path, "expected an object {feature: value}", line=line, field=field)
        out.append(rec)
    return sorted(out, key=lambda r: str(r["timestamp"]))


def drift_frame(decision: dict[str, Any]) -> pl.DataFrame:
    """PSI and KS per feature of one decision, most drifted (by PSI) first."""
    psi, ks = decision.get("psi") or {}, decision.get("ks") or {}
    features = sorted(set(psi) | set(ks))
    return pl.DataFrame(
        {"feature": features, "psi": [_num(psi.get(f)) for f in features], "ks": [_num(ks.get(f)) for f in features]},
        schema={"feature": pl.String, "psi": pl.Float64, "ks": pl.Float64},
    ).sort("psi", "feature", descending=[True, False], nulls_last=True)
