"""`marketboss broker serve`: the local Alpaca-compatible paper broker (the default when no Alpaca keys are set)."""

from __future__ import annotations

import ipaddress
import socket
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from marketboss.cli.common import console, err_console, get_settings
from marketboss.errors import ConfigError, InputError
from marketboss.local_broker.options import DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, FAULT_FLAGS, KEY_ID_ENV, SECRET_KEY_ENV
from marketboss.logging import get_logger, register_secret

if TYPE_CHECKING:
    from pydantic import ValidationError

    from marketboss.local_broker.config import FaultConfig

app = typer.Typer(help="The local Alpaca-compatible paper broker.", no_args_is_help=True)
log = get_logger(__name__)


class Clock(StrEnum):
    stepped = "stepped"
    accelerated = "accelerated"
    wallclock = "wallclock"


def _rate(flag: str, what: str) -> float:
    return typer.Option(0.0, flag, help=f"Fault: share of requests {what} (0-1).")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind. Loopback by default: anything else exposes the "
                                               "broker (and its admin endpoints) to the network."),
    port: int = typer.Option(8765, help="TCP port; 0 picks a free one (see --ready-file)."),
    data: Path = typer.Option(None, "--data", help="Bars replayed as the market (default data/market_data.jsonl; "
                                                   ".csv/.parquet too)."),
    db: Path = typer.Option(Path("data/broker.sqlite"), "--db", help="SQLite state: account, orders, fills and "
                                                                     "positions survive restarts."),
    key_id: str = typer.Option(DEFAULT_KEY_ID, "--key-id", envvar=KEY_ID_ENV,
                               help="APCA-API-KEY-ID that clients must send."),
    secret_key: str = typer.Option(DEFAULT_SECRET_KEY, "--secret-key", envvar=SECRET_KEY_ENV, show_default=False,
                                   help=f"APCA-API-SECRET-KEY that clients must send (default '{DEFAULT_SECRET_KEY}'; "
                                        f"prefer the env var: a command line is visible to other users)."),
    cash: float = typer.Option(100_000.0, help="Starting cash of a new account (an existing database keeps its own)."),
    multiplier: int = typer.Option(4, help="Buying-power multiplier: 1 cash account (no shorting), 2 Reg T margin, "
                                           "4 day-trading margin (Alpaca paper; less under $25,000 of equity)."),
    no_pdt_protection: bool = typer.Option(False, "--no-pdt-protection", help="Switch off Alpaca's pattern-day-"
                                                                             "trader protection (under $25,000)."),
    no_buy_stop_collar: bool = typer.Option(False, "--no-buy-stop-collar", help="Fill buy stops at market "
                                            "through a gap, instead of turning them into stop-limits 4% above the "
                                            "stop (2.5% from $50) as Alpaca does and the backtest does (backtest "
                                            "--no-buy-stop-collar to match)."),
    hard_to_borrow: str = typer.Option("", "--hard-to-borrow", help="Comma-separated symbols that are not easy to "
                                                                    "borrow: they cannot be sold short."),
    fill_latency_ms: float = typer.Option(50.0, help="Wall-clock delay between accepting an order and filling it "
                                                     "(and between a partial fill and the rest)."),
    partial_fill_rate: float = typer.Option(0.1, help="Share of orders filled in two parts (Alpaca paper: ~10%)."),
    commission_bps: float = typer.Option(0.0, help="Commission in basis points of the traded value."),
    commission_per_share: float = typer.Option(0.0, help="Commission in dollars per share."),
    slippage_bps: float = typer.Option(0.0, help="Adverse slippage beyond the quote, in basis points."),
    spread_bps: float = typer.Option(2.0, help="Quoted spread around the simulated price, in basis points; buys "
                                               "fill at the ask, sells at the bid."),
    market_reserve_pct: float = typer.Option(3.0, help="Buying power a market buy reserves above the ask, in percent "
                                                       "(Alpaca reserves a few percent)."),
    rate_limit: int = typer.Option(200, help="Trading API requests per minute before 429 (0: no limit)."),
    data_rate_limit: int = typer.Option(None, "--data-rate-limit", help="Market-data requests per minute before 429, "
                                                                        "a budget of its own (default: --rate-limit)."),
    clock: Clock = typer.Option(Clock.stepped, help="stepped: time moves only through POST /admin/clock; "
                                                    "accelerated: --speed simulated seconds per second; "
                                                    "wallclock: real time, shifted onto the data by whole weeks."),
    speed: float = typer.Option(60.0, help="Accelerated clock: simulated seconds per wall-clock second."),
    start: str = typer.Option(None, help="Simulated start (RFC 3339 or YYYY-MM-DD) of a new database; default: the "
                                         "first bar's start (a daily bar's session open)."),
    always_open: bool = typer.Option(False, "--always-open", help="Treat the market as always open (demos)."),
    seed: int = typer.Option(0, help="Seed of partial fills, rejections and faults: same seed, same run."),
    fault_500_rate: float = _rate("--fault-500-rate", "answered 500"),
    fault_503_rate: float = _rate("--fault-503-rate", "answered 503"),
    fault_504_rate: float = _rate("--fault-504-rate", "answered 504"),
    fault_drop_rate: float = _rate("--fault-drop-rate", "whose connection is closed without an answer"),
    fault_latency_ms: float = typer.Option(0.0, "--fault-latency-ms", help="Fault: latency added to every request."),
    fault_latency_jitter_ms: float = typer.Option(0.0, "--fault-jitter-ms",
                                                  help="Fault: plus a uniform random 0..N ms."),
    fault_429_burst_rate: float = _rate("--fault-429-burst-rate", "starting a burst of 429 answers"),
    fault_429_burst_length: int = typer.Option(5, "--fault-429-burst-len", help="Fault: 429s in a burst."),
    fault_reject_rate: float = typer.Option(0.0, "--fault-reject-rate",
                                            help="Fault: share of accepted orders the venue then rejects (0-1)."),
    fault_fail_after_commit_rate: float = typer.Option(
        0.0, "--fault-late-fail-rate",
        help="Fault: share of POST /v2/orders whose order IS created, then answered with an error anyway (the "
             "ambiguous case a client must resolve by client_order_id; status: --fault-late-status).",
    ),
    fault_fail_after_commit_status: int = typer.Option(504, "--fault-late-status",
                                                       help="Fault: that error's status: 500, 502, 503 or 504."),
    fault_drop_after_commit_rate: float = typer.Option(
        0.0, "--fault-late-drop-rate",
        help="Fault: share of POST /v2/orders whose order IS created, then whose connection is dropped.",
    ),
    fault_paths: str = typer.Option("", "--fault-paths", help="Fault: comma-separated path prefixes the faults "
                                                              "apply to (default: every /v2 path)."),
    fault_methods: str = typer.Option("", "--fault-methods", help="Fault: comma-separated methods (default: all)."),
    fault_seed: int = typer.Option(None, "--fault-seed", help="Fault: seed of the fault draws (default: --seed)."),
    ready_file: Path = typer.Option(None, "--ready-file", help="Write {\"base_url\": ...} here once the server "
                                                               "accepts connections (for scripts and tests)."),
) -> None:
    """Serve Alpaca's trading and market-data API from a bars file, on loopback, for alpaca-py to use unchanged.

    Keys: --key-id / --secret-key, or the environment variables MARKETBOSS_BROKER_KEY_ID and
    MARKETBOSS_BROKER_SECRET_KEY. Admin endpoints (same keys): GET/POST /admin/clock (read or move the simulated
    time), GET/POST /admin/faults (fault injection at run time), GET /admin/state, GET/POST /admin/streams (the
    websocket connections: count them, drop them, refuse new ones)."""
    import uvicorn
    from pydantic import ValidationError

    from marketboss.local_broker.app import BrokerApp
    from marketboss.local_broker.config import BrokerConfig
    from marketboss.local_broker.http import HttpProtocol
    from marketboss.local_broker.state import build_state

    register_secret(secret_key)
    try:
        faults = _faults(
            fault_500_rate, fault_503_rate, fault_504_rate, fault_drop_rate, fault_latency_ms, fault_latency_jitter_ms,
            fault_429_burst_rate, fault_429_burst_length, fault_reject_rate, fault_fail_after_commit_rate,
            fault_fail_after_commit_status, fault_drop_after_commit_rate, fault_paths, fault_methods, fault_seed,
        )
        cfg = BrokerConfig(
            data=data or get_settings().market_data, db=db, host=host, port=port, key_id=key_id,
            secret_key=secret_key, cash=cash, multiplier=multiplier, pdt_protection=not no_pdt_protection,
            buy_stop_collar=not no_buy_stop_collar,
            hard_to_borrow=tuple(s for s in hard_to_borrow.split(",") if s.strip()), data_rate_limit=data_rate_limit,
            fill_latency_ms=fill_latency_ms, partial_fill_rate=partial_fill_rate, commission_bps=commission_bps,
            commission_per_share=commission_per_share, slippage_bps=slippage_bps, spread_bps=spread_bps,
            market_reserve_pct=market_reserve_pct, rate_limit=rate_limit, clock=clock.value, speed=speed,
            start=_start(start), always_open=always_open, seed=seed, faults=faults,
        )  # fmt: skip
    except ValidationError as exc:
        raise ConfigError(_first_error(exc)) from None
    default_keys = cfg.key_id == DEFAULT_KEY_ID or cfg.secret_key.get_secret_value() == DEFAULT_SECRET_KEY
    if default_keys and not _loopback(cfg.host):
        raise ConfigError(
            f"--host {cfg.host} is not loopback and the keys are the public defaults: anyone on the network could "
            f"trade and move the clock; set {KEY_ID_ENV} and {SECRET_KEY_ENV} to your own values first"
        )
    if not cfg.data.exists():  # before the port: a missing file is said whatever holds the port (the default 8765)
        raise InputError(cfg.data, "file not found")
    sock = _listen(cfg.host, cfg.port)
    state = build_state(cfg)
    host_text = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    base_url = f"http://{host_text}:{sock.getsockname()[1]}"
    if not _loopback(cfg.host):
        err_console.print(f"[yellow]warning: {cfg.host} is not loopback: the broker is reachable from the network[/]")
    console.print(
        f"local broker on {base_url} ({cfg.clock} clock at "
        f"{state.clock.view(state.clock.now())['timestamp']}; data {cfg.data}; state {cfg.db})"
    )
    log.info("broker_listening", base_url=base_url, data=str(cfg.data), db=str(cfg.db), clock=cfg.clock)
    server = uvicorn.Server(
        uvicorn.Config(
            BrokerApp(state, ready_file, base_url), http=HttpProtocol, loop="uvloop", lifespan="on",
            log_level="warning", access_log=False, proxy_headers=False, server_header=False, date_header=False,
            timeout_keep_alive=75, ws="websockets-sansio", ws_max_size=1 << 20, ws_ping_interval=20.0,
            ws_ping_timeout=20.0,
        )
    )  # fmt: skip
    try:
        server.run(sockets=[sock])
    finally:
        state.close()


def _faults(
    r500: float, r503: float, r504: float, drop: float, latency: float, jitter: float, burst: float, burst_len: int,
    reject: float, fail_after: float, fail_status: int, drop_after: float, paths: str, methods: str, seed: int | None,
) -> FaultConfig:
    from pydantic import ValidationError

    from marketboss.local_broker.config import FaultConfig

    try:
        return FaultConfig(
            error_500_rate=r500, error_503_rate=r503, error_504_rate=r504, drop_rate=drop, latency_ms=latency,
            latency_jitter_ms=jitter, burst_429_rate=burst, burst_429_length=burst_len, reject_rate=reject,
            fail_after_commit_rate=fail_after, fail_after_commit_status=fail_status,
            drop_after_commit_rate=drop_after, paths=tuple(p.strip() for p in paths.split(",") if p.strip()),
            methods=tuple(m.strip() for m in methods.split(",") if m.strip()), seed=seed,
        )  # fmt: skip
    except ValidationError as exc:
        raise ConfigError(_first_error(exc, "fault options")) from None


def _first_error(exc: ValidationError, whole: str = "options") -> str:
    """Pydantic's first complaint, named by the flag the user typed."""
    from marketboss.local_broker.config import BrokerConfig

    flag_of = {**{k: f"--{k.replace('_', '-')}" for k in BrokerConfig.model_fields}, **FAULT_FLAGS}
    first = exc.errors()[0]
    loc = [str(x) for x in first["loc"]]
    where = flag_of.get(loc[-1], loc[-1]) if loc else whole
    return f"{where}: {first['msg'].removeprefix('Value error, ')}"


def _start(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--start '{text}' is not a date or RFC 3339 timestamp") from None


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets that say they are TCP (else every answer
    # waits ~40 ms for a delayed ACK, as headers and body go out in two writes).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    return sock
