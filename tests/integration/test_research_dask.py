"""The research commands on a real dask.distributed cluster (a LocalCluster on a 127.0.0.1 TCP port, one
worker thread to stay light): the same tables as the local backend, through the API and the command line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from distributed import LocalCluster

from marketboss.backtest import BacktestConfig, Costs
from marketboss.cli import app
from marketboss.cli.common import run_guarded
from marketboss.data.io import write_bars
from marketboss.data.market import Market
from marketboss.research import DaskBackend, LocalBackend, combinations, sweep
from marketboss.research.compare import compare
from marketboss.research.walkforward import walk_forward

CONFIG = BacktestConfig(costs=Costs(commission=0.001, slippage_bps=1))


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                           scheduler_port=0, dashboard_address=None)
    try:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def market(daily_bars: pl.DataFrame) -> Market:
    return Market.from_bars(daily_bars)


def test_a_sweep_on_the_cluster_gives_the_local_table(scheduler: str, market: Market) -> None:
    combos = combinations("ma_crossover", ["fast=5:25:5", "slow=20:80:20"])
    local = sweep(market, combos, CONFIG, backend=LocalBackend(workers=1))
    done: list[int] = []
    with DaskBackend(scheduler, chunk_work=1) as dask:  # small chunks: several tasks go through the scheduler
        assert dask.workers == 1
        remote = sweep(market, combos, CONFIG, backend=dask, on_progress=done.append)
    assert len(done) > 1 and sum(done) == len(combos.params)
    assert remote.rows.equals(local.rows)
    assert remote.summary.equals(local.summary)
    assert remote.rows["n_fills"].sum() > 0


def test_walk_forward_and_compare_on_the_cluster_match_local(scheduler: str, market: Market) -> None:
    combos = combinations("momentum", ["lookback=10:50:20", "mode=tsmom,breakout"])
    local = walk_forward(market, combos, 200, 100, CONFIG, backend=LocalBackend(workers=1))
    with DaskBackend(scheduler) as dask:
        remote = walk_forward(market, combos, 200, 100, CONFIG, backend=dask)
        cmp_remote = compare(market, ["ma_crossover", "mean_reversion"], config=CONFIG, backend=dask)
    assert remote.folds.equals(local.folds) and remote.equity.equals(local.equity)
    assert remote.summary.keys() == local.summary.keys()
    assert all(v == local.summary[k] or (v != v and local.summary[k] != local.summary[k])  # NaN is NaN
               for k, v in remote.summary.items())
    cmp_local = compare(market, ["ma_crossover", "mean_reversion"], config=CONFIG, backend=LocalBackend(workers=1))
    assert cmp_remote.table().equals(cmp_local.table())


def test_the_sweep_command_with_backend_dask(scheduler: str, daily_bars: pl.DataFrame, workdir: Path) -> None:
    write_bars(daily_bars, workdir / "bars.parquet")
    common = ["sweep", "--data", "bars.parquet", "--grid", "fast=5,10", "--grid", "slow=20,40"]
    assert run_guarded(lambda: app([*common, "--output", "local.parquet"], standalone_mode=True)) == 0
    assert run_guarded(lambda: app([*common, "--output", "dask.parquet", "--backend", "dask", "--scheduler",
                                    scheduler], standalone_mode=True)) == 0
    assert pl.read_parquet(workdir / "dask.parquet").equals(pl.read_parquet(workdir / "local.parquet"))
