"""A server (``http.server`` or ``websockets.sync``) run on a daemon thread, as a context manager:
the local Slack stand-in and the tests' fake platforms share it."""

from __future__ import annotations

import threading
from typing import Any, Self


class BackgroundServer:
    _server: Any
    _thread: threading.Thread

    def _serve_in_background(self, server: Any) -> None:
        """Call from ``__init__`` with the bound (not yet serving) server."""
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        close = getattr(self._server, "server_close", None)  # http.server only
        if close is not None:
            close()
