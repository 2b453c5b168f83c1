"""The risk engine between strategy and execution: every order passes it, and it says why when it blocks."""

from marketboss.risk.engine import Block, OrderIntent, RiskConfig, RiskContext, RiskEngine

__all__ = ["Block", "OrderIntent", "RiskConfig", "RiskContext", "RiskEngine"]
