"""What every response shares: htmx, CSRF, content negotiation, error pages, security headers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Flask,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf.csrf import CSRFError, CSRFProtect
from htmx_flask import Htmx
from htmx_flask import request as htmx_request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from webapp.core.queue import TaskQueue
from webapp.core.userfiles import UserFiles

log = logging.getLogger(__name__)

csrf = CSRFProtect()


def init_app(app: Flask) -> None:
    Htmx(app)
    csrf.init_app(app)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(Exception, _unexpected_error)
    app.after_request(_common_headers)
    # Before the user is loaded: the CSRF check of a form post reads the body.
    app.before_request(_upload_limit)
    app.add_url_rule("/favicon.ico", "favicon", _favicon)


def _favicon() -> Response:
    # Browsers ask for /favicon.ico before reading the page's <link rel="icon">.
    return redirect(url_for("static", filename="favicon.svg"), 301)


def accepts_uploads(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a view that takes uploaded files: its multipart requests may be up to
    UPLOAD_MAX_BYTES (files are spooled to disk; other bodies keep the small limit)."""
    view.accepts_uploads = True  # type: ignore[attr-defined]
    return view


def _upload_limit() -> None:
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "accepts_uploads", False) and request.mimetype == "multipart/form-data":
        request.max_content_length = current_app.config["UPLOAD_MAX_BYTES"]


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
    """A path on this site, or None: never redirect a user to another site."""
    if not candidate:
        return None
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc or not candidate.startswith("/") or "\\" in candidate:
        return None
    return candidate


# The heading of an error page, in words; the message under it says what to do.
ERROR_TITLES = {
    400: "That request was not understood",
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    409: "Already finished",
    413: "Too large",
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
    if isinstance(exc, CSRFError):
        message = (
            "This form has expired or did not come from this site (CSRF check failed). "
            "Reload the page and try again; scripts should use an API token."
        )
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return error_response(exc.code or 500, message, headers)


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


def frame_ancestors(setting: str) -> str:
    """FRAME_ANCESTORS as CSP source list: origins separated by spaces or commas."""
    return " ".join(setting.replace(",", " ").split()) or "'self'"


def _common_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; "
        f"frame-ancestors {frame_ancestors(current_app.config['FRAME_ANCESTORS'])}",
    )
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "static":
        # Pages are personal and change all the time: never serve them from a shared cache.
        headers.setdefault("Cache-Control", "private, no-cache")
    return response
