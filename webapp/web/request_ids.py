"""A request id for every request: the proxy's `X-Request-Id` when it sends a plain one,
else a new one; answered in `X-Request-Id`, carried by the app's log lines of the request
(LOG_FORMAT=json) and left in the WSGI environ for gunicorn's access line (webapp/logs.py),
so one id finds every line a request wrote."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, g, request, request_started

from webapp.logs import bind, request_id, unbind


def init_app(app: Flask) -> None:
    # A signal, not a hook: it comes before every before_request hook, one of which may
    # answer (an unchanged poll), and so the id is known to all of them.
    request_started.connect(_start, app)
    # After auth.load_user (registered earlier), so the user is known.
    app.before_request(_name_user)
    app.after_request(_answer)
    app.teardown_request(_end)


def _start(_app: Flask, **_extra: Any) -> None:
    g.request_id = request_id(request.headers.get("X-Request-Id"))
    request.environ["request_id"] = g.request_id
    g.log_context = bind(request_id=g.request_id)


def _name_user() -> None:
    user = g.get("user")
    if user is not None:
        request.environ["request_user"] = user.name
        bind(user=user.name)  # undone with the request's own binding, at its end


def _answer(response: Response) -> Response:
    if "request_id" in g:
        response.headers["X-Request-Id"] = g.request_id
    return response


def _end(_exc: BaseException | None) -> None:
    token = g.pop("log_context", None)
    if token is not None:
        unbind(token)
