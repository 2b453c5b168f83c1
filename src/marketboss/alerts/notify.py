"""Alerts through apprise URLs, on a background thread: a slow or failing channel never stalls trading."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

from marketboss.errors import ConfigError
from marketboss.logging import get_logger, redact_text, register_secret

log = get_logger(__name__)
EVENTS = ("fill", "rejection", "kill_switch", "error", "summary")


class Alerter:
    def __init__(self, urls: Sequence[str], events: Sequence[str] = EVENTS):
        import logging

        import apprise

        # apprise logs failures itself, with hosts and sometimes more: we log them ourselves, redacted.
        logging.getLogger("apprise").disabled = True
        unknown = set(events) - set(EVENTS)
        if unknown:
            raise ConfigError(f"unknown alert event(s) {', '.join(sorted(unknown))}: use {', '.join(EVENTS)}")
        self.events = frozenset(events)
        self._apprise = apprise.Apprise()
        for url in urls:
            register_secret(url)  # the whole URL carries tokens: never log it
            if not self._apprise.add(url):
                raise ConfigError(f"alert URL not understood by apprise: {redact_text(url)}")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alerts") if urls else None
        self._pending: list[Future[bool]] = []
        self.sent = 0
        self.failed = 0

    def send(self, event: str, title: str, body: str) -> None:
        if self._pool is None or event not in self.events:
            return
        self._pending.append(self._pool.submit(self._deliver, event, title, body))

    def _deliver(self, event: str, title: str, body: str) -> bool:
        try:
            ok = bool(self._apprise.notify(title=f"[MarketBoss] {title}", body=body))
        except Exception as exc:  # apprise plugins may raise; alerts must never stop trading
            log.warning("alert_failed", alert_event=event, error=redact_text(f"{type(exc).__name__}: {exc}"))
            ok = False
        if ok:
            self.sent += 1
        else:
            self.failed += 1
            log.warning("alert_not_delivered", alert_event=event, title=title)
        return ok

    def close(self, timeout: float = 30.0) -> None:
        """Wait (bounded) for queued alerts, so the end-of-run summary is delivered before exit."""
        if self._pool is None:
            return
        wait(self._pending, timeout=timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
