"""Real alert receivers on loopback: an SMTP server (aiosmtpd) and an HTTP webhook receiver."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Inbox:
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


@contextmanager
def smtp_server() -> Iterator[tuple[Inbox, str]]:
    """Yields the inbox and an apprise URL that delivers to it."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, f"mailto://127.0.0.1:{port}?from=marketboss@example.com&to=ops@example.com&mode=insecure"
    finally:
        controller.stop()


@dataclass
class Hooks:
    posts: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    fail: bool = False


@contextmanager
def webhook_server(token: str = "hook-token-0123456789") -> Iterator[tuple[Hooks, str]]:
    """Yields the received posts and an apprise json:// URL carrying a secret token header."""
    hooks = Hooks()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if hooks.fail:
                self.send_response(500)
                self.end_headers()
                return
            hooks.posts.append(orjson.loads(body))
            hooks.headers.append(dict(self.headers))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hooks, f"json://127.0.0.1:{server.server_address[1]}/hook?+X-Token={token}"
    finally:
        server.shutdown()
        server.server_close()
