"""The local broker's endpoints, one module per API: trading, market data, admin."""
