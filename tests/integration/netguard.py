"""Run `marketboss ...` with an audit hook that ends the process (exit 99) at the first disallowed connection.

    python tests/integration/netguard.py none paper ...       # no connection at all, not even a DNS lookup
    python tests/integration/netguard.py loopback paper ...   # only 127.0.0.1 / ::1 / localhost

A guard the code cannot miss: every socket connect and name lookup in CPython raises these audit events.
"""

from __future__ import annotations

import os
import sys
from typing import Any

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
EXIT_CODE = 99


def _guard(allowed: set[str]) -> Any:
    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.connect":
            addr = args[1]
            if isinstance(addr, tuple) and str(addr[0]) not in allowed:
                _refuse(f"connect {addr[0]}:{addr[1]}")
        elif event == "socket.getaddrinfo":
            host = args[0]
            if host is not None and str(host.decode() if isinstance(host, bytes) else host) not in allowed:
                _refuse(f"getaddrinfo {host}")

    return hook


def _refuse(what: str) -> None:
    sys.stderr.write(f"netguard: outside connection attempted: {what}\n")
    sys.stderr.flush()
    os._exit(EXIT_CODE)


if __name__ == "__main__":
    mode, *argv = sys.argv[1:]
    sys.addaudithook(_guard(set() if mode == "none" else LOOPBACK))
    from marketboss.cli import main

    sys.argv = ["marketboss", *argv]
    main()
