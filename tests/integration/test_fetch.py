"""`data fetch` through alpaca-py's StockHistoricalDataClient against a real local server in Alpaca's format."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
import polars as pl
import pytest

from marketboss.data.io import read_bars
from marketboss.data.synth import synth_bars

KEY, SECRET = "PKFETCHTEST", "fetch-secret-value-123456"
SRC = Path(__file__).resolve().parents[2] / "src"
PAGE = 3


class AlpacaBars(BaseHTTPRequestHandler):
    bars: pl.DataFrame
    seen: list[dict[str, list[str]]]

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if self.headers.get("APCA-API-KEY-ID") != KEY or self.headers.get("APCA-API-SECRET-KEY") != SECRET:
            return self._send(401, {"code": 40110000, "message": "request is not authorized"})
        if url.path != "/v2/stocks/bars":
            return self._send(404, {"code": 40410000, "message": "not found"})
        q = parse_qs(url.query)
        self.seen.append(q)
        symbols = q["symbols"][0].split(",")
        rows = self.bars.filter(pl.col("symbol").is_in(symbols)).sort("symbol", "timestamp").rows(named=True)
        start = int(q.get("page_token", ["0"])[0])
        page = rows[start : start + PAGE]
        out: dict[str, list[dict[str, Any]]] = {}
        for r in page:
            out.setdefault(r["symbol"], []).append(
                {"t": r["timestamp"].strftime("%Y-%m-%dT%H:%M:%SZ"), "o": r["open"], "h": r["high"], "l": r["low"],
                 "c": r["close"], "v": r["volume"], "n": 10, "vw": r["close"]}
            )  # fmt: skip
        nxt = str(start + PAGE) if start + PAGE < len(rows) else None
        self._send(200, {"bars": out, "next_page_token": nxt})


@pytest.fixture
def alpaca_data_server() -> Iterator[tuple[str, type[AlpacaBars]]]:
    handler = type("Handler", (AlpacaBars,), {})
    handler.bars = synth_bars(["AAPL", "MSFT"], "2024-01-01", "2024-01-12", "1Day", seed=5)
    handler.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def _fetch(workdir: Path, url: str, key: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {"APCA_API_KEY_ID": key, "APCA_API_SECRET_KEY": SECRET, "APCA_API_DATA_URL": url, "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(SRC)}  # this tree's sources, not whichever marketboss the interpreter has installed
    cmd = [sys.executable, "-m", "marketboss", "data", "fetch", "--symbols", "aapl,MSFT",
           "--start", "2024-01-01", "--end", "2024-01-13", "--output", "bars.jsonl", *extra]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir, timeout=120)


def test_fetch_follows_pages_and_writes_contract_bars(
    workdir: Path, alpaca_data_server: tuple[str, type[AlpacaBars]]
) -> None:
    url, handler = alpaca_data_server
    proc = _fetch(workdir, url, KEY)
    assert proc.returncode == 0, proc.stderr
    got = read_bars(workdir / "bars.jsonl")
    assert got.equals(handler.bars)
    assert len(handler.seen) == -(-len(handler.bars) // PAGE)  # every page requested once
    first = handler.seen[0]
    assert first["feed"] == ["iex"] and first["timeframe"] == ["1Day"] and first["symbols"] == ["AAPL,MSFT"]
    assert KEY not in proc.stderr and SECRET not in proc.stderr
    # dates are New York days, --end's included (at 00:00 UTC it left out its own day's bar, stamped 05:00Z)
    assert (first["start"], first["end"]) == (["2024-01-01T05:00:00+00:00"], ["2024-01-14T04:59:59.999999+00:00"])


def test_fetch_with_wrong_key_says_what_to_check(
    workdir: Path, alpaca_data_server: tuple[str, type[AlpacaBars]]
) -> None:
    url, _ = alpaca_data_server
    proc = _fetch(workdir, url, "PKWRONGKEY")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: Alpaca market data refused the request: HTTP 401 (check APCA_API_KEY_ID / APCA_API_SECRET_KEY)"
    )
    assert not (workdir / "bars.jsonl").exists()


def test_fetch_without_credentials_names_the_variables(workdir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "marketboss", "data", "fetch", "--symbols", "AAPL", "--start", "2024-01-01"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, cwd=workdir, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "APCA_API_KEY_ID and APCA_API_SECRET_KEY" in proc.stderr and "Traceback" not in proc.stderr
