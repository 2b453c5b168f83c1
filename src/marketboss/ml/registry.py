"""The model registry on disk (ARCHITECTURE.md):

    models/<name>/<version>/            the model file (model.txt: LightGBM text; model.joblib: ridge),
                                        metadata.json and drift_reference.npz (training feature sample)
    models/<name>/latest                text file holding the latest version string
    models/<name>/decisions.jsonl       retraining decisions, appended (marketboss.ml.retrain)

Versions are UTC timestamps ("20261124T041500Z", "-001", "-002" appended on a collision), so sorting the
strings sorts them by time. A version is built in models/<name>/.staging/ and renamed into place whole:
readers (the dashboard, the ml strategy) never see half a version. Earlier versions are never touched.
"""

from __future__ import annotations

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

from marketboss.data.io import atomic_open
from marketboss.errors import InputError, MarketBossError
from marketboss.ml import estimators
from marketboss.ml.estimators import Estimator

METADATA = "metadata.json"
LATEST = "latest"
DECISIONS = "decisions.jsonl"
REFERENCE = "drift_reference.npz"
STAGING = ".staging"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_name(name: str) -> str:
    if not _NAME.match(name) or name == LATEST:
        raise MarketBossError(f"model name '{name}' must be letters, digits, '.', '_' or '-' (at most 64)")
    return name


def model_dir(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / check_name(name)


def model_names(models_dir: Path) -> list[str]:
    root = Path(models_dir)
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if not d.name.startswith(".") and versions(root, d.name))


def versions(models_dir: Path, name: str) -> list[str]:
    """Complete versions, oldest first."""
    d = model_dir(models_dir, name)
    if not d.is_dir():
        return []
    return sorted(p.parent.name for p in d.glob(f"*/{METADATA}") if not p.parent.name.startswith("."))


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
    raise MarketBossError(f"{models_dir} holds several models ({', '.join(names)}): choose one by name")


def latest_version(models_dir: Path, name: str) -> str:
    """The version the `latest` pointer names (the newest version when the pointer is missing)."""
    d = model_dir(models_dir, name)
    have = versions(models_dir, name)
    pointer = d / LATEST
    if pointer.is_file():
        v = pointer.read_text().strip()
        if v not in have:
            raise InputError(pointer, f"points to version '{v}', which has no {METADATA}")
        return v
    if not have:
        raise MarketBossError(f"model '{name}' has no versions in {d}")
    return have[-1]


def read_metadata(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"invalid JSON ({exc.msg})", line=exc.lineno) from None
    if not isinstance(meta, dict):
        raise InputError(path, "expected a JSON object")
    return meta


def metadata(models_dir: Path, name: str, version: str | None = None) -> dict[str, Any]:
    v = latest_version(models_dir, name) if version in (None, LATEST) else str(version)
    path = model_dir(models_dir, name) / v / METADATA
    if not path.parent.is_dir():
        have = ", ".join(versions(models_dir, name)) or "none"
        raise MarketBossError(f"model '{name}' has no version '{v}' (versions: {have})")
    return read_metadata(path)


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
        np.savez_compressed(stage / REFERENCE, X=reference)
        for attempt in range(1000):
            version = _version_string(now, attempt)
            if (d / version).exists():
                continue
            full = {"name": name, "version": version, **meta, "model_file": model_file}
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


def load(models_dir: Path, name: str, version: str | None, features: Sequence[str], threads: int = 1) -> LoadedModel:
    """A model version, refused unless it was trained on exactly `features` (names and order)."""
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
    model_type = meta.get("model_type")
    if model_type not in estimators.MODEL_FILES:
        raise InputError(where, f"unknown model type {model_type!r}", field="model_type")
    model_path = path / str(meta.get("model_file") or estimators.MODEL_FILES[model_type])
    if not model_path.exists():
        raise InputError(model_path, "file not found")
    est = estimators.load(model_type, model_path, threads)
    if est.features != trained:
        raise InputError(model_path, f"the model's features {est.features} differ from {METADATA}'s", field="features")
    return LoadedModel(name, v, path, meta, est)
