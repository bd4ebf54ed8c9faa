"""Signing in inside the portal's iframe: short-lived single-use tokens, `/embed`, `embed-url`."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

import click
from flask import Blueprint, Flask, Response, current_app, redirect, request, url_for
from flask.cli import with_appcontext
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp.core.db import get_session
from webapp.core.models import UsedEmbedToken, User
from webapp.web import sessions
from webapp.web.auth import find_user, user_named
from webapp.web.responses import error_response

bp = Blueprint("embed", __name__)

# Long enough for a portal page to load its iframe, short enough that a leaked URL is useless.
TOKEN_SECONDS = 120
# A token living longer is refused: its one-time id is kept until it expires.
MAX_TOKEN_SECONDS = 24 * 3600
# Keeps embed tokens from ever being mistaken for other things the same key signs.
SALT = "embed-token"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.cli.add_command(embed_url_command)

    @app.context_processor
    def _embedded() -> dict[str, Any]:
        embedded = sessions.is_embedded()
        # Another page of tasks or another filter is a new history entry, which Back undoes;
        # inside the portal's iframe both replace the address instead, so the portal's
        # back button is not flooded.
        return {
            "embedded": embedded,
            "history_attribute": "hx-replace-url" if embedded else "hx-push-url",
        }


class EmbedRefused(Exception):
    """A token that signs no one in; `code` is the HTTP status to answer with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def sign_token(secret_key: str, user_name: str, seconds: int = TOKEN_SECONDS) -> str:
    """What the portal puts in the iframe's URL: who, until when, and a one-time id."""
    payload = {"user": user_name, "exp": int(time.time()) + seconds, "jti": secrets.token_hex(16)}
    return URLSafeSerializer(secret_key, salt=SALT).dumps(payload)


def redeem_token(db: Session, secret_key: str, token: str, *, admins: bool = False) -> User:
    """The user a token signs in, once; refused when forged, expired or used before."""
    try:
        payload = URLSafeSerializer(secret_key, salt=SALT).loads(token)
    except BadSignature:
        raise EmbedRefused(403, "This sign-in link is not valid: it was not signed by the "
                                "portal this site trusts.") from None
    if not (isinstance(payload, dict) and isinstance(payload.get("user"), str)
            and type(payload.get("exp")) is int and isinstance(payload.get("jti"), str)):
        raise EmbedRefused(403, "This sign-in link is not valid: it lacks the user, the "
                                "expiry (whole seconds since 1970) or its one-time id.")
    # Compared as numbers first: a signed expiry beyond any date must still be an answer.
    if payload["exp"] <= time.time():
        raise EmbedRefused(401, "This sign-in link has expired. Reload the portal page to "
                                "get a fresh one.")
    if payload["exp"] > time.time() + MAX_TOKEN_SECONDS:
        raise EmbedRefused(403, "This sign-in link is not valid: it expires more than a day "
                                "ahead, and a sign-in link lives a few minutes.")
    now = datetime.now(UTC)
    expires = datetime.fromtimestamp(payload["exp"], UTC)
    user = find_user(db, payload["user"])
    if user is None:
        raise EmbedRefused(403, "This sign-in link names a user this site does not know.")
    if user.is_admin and not admins:
        # An administrator reaches everyone's tasks: not on the word of a portal alone.
        raise EmbedRefused(403, "This sign-in link names an administrator, and this site "
                                "does not sign administrators in through a portal "
                                "(EMBED_ADMINS); sign in on the site itself.")
    # Rows past their expiry refuse themselves by signature; dropping them keeps the table small.
    db.execute(delete(UsedEmbedToken).where(UsedEmbedToken.expires_at <= now))
    db.add(UsedEmbedToken(id=payload["jti"][:64], expires_at=expires))
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise EmbedRefused(401, "This sign-in link has already been used; each one works "
                                "once. Reload the portal page to get a fresh one.") from None
    return user


@bp.get("/embed")
def sign_in() -> Response:
    token = request.args.get("token", "")
    title = "This sign-in link cannot be used"
    if not token:
        return error_response(401, "This page signs the portal's iframe in, and needs a "
                                   "token=... from the portal.", title=title)
    try:
        user = redeem_token(get_session(), current_app.config["EMBED_SECRET_KEY"], token,
                            admins=current_app.config["EMBED_ADMINS"])
    except EmbedRefused as exc:
        return error_response(exc.code, str(exc), title=title)
    sessions.sign_in(user.id, user.session_version, embedded=True)
    # The token leaves the address bar and the history at once.
    response = redirect(url_for("tasks.index"), 303)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@click.command("embed-url")
@with_appcontext
@click.argument("name")
@click.option("--url", default="http://127.0.0.1:5000", help="Where the web server listens.")
@click.option("--seconds", default=TOKEN_SECONDS, show_default=True,
              type=click.IntRange(1, MAX_TOKEN_SECONDS),
              help="How long the URL stays usable.")
def embed_url_command(name: str, url: str, seconds: int) -> None:
    """Print a signed, single-use URL that signs user NAME in inside an iframe."""
    with current_app.extensions["database"].session() as db:
        user_named(db, name)
    click.echo(embed_url(url, sign_token(current_app.config["EMBED_SECRET_KEY"], name, seconds)))


def embed_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/embed?token={token}"
