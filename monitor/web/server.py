"""Running the dashboard: one uvicorn server, one process, on a socket bound here (so that a
``--port 0`` bind can say which port it got). uvicorn handles SIGINT/SIGTERM: it stops
accepting, gives open streams `GRACEFUL_S` to end, then the poller stops.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn
from starlette.types import ASGIApp

GRACEFUL_S = 2


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def run(app: ASGIApp, sock: socket.socket, *, on_ready: Callable[[str], None] | None = None) -> int:
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_S,
        limit_concurrency=200,
    )
    server = uvicorn.Server(config)
    if on_ready is not None:
        on_ready(address(sock))
    server.run(sockets=[sock])
    return 0
