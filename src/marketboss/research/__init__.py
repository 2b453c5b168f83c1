"""Research at scale: parameter sweeps (a compiled kernel over many combinations), walk-forward optimisation
with a deflated Sharpe ratio, and strategy comparison; on this machine's processes or a dask cluster."""

from marketboss.research.backends import Backend, DaskBackend, LocalBackend, make_backend
from marketboss.research.grid import Combinations, combinations
from marketboss.research.sweep import ROW_METRICS, SUMMARY_METRICS, SweepResult, sweep
from marketboss.research.windows import Window, evaluate

__all__ = [
    "ROW_METRICS",
    "SUMMARY_METRICS",
    "Backend",
    "Combinations",
    "DaskBackend",
    "LocalBackend",
    "SweepResult",
    "Window",
    "combinations",
    "evaluate",
    "make_backend",
    "sweep",
]
