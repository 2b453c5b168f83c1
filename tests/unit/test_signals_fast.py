"""read_signals_frame's vectorised path: the same frame as the per-record path, or it steps aside.

Any file, valid or not, must give exactly what signals_to_frame(read_signals(...)) gives: the same frame, or
the same InputError (file, line, field)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import marketboss.signals as signals_mod
from marketboss.errors import InputError
from marketboss.signals import read_signals, read_signals_frame, signals_to_frame, write_signals

VALID = {
    "id": "sig-0001", "timestamp": "2024-01-02T05:00:00Z", "symbol": "AAPL", "action": "BUY", "quantity": 10,
    "strategy": "ma_crossover", "price": 150.5, "target_weight": None,
}  # fmt: skip
#: Per field: forms both paths accept (some only after normalising: the vectorised path must step aside), and
#: forms the per-record path refuses. quantity and target_weight vary together (exactly one of them is set).
GOOD: dict[str, list[Any]] = {
    "id": ["sig-0001", "a.b:c_d-1"],
    "timestamp": ["2024-01-02T05:00:00Z", "2024-01-02T05:00:00.250Z", "2024-01-02T05:00:00.123456789Z",
                  "2024-01-02T05:00:00+00:00",
                  "2024-01-02T05:00:00", "2024-01-02T00:30:00-05:00"],
    "symbol": ["AAPL", "BRK.B"],
    "action": ["BUY", "SELL", "buy", " Sell "],
    "size": [(10, None), (2.5, None), (None, 0.5), (None, -1), (None, 1)],
    "strategy": ["ma_crossover", None, ""],
    "price": [150.5, 1, None],
    # the order fields (prices around the 150.5 of a BUY's price: some only fit one side, so BAD need not hold
    # every case that fails; the per-record path is the reference)
    "orders": [{}, {"order_type": "limit", "limit_price": 149.0}, {"order_type": "stop", "stop_price": 151.0,
               "time_in_force": "gtc"}, {"take_profit": 160.0, "stop_loss": 140.0}, {"order_type": "Limit",
               "limit_price": 149.0}, {"order_type": "trailing_stop", "trail_percent": 5},
               {"order_type": "stop_limit", "stop_price": 151.0, "limit_price": 152.0}, {"trail_percent": 3},
               {"order_type": None, "time_in_force": None}],
}
BAD: dict[str, list[Any]] = {
    "id": [17, "bad id!", "x" * 129, ""],
    "timestamp": ["2024-01-02", "not a time", "", 1704171600, None, "2024-01-02T05:00:60Z", "2024-1-2T05:00:00Z",
                  "+2024-01-02T05:00:00Z", "2024-01-02T24:00:00Z", "2024-02-30T05:00:00Z"],
    "symbol": ["aapl", " AAPL", "", "X" * 33, 5, None],
    "action": ["HOLD", 1, None],
    "size": [(0, None), (-1, None), (True, None), ("10", None), (None, None), (5, 0.5), (None, 1.5), (None, "0.1")],
    "strategy": [3],
    "price": [0, -2.0, "150", False],
    "orders": [{"order_type": "limit"}, {"stop_price": 3.0}, {"order_type": "ioc"}, {"time_in_force": "fok"},
               {"take_profit": 140.0, "stop_loss": 160.0}, {"order_type": "limit", "limit_price": -1},
               {"order_type": "trailing_stop", "trail_percent": 5, "stop_loss": 140.0},
               {"stop_loss": 140.0, "trail_percent": 2}, {"order_type": "stop_limit", "stop_price": 151.0,
               "limit_price": 140.0}, {"order_type": "trailing_stop", "trail_percent": 0}, {"take_profit": "160"}],
}  # fmt: skip


def _field(name: str) -> st.SearchStrategy[Any]:
    """Mostly good values, so that whole files are often valid and both outcomes get exercised."""
    return st.integers(0, 9).flatmap(lambda n: st.sampled_from(BAD[name] if n == 0 else GOOD[name]))


def _record(fields: dict[str, Any]) -> dict[str, Any]:
    quantity, target_weight = fields.pop("size")
    return {**fields, **fields.pop("orders"), "quantity": quantity, "target_weight": target_weight}


def _outcome(path: Path) -> tuple[str, Any]:
    try:
        return "ok", read_signals_frame(path)
    except InputError as exc:
        return "error", str(exc)


def _reference(path: Path) -> tuple[str, Any]:
    try:
        return "ok", signals_to_frame(read_signals(path))
    except InputError as exc:
        return "error", str(exc)


record = st.fixed_dictionaries({k: _field(k) for k in GOOD}).map(_record)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(record, min_size=0, max_size=6), unique=st.booleans(), drop=st.sampled_from([None, "id",
                                                                                                     "strategy"]))
def test_same_frame_or_same_error_as_the_per_record_path(
    tmp_path: Path, records: list[dict[str, Any]], unique: bool, drop: str | None
) -> None:
    lines = []
    for i, r in enumerate(records):
        rec = dict(r)
        if unique and isinstance(rec["id"], str) and rec["id"]:
            rec["id"] = f"{rec['id']}-{i}"
        if drop:
            rec.pop(drop, None)
        lines.append(json.dumps(rec))
    path = tmp_path / "signals.jsonl"
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    got, want = _outcome(path), _reference(path)
    assert got[0] == want[0], (got, want)
    if got[0] == "ok":
        assert got[1].schema == want[1].schema and got[1].equals(want[1])
    else:
        assert got[1] == want[1]


def test_canonical_files_take_the_vectorised_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "signals.jsonl"
    rows = [{**VALID, "id": f"sig-{i}", "quantity": None, "target_weight": 0.1} if i % 2 else {**VALID, "id": f"s{i}"}
            for i in range(50)]  # fmt: skip
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    want = signals_to_frame(read_signals(path))

    def per_record(*args: object, **kwargs: object) -> None:
        raise AssertionError("the per-record path was taken")

    monkeypatch.setattr(signals_mod, "read_signals", per_record)
    got = read_signals_frame(path)
    assert got.equals(want) and got["_line"].to_list() == list(range(1, 51))


def test_blank_lines_keep_true_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "signals.jsonl"
    path.write_text(json.dumps(VALID) + "\n\n\n" + json.dumps({**VALID, "id": "sig-2"}) + "\n")
    assert read_signals_frame(path)["_line"].to_list() == [1, 4]


def test_duplicate_ids_are_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "signals.jsonl"
    path.write_text(json.dumps(VALID) + "\n" + json.dumps(VALID) + "\n")
    with pytest.raises(InputError, match=r":2: field 'id': duplicate id 'sig-0001' \(first on line 1\)"):
        read_signals_frame(path)


def test_order_fields_take_the_vectorised_path_and_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "signals.jsonl"
    orders = [*GOOD["orders"][:4], {"order_type": "trailing_stop", "trail_percent": 5}]
    path.write_text("\n".join(json.dumps({**VALID, "id": f"s{i}", **o}) for i, o in enumerate(orders)) + "\n")
    want = signals_to_frame(read_signals(path))
    monkeypatch.setattr(signals_mod, "read_signals", lambda *a, **k: pytest.fail("the per-record path was taken"))
    got = read_signals_frame(path)
    assert got.equals(want) and got["order_type"].to_list() == ["market", "limit", "stop", "market", "trailing_stop"]
    out = tmp_path / "out.jsonl"
    signals_mod.write_signals(out, got)
    first, second = (json.loads(line) for line in out.read_text().splitlines()[:2])
    assert "order_type" not in first and second["limit_price"] == 149.0  # a plain line keeps its old form
    assert read_signals_frame(out).drop("_line").equals(got.drop("_line"))


@pytest.mark.parametrize(("fields", "field", "reason"), [
    ({"order_type": "limit"}, "limit_price", "a limit order needs it"),
    ({"stop_price": 3.0}, "stop_price", "not used by a market order"),
    ({"take_profit": 140.0}, "take_profit", "must be above its price"),
    ({"take_profit": 170.0, "stop_loss": 160.0}, "stop_loss", "must be below its price"),
    ({"action": "SELL", "stop_loss": 140.0}, "stop_loss", "a sell's stop_loss .* must be above"),
    ({"order_type": "limit", "limit_price": 149.0, "stop_loss": 149.5}, "stop_loss", "below its limit_price"),
    ({"order_type": "limit", "limit_price": -1.0}, "limit_price", "out of range"),
    ({"order_type": "trailing_stop", "trail_percent": 5, "take_profit": 170.0}, "take_profit", "no bracket"),
    ({"order_type": "limit", "limit_price": 149.005}, "limit_price", "149.005 is finer than the price grid"),
    ({"order_type": "limit", "limit_price": 0.12345}, "limit_price", "finer than the price grid"),
    ({"take_profit": 170.001}, "take_profit", "finer than the price grid"),
    ({"order_type": "stop", "stop_price": 151.5, "stop_loss": 140.0000001}, "stop_loss", "finer than the price"),
])  # fmt: skip
def test_order_field_errors_name_line_and_field(
    tmp_path: Path, fields: dict[str, Any], field: str, reason: str
) -> None:
    path = tmp_path / "signals.jsonl"
    path.write_text(json.dumps(VALID) + "\n" + json.dumps({**VALID, "id": "s2", **fields}) + "\n")
    with pytest.raises(InputError, match=rf"signals.jsonl:2: field '{field}': .*{reason}"):
        read_signals_frame(path)


def test_order_prices_on_the_grid_pass_cents_from_a_dollar_hundredths_of_a_cent_below(tmp_path: Path) -> None:
    path = tmp_path / "signals.jsonl"
    fields = [{"order_type": "limit", "limit_price": 0.1234}, {"order_type": "stop", "stop_price": 151.25},
              {"take_profit": 170.01, "stop_loss": 1.0}]  # fmt: skip
    path.write_text("\n".join(json.dumps({**VALID, "id": f"s{i}", **f}) for i, f in enumerate(fields)) + "\n")
    assert read_signals_frame(path)["limit_price"].to_list()[0] == 0.1234


def test_default_order_fields_keep_the_plain_frame(tmp_path: Path) -> None:
    path = tmp_path / "signals.jsonl"
    path.write_text(json.dumps({**VALID, "order_type": "market", "time_in_force": None}) + "\n")
    assert read_signals_frame(path).equals(signals_to_frame(read_signals(path)))
    assert "order_type" not in read_signals_frame(path).columns


@pytest.mark.parametrize(
    "line",
    [
        '"id": "sig-0001", "id": "sig-0002"',  # a repeated key: polars keeps one of them silently
        '"id": 17',  # a number where text belongs: polars reads it as text
        '"extra": {"a": 1}',  # an unknown key holding an object
        '"strategy": {"name": "x"}',  # an object where text belongs: polars reads it as text
    ],
)
def test_what_polars_would_hide_takes_the_per_record_path(tmp_path: Path, line: str) -> None:
    """The text-level checks of the polars reader: each of these lines leaves it, and the outcome is the
    per-record reader's (an error naming the line, or the same frame)."""
    body = json.dumps({**VALID, "id": "sig-0000"})
    text = body[:-1] + ", " + line + "}" if not line.startswith('"id"') else "{" + line + body[body.index(","):]
    path = tmp_path / "signals.jsonl"
    path.write_text(json.dumps({**VALID, "id": "sig-0009"}) + "\n" + text + "\n")
    assert signals_mod._ndjson_frame(path) is None
    got, want = _outcome(path), _reference(path)
    assert got[0] == want[0] and (got[1] == want[1] if got[0] == "error" else got[1].equals(want[1]))


def _row_by_row(d: dict[str, Any]) -> dict[str, Any]:
    """A signal as the contract writes it, one at a time: its fields in order, a whole quantity as an integer,
    the order fields only where they say more than a market order for the day, a cancel's id where it has one."""
    q = d["quantity"]
    out = {**{f: d[f] for f in signals_mod.SIGNAL_FIELDS}, "quantity": int(q) if q is not None and q == int(q) else q}
    out.update({f: d[f] for f in signals_mod.ORDER_FIELDS
                if d.get(f) is not None and d[f] != signals_mod.ORDER_DEFAULTS.get(f)})  # fmt: skip
    if d.get(signals_mod.CANCELS) is not None:
        out[signals_mod.CANCELS] = d[signals_mod.CANCELS]
    return out


_ORDERS = st.sampled_from([{}, {"order_type": "limit", "limit_price": 149.0}, {"time_in_force": "gtc"},
                           {"order_type": "market", "time_in_force": "day"}, {"take_profit": 170.01, "stop_loss": 0.1},
                           {"order_type": "trailing_stop", "trail_percent": 2.5, "time_in_force": "gtc"},
                           {"order_type": "stop_limit", "stop_price": 0.0001, "limit_price": 123456.79}])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(st.tuples(st.sampled_from([10, 2.5, None, 7, 0.25]), _ORDERS), min_size=1, max_size=8),
       cancel=st.booleans())
def test_written_text_is_the_row_by_row_form(tmp_path: Path, specs: list[tuple[Any, dict[str, Any]]],
                                             cancel: bool) -> None:  # fmt: skip
    """write_signals encodes whole frames with polars, each row with the fields of its own order (a cancel
    with the id it cancels): the bytes are those of the signals written one by one as the contract says, and
    signal_records (the live loop's log) gives the same objects."""
    from marketboss.data.io import write_jsonl

    rows = [{**VALID, **orders, "id": f"s{i}", "quantity": q, "target_weight": None if q is not None else 0.5}
            for i, (q, orders) in enumerate(specs)]  # fmt: skip
    if cancel:
        rows.append({**VALID, "id": "c0", "timestamp": "2024-01-03T05:00:00Z", "action": "CANCEL", "quantity": None,
                     "price": None, "cancels": "s0"})  # fmt: skip
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    frame = read_signals_frame(src)
    write_signals(tmp_path / "out.jsonl", frame)
    text = frame.select(*(c for c in frame.columns if c != "_line")).with_columns(
        signals_mod.pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    write_jsonl(tmp_path / "ref.jsonl", (_row_by_row(r) for r in text.iter_rows(named=True)))
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "ref.jsonl").read_bytes()
    assert signals_mod.signal_records(frame) == [_row_by_row(r) for r in text.iter_rows(named=True)]


def test_an_unknown_key_standing_in_for_a_missing_id_still_gets_the_derived_id(tmp_path: Path) -> None:
    """The fast reader counts colons and quotes to know polars hid nothing: a line without "id" but with an
    unknown key ({"orders": {}}) has the counts of a complete line, and must still take the per-record path."""
    path = tmp_path / "signals.jsonl"
    path.write_text('{"timestamp": "2024-01-02T05:00:00Z", "symbol": "AAPL", "action": "BUY", "strategy": "x", '
                    '"price": 150.5, "orders": {}, "quantity": 10, "target_weight": null}\n')  # fmt: skip
    got, want = _outcome(path), _reference(path)
    assert got[0] == want[0] == "ok" and got[1]["id"].to_list() == want[1]["id"].to_list()
    assert got[1]["id"][0].startswith("sig-")


_PRICE = st.sampled_from([None, 100.0, 99.0, 101.0, 0.0, -1.0, 1e300, float("nan")])


@settings(max_examples=400, deadline=None)
@given(
    action=st.sampled_from(["BUY", "SELL"]),
    size=st.sampled_from([(10.0, None), (None, 0.5), (None, -1.0), (0.0, None), (None, None), (5.0, 0.5),
                          (float("nan"), None), (None, 1.5), (float("inf"), None)]),
    order_type=st.sampled_from([None, *signals_mod.ORDER_TYPE_NAMES, "ioc"]),
    tif=st.sampled_from([None, "day", "gtc", "fok"]),
    price=_PRICE, limit=_PRICE, stop=_PRICE, tp=_PRICE, sl=_PRICE,
    trail=st.sampled_from([None, 5.0, 0.0, 50.0, 51.0]),
)  # fmt: skip
def test_the_rules_kernel_passes_exactly_what_the_model_accepts(
    action: str, size: tuple[Any, Any], order_type: str | None, tif: str | None, price: float | None,
    limit: float | None, stop: float | None, tp: float | None, sl: float | None, trail: float | None
) -> None:  # fmt: skip
    """signals.valid_orders (the compiled rules_pass) on one row of a frame against Signal on the same row."""
    import polars as pl
    from pydantic import ValidationError

    row = {"id": "x", "timestamp": "2024-01-02T05:00:00Z", "symbol": "AAPL", "action": action, "quantity": size[0],
           "target_weight": size[1], "price": price, "order_type": order_type, "time_in_force": tif,
           "limit_price": limit, "stop_price": stop, "trail_percent": trail, "take_profit": tp, "stop_loss": sl}
    try:
        signals_mod.Signal.model_validate(row)
        model = True
    except ValidationError:
        model = False
    schema = {**signals_mod.SIGNAL_SCHEMA, **signals_mod.ORDER_SCHEMA, "timestamp": pl.String}
    frame = pl.DataFrame([row], schema=schema)
    assert bool(signals_mod.valid_orders(frame)[0]) == model, row


def test_the_rules_kernel_agrees_with_the_model_on_every_combination_of_prices() -> None:
    """Every side, order type and trail with each of limit, stop, take-profit, stop-loss and the signal's price
    absent, below, at or above 100: the order rules' comparisons, each edge included, row by row."""
    import itertools

    import polars as pl
    from pydantic import ValidationError

    levels = (None, 99.0, 100.0, 101.0)
    rows = [{"id": "x", "timestamp": "2024-01-02T05:00:00Z", "symbol": "AAPL", "action": action, "quantity": 10.0,
             "target_weight": None, "price": price, "order_type": kind, "time_in_force": "gtc", "limit_price": limit,
             "stop_price": stop, "trail_percent": trail, "take_profit": tp, "stop_loss": sl}
            for action, kind, trail, price, limit, stop, tp, sl in itertools.product(
                ("BUY", "SELL"), signals_mod.ORDER_TYPE_NAMES, (None, 5.0), *[levels] * 5)]  # fmt: skip

    def model(row: dict[str, Any]) -> bool:
        try:
            signals_mod.Signal.model_validate(row)
        except ValidationError:
            return False
        return True

    want = [model(r) for r in rows]
    schema = {**signals_mod.SIGNAL_SCHEMA, **signals_mod.ORDER_SCHEMA, "timestamp": pl.String}
    got = signals_mod.valid_orders(pl.DataFrame(rows, schema=schema)).tolist()
    assert sum(want) > 400 and len(want) - sum(want) > 500  # both outcomes, many times
    assert got == want, next(r for r, g, w in zip(rows, got, want, strict=True) if g != w)
