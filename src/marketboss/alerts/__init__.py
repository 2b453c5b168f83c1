"""Notifications through apprise (Slack, email, Telegram, webhooks): sent in the background, never fatal."""

from marketboss.alerts.notify import Alerter

__all__ = ["Alerter"]
