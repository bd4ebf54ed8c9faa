"""Polls: the requests an open page repeats to stay current (the bell's badge, the tasks
view, a running task's page). Each carries the version it was rendered at (`since=`) and
is answered 204 while that version is current.

A view declares itself a poll with `@polled(...)`, naming which of the user's versions
it compares. Polls are not the user's activity: they are quiet views (webapp.web.sessions),
which neither extend the session nor re-sign its cookie (a page view of the same view
does). On PostgreSQL,
where the database announces every version (webapp.web.known_users), an unchanged poll
of a signed-in browser is answered before the user is loaded, so without the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, g, request

from webapp.core.models import User
from webapp.web import known_users
from webapp.web.known_users import KnownUsers, Versions
from webapp.web.sessions import quiet, signed_in_user_id

# Sent by the page when it refreshes after the user's own action: the answer must read
# the database, not what this process was last told.
FRESH_HEADER = "X-Bell-Fresh"

# The version the page shows after this answer; its next poll sends it back as `since`.
VERSION_HEADER = "X-Live-Version"

VersionOf = Callable[[Versions], int]


def init_app(app: Flask) -> None:
    known = known_users.for_database(app.config["DATABASE_URL"])
    app.extensions["known_users"] = known
    if known is not None:
        known_users.forget_what_sessions_write(app.extensions["database"].Session, known)
        # First of all: loading the user is the very read an unchanged poll can skip.
        app.before_request_funcs.setdefault(None, []).insert(0, _answer_unchanged_poll)


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
    return current_app.response_class(status=204, headers={
        "Cache-Control": "private, no-cache", "Vary": "HX-Request, Cookie, Authorization"})


def _answer_unchanged_poll() -> Response | None:
    """A signed-in browser's poll whose `since` is the version PostgreSQL last announced
    for its user: 204 before the user is loaded, so without the database."""
    version_of = _version_of_this_poll()
    if version_of is None:
        return None
    versions = announced()
    assert versions is not None
    # Taken before the user is loaded, so the view may remember what it reads.
    g.versions_epoch = versions.epoch()
    user_id, since = signed_in_user_id(), request.args.get("since")
    # Another owner's tasks (an administrator's view) are not this user's version.
    if (user_id is None or since is None or FRESH_HEADER in request.headers
            or "Authorization" in request.headers or request.args.get("owner")):
        return None
    known = versions.get(user_id)
    if known is None or str(version_of(known)) != since:
        return None
    response = unchanged()
    response.headers[VERSION_HEADER] = since
    return response
