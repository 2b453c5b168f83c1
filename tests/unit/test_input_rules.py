"""Every reader refuses what issue 17 found accepted or failing badly, with the one-line file:line:field error;
a hypothesis fuzz finds no other kind of error in the bars and signals readers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from marketboss.data.importers import import_bars
from marketboss.data.io import read_bars, read_jsonl_records
from marketboss.data.rules import MAX_LINE_BYTES, number_from_text, symbol_error
from marketboss.data.synth import symbols_from, synth_bars
from marketboss.errors import InputError, MarketBossError
from marketboss.signals import read_signals, read_signals_frame

BAR = '{"timestamp":"2024-01-02T05:00:00Z","symbol":"AAPL","open":1,"high":2,"low":0.5,"close":1.5,"volume":100}'
SIG = '{"timestamp":"2024-01-02T05:00:00Z","symbol":"AAPL","action":"BUY","quantity":5}'


def _bar(**fields: object) -> str:
    rec = json.loads(BAR) | {"timestamp": "2024-01-03T05:00:00Z"}
    rec.update(fields)
    return json.dumps(rec, ensure_ascii=False)


def _sig(**fields: object) -> str:
    rec = json.loads(SIG)
    rec.update(fields)
    return json.dumps(rec, ensure_ascii=False)


BAD_BARS = [
    (_bar(timestamp="0001-01-01T00:00:00Z"), "timestamp", "out of range (1900 to 2199)"),
    (_bar(timestamp="9999-12-31T00:00:00Z"), "timestamp", "out of range"),
    (BAR[:-1] + ',"close":9}', "close", "duplicate key 'close'"),
    (_bar(open=True), "open", "expected a number, got True"),
    (_bar(open="١"), "open", "expected a number"),
    (_bar(symbol="../X"), "symbol", "is not a symbol"),
    (_bar(symbol="A B/../C"), "symbol", "is not a symbol"),
    (_bar(symbol="A\u0000B"), "symbol", "is not a symbol"),
    (_bar(symbol="aapl"), "symbol", "is not a symbol"),
    (_bar(symbol="X" * 100), "symbol", "symbol 'XXXXXXXXXXXXXXXXXXXXXXXX' is not a symbol"),
    (_bar(close=2e9, high=2e9), "high", "price must be <= 1e+09"),
    (_bar(volume=1e300), "volume", "volume must be <= 1e+15"),
]


@pytest.mark.parametrize(("line", "field", "reason"), BAD_BARS)
def test_bad_bars_are_one_line_errors_naming_line_and_field(tmp_path: Path, line: str, field: str, reason: str) -> None:
    path = tmp_path / "bars.jsonl"
    path.write_text(f"{BAR}\n{line}\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_bars(path)
    assert (err.value.line, err.value.field) == (2, field) and reason in err.value.reason
    assert "\n" not in str(err.value) and len(str(err.value)) < 400


CSV_HEAD = "timestamp,symbol,open,high,low,close,volume\n"


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        ("2024-01-02T05:00:00Z,AAPL,1,2,0.5,1e309,100", "close", "not a finite number"),
        ("2024-01-02T05:00:00Z,AAPL,1,2,0.5,١,100", "close", "expected a number"),
        ("2024-01-02T05:00:00Z,AAPL,1,2,0.5,1_5,100", "close", "expected a number"),
        ("2024-01-02T05:00:00Z,AAPL,1,2,0.5,nan,100", "close", "not a number (NaN)"),
        ("0001-01-01T00:00:00Z,AAPL,1,2,0.5,1.5,100", "timestamp", "out of range"),
    ],
)
def test_bad_csv_cells_are_one_line_errors(tmp_path: Path, row: str, field: str, reason: str) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(CSV_HEAD + row + "\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_bars(path)
    assert (err.value.line, err.value.field) == (2, field) and reason in err.value.reason


def test_a_repeated_csv_column_is_refused_by_both_readers(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("timestamp,symbol,open,high,low,close,Close,volume\n2024-01-02,AAPL,1,2,0.5,1.5,9,100\n")
    for read in (read_bars, lambda p: import_bars(p)):
        with pytest.raises(InputError) as err:
            read(path)
        assert err.value.line == 1 and "duplicate column 'Close'" in err.value.reason


BAD_SIGNALS = [
    (_sig(quantity=True), "quantity", "expected a number, got True"),
    (_sig(quantity=1e300), "quantity", "out of range"),
    (_sig(quantity="5"), "quantity", "expected a number, got '5'"),
    (_sig(quantity="١"), "quantity", "expected a number, got '١'"),
    (_sig(price=2e9), "price", "out of range"),
    (SIG[:-1] + ',"quantity":6}', "quantity", "duplicate key 'quantity'"),
    (_sig(symbol="../X"), "symbol", "is not a symbol"),
    (_sig(symbol="A B/../C"), "symbol", "is not a symbol"),
    (_sig(symbol="A\u0000"), "symbol", "is not a symbol"),
    (_sig(timestamp="0001-01-01T00:00:00Z"), "timestamp", "out of range"),
    (_sig(timestamp=1700000000), "timestamp", "expected an ISO-8601 timestamp"),
]


@pytest.mark.parametrize(("line", "field", "reason"), BAD_SIGNALS)
def test_bad_signals_are_one_line_errors_naming_line_and_field(
    tmp_path: Path, line: str, field: str, reason: str
) -> None:
    path = tmp_path / "signals.jsonl"
    path.write_text(f"{SIG}\n{line}\n", encoding="utf-8")
    for read in (read_signals, read_signals_frame):
        with pytest.raises(InputError) as err:
            read(path)
        assert (err.value.line, err.value.field) == (2, field), err.value
        assert reason in err.value.reason and "\n" not in str(err.value)


def test_huge_sparse_and_endless_line_files_are_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sparse = tmp_path / "sparse.jsonl"
    with open(sparse, "wb") as fh:
        fh.truncate(3 << 30)  # 3 GiB of holes: no memory is spent on it
    with pytest.raises(InputError, match="NUL bytes"):
        read_bars(sparse)
    endless = tmp_path / "endless.jsonl"
    endless.write_bytes(BAR.encode() + b"\n" + b'{"symbol":"' + b"A" * (2 * MAX_LINE_BYTES) + b'"}\n')
    with pytest.raises(InputError) as err:
        read_jsonl_records(endless)
    assert err.value.line == 2 and "line longer than" in err.value.reason
    big = tmp_path / "big.jsonl"
    big.write_text((BAR + "\n") * 10)
    monkeypatch.setenv("MARKETBOSS_MAX_INPUT_BYTES", "500")
    with pytest.raises(InputError, match="over the 500-byte limit"):
        read_bars(big)
    os.truncate(sparse, 0)


def test_generator_sizes_are_bounded() -> None:
    with pytest.raises(MarketBossError, match="count from 1 to 10,000"):
        symbols_from("1000000000")
    with pytest.raises(MarketBossError, match="is not a symbol"):
        symbols_from("AAPL,../X")
    with pytest.raises(MarketBossError, match="over 100,000,000 bars"):
        synth_bars([f"S{i}" for i in range(5000)], "2020-01-01", "2024-12-31", "1Min")


def test_the_shared_rules_themselves() -> None:
    assert symbol_error("BRK.B") is None and symbol_error("BTC/USD") is None and symbol_error("SYN001") is None
    for bad in ("", ".A", "A.", "A..B", "A/./B", "A-B", "a", "A B", "Ａ", "A" * 22):
        assert symbol_error(bad), bad
    assert number_from_text(" 1.5e3 ") == 1500 and number_from_text("-.5") == -0.5
    for bad in ("١", "1_000", "NaN", "inf", "Infinity", "0x10", "", "1e99999", "1" * 65):
        assert number_from_text(bad) is None, bad


# ------------------------------------------------------------------------------------------------ fuzz

_values = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
    st.sampled_from(["AAPL", "BRK.B", "2024-01-02T05:00:00Z", "0001-01-01", "١", "1e309", "NaN", "../X", "BUY",
                     "SELL", "2024-01-02", "1e300"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)  # fmt: skip
_bar_keys = st.sampled_from(["timestamp", "symbol", "open", "high", "low", "close", "volume", "x"])
_sig_keys = st.sampled_from(["id", "timestamp", "symbol", "action", "quantity", "price", "target_weight", "strategy"])


def _line(base: str, keys: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    edits = st.lists(st.tuples(keys, _values), max_size=3)
    mangled = st.tuples(st.just(base), edits, st.booleans()).map(_apply)
    return st.one_of(mangled, st.text(max_size=60), st.just(base))


def _apply(args: tuple[str, list[tuple[str, object]], bool]) -> str:
    base, edits, repeat = args
    rec = json.loads(base)
    text = json.dumps(rec | dict(edits), ensure_ascii=False)
    if repeat and edits:  # the same key twice, as the raw text
        text = text[:-1] + f", {json.dumps(edits[0][0])}: {json.dumps(edits[0][1])}" + "}"
    return text


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _only_one_line_errors(path: Path, text: str, *readers: Callable[[Path], object]) -> None:
    """Each reader accepts the file or raises the one-line InputError naming it; nothing else escapes."""
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    for read in readers:
        try:
            read(path)
        except InputError as exc:
            message = str(exc)
            assert message.startswith(str(path)) and "\n" not in message and len(message) < 600, message


@FUZZ
@given(lines=st.lists(_line(BAR, _bar_keys), min_size=1, max_size=6))
@example(lines=['{"timestamp": "2024-01-02T05:00:00Z", "symbol": "\\n", "open": 1, "high": 2, "low": 0.5, '
                '"close": 1.5, "volume": 100}'])  # a line break in the symbol: shown escaped, still one line
def test_fuzz_the_bars_readers_find_only_one_line_errors(tmp_path: Path, lines: list[str]) -> None:
    _only_one_line_errors(tmp_path / "fuzz.jsonl", "\n".join(lines) + "\n", read_bars,
                          lambda p: read_bars(p, skip_invalid=True))  # fmt: skip


@FUZZ
@given(rows=st.lists(st.lists(st.sampled_from(["2024-01-02", "AAPL", "1", "2.5", "0.5", "1e309", "١", "", "x,y",
                                                  "-1", "nan", '"q"', "0001-01-01"]), min_size=5, max_size=8),
                     min_size=1, max_size=5))  # fmt: skip
def test_fuzz_the_csv_bars_readers_find_only_one_line_errors(tmp_path: Path, rows: list[list[str]]) -> None:
    text = CSV_HEAD + "\n".join(",".join(r) for r in rows) + "\n"
    _only_one_line_errors(tmp_path / "fuzz.csv", text, read_bars, import_bars)


@FUZZ
@given(lines=st.lists(_line(SIG, _sig_keys), min_size=1, max_size=6))
def test_fuzz_the_signals_readers_find_only_one_line_errors(tmp_path: Path, lines: list[str]) -> None:
    _only_one_line_errors(tmp_path / "fuzz.jsonl", "\n".join(lines) + "\n", read_signals, read_signals_frame,
                          lambda p: read_signals(p, skip_invalid=True))  # fmt: skip
