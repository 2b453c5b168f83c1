"""The local Alpaca-compatible paper broker: `marketboss broker serve`, or `process.local_broker(...)` from code."""
