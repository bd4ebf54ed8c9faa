"""Polls: the requests an open page repeats to stay current (the bell's badge, the tasks
view, a running task's page). Each carries the version it was rendered at (`since=`) and
is answered 204 while that version is current.

A view declares itself a poll with `@polled(...)`, naming which of the user's versions
it compares. Polls are not the user's activity: they are quiet views (webapp.web.sessions),
which neither extend the session nor re-sign its cookie (a page view of the same view
does). On PostgreSQL, where the database announces every version
(webapp.web.known_users), an unchanged poll of a signed-in browser is answered before it
reaches Flask, so without the database (UnchangedPolls).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from webapp.core.models import User
from webapp.web import known_users
from webapp.web.headers import security_headers
from webapp.web.known_users import KnownUsers, Versions
from webapp.web.metrics import POLL_ENDPOINT
from webapp.web.sessions import quiet, signed_in_of

# Sent by the page when it refreshes after the user's own action: the answer must read
# the database, not what this process was last told.
FRESH_HEADER = "X-Bell-Fresh"

_FRESH_IN_ENVIRON = "HTTP_" + FRESH_HEADER.upper().replace("-", "_")

# The version the page shows after this answer; its next poll sends it back as `since`.
VERSION_HEADER = "X-Live-Version"

VersionOf = Callable[[Versions], int]

# What an unchanged answer says besides its version: revalidated each time, never shared.
UNCHANGED_HEADERS = (("Cache-Control", "private, no-cache"),
                     ("Vary", "HX-Request, Cookie, Authorization"))


def init_app(app: Flask) -> None:
    known = known_users.for_database(app.config["DATABASE_URL"])
    app.extensions["known_users"] = known
    if known is not None:
        known_users.forget_what_sessions_write(app.extensions["database"].Session, known)
        # Innermost of the middleware: request ids and timing (webapp.web.request_ids,
        # webapp.web.metrics) wrap the polls it answers too.
        app.wsgi_app = UnchangedPolls(app, known)  # type: ignore[method-assign]
        # First of all hooks: the epoch comes before the user is loaded.
        app.before_request_funcs.setdefault(None, []).insert(0, _take_epoch)


def polled(version_of: VersionOf, *, page: bool = False
           ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a view as a poll whose `since` is compared with `version_of(user's versions)`.
    A view that also shows a `page` is quiet only when polled: a page view is the user's
    activity."""

    def mark(view: Callable[..., Any]) -> Callable[..., Any]:
        view.polled_version = version_of  # type: ignore[attr-defined]
        return quiet(view, when=is_poll if page else lambda: True)

    return mark


def _version_of_this_poll() -> VersionOf | None:
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "polled_version", None)


def is_poll() -> bool:
    """This request is a poll: a polled view asked with the version it shows (`since=`)."""
    return "since" in request.args and _version_of_this_poll() is not None


def parse_since(value: str | None) -> int | None:
    """`since` as a number, or None when absent or not a version (then the poll is
    answered in full, which is always right)."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


def announced() -> KnownUsers | None:
    """What PostgreSQL announced of the users (None elsewhere)."""
    return current_app.extensions["known_users"]


def remember(user: User) -> None:
    """What a poll read from the database, kept for the next polls of this process."""
    versions = announced()
    if versions is not None:
        versions.remember(user.id, Versions(user.bell_version, user.tasks_version),
                          g.get("versions_epoch"))


def unchanged() -> Response:
    """204: htmx leaves the page as it is."""
    # The headers given whole: added one by one, Vary is parsed and written again.
    return current_app.response_class(status=204, headers=UNCHANGED_HEADERS)


class UnchangedPolls:
    """WSGI middleware (PostgreSQL): a signed-in browser's poll whose `since` is the version
    PostgreSQL last announced for its user, from a session the user's known row says is
    current, is answered 204 from memory, before Flask makes a request, opens the session
    or loads the user. That is what an open tab sends most:
    in Flask, the request, its context, the session and the hooks were two thirds of its
    time. Anything else goes on to Flask."""

    def __init__(self, app: Flask, known: KnownUsers) -> None:
        self.app, self.known, self.flask_app = app, known, app.wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        query = environ.get("QUERY_STRING", "")
        unchanged = self._unchanged(environ, query) if "since=" in query else None
        if unchanged is None:
            return self.flask_app(environ, start_response)
        endpoint, since = unchanged
        environ[POLL_ENDPOINT] = endpoint
        config = self.app.config
        # Read from the configuration as the Flask app's hook reads it (kept per value).
        secure = security_headers(config["FRAME_ANCESTORS"], config["SESSION_COOKIE_SECURE"])
        start_response("204 NO CONTENT",
                       [*UNCHANGED_HEADERS, *secure, (VERSION_HEADER, since)])
        return []

    def _unchanged(self, environ: dict[str, Any], query: str) -> tuple[str, str] | None:
        """(the polled endpoint, `since`) when this request is an unchanged poll."""
        try:
            endpoint, _ = self.app.url_map.bind_to_environ(environ).match()
        except HTTPException:  # not found, another method, or a redirect: Flask's to say
            return None
        version_of = getattr(self.app.view_functions.get(endpoint), "polled_version", None)
        if version_of is None:
            return None
        arguments = parse_qs(query, keep_blank_values=True)
        since = arguments.get("since", [None])[0]
        # Another owner's tasks (an administrator's view) are not this user's version.
        if (since is None or _FRESH_IN_ENVIRON in environ
                or "HTTP_AUTHORIZATION" in environ or any(arguments.get("owner", []))):
            return None
        signed_in = signed_in_of(self.app, environ)
        known = self.known.of_session(*signed_in) if signed_in is not None else None
        if known is None or str(version_of(known)) != since:
            return None
        return endpoint, since


def _take_epoch() -> None:
    """Before a poll's view reads its user: a read is only remembered if the listener
    heard every change since it began (KnownUsers.epoch)."""
    if _version_of_this_poll() is not None:
        g.versions_epoch = announced().epoch()  # type: ignore[union-attr]
