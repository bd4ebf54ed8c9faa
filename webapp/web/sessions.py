"""The session cookie: who is signed in and how, and the rules the whole app keeps for it.

Blueprints start and end sessions here and declare what they need rather than bend the
cookie themselves: a view marked `quiet` (every poll: webapp.web.polls) neither extends the
session nor re-signs its cookie, and a session started inside a portal's iframe
(webapp.web.embed) gets the only kind of cookie a browser keeps in a cross-site frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, g, request, session
from flask.sessions import SecureCookieSessionInterface, SessionMixin

USER_ID = "user_id"
EMBEDDED = "embedded"
# The user's session_version when the session began: a session of an older version is over.
VERSION = "session_version"


def init_app(app: Flask) -> None:
    app.session_interface = SessionInterface()


def quiet(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a view whose requests are not the user's activity (a poll): they neither
    extend the session nor re-sign its cookie (a third of an unchanged poll's time)."""
    view.quiet_session = True  # type: ignore[attr-defined]
    return view


def _quiet_request() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "quiet_session", False)


def sign_in(user_id: int, version: int, *, embedded: bool = False) -> None:
    """A fresh session for the user: nothing of the previous one survives. A browser
    sign-in lasts PERMANENT_SESSION_LIFETIME; an embedded one, the portal's visit."""
    session.clear()
    session[USER_ID] = user_id
    session[VERSION] = version
    if embedded:
        session[EMBEDDED] = True
    else:
        session.permanent = True


def sign_out() -> None:
    # The cookie is deleted with the attributes it was set with: a partitioned cookie is
    # only removed by a deletion that is partitioned too.
    g.was_embedded = is_embedded()
    session.clear()


def signed_in_user_id() -> int | None:
    return session.get(USER_ID)


def session_version() -> int | None:
    return session.get(VERSION)


def is_embedded() -> bool:
    return bool(session.get(EMBEDDED))


class SessionInterface(SecureCookieSessionInterface):
    """An embedded session's cookie lives in a cross-site iframe, so it must be
    `SameSite=None; Secure; Partitioned`; other sessions keep the app's Lax cookie. A
    quiet view's cookie is only set when the view changed the session."""

    def should_set_cookie(self, app: Flask, session: SessionMixin) -> bool:
        if _quiet_request():
            return session.modified
        return super().should_set_cookie(app, session)

    def get_cookie_samesite(self, app: Flask) -> str | None:
        return "None" if _embedded_cookie() else super().get_cookie_samesite(app)

    def get_cookie_secure(self, app: Flask) -> bool:
        return _embedded_cookie() or super().get_cookie_secure(app)

    def get_cookie_partitioned(self, app: Flask) -> bool:
        return _embedded_cookie() or super().get_cookie_partitioned(app)


def _embedded_cookie() -> bool:
    """The cookie is (or, when signing out, was) an embedded session's."""
    return is_embedded() or bool(g.get("was_embedded"))
