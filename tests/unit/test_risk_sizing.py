"""Each risk check blocks with its reason; sizing follows the signal semantics; slippage has the right sign."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from marketboss.backtest.arrays import REJECTED_CASH, SKIPPED
from marketboss.backtest.engine import REASONS
from marketboss.backtest.nb import Rules, free_cash, weight_trade
from marketboss.broker.base import Account, Asset, Clock, Position
from marketboss.execution.executor import others_short, size_order
from marketboss.execution.slippage import slippage_bps
from marketboss.risk import OrderIntent, RiskConfig, RiskContext, RiskEngine
from marketboss.signals import Signal

T = datetime(2024, 1, 2, 15, tzinfo=UTC)
ACCOUNT = Account(cash=50_000, portfolio_value=100_000, buying_power=50_000, equity=100_000, last_equity=100_000,
                  multiplier=1, status="ACTIVE")  # fmt: skip
OPEN = Clock(T, True, T, T)
ASSET = Asset("AAPL", tradable=True, shortable=False, fractionable=True, status="active")


def ctx(**kw: object) -> RiskContext:
    base: dict[str, object] = {"account": ACCOUNT, "clock": OPEN, "asset": ASSET, "position_qty": 0.0}
    base.update(kw)
    return RiskContext(**base)  # type: ignore[arg-type]


BUY_100 = OrderIntent("AAPL", "buy", 100, 150.0)  # $15,000


@pytest.mark.parametrize(
    ("config", "intent", "context", "check"),
    [
        ({}, BUY_100, ctx(clock=Clock(T, False, T, T)), "market_open"),
        ({}, BUY_100, ctx(asset=None), "tradable"),
        ({}, BUY_100, ctx(asset=Asset("AAPL", False, False, True, "active")), "tradable"),
        ({}, OrderIntent("AAPL", "sell", 10, 150.0), ctx(), "tradable"),  # short, not shortable
        (
            {},
            OrderIntent("AAPL", "buy", 0.5, 150.0),
            ctx(asset=Asset("AAPL", True, False, False, "active")),
            "tradable",
        ),
        ({"allowed_symbols": "MSFT,spy"}, BUY_100, ctx(), "allow_list"),
        ({"max_order_notional": 10_000}, BUY_100, ctx(), "max_order_notional"),
        ({"max_position_shares": 120}, BUY_100, ctx(position_qty=50.0), "max_position_shares"),
        ({"max_position_pct": 0.1}, BUY_100, ctx(), "max_position_pct"),
        ({}, OrderIntent("AAPL", "buy", 400, 150.0), ctx(), "buying_power"),
        ({}, BUY_100, ctx(account=Account(1, 1, 1, 1, 1, 1, "ACCOUNT_CLOSED")), "account"),
    ],
)
def test_each_check_blocks_with_its_name(
    config: dict[str, object], intent: OrderIntent, context: RiskContext, check: str
) -> None:
    block = RiskEngine(RiskConfig(**config)).pre_trade(intent, context)  # type: ignore[arg-type]
    assert block is not None and block.check == check and block.reason


def test_orders_within_limits_pass_and_reducing_a_position_is_never_blocked_by_size() -> None:
    engine = RiskEngine(RiskConfig(max_position_shares=50, max_position_pct=0.01, allowed_symbols="aapl"))
    assert engine.pre_trade(OrderIntent("AAPL", "sell", 100, 150.0), ctx(position_qty=200.0)) is None
    assert RiskEngine(RiskConfig()).pre_trade(BUY_100, ctx()) is None
    assert RiskConfig(allowed_symbols="aapl, msft").allowed_symbols == frozenset({"AAPL", "MSFT"})
    # a fraction: 20 meant as 20% was 2000% of equity, no limit at all
    assert RiskConfig(max_position_pct=1.5).max_position_pct == 1.5
    with pytest.raises(ValueError, match="max_position_pct"):
        RiskConfig(max_position_pct=20)


def test_daily_loss_kill_switch_threshold() -> None:
    engine = RiskEngine(RiskConfig(max_daily_loss_pct=0.02))
    down_1 = Account(0, 99_000, 0, 99_000, 100_000, 1, "ACTIVE")
    down_3 = Account(0, 97_000, 0, 97_000, 100_000, 1, "ACTIVE")
    assert engine.daily_loss_breached(down_1) is None
    block = engine.daily_loss_breached(down_3)
    assert block is not None and "3.00% > limit 2.00%" in block.reason


def _sig(action: str, quantity: float | None = None, weight: float | None = None) -> Signal:
    return Signal(id="sig-1", timestamp=T, symbol="AAPL", action=action, quantity=quantity, target_weight=weight)  # type: ignore[arg-type]


def test_sizing_by_quantity_and_by_target_weight() -> None:
    assert size_order(_sig("BUY", quantity=10), 100_000, 100_000, 0, 150, False) == ("buy", 10)
    assert size_order(_sig("SELL", quantity=10), 100_000, 100_000, 0, 150, False) == ("sell", 10)  # may go short
    assert size_order(_sig("BUY", weight=0.2), 100_000, 100_000, 0, 150, False) == ("buy", 133.0)  # 20,000 / 150
    assert size_order(_sig("BUY", weight=0.2), 100_000, 100_000, 0, 150, True) == ("buy", 133.333333)
    assert size_order(_sig("BUY", weight=0.2), 100_000, 100_000, 50, 150, False) == ("buy", 83.0)
    assert size_order(_sig("SELL", weight=0.0), 100_000, 100_000, 50, 150, False) == ("sell", 50.0)
    assert size_order(_sig("BUY", weight=0.2), 100_000, 100_000, 200, 150, False) == REASONS[SKIPPED]
    assert size_order(_sig("SELL", weight=-0.1), 100_000, 100_000, 0, 150, False) == ("sell", 66.0)
    assert size_order(_sig("BUY", weight=0.2), 100_000, 100, 0, 150, False) == REASONS[REJECTED_CASH]  # 100 cash
    assert size_order(_sig("BUY", weight=1.0), 100_000, 3_000, 600, 150, False) == ("buy", 20.0)  # the cash left


def test_a_weight_short_is_sized_within_the_collateral_the_account_has_free() -> None:
    """Nothing is borrowed, in paper as in the backtest: all in short (-1.0) on 10,000 at 102 is 98 shares (their
    proceeds and as much again held in cash); another symbol's short of 9,996 leaves its collateral out of the
    free cash (others_short), so the same weight then finds none: rejected for cash, as the backtest's is."""
    assert size_order(_sig("SELL", weight=-1.0), 10_000, 10_000, 0, 102, False) == ("sell", 98.0)
    held = {"MSFT": Position("MSFT", -98, 102, 102, -9_996.0), "AAPL": Position("AAPL", 10, 90, 102, 1_020.0)}
    assert others_short(held, "AAPL") == 9_996.0 and others_short(held, "MSFT") == 0.0
    free = free_cash(19_996.0 - 1_020.0, others_short(held, "AAPL"))
    assert size_order(_sig("SELL", weight=-0.5), 10_000, free, 0, 102, False) == REASONS[REJECTED_CASH]


def test_the_executor_sizes_a_weight_as_the_backtest_does() -> None:
    """One sizing rule: the executor's order for a target weight is the backtest kernel's, fees aside."""
    for weight, pos, cash in ((0.5, 0.0, 100_000.0), (1.0, 100.0, 85_000.0), (-0.3, 40.0, 94_000.0)):
        equity = cash + pos * 150.0
        q, _ = weight_trade(weight, equity, cash, 150.0, 1.0 if weight > 0 else -1.0, pos,
                            Rules(cash, 0.0, 0.0, 0.0, 0.0, False, False))  # fmt: skip
        sized = size_order(_sig("BUY" if weight > 0 else "SELL", weight=weight), equity, cash, pos, 150.0, False)
        assert sized is not None and sized[1] == abs(q) and (sized[0] == "buy") == (q > 0)


def test_a_weight_is_sized_at_the_price_the_backtest_fills_it_at() -> None:
    """The broker's own spread (the local broker's: fill_costs) moves the price a purchase is sized at, as the
    backtest's costs do (paper bought a fractional weight at the mid, 0.01% more than the backtest); a limit is
    sized at its limit (it fills there: 280 shares, not 279 at the open), a stop at its stop, each unless the
    price is already past it."""
    slip = 1.0 / 10_000  # 2 bps of spread: half a side
    assert size_order(_sig("BUY", weight=0.45), 100_000, 100_000, 0, 294.3559, True, slip) == (
        "buy", float(np.floor(45_000 / (294.3559 * (1 + slip)) * 1e6) / 1e6))  # fmt: skip
    limit = _sig("BUY", weight=0.5).model_copy(update={"order_type": "limit", "limit_price": 178.5})
    assert size_order(limit, 100_000, 100_000, 0, 179.0, False) == ("buy", 280.0)  # 50,000 / 178.5
    assert size_order(limit, 100_000, 100_000, 0, 170.0, False) == ("buy", 294.0)  # at the price: 50,000 / 170
    stop = _sig("BUY", weight=0.5).model_copy(update={"order_type": "stop", "stop_price": 185.0})
    assert size_order(stop, 100_000, 100_000, 0, 179.0, False) == ("buy", 270.0)  # 50,000 / 185
    assert size_order(stop, 100_000, 100_000, 0, 190.0, False) == ("buy", 263.0)  # gapped past it: 50,000 / 190


def test_slippage_sign_is_positive_when_worse() -> None:
    assert slippage_bps("BUY", 100.0, 100.05) == pytest.approx(5.0)
    assert slippage_bps("SELL", 100.0, 100.05) == pytest.approx(-5.0)
    assert slippage_bps("SELL", 100.0, None) is None


def test_a_fractional_flips_two_orders_add_up_to_what_was_asked() -> None:
    """135 + 133.898745 is 268.89874499999996 in floats: the flip's record says 268.898745, as asked (it was logged
    partially filled), and its rest goes in millionths (the broker takes at most 9 decimals)."""
    from marketboss.broker.base import Order
    from marketboss.execution.executor import _both

    def order(qty: float) -> Order:
        return Order("o", "c", "AAPL", "sell", qty, qty, 100.0, "filled", "market", None, None)

    both = _both(order(135.0), order(133.898745))
    assert both.filled_qty == both.qty == 268.898745 and both.filled_qty >= round(135.0 + 133.898745, 9)
