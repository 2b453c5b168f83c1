"""`marketboss train`, `models list|show`, `retrain` and `schedule`: thin calls into marketboss.ml and
marketboss.scheduler."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from marketboss.cli.common import SkipInvalid, console, get_settings, key_values, load_bars, print_table, run_guarded
from marketboss.cli.signals import SymbolsOpt, filter_symbols
from marketboss.errors import MarketBossError
from marketboss.logging import get_logger

if TYPE_CHECKING:  # loaded inside the commands that use them: `--help` needs none
    import polars as pl
    from pydantic import ValidationError

log = get_logger(__name__)
models_app = typer.Typer(help="Trained models in models/<name>/<version>/.", no_args_is_help=True)

DataOpt = typer.Option(None, "--data", help="Bars file (default: data/market_data.jsonl).")
ModelsDirOpt = typer.Option(None, "--models-dir", help="Default: models (env MARKETBOSS_MODELS_DIR).")


_OPTIONS = {"model_type": "--model", "params": "--param"}


def _option_error(exc: ValidationError) -> MarketBossError:
    """The first validation error, naming the command-line option (checks across options name none)."""
    err = exc.errors()[0]
    msg = err["msg"].removeprefix("Value error, ")
    if not err["loc"]:
        return MarketBossError(msg)
    field = str(err["loc"][0])
    from marketboss.ml.drift import THRESHOLD_OPTIONS  # here: drift brings scipy, which --help does not need

    option = {**THRESHOLD_OPTIONS, **_OPTIONS}.get(field, "--" + field.replace("_", "-"))
    return MarketBossError(f"{option}: {msg}")


def _day(text: str | None, opt: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise MarketBossError(f"{opt} '{text}' is not a date (YYYY-MM-DD)") from None


def _window(bars: pl.DataFrame, start: date | None, end: date | None, path: Path) -> pl.DataFrame:
    """Bars whose New York session date is within [start, end]."""
    import polars as pl

    from marketboss.data.calendar import NY

    if start is None and end is None:
        return bars
    day = pl.col("timestamp").dt.convert_time_zone(NY).dt.date()
    out = bars.filter((day >= start) if start else True, (day <= end) if end else True)
    if out.is_empty():
        raise MarketBossError(f"{path} has no bars between {start or 'the start'} and {end or 'the end'}")
    return out


def _params(pairs: list[str]) -> dict[str, Any]:
    """--param key=value model overrides; numbers become numbers."""
    from marketboss.strategies.registry import parse_param_pairs

    out: dict[str, Any] = {}
    for k, v in parse_param_pairs(pairs).items():
        try:
            out[k] = int(v)
        except ValueError:
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


def train(
    data: Path = DataOpt,
    model: str = typer.Option("lightgbm", "--model", help="lightgbm or ridge."),
    horizon: int = typer.Option(5, "--horizon", help="Target: forward return over this many bars."),
    folds: int = typer.Option(5, "--folds", help="Walk-forward test folds."),
    name: str = typer.Option(None, "--name", help="Model name (default: the model type)."),
    purge: int = typer.Option(None, "--purge", help="Bars of label purged before each test fold (default: horizon)."),
    embargo: int = typer.Option(None, "--embargo", help="Further bars left out before each test fold (default: "
                                                       "horizon)."),
    models_dir: Path = ModelsDirOpt,
    start: str = typer.Option(None, "--start", help="First session date to train on (YYYY-MM-DD)."),
    end: str = typer.Option(None, "--end", help="Last session date to train on; later bars stay out of sample."),
    symbols: str = SymbolsOpt,
    param: list[str] = typer.Option([], "--param", "-p", help="Model parameter key=value, e.g. num_leaves=31.",
                                    callback=key_values),
    seed: int = typer.Option(7, "--seed", help="Same seed, same model."),
    threads: int = typer.Option(1, "--threads", help="Threads for LightGBM."),
    skip_invalid: bool = SkipInvalid,
) -> None:
    """Train a model on the forward return with purged walk-forward CV; save it as a new version."""
    from pydantic import ValidationError

    from marketboss.ml.train import TrainConfig
    from marketboss.ml.train import train as train_model

    try:
        cfg = TrainConfig(model_type=model, horizon=horizon, folds=folds, purge=purge, embargo=embargo,
                          params=_params(param), seed=seed, threads=threads)  # fmt: skip
    except ValidationError as exc:
        raise _option_error(exc) from None
    first, last = _day(start, "--start"), _day(end, "--end")
    settings = get_settings()
    path = data or settings.market_data
    bars = _window(filter_symbols(load_bars(path, skip_invalid), symbols, path), first, last, path)
    result = train_model(bars, cfg, name or model, models_dir or settings.models_dir, source=str(path))
    _print_model(result.metadata, folds_too=True)
    console.print(f"saved {result.path} (latest -> {result.version})")
    log.info("model_trained", name=result.name, version=result.version, path=str(result.path))


def _print_model(meta: dict[str, Any], folds_too: bool) -> None:
    from marketboss.ml.metrics import METRICS

    cv = meta.get("cv") or {}
    rows: list[list[Any]] = [
        ["model", f"{meta.get('name')} {meta.get('version')}"], ["type", meta.get("model_type")],
        ["created", meta.get("created_at")], ["target", meta.get("target")],
        ["train window", f"{meta.get('train_start')} .. {meta.get('train_end')}"],
        ["samples", meta.get("n_samples")], ["features", len(meta.get("features") or [])],
        ["cv", f"{cv.get('scheme')}: {cv.get('folds')} folds, purge {cv.get('purge')}, embargo {cv.get('embargo')}"],
        ["data sha256", str(meta.get("data_sha256", ""))[:16]],
    ]  # fmt: skip
    metrics = meta.get("metrics") or {}
    rows += [[f"{m} (mean ± std)", f"{_num(metrics.get(m, {}).get('mean'))} ± {_num(metrics.get(m, {}).get('std'))}"]
             for m in METRICS]  # fmt: skip
    print_table(f"model {meta.get('name')}", ["", "value"], rows)
    if folds_too and cv.get("per_fold"):
        print_table("walk-forward folds (test windows)", ["fold", "test start", "test end", "train", "test", *METRICS],
                    [[f.get("fold"), f.get("test_start"), f.get("test_end"), f.get("n_train"), f.get("n_test"),
                      *[f.get(m) for m in METRICS]] for f in cv["per_fold"]])  # fmt: skip
    importance = meta.get("feature_importance") or {}
    if importance:
        kinds = list(importance)
        first = importance[kinds[0]]
        order = sorted(first, key=lambda f: -(first[f] or 0.0))
        rows = [[f, *[importance[k].get(f) for k in kinds]] for f in order]
        print_table("feature importance", ["feature", *kinds], rows)


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}"


@models_app.command("list")
def list_(models_dir: Path = ModelsDirOpt) -> None:
    """Every version of every model; * marks each model's latest."""
    from marketboss.ml import registry

    root = models_dir or get_settings().models_dir
    rows = []
    for name in registry.model_names(root):
        latest = registry.latest_version(root, name)
        for v in reversed(registry.versions(root, name)):
            m = registry.metadata(root, name, v)
            metrics = m.get("metrics") or {}
            ic, ric = metrics.get("ic") or {}, metrics.get("rank_ic") or {}
            rows.append([name, f"{v}{' *' if v == latest else ''}", m.get("created_at"), m.get("model_type"),
                         m.get("horizon"), m.get("train_end"), m.get("n_samples"), ic.get("mean"), ric.get("mean")])
    if not rows:
        raise MarketBossError(f"no model in {root}: train one with `marketboss train`")
    print_table(f"models in {root}", ["name", "version", "created", "type", "horizon", "train end", "samples",
                                      "IC", "rank IC"], rows)  # fmt: skip


@models_app.command("show")
def show(
    name: str = typer.Argument(None, help="Model name (default: the only model)."),
    version: str = typer.Option(None, "--version", help="Version (default: latest)."),
    models_dir: Path = ModelsDirOpt,
) -> None:
    """Metadata, cross-validation folds and feature importance of one model version."""
    from marketboss.ml import registry

    root = models_dir or get_settings().models_dir
    meta = registry.metadata(root, registry.resolve_name(root, name), version)
    _print_model(meta, folds_too=True)


def retrain(
    name: str = typer.Option(None, "--name", help="Model name (default: the only model; a new name trains one)."),
    if_needed: bool = typer.Option(False, "--if-needed", help="Retrain only on drift, decay or age (else always)."),
    data: Path = DataOpt,
    models_dir: Path = ModelsDirOpt,
    max_age_days: float = typer.Option(30.0, "--max-age-days", help="Retrain a model older than this."),
    psi_threshold: float = typer.Option(0.25, "--psi-threshold", help="A feature drifted when its PSI exceeds this."),
    ks_threshold: float = typer.Option(0.3, "--ks-threshold", help="... or its KS statistic exceeds this."),
    min_drifted: int = typer.Option(3, "--min-drifted", help="Retrain when at least this many features drifted."),
    ic_threshold: float = typer.Option(0.0, "--ic-threshold", help="Decay: retrain when the rolling IC is below."),
    window: int = typer.Option(60, "--window", help="Recent bars compared with the training rows."),
    ic_window: int = typer.Option(60, "--ic-window", help="Bars of new labelled rows in the rolling IC."),
    min_ic_samples: int = typer.Option(50, "--min-ic-samples", help="Rows needed before the rolling IC counts."),
    min_drift_samples: int = typer.Option(50, "--min-drift-samples", help="New rows needed before drift counts."),
    model: str = typer.Option("lightgbm", "--model", help="First training only: lightgbm or ridge."),
    horizon: int = typer.Option(5, "--horizon", help="First training only: target horizon."),
    folds: int = typer.Option(5, "--folds", help="First training only: walk-forward folds."),
    skip_invalid: bool = SkipInvalid,
) -> None:
    """Check drift (PSI, KS), decay (rolling IC) and age; retrain when needed; record the decision in
    models/<name>/decisions.jsonl. Earlier versions are kept."""
    from pydantic import ValidationError

    from marketboss.ml import registry
    from marketboss.ml.drift import Thresholds
    from marketboss.ml.retrain import retrain as run_retrain
    from marketboss.ml.train import TrainConfig

    try:
        th = Thresholds(max_age_days=max_age_days, psi=psi_threshold, ks=ks_threshold, min_drifted=min_drifted,
                        ic=ic_threshold, window=window, ic_window=ic_window, min_ic_samples=min_ic_samples,
                        min_drift_samples=min_drift_samples)  # fmt: skip
        first = TrainConfig(model_type=model, horizon=horizon, folds=folds)
    except ValidationError as exc:
        raise _option_error(exc) from None
    settings = get_settings()
    root = models_dir or settings.models_dir
    model_name = registry.check_name(name) if name else registry.resolve_name(root, None)
    path = data or settings.market_data
    rec = run_retrain(load_bars(path, skip_invalid), root, model_name, if_needed=if_needed, thresholds=th,
                      first_config=first, source=str(path))  # fmt: skip
    print_decision(rec)


def print_decision(rec: dict[str, Any]) -> None:
    rows = [["decision", rec["decision"]], ["model version", rec["model_version"]], ["new version", rec["new_version"]],
            ["model age (days)", rec["model_age_days"]], ["rolling IC", rec["rolling_ic"]],
            *[["reason" if i == 0 else "", r] for i, r in enumerate(rec["reasons"])]]  # fmt: skip
    print_table(f"retraining check of {rec['model']} ({rec['timestamp']})", ["", "value"], rows)
    if rec["psi"]:
        worst = sorted(rec["psi"], key=lambda f: -(rec["psi"][f] or 0.0))[:5]
        print_table("most drifted features", ["feature", "PSI", "KS"], [[f, rec["psi"][f], rec["ks"].get(f)]
                                                                          for f in worst])  # fmt: skip


def schedule(
    once: bool = typer.Option(False, "--once", help="Run the day's jobs now, in order, and exit."),
    config: Path = typer.Option(None, "--config", help="TOML job settings (see marketboss.scheduler.config)."),
    show_plan: bool = typer.Option(False, "--plan", help="Print when each job runs next (live: start, stop) and exit."),
) -> None:
    """Run the daily jobs on every NYSE session: refresh data, retrain if needed, generate signals, paper trade;
    with a \\[live] table in the config, `marketboss live` from before each open to after its close instead of
    the last two."""
    from marketboss.cli import build_app, named_command
    from marketboss.scheduler import load_config, plan_lines, run_forever, run_once

    def run(argv: list[str]) -> int:  # a job is this very command line, run in this process
        # its own app: `marketboss schedule` built the one with this command alone (cli.main)
        app = build_app(named_command(argv))
        return run_guarded(lambda: app(args=argv, prog_name="marketboss", standalone_mode=True))

    cfg = load_config(config)
    # a plug-in that cannot load, or a bad parameter, fails now (--plan too), not at the job hours later ([live]
    # replaces the signals job)
    job = cfg.live if cfg.live.enabled else cfg.signals if cfg.signals.enabled else None
    if job is not None:
        from marketboss.strategies import resolve
        from marketboss.strategies.registry import check_params

        where = f"{config or 'schedule'}: {'live' if job is cfg.live else 'signals'}"
        try:
            resolve(job.strategy)
        except MarketBossError as exc:
            raise MarketBossError(f"{where}.strategy: {exc}") from None
        try:
            check_params(job.strategy, job.params)
        except MarketBossError as exc:
            raise MarketBossError(f"{where}.params: {exc}") from None
    if show_plan:
        for line in plan_lines(cfg, datetime.now(cfg.tz)):
            print(line)
        return
    if once:
        failed = run_once(cfg, run)
        if failed:
            raise MarketBossError(f"job(s) failed: {', '.join(failed)} (details in the log above)")
        return
    run_forever(cfg, run)
