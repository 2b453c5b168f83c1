"""The order type and exit (leg) codes the fill rules (nb.py) and their callers share: apart from nb.py so that
reading them needs no numba."""

MARKET = 0
LIMIT = 1
STOP = 2
STOP_LIMIT = 3
TRAILING_STOP = 4

# A position's exits (a bracket's legs, or its trailing stop-loss leg), as fills name them.
NO_EXIT = 0
TAKE_PROFIT = 1
STOP_LOSS = 2
TRAILING_EXIT = 3
