"""A request id for every request: the proxy's `X-Request-Id` when it sends a plain one,
else a new one; answered in `X-Request-Id`, carried by the app's log lines of the request
(LOG_FORMAT=json) and left in the WSGI environ for gunicorn's access line (webapp/logs.py),
so one id finds every line a request wrote."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask, g, request

from webapp.logs import bind, request_id, unbind


def init_app(app: Flask) -> None:
    # Around the whole app rather than hooks and signals: the id is known before any
    # hook runs (one of them may answer an unchanged poll), and a poll pays a function
    # call for it instead of a signal, three hooks and the proxies they read.
    app.wsgi_app = RequestIds(app.wsgi_app)  # type: ignore[method-assign]
    # After auth.load_user (registered earlier), so the user is known.
    app.before_request(_name_user)


class RequestIds:
    """WSGI middleware: the request's id in the environ, the log context and the answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        this_id = environ["request_id"] = request_id(environ.get("HTTP_X_REQUEST_ID"))

        def start_with_id(status: str, headers: list[tuple[str, str]],
                          exc_info: Any = None) -> Any:
            headers.append(("X-Request-Id", this_id))
            return start_response(status, headers, exc_info)

        token = bind(request_id=this_id)
        try:
            return self.app(environ, start_with_id)
        finally:
            unbind(token)


def _name_user() -> None:
    user = g.get("user")
    if user is not None:
        request.environ["request_user"] = user.name
        bind(user=user.name)  # undone with the request's own binding, at its end
