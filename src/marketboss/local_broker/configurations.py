"""The account configurations (GET/PATCH /v2/account/configurations), as Alpaca names and spells them, kept in
the store's meta. The local broker honours suspend_trade, no_shorting, fractional_trading, max_margin_multiplier
and pdt_check; dtbp_check, trade_confirm_email and the rest are kept and shown only."""

from __future__ import annotations

from typing import Any

import orjson

from marketboss.local_broker.errors import invalid
from marketboss.local_broker.store import Store

KEY = "account_configurations"
CHOICES: dict[str, tuple[str, ...]] = {
    "dtbp_check": ("both", "entry", "exit"),
    "pdt_check": ("both", "entry", "exit"),
    "trade_confirm_email": ("all", "none"),
    "max_margin_multiplier": ("1", "2", "4"),
}
FLAGS = ("suspend_trade", "no_shorting", "fractional_trading", "ptp_no_exception_entry")
DEFAULTS: dict[str, Any] = {
    "dtbp_check": "entry",
    "trade_confirm_email": "all",
    "suspend_trade": False,
    "no_shorting": False,
    "fractional_trading": True,
    "max_margin_multiplier": "4",
    "pdt_check": "entry",
    "ptp_no_exception_entry": False,
    "max_options_trading_level": None,
}


class Configurations:
    def __init__(self, store: Store):
        self.store = store
        raw = store.get_meta(KEY)
        self.values: dict[str, Any] = {**DEFAULTS, **(orjson.loads(raw) if raw else {})}

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def patch(self, body: Any) -> dict[str, Any]:
        """The changed configurations (checked field by field, all or nothing); the caller holds the transaction."""
        if not isinstance(body, dict):
            raise invalid("request body must be a JSON object")
        new = dict(self.values)
        for name, v in body.items():
            if name in CHOICES:
                text = str(v) if isinstance(v, int) and not isinstance(v, bool) else v
                if not isinstance(text, str) or text.lower() not in CHOICES[name]:
                    raise invalid(f"invalid {name[:40]}: use one of {', '.join(CHOICES[name])}")
                new[name] = text.lower()
            elif name in FLAGS:
                if not isinstance(v, bool):
                    raise invalid(f"{name} must be a boolean")
                new[name] = v
            elif name == "max_options_trading_level":
                if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 3):
                    raise invalid("max_options_trading_level must be 0, 1, 2 or 3")
                new[name] = v
            else:
                raise invalid(f"unknown configuration {str(name)[:40]!r}")
        self.values = new
        self.store.set_meta(KEY, orjson.dumps(new).decode())
        return new
