"""The session cookie: who is signed in and how, and the rules the whole app keeps for it.

Blueprints start and end sessions here and declare what they need rather than bend the
cookie themselves: a view marked `quiet` (every poll: webapp.web.polls) neither extends the
session nor re-signs its cookie, and a session started inside a portal's iframe
(webapp.web.embed) gets the only kind of cookie a browser keeps in a cross-site frame.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, Request, Response, current_app, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from itsdangerous import BadSignature
from werkzeug.http import parse_cookie

USER_ID = "user_id"
EMBEDDED = "embedded"
# The user's session_version when the session began: a session of an older version is over.
VERSION = "session_version"
# A session is extended by signing its cookie again; once a minute is enough. Its end then
# comes at most a minute early, and a page view seldom pays for the signing and the
# Set-Cookie header.
REFRESH = timedelta(minutes=1)
# Cookies whose signature was checked, by value, in each process: a browser sends the same
# cookie with every request until it is signed again, and checking its signature every
# time was a fifth of an unchanged poll's time.
CHECKED_KEPT = 4096


def init_app(app: Flask) -> None:
    app.session_interface = SessionInterface()


def quiet(view: Callable[..., Any], when: Callable[[], bool]) -> Callable[..., Any]:
    """Mark a view whose requests (those for which `when()` holds) are not the user's
    activity (a poll): they neither extend the session nor re-sign its cookie (a third
    of an unchanged poll's time)."""
    view.quiet_session = when  # type: ignore[attr-defined]
    return view


def _quiet_request() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    when = getattr(view, "quiet_session", None)
    return when is not None and when()


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


def signed_in_of(app: Flask, environ: dict[str, Any]) -> tuple[int, int | None] | None:
    """The user a request's cookie signs in and the session_version it was signed in at,
    read from its WSGI environ without a request or a session (a poll answered before
    Flask: webapp.web.polls); None when it signs no one in."""
    interface = app.session_interface
    assert isinstance(interface, SessionInterface)
    cookie = parse_cookie(environ.get("HTTP_COOKIE")).get(interface.get_cookie_name(app))
    held = interface.held(app, cookie)
    if held is None or held[0].get(USER_ID) is None:
        return None
    return held[0][USER_ID], held[0].get(VERSION)


def session_version() -> int | None:
    return session.get(VERSION)


def is_embedded() -> bool:
    return bool(session.get(EMBEDDED))


class CookieSession(SecureCookieSession):
    """A session that knows when its cookie was signed (None: it has no cookie yet)."""

    signed_at: datetime | None = None


class SessionInterface(SecureCookieSessionInterface):
    """An embedded session's cookie lives in a cross-site iframe, so it must be
    `SameSite=None; Secure; Partitioned`; other sessions keep the app's Lax cookie. A
    quiet view's cookie is only set when the view changed the session, any other view's
    also once it was signed REFRESH ago."""

    session_class = CookieSession

    def __init__(self) -> None:
        self._checked = functools.lru_cache(maxsize=CHECKED_KEPT)(self._check)

    def open_session(self, app: Flask, request: Request) -> CookieSession | None:
        if not app.secret_key:
            return None
        held = self.held(app, request.cookies.get(self.get_cookie_name(app)))
        if held is None:
            return CookieSession()
        data, signed_at = held
        # What the cookie holds is shared by every request that sends it: a request gets
        # its own copy of anything it could change in place (the list flash() appends to).
        opened = CookieSession(copy.deepcopy(data) if any(
            isinstance(value, list | dict) for value in data.values()) else data)
        opened.signed_at = signed_at
        return opened

    def held(self, app: Flask, cookie: str | None) -> tuple[dict[str, Any], datetime] | None:
        """What a session cookie holds and when it was signed, shared and not to be
        changed; None when there is none, or it is not the app's, or it has expired."""
        if not cookie or not app.secret_key:
            return None
        checked = self._checked(app, cookie)
        if checked is None or datetime.now(UTC) - checked[1] > app.permanent_session_lifetime:
            return None
        return checked

    def _check(self, app: Flask, cookie: str) -> tuple[dict[str, Any], datetime] | None:
        """What a cookie holds and when it was signed; None when its signature is not the
        app's. Kept by cookie (CHECKED_KEPT), its age checked at every use."""
        serializer = self.get_signing_serializer(app)
        assert serializer is not None
        try:
            return serializer.loads(cookie, return_timestamp=True)
        except BadSignature:
            return None

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        # Most requests (every poll) send no cookie: they need none of its attributes.
        if not self.should_set_cookie(app, session):
            # Read as text first: an unchanged poll's answer names Cookie already, and
            # `response.vary` parses the header and writes it back.
            if session.accessed and not _varies_by_cookie(response.headers.get("Vary")):
                response.vary.add("Cookie")
            return
        super().save_session(app, session, response)

    def should_set_cookie(self, app: Flask, session: SessionMixin) -> bool:
        if session.modified:
            return True
        if _quiet_request() or not super().should_set_cookie(app, session):
            return False
        signed_at = getattr(session, "signed_at", None)
        return signed_at is None or datetime.now(UTC) - signed_at >= REFRESH

    def get_cookie_samesite(self, app: Flask) -> str | None:
        return "None" if _embedded_cookie() else super().get_cookie_samesite(app)

    def get_cookie_secure(self, app: Flask) -> bool:
        return _embedded_cookie() or super().get_cookie_secure(app)

    def get_cookie_partitioned(self, app: Flask) -> bool:
        return _embedded_cookie() or super().get_cookie_partitioned(app)


def _varies_by_cookie(vary: str | None) -> bool:
    return vary is not None and "cookie" in (name.strip().lower() for name in vary.split(","))


def _embedded_cookie() -> bool:
    """The cookie is (or, when signing out, was) an embedded session's."""
    return is_embedded() or bool(g.get("was_embedded"))
