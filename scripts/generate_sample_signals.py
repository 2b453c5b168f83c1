"""The guide's entry point: `python scripts/generate_sample_signals.py --data data/market_data.jsonl`.

A thin wrapper over `marketboss signals generate` (default strategy ma_crossover, output data/signals.jsonl);
every option of that command works here too.
"""

from __future__ import annotations

import sys

from marketboss.cli import app
from marketboss.cli.common import run_guarded


def main(argv: list[str]) -> int:
    return run_guarded(lambda: app(["signals", "generate", *argv], prog_name="generate_sample_signals.py"))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
