"""Start the local broker as a real subprocess on a free loopback port, wait until it answers, stop it after.

    with local_broker("data/market_data.jsonl", "data/broker.sqlite", always_open=True) as (url, key, secret):
        client = TradingClient(key, secret, paper=True, url_override=url)

The server is the `marketboss broker serve` command itself, so what runs here is what users run. The secret
goes to the child through its environment, never its command line (which other users can read).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from pydantic import ValidationError

from marketboss.errors import ConfigError, MarketBossError
from marketboss.local_broker.config import BrokerConfig, FaultConfig
from marketboss.local_broker.options import DEFAULT_KEY_ID, DEFAULT_SECRET_KEY, FAULT_FLAGS, KEY_ID_ENV, SECRET_KEY_ENV
from marketboss.logging import redact_text, register_secret

_SKIP = {"data", "db", "host", "port", "key_id", "secret_key", "faults", "always_open", "start", "pdt_protection",
         "hard_to_borrow", "data_rate_limit", "buy_stop_collar"}  # fmt: skip


@dataclass(frozen=True)
class LocalBroker:
    """A running server; unpacks as (base_url, key_id, secret_key)."""

    base_url: str
    key_id: str
    secret_key: str
    process: subprocess.Popen[bytes]
    log_path: Path
    config: BrokerConfig

    def __iter__(self) -> Iterator[str]:
        return iter((self.base_url, self.key_id, self.secret_key))

    @property
    def headers(self) -> dict[str, str]:
        return {"APCA-API-KEY-ID": self.key_id, "APCA-API-SECRET-KEY": self.secret_key}


def cli_args(cfg: BrokerConfig) -> list[str]:
    """The `broker serve` arguments for a config (secrets excluded: they travel in the environment)."""
    args = ["--host", cfg.host, "--port", str(cfg.port), "--data", str(cfg.data), "--db", str(cfg.db)]
    for name, value in cfg.model_dump(exclude=_SKIP).items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    if cfg.always_open:
        args.append("--always-open")
    if not cfg.pdt_protection:
        args.append("--no-pdt-protection")
    if not cfg.buy_stop_collar:
        args.append("--no-buy-stop-collar")
    if cfg.hard_to_borrow:
        args += ["--hard-to-borrow", ",".join(cfg.hard_to_borrow)]
    if cfg.data_rate_limit is not None:
        args += ["--data-rate-limit", str(cfg.data_rate_limit)]
    if cfg.start is not None:
        args += ["--start", cfg.start.isoformat()]
    defaults = FaultConfig()
    for name, flag in FAULT_FLAGS.items():
        value = getattr(cfg.faults, name)
        if value == getattr(defaults, name):
            continue
        args += [flag, ",".join(value) if isinstance(value, tuple) else str(value)]
    return args


@contextlib.contextmanager
def local_broker(
    data: str | Path,
    db: str | Path | None = None,
    *,
    key_id: str = DEFAULT_KEY_ID,
    secret_key: str = DEFAULT_SECRET_KEY,
    port: int = 0,
    startup_timeout: float = 60.0,
    log_path: str | Path | None = None,
    **options: Any,
) -> Iterator[LocalBroker]:
    """Run `marketboss broker serve` until the block ends. `options` are BrokerConfig fields (fill_latency_ms,
    partial_fill_rate, clock, always_open, faults=FaultConfig(...) or a dict, ...); they are validated here,
    before anything starts. The server binds 127.0.0.1 on a free port unless `port` says otherwise; without
    `db` its state lives in a temporary file that goes away with it."""
    with tempfile.TemporaryDirectory(prefix="mb-broker-") as tmp:
        try:
            cfg = BrokerConfig(
                data=Path(data), db=Path(db) if db else Path(tmp) / "broker.sqlite", port=port, key_id=key_id,
                secret_key=secret_key, **options,
            )  # fmt: skip
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ConfigError(f"local broker option {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        register_secret(secret_key)
        ready = Path(tmp) / "ready.json"
        log = Path(log_path) if log_path else Path(tmp) / "broker.log"
        env = {**os.environ, KEY_ID_ENV: key_id, SECRET_KEY_ENV: secret_key}
        env.setdefault("MARKETBOSS_LOG_LEVEL", "warning")
        cmd = [sys.executable, "-m", "marketboss", "broker", "serve", *cli_args(cfg), "--ready-file", str(ready)]
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                preexec_fn=_die_with_parent,  # only prctl, before exec: no locks taken
            )
        try:
            base_url = _wait_ready(proc, ready, log, startup_timeout)
            _wait_answering(base_url, key_id, secret_key, proc, log, startup_timeout)
            yield LocalBroker(base_url, key_id, secret_key, proc, log, cfg)
        finally:
            stop(proc)


def _die_with_parent() -> None:
    """A broker started for a run must not outlive it: if the run is killed (even kill -9), the kernel stops the
    server too, so a restarted run never finds two servers writing one database (Linux; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _wait_ready(proc: subprocess.Popen[bytes], ready: Path, log: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists():
            return str(orjson.loads(ready.read_bytes())["base_url"])
        if proc.poll() is not None:
            raise MarketBossError(f"the local broker exited with code {proc.returncode}: {_tail(log)}")
        time.sleep(0.02)
    raise MarketBossError(f"the local broker did not start within {timeout:g}s: {_tail(log)}")


def _wait_answering(
    base_url: str, key: str, secret: str, proc: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    headers = {"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret}
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url, timeout=5.0) as client:
        while True:
            try:
                if client.get("/admin/clock", headers=headers).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise MarketBossError(f"the local broker at {base_url} does not answer: {_tail(log)}")
            time.sleep(0.02)


def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM (uvicorn shuts down cleanly, the database is checkpointed), then SIGKILL if it hangs."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(log: Path, lines: int = 8) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return "(no log)"
    return redact_text(" | ".join(text))[-2000:] or "(empty log)"
