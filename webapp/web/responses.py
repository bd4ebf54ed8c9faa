"""What every response shares: htmx, CSRF, content negotiation, error pages, security headers."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from flask import (
    Flask,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf.csrf import CSRFError, CSRFProtect
from htmx_flask import Htmx
from htmx_flask import request as htmx_request
from htmx_flask.requests import HtmxAwareRequest
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream

from webapp.core.queue import TaskQueue
from webapp.core.userfiles import UserFiles
from webapp.web.headers import security_headers
from webapp.web.polls import is_poll

log = logging.getLogger(__name__)

csrf = CSRFProtect()


class Request(HtmxAwareRequest):
    """htmx-flask's request (`request.htmx`), with a streamed body (chunked: no
    Content-Length) that reaches the body limit refused whole: werkzeug's read of the whole
    stream stops quietly at the limit, so a longer body would be cut short and acted on."""

    @cached_property
    def stream(self) -> IO[bytes]:
        limit = self.max_content_length
        if (self.content_length is None and limit is not None
                and "wsgi.input_terminated" in self.environ):
            return _WholeOrRefused(self.environ["wsgi.input"], limit, is_max=True)
        return super().stream


class _WholeOrRefused(LimitedStream):
    def readall(self) -> bytes:
        data = super().readall()
        if self.is_exhausted and self._stream.read(1):
            raise RequestEntityTooLarge()
        return data


def init_app(app: Flask) -> None:
    Htmx(app)
    app.request_class = Request
    csrf.init_app(app)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(Exception, _unexpected_error)
    app.after_request(_common_headers)
    app.add_url_rule("/favicon.ico", "favicon", _favicon)


def _favicon() -> Response:
    # Browsers ask for /favicon.ico before reading the page's <link rel="icon">.
    return redirect(url_for("static", filename="favicon.svg"), 301)


def accepts_uploads(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a view that takes uploaded files: its multipart requests may be up to
    UPLOAD_MAX_BYTES (files are spooled to disk; other bodies keep the small limit)."""
    view.accepts_uploads = True  # type: ignore[attr-defined]
    return view


def allow_uploads() -> None:
    """Lift the body limit to UPLOAD_MAX_BYTES for a signed-in user's upload: called once
    the user is known and before anything reads the body, so an anonymous client can never
    make a web node receive and spool more than the small limit."""
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "accepts_uploads", False) and request.mimetype == "multipart/form-data":
        request.max_content_length = current_app.config["UPLOAD_MAX_BYTES"]


def json_body() -> Any:
    """The request's JSON body; a 400 that says why when it is not JSON, or is nested too
    deeply for the parser (a RecursionError is no ValueError, so Flask would answer 500)."""
    try:
        return json.loads(request.get_data(cache=True))
    except RecursionError:
        abort(400, "The JSON body is nested too deeply; send at most a few levels.")
    except ValueError as exc:
        abort(400, f"The body is not valid JSON ({exc}); send a JSON object.")


def task_queue() -> TaskQueue:
    return current_app.extensions["task_queue"]


def user_files() -> UserFiles:
    return current_app.extensions["user_files"]


def wants_json() -> bool:
    """`Accept: application/json` asks for JSON; browsers and `*/*` get HTML."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def wants_fragment() -> bool:
    """An htmx swap, but never a history restore: that one needs the whole page."""
    return bool(htmx_request.htmx) and not htmx_request.htmx.history_restore_request


def is_htmx() -> bool:
    return bool(htmx_request.htmx)


def local_path(candidate: str | None) -> str | None:
    """A path on this site, or None: never redirect a user to another site. Browsers read
    `//host`, `////host` and `/\\host` as another host, and drop tabs and newlines first,
    so one slash and then no slash, backslash, whitespace or control character."""
    if not candidate or not candidate.startswith("/") or candidate.startswith("//"):
        return None
    if "\\" in candidate or any(ch.isspace() or not ch.isprintable() for ch in candidate):
        return None
    if "%" in candidate and local_path(unquote(candidate)) is None:
        return None
    parts = urlsplit(candidate)
    return None if parts.scheme or parts.netloc else candidate


# The heading of an error page, in words; the message under it says what to do.
ERROR_TITLES = {
    400: "That request was not understood",
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    409: "Already finished",
    413: "Too large",
    429: "Too many requests",
    503: "Temporarily unavailable",
}


def error_response(code: int, message: str, headers: Any = None,
                   title: str | None = None) -> Response:
    if wants_json():
        response = jsonify(error=message, status=code)
    else:
        page = render_template("error.html", code=code, message=message, chrome=code < 500,
                               title=title or ERROR_TITLES.get(code, "Something went wrong"))
        response = Response(page)
    response.status_code = code
    if headers:
        response.headers.update(headers)
    return response


def _http_error(exc: HTTPException) -> Response:
    message = exc.description or exc.name
    if isinstance(exc, RequestEntityTooLarge):
        message = (f"The request body is larger than the {_size(request.max_content_length)} "
                   "this request may send; uploads by a signed-in user may be up to "
                   f"{_size(current_app.config['UPLOAD_MAX_BYTES'])}.")
    if isinstance(exc, CSRFError):
        message = (
            "This form has expired or did not come from this site (CSRF check failed). "
            "Reload the page and try again; scripts should use an API token."
        )
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return error_response(exc.code or 500, message, headers)


def _size(count: int | None) -> str:
    """1048576 → "1 MiB": a body limit in words."""
    value, unit = float(count or 0), "bytes"
    for larger in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{value:g} {unit}"


def _database_unavailable(exc: OperationalError) -> Response:
    log.error("database unavailable: %s", exc)
    return error_response(
        503,
        "The task database cannot be reached right now; try again in a moment.",
        {"Retry-After": "5"},
    )


def _unexpected_error(exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return error_response(500, "Something went wrong on our side; it has been logged.")


def _common_headers(response: Response) -> Response:
    headers = response.headers
    # One pass over the names: a missing name looked up is a KeyError raised and caught.
    present = {name.lower() for name, _ in headers}
    config = current_app.config
    for name, value in security_headers(config["FRAME_ANCESTORS"],
                                         config["SESSION_COOKIE_SECURE"]):
        if name.lower() not in present:
            headers.add(name, value)
    if "cache-control" not in present and request.endpoint != "static":
        # A signed-in user's page is kept by no cache, not even the browser's (a shared
        # computer's next user must not find it there); a poll is revalidated instead, so
        # that its ETag and 204 stay cheap. Anything else is still never shared.
        private = g.get("user") is not None and not is_poll()
        headers.add("Cache-Control", "no-store" if private else "private, no-cache")
    return response
