"""The live guard, the market-data URL and the keys, through the real command: nothing reaches a host by surprise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from marketboss.data.io import read_jsonl_records
from tests.integration.executor_fixtures import AFTER_THE_SIGNALS, broker, make_bars, make_signals
from tests.integration.netguard import EXIT_CODE

GUARD = str(Path(__file__).with_name("netguard.py"))
SECRET = "S" * 24


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "MARKETBOSS_"))}
    env["MARKETBOSS_LOG_LEVEL"] = "warning"
    env.update(extra)
    return env


def _run(mode: str, cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, GUARD, mode, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180)  # fmt: skip


LIVE_SPELLINGS = [
    "https://api.alpaca.markets:443",
    "https://api.alpaca.markets./",
    "http://api.alpaca.markets",
    " https://api.alpaca.markets",
    "https://api.alpaca.markets/v2",
    "HTTPS://API.ALPACA.MARKETS",
    "https://api%2ealpaca.markets",
    "https://user:pw@api.alpaca.markets:8443/v2/",
]


@pytest.mark.parametrize("url", LIVE_SPELLINGS)
def test_every_spelling_of_the_live_url_is_refused_before_any_connection(tmp_path: Path, url: str) -> None:
    _, bars = make_bars(tmp_path)
    signals, _ = make_signals(tmp_path, bars, n=1)
    env = _env(APCA_API_BASE_URL=url, APCA_API_KEY_ID="AKLIVEKEY", APCA_API_SECRET_KEY=SECRET)
    proc = _run("none", tmp_path, env, "paper", "--signals", str(signals))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: APCA_API_BASE_URL points to the live endpoint") and proc.stderr.count(
        "\n"
    ) == 1, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr and "pw@" not in proc.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://paper-api.alpaca.markets", "is a live key (AK...) but the endpoint is paper"),
        ("https://PAPER-API.alpaca.markets.:443/", "is a live key (AK...) but the endpoint is paper"),
        ("http://127.0.0.1:9", "is a live key (AK...) but the endpoint is http://127.0.0.1:9, not Alpaca's"),
    ],
)
def test_live_keys_on_a_paper_or_other_url_are_refused_before_any_connection(
    tmp_path: Path, url: str, message: str
) -> None:
    _, bars = make_bars(tmp_path)
    signals, _ = make_signals(tmp_path, bars, n=1)
    env = _env(APCA_API_BASE_URL=url, APCA_API_KEY_ID="AKLIVEKEY", APCA_API_SECRET_KEY=SECRET)
    for args in (["paper", "--signals", str(signals)], ["paper", "--signals", str(signals), "--live",
                                                        "--confirm-live"]):  # fmt: skip
        proc = _run("none", tmp_path, env, *args)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert message in proc.stderr or "--live was given but APCA_API_BASE_URL is" in proc.stderr
        assert SECRET not in proc.stderr


def test_a_local_broker_set_through_the_base_url_alone_serves_market_data_too(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    signals, sigs = make_signals(tmp_path, bars, n=3)
    trades = tmp_path / "trades.jsonl"
    with broker(tmp_path, data, always_open=True, start=AFTER_THE_SIGNALS) as lb:
        env = _env(APCA_API_BASE_URL=lb.base_url + "/", APCA_API_KEY_ID=lb.key_id, APCA_API_SECRET_KEY=lb.secret_key)
        proc = _run("loopback", tmp_path, env, "paper", "--signals", str(signals), "--trades-output", str(trades),
                    "--equity-output", str(tmp_path / "equity.jsonl"), "--order-interval", "0",
                    "--poll-interval", "0.02", "--allow-stale")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"paper trading on the Alpaca-compatible broker at {lb.base_url} (not Alpaca)" in proc.stdout
    assert "Alpaca paper" not in proc.stdout
    assert [(r["signal_id"], r["status"]) for r in read_jsonl_records(trades)] == [(s.id, "filled") for s in sigs]


def test_the_guard_itself_catches_an_outside_connection(tmp_path: Path) -> None:
    """The netguard is what proves the test above: it must stop a command that does reach out."""
    env = _env(APCA_API_BASE_URL="https://paper-api.alpaca.markets", APCA_API_KEY_ID="PKPAPER",
               APCA_API_SECRET_KEY=SECRET)  # fmt: skip
    (tmp_path / "s.jsonl").write_text("")
    proc = _run("loopback", tmp_path, env, "paper", "--signals", "s.jsonl")
    assert proc.returncode == EXIT_CODE and "paper-api.alpaca.markets" in proc.stderr


def test_a_password_in_the_base_url_is_never_printed(tmp_path: Path) -> None:
    _, bars = make_bars(tmp_path)
    signals, _ = make_signals(tmp_path, bars, n=1)
    env = _env(APCA_API_BASE_URL="http://trader:hunter2pass@127.0.0.1:9", APCA_API_KEY_ID="PKPAPER",
               APCA_API_SECRET_KEY=SECRET, MARKETBOSS_LOG_LEVEL="info")  # fmt: skip
    paper = _run("loopback", tmp_path, env, "paper", "--signals", str(signals), "--retry-budget", "1")
    doctor = _run("loopback", tmp_path, env, "doctor", "--signals", str(signals))
    assert paper.returncode == 2 and "cannot reach the broker at http://127.0.0.1:9" in paper.stderr
    assert doctor.returncode == 2 and "http://127.0.0.1:9" in doctor.stdout
    for out in (paper.stdout, paper.stderr, doctor.stdout, doctor.stderr):
        assert "hunter2pass" not in out and SECRET not in out


def test_paper_starting_its_own_broker_uses_the_configured_broker_keys(tmp_path: Path) -> None:
    data, bars = make_bars(tmp_path)
    (tmp_path / "data").mkdir()
    data.rename(tmp_path / "data/market_data.jsonl")
    make_signals(tmp_path / "data", bars, n=2)
    env = _env(MARKETBOSS_BROKER_KEY_ID="my-own-key", MARKETBOSS_BROKER_SECRET_KEY="my-own-secret-123")
    proc = _run("loopback", tmp_path, env, "paper", "--signals", "data/signals.jsonl", "--order-interval", "0",
                "--poll-interval", "0.02")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    statuses = [r["status"] for r in read_jsonl_records(tmp_path / "data/paper_trading_trades.jsonl")]
    assert statuses == ["filled", "filled"]
    assert "my-own-secret-123" not in proc.stdout + proc.stderr


def test_broker_serve_refuses_a_network_interface_with_the_default_keys(tmp_path: Path) -> None:
    data, _ = make_bars(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "marketboss", "broker", "serve", "--host", "0.0.0.0", "--port", "0",
                           "--data", str(data), "--db", str(tmp_path / "b.sqlite")], env=_env(), capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "--host 0.0.0.0 is not loopback and the keys are the public defaults" in proc.stderr
    assert not (tmp_path / "b.sqlite").exists()


def test_broker_serve_does_not_print_its_key_id(tmp_path: Path) -> None:
    data, _ = make_bars(tmp_path)
    with broker(tmp_path, data, key_id="PRIVATE-KEY-ID-77", secret_key="private-secret-77",
                log_path=tmp_path / "serve.log") as lb:  # fmt: skip
        assert lb.key_id == "PRIVATE-KEY-ID-77"
    log = (tmp_path / "serve.log").read_text()
    assert "local broker on http://127.0.0.1:" in log
    assert "PRIVATE-KEY-ID-77" not in log and "private-secret-77" not in log


def test_a_broker_url_given_wins_over_alpaca_keys_in_the_environment_and_never_goes_with_live(tmp_path: Path) -> None:
    """With Alpaca paper keys set, `--broker-url` still trades the local broker it names (before, the keys won and
    the run went to Alpaca's paper account); the netguard fails the run if anything leaves this machine."""
    data, bars = make_bars(tmp_path)
    signals, sigs = make_signals(tmp_path, bars, n=2)
    trades = tmp_path / "trades.jsonl"
    with broker(tmp_path, data, always_open=True, start=AFTER_THE_SIGNALS) as lb:
        env = _env(APCA_API_KEY_ID="PKPAPER", APCA_API_SECRET_KEY=SECRET, MARKETBOSS_BROKER_KEY_ID=lb.key_id,
                   MARKETBOSS_BROKER_SECRET_KEY=lb.secret_key)  # fmt: skip
        proc = _run("loopback", tmp_path, env, "paper", "--broker-url", lb.base_url, "--signals", str(signals),
                    "--trades-output", str(trades), "--equity-output", str(tmp_path / "equity.jsonl"),
                    "--order-interval", "0", "--poll-interval", "0.02", "--allow-stale")  # fmt: skip
        live = _run("loopback", tmp_path, env, "paper", "--live", "--confirm-live", "--broker-url", lb.base_url,
                    "--signals", str(signals))  # fmt: skip
        doctor = _run("loopback", tmp_path, env, "doctor", "--broker-url", lb.base_url, "--signals", str(signals),
                      "--data", str(data))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"paper trading on the local broker at {lb.base_url} (the Alpaca credentials set are not used)" in (
        proc.stdout.replace("\n", " "))  # fmt: skip
    assert [(r["signal_id"], r["status"]) for r in read_jsonl_records(trades)] == [(s.id, "filled") for s in sigs]
    assert live.returncode == 2 and "--broker-url (a local broker) does not go with it" in live.stderr
    assert live.stderr.count("\n") == 1
    assert f"{lb.base_url} (the local broker --broker-url names)" in doctor.stdout
    assert "paper-api.alpaca.markets" not in doctor.stdout
