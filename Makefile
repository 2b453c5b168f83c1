# Two commands do all set-up: `make demo` and `make test`. Both create .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MB := $(BIN)/marketboss
export MARKETBOSS_LOG_LEVEL ?= warning
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint bench clean chromium

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

# numba compiles each kernel once into its cache beside the sources (the event loop's too); doing it here spares the
# first command. Then the kernels of data synth, signal generation and the backtest are compiled ahead of time
# (marketboss/aot.py, each package's kernels.py): a command loads them without numba.
KERNELS := $(VENV)/.kernels
$(KERNELS): $(STAMP) $(wildcard src/marketboss/*/nb.py) $(wildcard src/marketboss/*/kernels.py) \
  src/marketboss/aot.py src/marketboss/backtest/arrays.py src/marketboss/orders/codes.py \
  src/marketboss/backtest/events.py scripts/compile_kernels.py
	$(BIN)/python scripts/compile_kernels.py
	@touch $(KERNELS)

demo: $(KERNELS)
	@echo "== 1. Market data: seeded synthetic bars on the NYSE calendar"
	$(MB) data synth --symbols 5 --start 2020-01-01 --end 2024-12-31 --seed 7 --output data/market_data.jsonl
	$(MB) data show --data data/market_data.jsonl
	@echo "== 2. Signals and backtests of the three built-in strategies"
	$(BIN)/python scripts/generate_sample_signals.py --data data/market_data.jsonl
	@for s in ma_crossover momentum mean_reversion; do \
	  echo "$(MB) signals generate --strategy $$s --output data/signals_$$s.jsonl"; \
	  $(MB) signals generate --data data/market_data.jsonl --strategy $$s --output data/signals_$$s.jsonl || exit 1; \
	  echo "$(MB) backtest --signals data/signals_$$s.jsonl --output-dir runs/$$s"; \
	  $(MB) backtest --data data/market_data.jsonl --signals data/signals_$$s.jsonl --cash 100000 \
	    --commission 0.001 --slippage-bps 2 --output-dir runs/$$s --report runs/$$s/report.html > /dev/null || exit 1; \
	done
	@echo "== 2a. Orders: the crossover all in, a bracket on each entry (stop 5% below, take-profit 10% above)"
	$(MB) backtest --data data/market_data.jsonl --strategy ma_crossover --param sizing=weight --param weight=0.2 \
	  --param rebalance=monthly --stop-loss-pct 5 --take-profit-pct 10 --commission 0.001 --slippage-bps 2 \
	  --output-dir runs/ma_crossover_bracket --report runs/ma_crossover_bracket/report.html
	@echo "== 2b. A model: LightGBM on the 5-bar forward return, purged walk-forward CV; trained to 2023, traded on 2024"
	$(MB) train --data data/market_data.jsonl --model lightgbm --horizon 5 --folds 5 --name demo --end 2023-12-31
	$(MB) signals generate --data data/market_data.jsonl --strategy ml --param model=demo --output data/signals_ml.jsonl
	$(MB) backtest --data data/market_data.jsonl --signals data/signals_ml.jsonl --cash 100000 \
	  --commission 0.001 --slippage-bps 2 --output-dir runs/ml --report runs/ml/report.html > /dev/null
	$(MB) runs compare runs/ma_crossover runs/momentum runs/mean_reversion runs/ml
	@echo "== 2c. Research: a parameter sweep, walk-forward optimisation, the best strategy out of sample"
	$(MB) sweep --data data/market_data.jsonl --strategy ma_crossover --grid fast=5:50:5 --grid slow=20:200:10 \
	  --commission 0.001 --slippage-bps 2 --top 5 --report runs/sweep_ma_crossover.html
	$(MB) walkforward --data data/market_data.jsonl --strategy mean_reversion --grid window=10:40:10 \
	  --grid entry_z=1.5:2.5:0.5 --train 504 --test 126 --commission 0.001 --slippage-bps 2 \
	  --report runs/walkforward_mean_reversion.html
	$(MB) compare --data data/market_data.jsonl --strategies ma_crossover,momentum,mean_reversion,ml \
	  --param ml.model=demo --oos-start 2024-01-01 --commission 0.001 --slippage-bps 2 --output data/signals_best.jsonl
	@echo "== 2d. Does the model need retraining on the newest data? (the decision is recorded for the dashboard)"
	$(MB) retrain --if-needed --name demo --data data/market_data.jsonl
	@echo "== 2e. Your own strategy: a plug-in file (RSI with a 5% stop and a 10% target), event-driven ones (a time stop plus a"
	@echo "   trailing stop; a bracket whose stop moves to the entry price once the trade is up 3%, its on_bar compiled)"
	$(MB) backtest --data data/market_data.jsonl --strategy examples/rsi_bracket.py:RsiBracket --commission 0.001 \
	  --slippage-bps 2 --output-dir runs/rsi_bracket > /dev/null
	$(MB) backtest --data data/market_data.jsonl --strategy examples/time_trailing_stop.py:TimeTrailingStop \
	  --param hold_bars=10 --param trail_percent=5 --commission 0.001 --slippage-bps 2 --output-dir runs/time_trailing_stop
	$(MB) backtest --data data/market_data.jsonl --strategy examples/breakeven_stop.py:BreakevenStop --param arm_pct=3 \
	  --commission 0.001 --slippage-bps 2 --output-dir runs/breakeven_stop > /dev/null
	$(MB) runs compare runs/ma_crossover runs/rsi_bracket runs/time_trailing_stop runs/breakeven_stop
	@echo "== 3. Paper trading the guide's signals on the local broker (no account needed), then reconcile"
	@rm -f data/broker.sqlite* data/paper_trading_trades.jsonl data/paper_trading_trades.journal.jsonl \
	  data/paper_trading_equity.jsonl
	$(BIN)/python scripts/run_paper_trading.py --signals data/signals.jsonl --max-trades 50 \
	  --order-interval 0 --poll-interval 0.05 --stop-loss-pct 5
	$(MB) reconcile --data data/market_data.jsonl --signals data/signals.jsonl --stop-loss-pct 5
	@echo "== 4. Live: the crossover on each closed daily bar of the market-data stream, the second half of 2024 replayed"
	@echo "   through the live loop on the local broker (stream, decisions, orders, fills), then reconciled with its backtest"
	@echo "   (its weights are sized as each order is sent, at the close that decided it, the backtest's at the next open:"
	@echo "   a few fills a share or so apart, counted as 'filled at another quantity')"
	@rm -f data/broker_live.sqlite* data/live_signals.jsonl data/live_status.json data/live_trades.jsonl \
	  data/live_trades.journal.jsonl data/live_equity.jsonl
	$(MB) live --strategy ma_crossover --param sizing=weight --param weight=0.2 \
	  --symbols AAPL,AMZN,GOOGL,META,MSFT --timeframe 1Day --replay-from 2024-07-01 --broker-db data/broker_live.sqlite \
	  --trades-output data/live_trades.jsonl --equity-output data/live_equity.jsonl
	$(MB) reconcile --data data/market_data.jsonl --signals data/live_signals.jsonl --trades data/live_trades.jsonl \
	  --equity data/live_equity.jsonl --show-trades 5
	@echo "== 4a. Live, event-driven: the time-and-trailing-stop strategy, trading from the session's first bar (its warm-up"
	@echo "   traded nothing), each trailing exit placed at the open its entry fills at, then reconciled with its backtest"
	@rm -f data/broker_live_events.sqlite* data/live_events_*
	$(MB) live --strategy examples/time_trailing_stop.py:TimeTrailingStop --param hold_bars=10 --param trail_percent=5 \
	  --symbols AAPL,AMZN,GOOGL,META,MSFT --timeframe 1Day --replay-from 2024-07-01 \
	  --broker-db data/broker_live_events.sqlite --signals-output data/live_events_signals.jsonl \
	  --trades-output data/live_events_trades.jsonl --equity-output data/live_events_equity.jsonl \
	  --status-output data/live_events_status.json
	$(MB) reconcile --data data/market_data.jsonl --signals data/live_events_signals.jsonl \
	  --trades data/live_events_trades.jsonl --equity data/live_events_equity.jsonl --show-trades 0
	@echo "== Dashboard on the demo's files (the guide's default paths):"
	@echo "   $(BIN)/streamlit run dashboard/app.py"

# The dashboard's browser test drives Debian's chromium (headless); install it when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser test"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) data runs models reports src/marketboss/*/_aot_*
