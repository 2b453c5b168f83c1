"""Bars: schema, validation, readers/writers, sources and the NYSE calendar."""

from marketboss.data.io import read_bars, write_bars
from marketboss.data.schema import BAR_COLUMNS

__all__ = ["BAR_COLUMNS", "read_bars", "write_bars"]
