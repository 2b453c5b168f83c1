"""When a signal's market order fills: kept apart from the cost models so the CLI can offer the choice without
loading pydantic."""

from enum import StrEnum


class FillMode(StrEnum):
    """next_open: the symbol's next bar's open (default, honest). close: the signal bar's own close, which
    assumes the order could be placed at the very price that produced the decision: optimistic."""

    NEXT_OPEN = "next_open"
    CLOSE = "close"
