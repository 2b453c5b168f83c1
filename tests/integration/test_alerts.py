"""Alerts reach a real SMTP server and a real webhook; a failing channel never raises into trading."""

from __future__ import annotations

import io
import time

import pytest

from marketboss.alerts import Alerter
from marketboss.errors import ConfigError
from marketboss.logging import configure
from tests.integration.alert_servers import free_port, smtp_server, webhook_server


def test_email_and_webhook_receive_the_events_asked_for() -> None:
    with smtp_server() as (inbox, mail_url), webhook_server() as (hooks, hook_url):
        alerter = Alerter([mail_url, hook_url], events=["fill", "summary"])
        alerter.send("fill", "BUY 10 AAPL @ 150.00", "status filled")
        alerter.send("rejection", "not asked for", "-")
        alerter.send("summary", "paper run summary", "orders filled: 1")
        alerter.close()
        assert inbox.subjects() == ["[MarketBoss] BUY 10 AAPL @ 150.00", "[MarketBoss] paper run summary"]
        assert [p["title"] for p in hooks.posts] == [
            "[MarketBoss] BUY 10 AAPL @ 150.00",
            "[MarketBoss] paper run summary",
        ]
        assert hooks.posts[1]["message"] == "orders filled: 1"
        assert hooks.headers[0]["X-Token"] == "hook-token-0123456789"
        assert alerter.sent == 2 and alerter.failed == 0  # one notify call per event, covering both URLs


def test_a_dead_or_failing_channel_is_counted_and_logged_without_its_token() -> None:
    out = io.StringIO()
    configure("info", stream=out)
    dead = f"json://127.0.0.1:{free_port()}/hook?+X-Token=dead-token-987654321"
    with webhook_server() as (hooks, hook_url):
        hooks.fail = True
        alerter = Alerter([hook_url, dead])
        t0 = time.monotonic()
        alerter.send("error", "broker unreachable", "retrying")  # returns at once: delivery is in the background
        assert time.monotonic() - t0 < 0.5
        alerter.close()
    assert alerter.failed == 1 and alerter.sent == 0  # one notify call covering both URLs
    logged = out.getvalue()
    assert "alert_not_delivered" in logged and "dead-token-987654321" not in logged and "hook-token" not in logged


def test_bad_urls_and_events_are_refused_up_front() -> None:
    with pytest.raises(ConfigError, match="alert URL not understood"):
        Alerter(["nonsense://x"])
    with pytest.raises(ConfigError, match="unknown alert event"):
        Alerter([], events=["fills"])
