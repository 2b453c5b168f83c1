"""The price-feature kernel's lookbacks (nb.price_features' columns, in order; see features.PRICE_FEATURES), kept
apart from the kernel so that naming the features (the ml strategy's module, which every `--strategy` lookup
imports with the built-ins) loads no numba."""

RETURN_LAGS = (1, 5, 10, 20, 60)
MA_FAST, MA_SLOW = 10, 50
VOL_SHORT, VOL_LONG = 20, 60
RANGE_WINDOW = 20
