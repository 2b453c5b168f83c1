"""The model registry on disk (ARCHITECTURE.md):

    models/<name>/<version>/            the model file (model.txt: LightGBM text; model.joblib: ridge),
                                        metadata.json and drift_reference.npz (training feature sample)
    models/<name>/latest                text file holding the latest version string (read also as a symlink to
                                        the version's directory, or JSON {"version": ...}); without it the
                                        newest version by created_at is the latest
    models/<name>/decisions.jsonl       retraining decisions, appended (marketboss.ml.retrain): timestamp,
                                        decision (retrain | keep), reasons [...], psi and ks {feature: x},
                                        rolling_ic

Versions are UTC timestamps ("20261124T041500Z", "-001", "-002" appended on a collision), so sorting the
strings sorts them by time. A version is built in models/<name>/.staging/ and renamed into place whole:
readers (the dashboard, the ml strategy) never see half a version. Earlier versions are never touched.
This module is the one reader of the layout: the CLI, the ml strategy and the dashboard all go through it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from marketboss.data.io import atomic_open, read_jsonl_records
from marketboss.data.schema import LINE
from marketboss.errors import InputError, MarketBossError
from marketboss.ml import estimators
from marketboss.ml.estimators import Estimator

METADATA = "metadata.json"
LATEST = "latest"
DECISIONS = "decisions.jsonl"
MODEL_DIGEST = "model_sha256"
REFERENCE = "drift_reference.npz"
STAGING = ".staging"
DECISION_VALUES = ("retrain", "keep")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_bar_frequency(meta: dict[str, Any], bars_per_year: float) -> None:
    """A model is used (its signals, its drift check, its retraining) only on bars of the frequency it was trained
    on, within a factor of two: its features (returns over N bars, volatility) mean other things at another."""
    trained = float(meta.get("bars_per_year") or bars_per_year)
    if not 0.5 <= bars_per_year / trained <= 2.0:
        raise MarketBossError(f"model {meta.get('name')} {meta.get('version')} was trained on bars at {trained:g} a "
                              f"year; the data has {bars_per_year:g}: features mean different things at another bar "
                              "frequency")  # fmt: skip


def check_name(name: str) -> str:
    if not _NAME.match(name) or name == LATEST:
        raise MarketBossError(f"model name '{name}' must be letters, digits, '.', '_' or '-' (at most 64)")
    return name


def model_dir(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / check_name(name)


def version_dirs(model_dir: Path) -> list[Path]:
    """Directories of complete versions (holding metadata.json), by name; not staging, not a `latest` link."""
    return sorted(
        p.parent for p in Path(model_dir).glob(f"*/{METADATA}") if not p.parent.name.startswith(".")
        and p.parent.name != LATEST
    )


def model_names(models_dir: Path) -> list[str]:
    """Models with at least one complete version."""
    root = Path(models_dir)
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if not d.name.startswith(".") and version_dirs(d))


def versions(models_dir: Path, name: str) -> list[str]:
    """Complete versions, oldest first."""
    return [d.name for d in version_dirs(model_dir(models_dir, name))]


def resolve_name(models_dir: Path, name: str | None) -> str:
    """The given name, or the only model there is; a one-line error says what exists otherwise."""
    names = model_names(models_dir)
    if name is not None:
        if name not in names:
            have = f"models there: {', '.join(names)}" if names else "no models there yet"
            raise MarketBossError(f"no model '{name}' in {models_dir} ({have}): train it with marketboss train")
        return name
    if len(names) == 1:
        return names[0]
    if not names:
        raise MarketBossError(f"no model in {models_dir}: train one with `marketboss train`")
    raise MarketBossError(f"{models_dir} holds several models ({', '.join(names)}): choose one by name (--name NAME; "
                          "`models show NAME`; the ml strategy's --param model=NAME; in schedule.toml, [retrain] "
                          "model = \"NAME\")")


def read_metadata(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"invalid JSON ({exc.msg})", line=exc.lineno) from None
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror})") from None
    if not isinstance(meta, dict):
        raise InputError(path, "expected a JSON object")
    for field in ("version", "created_at"):
        if field in meta and not isinstance(meta[field], str | int | float):
            raise InputError(path, f"expected a string, got {type(meta[field]).__name__}", field=field)
    for field, (kind, ok) in _TYPED.items():  # what the commands read of it (a field may be absent: older versions)
        v = meta.get(field)
        if field in meta and (isinstance(v, bool) or not ok(v)):
            raise InputError(path, f"expected {kind}, got {json.dumps(v)[:40]}", field=field)
    return meta


def _strings(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


#: The metadata fields the commands read, each with what it must be: a damaged one was an unexpected ValueError
#: in retrain (horizon "five"), or used as it was.
_TYPED: dict[str, tuple[str, Any]] = {
    "horizon": ("a whole number of bars >= 1", lambda v: isinstance(v, int) and v >= 1),
    "feature_version": ("a whole number", lambda v: isinstance(v, int)),
    "bars_per_year": ("a number > 0", lambda v: isinstance(v, int | float) and v > 0),
    "features": ("a list of feature names", _strings),
    "symbols": ("a list of symbols", _strings),
    **{f: ("a string", lambda v: isinstance(v, str)) for f in ("model_type", "model_file", MODEL_DIGEST,
                                                                "train_start", "train_end", "train_last_sample")},
    **{f: ("an object", lambda v: isinstance(v, dict)) for f in ("params", "train_config")},
}


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    path: Path  # the version's directory
    metadata: dict[str, Any]

    @property
    def created_at(self) -> str:
        return str(self.metadata.get("created_at") or "")


def load_versions(model_dir: Path) -> list[ModelVersion]:
    """Every version with its metadata, newest first (created_at, then version name)."""
    out = []
    for d in version_dirs(model_dir):
        meta = read_metadata(d / METADATA)
        out.append(ModelVersion(model_dir.name, str(meta.get("version", d.name)), d, meta))
    return sorted(out, key=lambda v: (v.created_at, v.version), reverse=True)


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


def latest(versions: list[ModelVersion], pointed: str | None, model_dir: Path) -> ModelVersion:
    """The version the pointer names, else the newest (`versions` as load_versions orders them)."""
    if not versions:
        raise InputError(model_dir, f"no <version>/{METADATA} in this model directory")
    if pointed is None:
        return versions[0]
    for v in versions:
        if pointed in (v.version, v.path.name):
            return v
    raise InputError(model_dir / LATEST, f"points to version '{pointed}', which has no {METADATA}")


def latest_version(models_dir: Path, name: str) -> str:
    """The latest version's directory name: the `latest` pointer's, else the newest version."""
    d = model_dir(models_dir, name)
    if not version_dirs(d):
        raise MarketBossError(f"model '{name}' has no versions in {d}")
    return latest(load_versions(d), pointer(d), d).path.name


def read_decisions(path: Path) -> list[dict[str, Any]]:
    """Decision records, oldest first; a bad line is an InputError naming it."""
    out = []
    for rec in read_jsonl_records(path):
        line = int(rec.pop(LINE))
        if not isinstance(rec.get("timestamp"), str):
            raise InputError(path, "missing or not a string", line=line, field="timestamp")
        if rec.get("decision") not in DECISION_VALUES:
            raise InputError(path, f"expected one of {', '.join(DECISION_VALUES)}, got {rec.get('decision')!r}",
                             line=line, field="decision")  # fmt: skip
        reasons = rec.get("reasons", [])
        if not isinstance(reasons, list):
            raise InputError(path, "expected a list of strings", line=line, field="reasons")
        for field in ("psi", "ks"):
            if not isinstance(rec.get(field, {}), dict):
                raise InputError(path, "expected an object {feature: value}", line=line, field=field)
        out.append(rec)
    return sorted(out, key=lambda r: str(r["timestamp"]))


def metadata(models_dir: Path, name: str, version: str | None = None) -> dict[str, Any]:
    v = latest_version(models_dir, name) if version in (None, LATEST) else str(version)
    path = model_dir(models_dir, name) / v / METADATA
    if not path.parent.is_dir():
        have = ", ".join(versions(models_dir, name)) or "none"
        raise MarketBossError(f"model '{name}' has no version '{v}' (versions: {have})")
    return read_metadata(path)


def file_digest(path: Path) -> str:
    """The model file's sha256, recorded at training and checked before loading: LightGBM aborts the process on a
    damaged model file (a truncated one: "terminate called", no error to catch)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _version_string(now: datetime, attempt: int) -> str:
    base = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return base if attempt == 0 else f"{base}-{attempt:03d}"


def _seal(directory: Path) -> None:
    """Readable by all like any other file written here (temporary files are created private), and on disk."""
    os.chmod(directory, 0o755)
    for p in directory.iterdir():
        os.chmod(p, 0o644)
        with open(p, "rb") as fh:
            os.fsync(fh.fileno())


def save(
    models_dir: Path, name: str, estimator: Estimator, meta: dict[str, Any], reference: np.ndarray, now: datetime
) -> tuple[str, Path, dict[str, Any]]:
    """Write a new version (model file, drift reference, metadata with its version) and point `latest` at
    it: (version, its directory, the metadata written)."""
    d = model_dir(models_dir, name)
    staging_root = d / STAGING
    staging_root.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=staging_root))
    try:
        model_file = estimator.save(stage)
        digest = file_digest(stage / model_file)
        np.savez_compressed(stage / REFERENCE, X=reference)
        for attempt in range(1000):
            version = _version_string(now, attempt)
            if (d / version).exists():
                continue
            full = {"name": name, "version": version, **meta, "model_file": model_file, MODEL_DIGEST: digest}
            with atomic_open(stage / METADATA, "wb") as fh:
                fh.write(json.dumps(full, indent=2, allow_nan=False).encode() + b"\n")
            _seal(stage)
            try:
                os.rename(stage, d / version)
            except OSError:  # another process took this version in the meantime
                continue
            with atomic_open(d / LATEST, "wb") as fh:
                os.fchmod(fh.fileno(), 0o644)
                fh.write(version.encode() + b"\n")
            return version, d / version, full
        raise MarketBossError(f"could not find a free version name in {d}")
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        with contextlib.suppress(OSError):  # empty once no other save is staging
            staging_root.rmdir()


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    path: Path
    metadata: dict[str, Any]
    estimator: estimators.LightGBM | estimators.Ridge

    @property
    def features(self) -> list[str]:
        return list(self.metadata["features"])

    @property
    def horizon(self) -> int:
        return int(self.metadata["horizon"])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.predict(X)

    def reference(self) -> np.ndarray:
        """The training rows' features kept for drift checks."""
        path = self.path / REFERENCE
        if not path.exists():
            raise InputError(path, "file not found (the drift reference is written by marketboss train)")
        with np.load(path) as z:
            return np.asarray(z["X"])


def load(models_dir: Path, name: str, version: str | None, features: Sequence[str], threads: int = 1,
         feature_version: int | None = None) -> LoadedModel:  # fmt: skip
    """A model version, refused unless it was trained on exactly `features` (names and order) and, given, of
    `feature_version` (their definitions: a changed one keeps its name)."""
    meta = metadata(models_dir, name, version)
    v = str(meta.get("version") or version)
    path = model_dir(models_dir, name) / v
    where = path / METADATA
    trained = meta.get("features")
    if not isinstance(trained, list):
        raise InputError(where, "missing or not a list", field="features")
    if trained != list(features):
        missing = [f for f in trained if f not in features]
        extra = [f for f in features if f not in trained]
        detail = f"; the data lacks {', '.join(missing)}" if missing else ""
        detail += f"; the data adds {', '.join(extra)}" if extra else ""
        raise MarketBossError(
            f"model {name} {v} was trained on features {', '.join(trained)} (feature_version "
            f"{meta.get('feature_version')}), which do not match the data's features{detail or ' (order differs)'}: "
            f"retrain it (marketboss retrain --name {name})"
        )
    if feature_version is not None and meta.get("feature_version") != feature_version:
        raise MarketBossError(f"model {name} {v} was trained on features of feature_version "
                              f"{meta.get('feature_version')}, whose definitions have changed since (now "
                              f"{feature_version}): retrain it (marketboss retrain --name {name})")  # fmt: skip
    model_type = meta.get("model_type")
    if model_type not in estimators.MODEL_FILES:
        raise InputError(where, f"unknown model type {model_type!r}", field="model_type")
    model_path = path / str(meta.get("model_file") or estimators.MODEL_FILES[model_type])
    if not model_path.exists():
        raise InputError(model_path, "file not found")
    recorded = meta.get(MODEL_DIGEST)  # (versions saved before it was recorded have none)
    if recorded is not None and recorded != file_digest(model_path):
        raise InputError(model_path, f"not the file trained (its sha256 differs from {METADATA}'s {MODEL_DIGEST}): "
                                     f"damaged or edited; retrain it (marketboss retrain --name {name})")  # fmt: skip
    est = estimators.load(model_type, model_path, threads)
    if est.features != trained:
        raise InputError(model_path, f"the model's features {est.features} differ from {METADATA}'s", field="features")
    return LoadedModel(name, v, path, meta, est)
