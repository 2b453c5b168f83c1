"""Logs on stderr, shared by every command, with secrets redacted before they are written: one readable line an
event when stderr is a terminal (a person is watching), JSON Lines otherwise (a file, a pipe, a service
manager) or when asked for with --log-format json."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, NamedTuple, TextIO, cast

_SECRET_KEYS = re.compile(r"(key|secret|token|password|passwd|authorization)", re.IGNORECASE)
# user:password@ in URLs (mailto://, smtp://, https://), and query tokens.
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@", re.IGNORECASE)
_URL_QUERY_SECRET = re.compile(r"(?P<k>[?&](?:token|key|secret|password|apikey|api_key)=)[^&\s]+", re.IGNORECASE)
# Webhook URLs carry their token in the path: https hooks (Slack, Discord) and apprise schemes whose
# whole remainder is credentials (slack://TokenA/TokenB/TokenC, tgram://bottoken/chat, ...).
_URL_PATH_TOKEN = re.compile(
    r"(?P<p>hooks\.slack\.com/services|discord(?:app)?\.com/api/webhooks|api\.telegram\.org/bot)/[^\s\"']+",
    re.IGNORECASE,
)
_APPRISE_TOKEN_URL = re.compile(
    r"\b(?P<p>(?:slack|discord|tgram|msteams|pover|pushover|gotify|gotifys|ntfy|ntfys|matrix|matrixs|twilio|"
    r"pbul|join|ifttt|mailgun|sendgrid|zulip|rocket|rockets|signal|signals)://)[^\s\"']+",
    re.IGNORECASE,
)
REDACTED = "***"
LOG_FORMATS: tuple[str, ...] = ("auto", "json", "console")
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")

_registered: set[str] = set()


def register_secret(*values: str | None) -> None:
    """Values registered here are masked wherever they appear in log text or error messages."""
    for v in values:
        if v and len(v) >= 4:
            _registered.add(v)


def redact_text(text: str) -> str:
    for secret in sorted(_registered, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    text = _URL_QUERY_SECRET.sub(lambda m: f"{m.group('k')}{REDACTED}", text)
    text = _URL_PATH_TOKEN.sub(lambda m: f"{m.group('p')}/{REDACTED}", text)
    return _APPRISE_TOKEN_URL.sub(lambda m: f"{m.group('p')}{REDACTED}", text)


def _redact_value(key: str, value: Any) -> Any:
    if isinstance(value, str):
        return REDACTED if _SECRET_KEYS.search(key) and key not in ("client_order_id",) else redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(key, v) for v in value]
    return value


def _redact_processor(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return {k: _redact_value(k, v) for k, v in event_dict.items()}


class _Stderr:
    """Whatever sys.stderr is at the time of writing (test runners and daemons swap it), not at configure time."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream if stream is not None else sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class _Choice(NamedTuple):
    level: int
    stream: Any
    fmt: str


#: configure()'s choice, applied to structlog at the first event that passes the level (None: applied, or never
#: given, structlog's own defaults then), and that level: an event below it is dropped before structlog loads.
_pending: _Choice | None = None
_min_level = logging.NOTSET
_LEVEL_METHODS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "warn": logging.WARNING,
                  "error": logging.ERROR, "exception": logging.ERROR, "critical": logging.CRITICAL,
                  "fatal": logging.CRITICAL}  # fmt: skip


def configure(level: str = "info", secrets: Iterable[str] = (), stream: Any = None, fmt: str = "auto") -> None:
    """fmt: "json", "console" (for people), or "auto": console when the stream is a terminal, else JSON.
    structlog is loaded at the first event at or above the level, not here: a command that logs nothing at its
    level (most, at warning) never pays for it."""
    global _pending, _min_level
    register_secret(*secrets)
    _min_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    _pending = _Choice(_min_level, stream, fmt)


def _json_default(value: Any) -> str:
    """A value JSON has no type for: a time as ISO 8601 (not its Python repr), anything else as its repr."""
    iso = getattr(value, "isoformat", None)
    return iso() if callable(iso) else repr(value)


def _structlog() -> Any:
    """structlog, configured as configure() last asked."""
    global _pending
    import structlog

    if _pending is not None:
        lvl, stream, fmt = _pending
        _pending = None
        human = fmt == "console" or (fmt == "auto" and _is_terminal(stream))
        renderer: Any = (
            structlog.dev.ConsoleRenderer(colors=_is_terminal(stream),
                                          exception_formatter=structlog.dev.plain_traceback)
            if human
            else structlog.processors.JSONRenderer(default=_json_default)
        )  # fmt: skip
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                _redact_processor,
                renderer,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(lvl),
            logger_factory=structlog.PrintLoggerFactory(stream or cast(TextIO, _Stderr())),
            cache_logger_on_first_use=False,
        )
    return structlog


def _dropped(*_: Any, **__: Any) -> None:
    return None


class _Logger:
    """A named logger that loads structlog at its first event that passes the level, not at import: commands
    that log nothing (`--help`, argument errors, a command run at warning) never pay for it. Configuration is
    read at each event, as structlog's own lazy proxy does."""

    __slots__ = ("_bound", "_name")

    def __init__(self, name: str):
        self._name = name
        self._bound: Any = None

    def __getattr__(self, attr: str) -> Any:
        if _LEVEL_METHODS.get(attr, logging.CRITICAL + 1) < _min_level:
            return _dropped
        structlog = _structlog()
        if self._bound is None:
            self._bound = structlog.get_logger(self._name)
        return getattr(self._bound, attr)


def get_logger(name: str) -> Any:
    return _Logger(name)
