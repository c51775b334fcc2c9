"""The read side over HTTP: `mood-monitor serve`, the live dashboard page, its JSON API and
its Server-Sent Events stream. It reads Redis through `monitor.store` and loads no model.

    settings.py   the `dashboard` section; the read token; the loopback rule
    readmodel.py  every figure shown (`mood_rows`, tiles, series, posts, alerts, status)
    live.py       the one poller of a process and its fan-out to the live streams
    guard.py      methods, Host check, the read token, security headers
    app.py        the Starlette app: routes, errors
    server.py     uvicorn on a socket bound here
    static/       the page, its script and styles, the vendored chart library (vendor/)
"""

from monitor.web.settings import DashboardSettings

__all__ = ["DashboardSettings"]
