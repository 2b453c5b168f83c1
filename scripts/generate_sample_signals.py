"""The guide's entry point: `python scripts/generate_sample_signals.py --data data/market_data.jsonl`.

A thin wrapper over `marketboss signals generate` (default strategy ma_crossover, output data/signals.jsonl);
every option of that command works here too. Any `python` will do: without MarketBoss installed it reruns
itself with the project's .venv.
"""

from __future__ import annotations

import sys

import _project


def main(argv: list[str]) -> int:
    from marketboss.cli import app
    from marketboss.cli.common import run_guarded

    return run_guarded(lambda: app(["signals", "generate", *argv], prog_name="generate_sample_signals.py"))


if __name__ == "__main__":
    _project.ensure_marketboss()
    sys.exit(main(sys.argv[1:]))
