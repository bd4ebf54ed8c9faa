"""`/metrics` on a web node, for Prometheus, and the timing of every request it counts.

The scrape endpoint is the guarded WSGI app of webapp.core.metrics mounted beside the
Flask app rather than a view: a scraper is not a user (no session, no CSRF, no bearer
token of a user's), and the same app serves each consumer's own port.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from flask import Flask, Request
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from webapp.core.metrics import REQUESTS, scrape_app

# Left in the environ by a part that answers before Flask makes a request (an unchanged
# poll, webapp.web.polls): the endpoint it answered for.
POLL_ENDPOINT = "webapp.poll_endpoint"


def init_app(app: Flask) -> None:
    app.wsgi_app = DispatcherMiddleware(TimedRequests(app.wsgi_app), {  # type: ignore[method-assign]
        "/metrics": scrape_app(app.config["METRICS_TOKEN"], app.config["METRICS_ALLOW"],
                               app.extensions["database"], app.config["TASK_LEASE_SECONDS"]),
    })


class TimedRequests:
    """WSGI middleware: each answered request's time, by endpoint, poll or page, and status.
    Around the app rather than two signals and the proxies they read: an unchanged poll
    is the request a node serves most."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        started = time.perf_counter()

        def start_and_time(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Any:
            if POLL_ENDPOINT in environ:
                endpoint, kind = environ[POLL_ENDPOINT], "poll"
            else:
                # Flask's request object, which werkzeug leaves in the environ until the
                # request's context ends (after the answer has started). A test client
                # leaves one of its own there before: not Flask's, it has no endpoint.
                request = environ.get("werkzeug.request")
                if not isinstance(request, Request):
                    return start_response(status, headers, exc_info)
                endpoint = request.endpoint or "unmatched"
                kind = "poll" if "since" in request.args else "page"
            REQUESTS.labels(endpoint, kind, status[:3]).observe(time.perf_counter() - started)
            return start_response(status, headers, exc_info)

        return self.app(environ, start_and_time)
