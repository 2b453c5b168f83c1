"""Settings come from env and .env with the guide's defaults; secrets never reach logs or error lines."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from marketboss.cli.common import run_guarded
from marketboss.config import Settings, get_settings
from marketboss.errors import MarketBossError
from marketboss.logging import configure, get_logger, redact_text

KEY = "PKTESTKEY1234567890"
SECRET = "s3cr3tValueThatMustNeverLeak0123456789"


def test_defaults_are_the_guides_paths(workdir: Path) -> None:
    s = Settings()
    assert str(s.market_data) == "data/market_data.jsonl"
    assert str(s.signals) == "data/signals.jsonl"
    assert str(s.models_dir) == "models"
    assert str(s.paper_trades) == "data/paper_trading_trades.jsonl"
    assert str(s.paper_equity) == "data/paper_trading_equity.jsonl"
    assert s.initial_cash == 100_000
    assert not s.has_alpaca_credentials


def test_credentials_from_dotenv_and_env_override(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / ".env").write_text(
        f"APCA_API_BASE_URL=https://paper-api.alpaca.markets\nAPCA_API_KEY_ID={KEY}\nAPCA_API_SECRET_KEY={SECRET}\n"
    )
    s = Settings()
    assert s.has_alpaca_credentials and s.apca_api_base_url == "https://paper-api.alpaca.markets"
    assert s.apca_api_secret_key is not None and s.apca_api_secret_key.get_secret_value() == SECRET
    assert SECRET not in repr(s) and SECRET not in str(s.model_dump())
    monkeypatch.setenv("APCA_API_KEY_ID", "OTHERKEY99")
    monkeypatch.setenv("MARKETBOSS_INITIAL_CASH", "2500")
    s = Settings()
    assert s.apca_api_key_id is not None and s.apca_api_key_id.get_secret_value() == "OTHERKEY99"
    assert s.initial_cash == 2500


WEBHOOKS = [
    "https://hooks.slack.com/services/T0000/B0000/XXXXSECRETTOKEN",
    "slack://TokenA/TokenB/TokenC/#channel",
    "mailto://alice:hunter2pass@example.com",
    "tgram://123456:ABCDEFbottoken/987654",
    "json://localhost:8080/hook?token=abcdef123456",
]


def test_logs_redact_registered_secrets_secret_fields_and_webhook_tokens() -> None:
    out = io.StringIO()
    configure("debug", secrets=[KEY, SECRET], stream=out)
    log = get_logger("t")
    log.info("connect", url=f"https://x/?key={KEY}", note=f"using {SECRET}", api_key="plain-field-value")
    for url in WEBHOOKS:
        log.info("alert", target=url, nested={"urls": [url]})
    text = out.getvalue()
    for needle in (KEY, SECRET, "plain-field-value", "XXXXSECRETTOKEN", "TokenB", "hunter2pass",
                   "ABCDEFbottoken", "abcdef123456"):  # fmt: skip
        assert needle not in text
    first = orjson.loads(text.splitlines()[0])
    assert first["event"] == "connect" and first["api_key"] == "***" and "***" in first["note"]


def test_error_lines_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure("info", secrets=[SECRET], stream=io.StringIO())

    def fail() -> None:
        raise MarketBossError(f"refused {SECRET} at {WEBHOOKS[0]}")

    assert run_guarded(fail) == 2
    err = capsys.readouterr().err
    assert SECRET not in err and "XXXXSECRETTOKEN" not in err and err.count("\n") == 1
    assert redact_text("no secrets here") == "no secrets here"


def test_cli_error_from_env_secrets_is_one_redacted_line(workdir: Path) -> None:
    """A real process: a bad file gives one line naming file:line:field, exit 2, no traceback, no secret."""
    (workdir / "bars.jsonl").write_text('{"timestamp": "2024-01-02T05:00:00Z", "symbol": "AAPL"}\n')
    env = {"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "marketboss", "data", "show", "--data", "bars.jsonl"],
        capture_output=True, text=True, env=env, cwd=workdir, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: bars.jsonl:1: field 'open': missing"
    assert "Traceback" not in proc.stderr and KEY not in proc.stderr + proc.stdout
    get_settings.cache_clear()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_logs_read_as_text_on_a_terminal_and_as_json_elsewhere() -> None:
    try:
        tty, pipe, forced = _Terminal(), io.StringIO(), _Terminal()
        for stream, fmt in ((tty, "auto"), (pipe, "auto"), (forced, "json")):
            configure("info", secrets=[SECRET], stream=stream, fmt=fmt)
            get_logger("t").info("order_sent", symbol="AAPL", url=f"https://u:{SECRET}@host/x",
                                 at=datetime(2020, 4, 30, 14, 30, tzinfo=UTC))  # fmt: skip
        human = tty.getvalue()
        assert "order_sent" in human and "symbol" in human and "AAPL" in human and not human.lstrip().startswith("{")
        for line in (pipe.getvalue(), forced.getvalue()):
            rec = orjson.loads(line)
            assert rec["event"] == "order_sent" and rec["symbol"] == "AAPL"
            assert rec["at"] == "2020-04-30T14:30:00+00:00"  # a time as ISO 8601, not its Python repr
        assert SECRET not in human + pipe.getvalue() + forced.getvalue()
    finally:
        configure("warning")


def test_an_unknown_log_format_is_one_line_error() -> None:
    out = subprocess.run([sys.executable, "-m", "marketboss", "--log-format", "xml", "strategies", "list"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert out.returncode == 2 and out.stderr.strip() == "error: --log-format 'xml' must be one of auto, json, console"


def test_an_unknown_log_level_is_one_line_error_and_any_case_is_taken() -> None:
    out = subprocess.run([sys.executable, "-m", "marketboss", "--log-level", "verbose", "strategies", "list"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert out.returncode == 2 and out.stderr.strip() == ("error: --log-level 'verbose' must be one of debug, info, "
                                                          "warning, error")  # fmt: skip
    env = {**os.environ, "MARKETBOSS_LOG_LEVEL": "warn"}  # the environment's level is held to the same names
    out = subprocess.run([sys.executable, "-m", "marketboss", "strategies", "list"], capture_output=True, text=True,
                         check=False, env=env)  # fmt: skip
    assert out.returncode == 2 and "error: MARKETBOSS_LOG_LEVEL 'warn' must be one of" in out.stderr  # (named)
    ok = subprocess.run([sys.executable, "-m", "marketboss", "--log-level", "DEBUG", "strategies", "list"],
                        capture_output=True, text=True, check=False)  # fmt: skip
    assert ok.returncode == 0 and "ma_crossover" in ok.stdout


def test_events_below_the_level_never_load_structlog_and_the_rest_are_logged() -> None:
    code = """
import io, sys
from marketboss.logging import configure, get_logger
out = io.StringIO()
configure("warning", stream=out, fmt="json")
log = get_logger("t")
log.debug("quiet"); log.info("quiet")
print("structlog" in sys.modules, repr(out.getvalue()))
log.warning("loud", n=1)
print("structlog" in sys.modules, out.getvalue().strip())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "False ''"
    loaded, line = out[1].split(" ", 1)
    record = orjson.loads(line)
    assert loaded == "True" and record["event"] == "loud" and record["level"] == "warning" and record["n"] == 1


def test_a_bad_setting_is_one_line_naming_it_and_never_a_secret() -> None:
    """It was "unexpected ValidationError" and pydantic's five lines, exit 1."""
    env = {**os.environ, "MARKETBOSS_INITIAL_CASH": "abc"}
    out = subprocess.run([sys.executable, "-m", "marketboss", "backtest", "--strategy", "ma_crossover"],
                         capture_output=True, text=True, check=False, env=env)  # fmt: skip
    assert out.returncode == 2 and out.stderr == ("error: MARKETBOSS_INITIAL_CASH (environment or .env): Input should "
                                                  "be a valid number, unable to parse string as a number, got 'abc'\n")
