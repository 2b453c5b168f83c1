"""The dashboard's building blocks: min/max downsampling, the file-identity cache, the model-registry reader."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from marketboss.backtest.runs import load_run
from marketboss.dashboard import loaders, models
from marketboss.dashboard.cache import file_key, memoize
from marketboss.dashboard.downsample import minmax_indices
from marketboss.errors import InputError
from marketboss.ml import registry
from marketboss.signals import Signal, write_signals
from tests.dashboard.demo import DECISIONS, Demo, metadata

# ---------------------------------------------------------------------------------------------- downsample


@settings(max_examples=60, deadline=None)
@given(
    y=arrays(np.float64, st.integers(1, 3000), elements=st.floats(-1e6, 1e6) | st.just(float("nan"))),
    max_points=st.integers(4, 400),
)
def test_minmax_keeps_ends_and_extremes_within_budget(y: np.ndarray, max_points: int) -> None:
    idx = minmax_indices(y, max_points)
    n = y.shape[0]
    assert idx.dtype.kind == "i" and (np.diff(idx) > 0).all() and idx[0] == 0 and idx[-1] == n - 1
    assert len(idx) <= max(max_points, n if n <= max_points else 0)
    if n <= max_points:
        assert idx.tolist() == list(range(n))
    if not np.isnan(y).all():
        assert np.nanmax(y[idx]) == np.nanmax(y) and np.nanmin(y[idx]) == np.nanmin(y)


def test_minmax_keeps_a_one_bar_spike_in_a_million() -> None:
    y = np.sin(np.linspace(0, 50, 1_000_000))
    y[654_321] = 9.0
    y[123_457] = -9.0
    idx = minmax_indices(y, 2000)
    assert len(idx) <= 2000 and 654_321 in idx and 123_457 in idx


# ------------------------------------------------------------------------------------------------- cache


def test_file_key_changes_when_the_file_changes(tmp_path: Path) -> None:
    p = tmp_path / "f.jsonl"
    missing = file_key(p)
    assert not missing.exists and not missing.empty
    p.write_text("")
    assert file_key(p).exists and file_key(p).empty
    p.write_text('{"a": 1}\n')
    k1 = file_key(p)
    os.utime(p, ns=(k1.mtime_ns + 1_000_000, k1.mtime_ns + 1_000_000))  # same size, later mtime
    assert file_key(p) != k1 and file_key(p) == file_key(p)
    assert file_key(tmp_path).is_dir


def test_memoize_computes_once_per_key_and_again_after_a_change(tmp_path: Path) -> None:
    calls: list[str] = []

    @memoize(4)
    def load(key: object) -> str:
        calls.append(str(key))
        return (tmp_path / "f.txt").read_text()

    p = tmp_path / "f.txt"
    p.write_text("one")
    assert load(file_key(p)) == load(file_key(p)) == "one"
    assert len(calls) == 1
    p.write_text("two!")
    assert load(file_key(p)) == "two!" and len(calls) == 2


def test_memoize_remembers_failures_and_keeps_their_message() -> None:
    calls = []

    @memoize(4)
    def bad(x: int) -> int:
        calls.append(x)
        raise InputError("f.jsonl", "broken", line=x, field="close")

    for _ in range(3):
        with pytest.raises(InputError, match=r"^f\.jsonl:7: field 'close': broken$"):
            bad(7)
    assert calls == [7]


def test_memoize_loads_a_key_once_under_concurrent_callers() -> None:
    calls = []
    barrier = threading.Barrier(8)

    @memoize(4)
    def slow(x: int) -> int:
        calls.append(x)
        time.sleep(0.2)
        return x * 2

    results: list[int] = []

    def worker() -> None:
        barrier.wait()
        results.append(slow(21))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [42] * 8 and calls == [21]


def test_memoize_evicts_least_recently_used() -> None:
    calls = []

    @memoize(2)
    def f(x: int) -> int:
        calls.append(x)
        return x

    for x in (1, 2, 1, 3, 1, 2):
        f(x)
    assert calls == [1, 2, 3, 2]


# ------------------------------------------------------------------------------------------- model registry


def _model(root: Path, versions: dict[str, str]) -> Path:
    d = root / "m"
    for v, created in versions.items():
        (d / v).mkdir(parents=True)
        (d / v / "metadata.json").write_text(json.dumps(metadata(v, created)))
    return d


def test_latest_is_the_pointer_or_else_the_newest(tmp_path: Path) -> None:
    d = _model(tmp_path, {"v1": "2024-01-01T00:00:00Z", "v2": "2024-03-01T00:00:00Z", "v3": "2024-02-01T00:00:00Z"})
    versions = registry.load_versions(d)
    assert [v.version for v in versions] == ["v2", "v3", "v1"]
    assert registry.latest(versions, registry.pointer(d), d).version == "v2"
    (d / "latest").write_text("v3\n")
    assert registry.latest(versions, registry.pointer(d), d).version == "v3"
    (d / "latest").write_text('{"version": "v1"}')
    assert registry.latest(versions, registry.pointer(d), d).version == "v1"
    (d / "latest").unlink()
    (d / "latest").symlink_to(d / "v3", target_is_directory=True)
    assert registry.version_dirs(d) == [d / "v1", d / "v2", d / "v3"]  # the link is not a version of its own
    assert registry.latest(registry.load_versions(d), registry.pointer(d), d).version == "v3"
    (d / "latest").unlink()
    (d / "latest").write_text("v9")
    with pytest.raises(InputError, match="points to version 'v9'"):
        registry.latest(versions, registry.pointer(d), d)
    (d / "latest").write_text('{"version": ')
    with pytest.raises(InputError, match="latest:1: invalid JSON"):
        registry.pointer(d)


def test_importance_and_folds_in_their_accepted_shapes(tmp_path: Path) -> None:
    meta = metadata("v1", "2024-01-01T00:00:00Z")
    assert set(models.importance(meta)) == {"gain", "permutation"}
    assert models.importance({"feature_importance": {"a": 2, "b": 1.5}}) == {"importance": {"a": 2.0, "b": 1.5}}
    listed = {"feature_importance": [{"feature": "a", "gain": 3}, {"feature": "b", "gain": 1, "permutation": 0.2}]}
    assert models.importance(listed) == {"gain": {"a": 3.0, "b": 1.0}, "permutation": {"b": 0.2}}
    assert models.importance({}) == {}
    folds = models.folds_frame(meta, tmp_path / "metadata.json")
    assert folds["fold"].to_list() == [1, 2, 3, 4, 5] and folds["ic"][0] == pytest.approx(0.05)
    listed = {"cv": {"folds": [{"mse": 1.0, "ic": 0.1}, {"mse": 2.0, "ic": None}]}}
    f2 = models.folds_frame(listed, tmp_path / "metadata.json")
    assert f2["fold"].to_list() == [0, 1] and f2["ic"].to_list() == [0.1, None] and f2["rank_ic"].null_count() == 2
    with pytest.raises(InputError, match="cv fold 0 is not an object"):
        models.folds_frame({"cv": {"folds": [3]}}, tmp_path / "metadata.json")
    assert models.flat_metrics(meta)["mse.mean"] == 0.00042


def test_decisions_are_validated_and_sorted(tmp_path: Path) -> None:
    p = tmp_path / "decisions.jsonl"
    p.write_text("\n".join(json.dumps(d) for d in reversed(DECISIONS)) + "\n")
    decisions = registry.read_decisions(p)
    assert [d["decision"] for d in decisions] == ["keep", "retrain"]
    drift = models.drift_frame(decisions[-1])
    assert drift.filter(drift["feature"] == "vol_20")["psi"][0] == 0.31
    p.write_text(json.dumps({**DECISIONS[0], "psi": [1, 2]}) + "\n")
    with pytest.raises(InputError, match=r"decisions\.jsonl:1: field 'psi'"):
        registry.read_decisions(p)
    p.write_text(json.dumps({**DECISIONS[0], "timestamp": 5}) + "\n")
    with pytest.raises(InputError, match=r":1: field 'timestamp'"):
        registry.read_decisions(p)


def test_load_run_reads_only_the_frames_asked_for(demo: Demo) -> None:
    full = load_run(demo.runs_dir / "momentum")
    light = load_run(demo.runs_dir / "momentum", frames=("equity",))
    assert light.metrics == full.metrics and light.equity.equals(full.equity)
    assert light.fills.is_empty() and light.fills.schema == full.fills.schema and full.fills.height > 0
    assert light.trades.is_empty() and light.trades.schema == full.trades.schema


# -------------------------------------------------------------------------------------------- live session


def test_signals_on_a_day_are_those_of_its_new_york_date_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "live_signals.jsonl"
    stamps = ["2024-03-04T20:59:00Z", "2024-03-05T01:00:00Z", "2024-03-05T14:30:00Z", "2024-03-05T14:31:00Z",
              "2024-03-05T14:31:00Z", "2024-03-06T05:00:00Z"]  # fmt: skip
    write_signals(path, [Signal(id=f"s{i}", timestamp=t, symbol="AAPL", action="BUY", quantity=1)
                         for i, t in enumerate(stamps)])
    key = file_key(path)
    assert loaders.signals_on(key, date(2024, 3, 4))["id"].to_list() == ["s1", "s0"]  # 01:00Z is 20:00 in New York
    assert loaders.signals_on(key, date(2024, 3, 5))["id"].to_list() == ["s4", "s3", "s2"]  # ties: later line first
    assert loaders.signals_on(key, date(2024, 3, 7)).is_empty()


STATUS = {"strategy": "ma_crossover", "symbols": ["AAPL"], "timeframe": "1Min", "broker": "local", "mode": "local",
          "pid": 1, "started_at": "2024-03-05T14:30:00Z", "updated_at": "2024-03-05T14:31:00Z",
          "account": {"equity": 100000, "cash": 100000.0}}  # fmt: skip


@pytest.mark.parametrize(("changed", "field"), [
    ({"timeframe": None}, "timeframe"), ({"account": None}, "account"), ({"bars_seen": "many"}, "bars_seen"),
    ({"last_bar": "yesterday"}, "last_bar"), ({"symbols": "AAPL"}, "symbols"), ({"state": "dancing"}, "state"),
    ({"stream": {"connected": "maybe"}}, "stream.connected"),
])  # fmt: skip
def test_a_damaged_live_status_names_the_file_and_field(tmp_path: Path, changed: dict[str, object], field: str
                                                        ) -> None:  # fmt: skip
    """Before, `"account": null` or `"bars_seen": "many"` failed in the page (an unexpected AttributeError or
    ValueError), `"symbols": "AAPL"` showed the symbols A, A, P, L."""
    path = tmp_path / "live_status.json"
    path.write_text(json.dumps({**STATUS, **changed}))
    with pytest.raises(InputError) as exc:
        loaders.live_status(file_key(path))
    assert exc.value.location == f"{path}: field '{field}'" and "not a live status file" in exc.value.reason
    path.write_text(json.dumps(STATUS))
    assert loaders.live_status(file_key(path)).account == {"equity": 100000.0, "cash": 100000.0}
