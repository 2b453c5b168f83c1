#!/usr/bin/env python
"""The guide's entry point: `python scripts/run_paper_trading.py --signals data/signals.jsonl --max-trades 50`.

A thin wrapper over `marketboss paper` (same options; see `--help`).
"""

import sys

from marketboss.cli import main

if __name__ == "__main__":
    sys.argv = ["marketboss", "paper", *sys.argv[1:]]
    main()
