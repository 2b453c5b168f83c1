#!/usr/bin/env python
"""The guide's entry point: `python scripts/run_paper_trading.py --signals data/signals.jsonl --max-trades 50`.

A thin wrapper over `marketboss paper` (same options; see `--help`). Any `python` will do: without MarketBoss
installed it reruns itself with the project's .venv.
"""

import sys

import _project

if __name__ == "__main__":
    _project.ensure_marketboss()
    from marketboss.cli import main

    sys.argv = ["marketboss", "paper", *sys.argv[1:]]
    main()
