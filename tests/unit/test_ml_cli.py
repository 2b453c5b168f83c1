"""`marketboss train`, `models list|show` and `retrain` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marketboss.data.io import read_bars, read_jsonl_records, write_bars
from marketboss.data.synth import synth_bars
from marketboss.ml.registry import METADATA
from tests.unit.cli_app import cli

FAST = ["--param", "num_boost_round=20", "--param", "min_data_in_leaf=20"]


@pytest.fixture
def data(workdir: Path) -> Path:
    path = workdir / "data" / "market_data.jsonl"
    write_bars(synth_bars(["AAPL", "MSFT", "JPM"], "2021-01-01", "2022-12-31", "1Day", seed=2), path)
    return path


def test_train_list_show_retrain(data: Path, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("train", "--data", str(data), "--model", "lightgbm", "--horizon", "5", "--folds", "3", "--name", "demo",
               "--end", "2022-09-30", *FAST) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "walk-forward folds" in out and "feature importance" in out and "saved models/demo/" in out
    version = (workdir / "models" / "demo" / "latest").read_text().strip()
    assert sorted(p.name for p in (workdir / "models" / "demo").iterdir()) == [version, "latest"]  # no .staging left
    meta = json.loads((workdir / "models" / "demo" / version / "metadata.json").read_text())
    assert meta["train_end"] == "2022-09-30T04:00:00Z" and meta["params"]["num_boost_round"] == 20
    assert meta["cv"]["folds"] == 3 and meta["data_source"] == str(data)

    assert cli("models", "list") == 0
    listed = capsys.readouterr().out
    assert f"{version} *" in listed and "lightgbm" in listed
    assert cli("models", "show") == 0 and f"demo {version}" in capsys.readouterr().out

    assert cli("retrain", "--if-needed", "--ic-window", "20", "--min-ic-samples", "20") == 0  # the only model
    out = capsys.readouterr().out
    rec = read_jsonl_records(workdir / "models" / "demo" / "decisions.jsonl")[-1]
    assert rec["decision"] in out and rec["model_version"] == version and rec["thresholds"]["ic_window"] == 20
    assert rec["n_recent"] == 60 * 3 and rec["rolling_ic"] is not None
    assert cli("retrain") == 0  # without --if-needed: always
    rec = read_jsonl_records(workdir / "models" / "demo" / "decisions.jsonl")[-1]
    assert rec["decision"] == "retrain" and rec["new_version"] in capsys.readouterr().out
    assert cli("models", "show", "demo", "--version", version) == 0 and version in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--model", "xgboost"], "--model: Input should be 'lightgbm' or 'ridge'"),
        (["train", "--horizon", "5", "--purge", "2"], "error: purge (2) must be at least the horizon (5), or labels"),
        (["train", "--param", "bogus=1"], "error: unknown lightgbm parameter(s) bogus; valid: objective"),
        # refused by the library before any data is read, in one line (LightGBM's own "[Fatal]" line silenced)
        (["train", "--param", "num_leaves=abc"], "error: --param num_leaves=abc: lightgbm refuses it: Parameter "
                                                 "num_leaves should be of type int"),
        (["train", "--param", "objective=foo"], "error: --param objective=foo: the model forecasts a return, of"),
        (["train", "--param", "objective=binary"], "error: --param objective=binary: the model forecasts a return, of "
                                                   "either sign: a regression objective"),  # (it trained: all long)
        (["train", "--param", "learning_rate=inf"], "error: --param learning_rate=inf: lightgbm refuses it: "
                                                    "learning_rate=inf: a finite number"),
        (["train", "--model", "ridge", "--param", "alpha=-1"], "error: --param alpha=-1: ridge refuses it: The "
                                                               "'alpha' parameter of Ridge must be"),
        (["train", "--end", "2020-13-01"], "--end '2020-13-01' is not a date"),
        (["train", "--end", "2019-01-01"], "has no bars between the start and 2019-01-01"),
        (["train", "--name", "a/b"], "model name 'a/b' must be letters"),
        (["train", "--seed", "-1"], "--seed: Input should be greater than or equal to 0"),  # (numpy's ValueError)
        (["models", "show"], "no model in models"),
        (["retrain", "--psi-threshold", "0"], "--psi-threshold: Input should be greater than 0"),
    ],
)
def test_mistakes_are_one_line_errors(
    data: Path, args: list[str], message: str, capfd: pytest.CaptureFixture[str]
) -> None:
    assert cli(*args) == 2
    err = capfd.readouterr().err  # what C++ code writes to the process's stderr too
    assert message in err and err.count("\n") == 1, err


def test_training_ridge_on_a_parquet_file_gives_the_same_data_hash(
    data: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pq = workdir / "data" / "bars.parquet"
    write_bars(read_bars(data), pq)
    for path, name in ((data, "a"), (pq, "b")):
        assert cli("train", "--data", str(path), "--model", "ridge", "--folds", "3", "--name", name) == 0
    metas = [json.loads(next((workdir / "models" / n).glob("*/metadata.json")).read_text()) for n in "ab"]
    assert metas[0]["data_sha256"] == metas[1]["data_sha256"] and metas[0]["model_type"] == "ridge"
    assert metas[0]["metrics"] == metas[1]["metrics"]
    assert set(metas[0]["feature_importance"]) == {"coefficient", "permutation"}


def test_several_models_without_a_name_say_where_each_command_takes_one(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`retrain` (and the scheduler's retrain job, and the ml strategy) with two models and no name: the error says
    where a name goes, schedule.toml's field included (it said only "choose one by name")."""
    for name in ("demo", "research"):
        (workdir / "models" / name / "v1").mkdir(parents=True)
        (workdir / "models" / name / "v1" / METADATA).write_text("{}")
    assert cli("retrain") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: models holds several models (demo, research): choose one by name (--name NAME;")
    assert '[retrain] model = "NAME"' in err and err.count("\n") == 1
