"""MarketBoss: research, backtest and paper-trade equity strategies on Alpaca."""

__version__ = "0.1.0"
