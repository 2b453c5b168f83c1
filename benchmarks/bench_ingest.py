"""Reading 1,000,000 bars of JSON Lines: MarketBoss (polars, validated) against pandas.read_json(lines=True).

Target: under 1 second for MarketBoss on this machine. Run: .venv/bin/python benchmarks/bench_ingest.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from common import median_time, report
from marketboss.data.io import read_bars, write_bars
from marketboss.data.synth import symbols_from, synth_bars

N_SYMBOLS, START, END = 400, "2015-01-01", "2024-12-31"  # 400 x 2,515 sessions ~ 1,006,000 bars


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bars.jsonl"
        bars = synth_bars(symbols_from(str(N_SYMBOLS)), START, END, "1Day", seed=1)
        write_bars(bars, path)
        n = len(bars)
        size_mb = path.stat().st_size / 1e6
        ours = median_time(lambda: read_bars(path), repeat=5)
        theirs = median_time(lambda: pd.read_json(path, lines=True), repeat=3)
        report(
            "ingest_jsonl",
            bars=n,
            file_mb=size_mb,
            marketboss_s=ours,
            marketboss_bars_per_s=n / ours,
            pandas_s=theirs,
            pandas_bars_per_s=n / theirs,
            speedup_vs_pandas=theirs / ours,
            under_1s=ours < 1.0,
        )


if __name__ == "__main__":
    main()
