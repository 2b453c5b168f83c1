"""Bollinger-band mean reversion: buy a close below the lower band, sell once the close is back at the
moving average; with long_only=false also short a close above the upper band, covering at the average.

    marketboss backtest --strategy examples/bollinger_reversion.py:BollingerReversion --param window=20
"""

import numpy as np
from pydantic import Field

from marketboss import Strategy, StrategyParams, SymbolBars
from marketboss.indicators import bollinger


class BollingerParams(StrategyParams):
    window: int = Field(20, ge=2, description="bars in the moving average and standard deviation")
    k: float = Field(2.0, gt=0, allow_inf_nan=False, description="band width in standard deviations")


class BollingerReversion(Strategy[BollingerParams]):
    """Buy below the lower band, exit at the middle (and the mirror image short when long_only=false)."""

    name = "bollinger_reversion"
    params_model = BollingerParams

    def exposure(self, bars: SymbolBars) -> np.ndarray:
        c = bars.close
        band = bollinger(c, self.params.window, self.params.k)
        want = np.full(c.shape[0], np.nan)  # NaN: keep the position held
        want[c < band.lower] = 1.0
        want[c > band.upper] = -1.0  # clipped to flat when long_only
        held = 0.0
        for t in range(c.shape[0]):  # path-dependent exit: flat once the close crosses back to the middle
            if not np.isnan(want[t]):
                held = want[t]
            elif (held > 0 and c[t] >= band.middle[t]) or (held < 0 and c[t] <= band.middle[t]):
                held = 0.0
            want[t] = held
        return want
