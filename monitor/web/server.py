"""Running the dashboard on the project's one HTTP server runner (`monitor.asgi.AsgiServer`:
uvicorn with header and connection limits), one process, one poller.

The socket is bound before anything is served, so a ``--port 0`` bind can say which port it
got and a busy port is a `ConfigError`. Live streams count as requests in flight for as long as
they are open, so the in-flight cap leaves room for ``max_clients`` of them. SIGTERM/SIGINT
(installed here only when asked, by the entry point) stop accepting; open streams get
`GRACEFUL_S` to end, then the poller stops.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType

from monitor.asgi import ASGIApp, AsgiServer, ServerLimits

GRACEFUL_S = 2
API_IN_FLIGHT = 32  # plain API requests at once, besides the live streams


def address(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def build_server(app: ASGIApp, host: str, port: int, *, max_clients: int) -> AsgiServer:
    limits = ServerLimits(
        host=host.strip("[]"),
        port=port,
        max_in_flight=max_clients + API_IN_FLIGHT,
        max_connections=max_clients + 2 * API_IN_FLIGHT,
        graceful_stop_s=GRACEFUL_S,
    )
    return AsgiServer(app, limits)


def serve(
    server: AsgiServer,
    *,
    install_signals: bool = False,
    on_ready: Callable[[str], None] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT (with ``install_signals``; ``on_stop`` first, e.g. to end the
    live streams) or ``server.stop()``."""
    if install_signals:

        def stop(signum: int, frame: FrameType | None) -> None:
            if on_stop is not None:
                on_stop()
            server.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    if on_ready is not None:
        on_ready(address(str(server.host), int(server.port)))
    server.serve()
    return 0
