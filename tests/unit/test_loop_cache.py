"""The compiled event loop kept on disk for an on_bar with cache=True (backtest/loop_cache.py), each run in a
process of its own, as a user's commands run: the second process loads the loop (no compiling), a change of the
strategy's file compiles it again (the new code trades), and an on_bar without cache=True is never kept."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from marketboss.backtest import events

PLUGIN = '''
import numpy as np
from numba import njit
from marketboss.strategies.events import (OUT_GTC, OUT_KIND, OUT_QTY, OUT_SIDE, OUT_SYMBOL, CompiledOnBar,
                                          EventParams, EventStrategy)

QTY = {qty}
PEEK = {peek}


class Cycle(EventStrategy[EventParams]):
    name = "cycle"
    summary = "test"

    def on_bar(self, ctx):
        raise AssertionError("the compiled path runs")

    def compiled(self):
        return CompiledOnBar(_on_bar, np.zeros(1))


@njit{cache}
def _on_bar(t, open_, high, low, close, ind, position, cash, equity, args, mem, out):
    n = 0
    for s in range(close.shape[1]):
        if PEEK and t == close.shape[0] - 1 and close[t + 1, s] == 0.0:  # a look ahead, past the history given
            n = 0
        if position[s] == 0.0 and t % 5 == 0:
            out[n, :] = np.nan
            out[n, OUT_SYMBOL], out[n, OUT_SIDE], out[n, OUT_QTY], out[n, OUT_KIND], out[n, OUT_GTC] = s, 1.0, QTY, 0, 0
            n += 1
        elif position[s] > 0.0 and t % 5 == 3:
            out[n, :] = np.nan
            out[n, OUT_SYMBOL], out[n, OUT_SIDE], out[n, OUT_QTY], out[n, OUT_KIND], out[n, OUT_GTC] = (
                s, -1.0, position[s], 0, 0)
            n += 1
    return n
'''

RUN = '''
import json, sys
from marketboss import create
from marketboss.backtest import events
from marketboss.backtest.events import run_events
from marketboss.data.market import Market
from marketboss.data.synth import synth_bars

market = Market.from_bars(synth_bars(["AAA", "BBB"], "2024-01-01", "2024-03-31", "1Day", seed=2))
result, _ = run_events(market, create(sys.argv[1] + ":Cycle", {}), compiled=True)
stats = events._loop.stats
print(json.dumps({"qty": sorted(set(result.fills["qty"].to_list())), "fills": result.fills.height,
                  "hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values())}))
'''


def _run(plugin: Path, **env: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", RUN, str(plugin)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(Path(events.__file__).parents[2]), **env})  # fmt: skip
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1]}
    return json.loads(out.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def _write(plugin: Path, qty: int, cache: bool, when: int, peek: bool = False) -> None:
    plugin.write_text(PLUGIN.format(qty=qty, cache="(cache=True)" if cache else "", peek=peek))
    os.utime(plugin, ns=(when, when))  # a stamp of its own: the same second as the last write would do too


def test_a_cached_on_bars_loop_is_loaded_by_the_next_process_and_compiled_again_when_its_file_changes(
    tmp_path: Path,
) -> None:
    plugin = tmp_path / "cycle.py"
    _write(plugin, 3, True, 1_700_000_000_000_000_000)
    first, second = _run(plugin), _run(plugin)
    assert first["misses"] == 1 and first["hits"] == 0
    assert second["hits"] == 1 and second["misses"] == 0  # loaded, not compiled
    assert second["fills"] == first["fills"] > 4 and second["qty"] == first["qty"] == [3.0]
    _write(plugin, 4, True, 1_700_000_100_000_000_000)  # the same size: its time tells the change
    changed = _run(plugin)
    assert changed["misses"] == 1 and changed["hits"] == 0 and changed["qty"] == [4.0]  # the new code, compiled
    kept = tmp_path / "__pycache__"  # beside the on_bar's own cache; the stale entry's file reused
    assert len(list(kept.glob("marketboss_loop.cycle._on_bar-*.nbi"))) == 1
    assert len(list(kept.glob("marketboss_loop.cycle._on_bar-*.nbc"))) == 1


def test_an_on_bar_without_cache_is_compiled_in_each_process(tmp_path: Path) -> None:
    plugin = tmp_path / "cycle.py"
    _write(plugin, 3, False, 1_700_000_000_000_000_000)
    for run in (_run(plugin), _run(plugin)):
        assert run["misses"] == 1 and run["hits"] == 0 and run["qty"] == [3.0]
    assert not list(tmp_path.glob("__pycache__/marketboss_loop.*"))


def test_a_loop_kept_without_bounds_checks_is_not_loaded_by_a_run_with_them(tmp_path: Path) -> None:
    """docs/event-driven.md: a run with NUMBA_BOUNDSCHECK=1, the on_bar's __pycache__ deleted, finds a read past
    bar t (the loop is kept there too: kept elsewhere, it was loaded as compiled without the checks)."""
    plugin = tmp_path / "cycle.py"
    _write(plugin, 3, True, 1_700_000_000_000_000_000, peek=True)
    assert _run(plugin)["qty"] == [3.0]  # unchecked, the read past the end goes unseen
    shutil.rmtree(tmp_path / "__pycache__")
    checked = _run(plugin, NUMBA_BOUNDSCHECK="1")
    assert "IndexError" in checked.get("error", ""), checked
