"""`/metrics` on a web node, for Prometheus, and the timing of every request it counts.

The scrape endpoint is the guarded WSGI app of webapp.core.metrics mounted beside the
Flask app rather than a view: a scraper is not a user (no session, no CSRF, no bearer
token of a user's), and the same app serves each consumer's own port.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Response, g, request, request_finished, request_started
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from webapp.core.metrics import REQUESTS, scrape_app


def init_app(app: Flask) -> None:
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {  # type: ignore[method-assign]
        "/metrics": scrape_app(app.config["METRICS_TOKEN"], app.config["METRICS_ALLOW"],
                               app.extensions["database"], app.config["TASK_LEASE_SECONDS"]),
    })
    # Signals, not hooks: an unchanged poll is answered by the first before_request hook,
    # which skips the others; request_started comes before all of them.
    request_started.connect(_started, app)
    request_finished.connect(_finished, app)


def _started(_app: Flask, **_extra: Any) -> None:
    g.request_started = time.perf_counter()


def _finished(_app: Flask, response: Response, **_extra: Any) -> None:
    started = g.get("request_started")
    if started is None:
        return
    REQUESTS.labels(request.endpoint or "unmatched",
                    "poll" if "since" in request.args else "page",
                    str(response.status_code)).observe(time.perf_counter() - started)
