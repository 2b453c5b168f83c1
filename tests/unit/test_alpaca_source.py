"""alpaca-py's bar sets as bar frames."""

from __future__ import annotations

from marketboss.data.alpaca_source import barset_frame
from marketboss.data.schema import BAR_DTYPES


def test_a_window_without_bars_is_an_empty_frame_of_the_bar_schema() -> None:
    """What REST answers for a window before the data starts (the live loop's warm-up on a replay from the data's
    first day): no rows, the bar columns typed; it made an untyped frame that failed converting its time zone."""
    empty = barset_frame({})
    assert empty.height == 0 and empty.schema == BAR_DTYPES
