"""Who is asking: login sessions, API tokens, and the `users` and `tokens` commands."""

from __future__ import annotations

import functools
import hashlib
import secrets
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import click
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.cli import AppGroup
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.core.db import get_session
from webapp.core.kinds import InvalidParameters, check_text
from webapp.core.models import ApiToken, User, utcnow
from webapp.web import limits, polls
from webapp.web.formatting import iso_utc
from webapp.web.responses import (
    allow_uploads,
    csrf,
    error_response,
    is_htmx,
    local_path,
    wants_json,
)
from webapp.web.sessions import session_version, sign_in, sign_out, signed_in_user_id

bp = Blueprint("auth", __name__)

TOKEN_PREFIX = "bt_"
MAX_TOKEN_NAME = 80
# Token ids are a 32-bit column: a larger number names no token (and no database takes it).
MAX_TOKEN_ID = 2**31 - 1
# A token's last use is written at most this often: a script polling every second costs
# one write a minute, not one a poll.
LAST_USED_EVERY = timedelta(minutes=1)
# Compared against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not a real password")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.before_request(load_user)
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)


# -- accounts, used by the views and the commands alike ---------------------


def create_user(db: Session, name: str, password: str, *, admin: bool = False) -> User:
    name = name.strip()
    if not name or len(name) > 80:
        raise ValueError("a user name must be 1 to 80 characters")
    try:
        check_text("a user name", name)
    except InvalidParameters as exc:
        raise ValueError(str(exc)) from None
    if find_user(db, name) is not None:
        raise ValueError(f"user {name!r} already exists")
    user = User(name=name, password_hash=generate_password_hash(password), is_admin=admin)
    db.add(user)
    db.commit()
    return user


def find_user(db: Session, name: str) -> User | None:
    """The user called `name`; None too for a name no account can have (with a NUL or a
    lone surrogate, which PostgreSQL would refuse to even compare)."""
    try:
        check_text("name", name)
    except InvalidParameters:
        return None
    return db.scalar(select(User).where(User.name == name))


def authenticate(db: Session, name: str, password: str) -> User | None:
    user = find_user(db, name)
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


def end_sessions(db: Session, user: User) -> None:
    """End every session the user has: their cookies carry the version this bumps."""
    db.execute(update(User).where(User.id == user.id)
               .values(session_version=User.session_version + 1))
    db.commit()


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(db: Session, user: User, name: str = "",
                 expires_in: timedelta | None = None) -> str:
    """A new API token; only its hash is stored, so it is shown once."""
    name = " ".join(name.split())
    if len(name) > MAX_TOKEN_NAME:
        raise ValueError(f"a token's name must be at most {MAX_TOKEN_NAME} characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = None if expires_in is None else utcnow() + expires_in
    db.add(ApiToken(user_id=user.id, token_hash=_hash_token(token), name=name,
                    expires_at=expires_at))
    db.commit()
    return token


def user_for_token(db: Session, token: str) -> User:
    """The user a bearer token acts for; a 401 that says why when it acts for no one.
    Records when it was used, at most once a minute."""
    api_token = db.scalar(select(ApiToken).where(ApiToken.token_hash == _hash_token(token)))
    if api_token is None:
        abort(401, "This API token is not valid (or was revoked); create one with "
                   "'flask tokens create NAME' or on the API tokens page.")
    now = utcnow()
    if api_token.expires_at is not None and api_token.expires_at <= now:
        abort(401, f"This API token expired on {api_token.expires_at:%Y-%m-%d %H:%M} UTC; "
                   "create a new one.")
    if api_token.last_used_at is None or now - api_token.last_used_at >= LAST_USED_EVERY:
        api_token.last_used_at = now
        db.commit()
    return api_token.user


def user_tokens(db: Session, user: User) -> list[ApiToken]:
    return list(db.scalars(select(ApiToken).where(ApiToken.user_id == user.id)
                           .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def revoke_token(db: Session, token_id: int, owner: User | None = None) -> bool:
    """Delete the token (one of `owner`'s, when given); False when there is no such token."""
    query = delete(ApiToken).where(ApiToken.id == token_id)
    if owner is not None:
        query = query.where(ApiToken.user_id == owner.id)
    removed = db.execute(query).rowcount
    db.commit()
    return removed > 0


# -- every request ----------------------------------------------------------


# Built once: every signed-in request reads its user, and Session.get builds its query
# anew each time (a quarter of reading the row).
_USER_BY_ID = select(User).where(User.id == bindparam("user_id"))


def _signed_in_user(db: Session, user_id: int) -> User | None:
    """The session's user: on PostgreSQL as this process knows it, unless the page asks
    for what the database holds after the user's own action."""
    known = polls.announced()
    if known is None or polls.FRESH_HEADER in request.headers:
        return db.scalar(_USER_BY_ID, {"user_id": user_id})
    user, mark = known.user(db, user_id)
    if user is None:
        user = db.scalar(_USER_BY_ID, {"user_id": user_id})
        if user is not None:
            known.remember_user(user, mark)
    return user


def load_user() -> None:
    """Find the user from a bearer token or the session; check CSRF on cookie POSTs."""
    g.user = None
    g.auth = None
    if request.endpoint == "static":
        return
    header = request.headers.get("Authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            abort(401, "Send the API token as 'Authorization: Bearer TOKEN'.")
        g.user, g.auth = user_for_token(get_session(), token.strip()), "token"
    elif (user_id := signed_in_user_id()) is not None:
        user = _signed_in_user(get_session(), user_id)
        if user is None or user.session_version != session_version():
            # Signed out since (here or elsewhere), or the user is gone.
            sign_out()
        else:
            g.user, g.auth = user, "session"
    if g.user is not None:
        allow_uploads()
    if request.method == "POST" and g.auth != "token":
        csrf.protect()


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped(**kwargs: Any) -> Any:
        if g.user is None:
            if wants_json() or is_htmx():
                response = error_response(401, "Sign in first, or send an API token.")
                response.headers["WWW-Authenticate"] = "Bearer"
                if is_htmx():
                    response.headers["HX-Redirect"] = url_for("auth.login")
                return response
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(**kwargs)

    return wrapped


# -- views ------------------------------------------------------------------


@bp.get("/login")
def login() -> Response | str:
    next_path = local_path(request.args.get("next"))
    if g.auth == "session":
        # Signed in already (Back right after signing in lands here): on to the tasks.
        return redirect(next_path or url_for("tasks.index"))
    return render_template("auth/login.html", next=next_path)


@bp.post("/login")
def login_submit() -> Response | tuple[str, int]:
    name = request.form.get("name", "").strip()
    password = request.form.get("password", "")
    next_path = local_path(request.form.get("next"))
    db = get_session()
    limits.check_login(db)
    user = authenticate(db, name, password) if name and password else None
    if user is None:
        limits.count_login_failure(db)
        page = render_template(
            "auth/login.html",
            next=next_path,
            name=name,
            error="That name and password do not match an account.",
        )
        return page, 401
    sign_in(user.id, user.session_version)
    return redirect(next_path or url_for("tasks.index"), 303)


@bp.post("/logout")
def logout() -> Response:
    """Sign out: every session of the user ends, on every device, not just this cookie
    (a copy of it saved elsewhere would otherwise stay good for its lifetime)."""
    if g.user is not None:
        end_sessions(get_session(), g.user)
    sign_out()
    return redirect(url_for("auth.login"), 303)


# -- commands ---------------------------------------------------------------


def _database() -> Session:
    return current_app.extensions["database"].session()


@click.group("users", cls=AppGroup, help="Manage user accounts.")
def users_cli() -> None:
    pass


def _new_password(from_stdin: bool) -> str:
    password = sys.stdin.readline().rstrip("\n") if from_stdin else secrets.token_urlsafe(12)
    if not password:
        raise click.ClickException("the password must not be empty")
    return password


@users_cli.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Can see and cancel everyone's tasks.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user_command(name: str, admin: bool, password_stdin: bool) -> None:
    """Create a user and print the password (generated unless read from stdin)."""
    password = _new_password(password_stdin)
    with _database() as db:
        try:
            create_user(db, name, password, admin=admin)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    if not password_stdin:
        click.echo(password)


@users_cli.command("password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
def password_command(name: str, password_stdin: bool) -> None:
    """Give user NAME a new password (printed unless read from stdin); every session of
    theirs ends."""
    password = _new_password(password_stdin)
    with _database() as db:
        user = user_named(db, name)
        user.password_hash = generate_password_hash(password)
        end_sessions(db, user)
    if not password_stdin:
        click.echo(password)


@users_cli.command("sign-out")
@click.argument("name")
def sign_out_command(name: str) -> None:
    """End every session of user NAME, in browsers and portals alike (API tokens stay)."""
    with _database() as db:
        end_sessions(db, user_named(db, name))


@click.group("tokens", cls=AppGroup, help="Manage API tokens for scripts.")
def tokens_cli() -> None:
    pass


@tokens_cli.command("create")
@click.argument("name")
@click.option("--expires-in", "days", type=click.IntRange(1, 3650),
              help="Days until the token stops working (default: until revoked).")
@click.option("--name", "label", default="", help="What the token is for, to tell it apart.")
def create_token_command(name: str, days: int | None, label: str) -> None:
    """Print a new API token for user NAME, on one line."""
    with _database() as db:
        try:
            token = create_token(db, user_named(db, name), label,
                                 None if days is None else timedelta(days=days))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(token)


@tokens_cli.command("list")
@click.argument("name")
def list_tokens_command(name: str) -> None:
    """List user NAME's tokens: id, name, created, last used, expires (tab-separated)."""
    with _database() as db:
        click.echo("id\tname\tcreated\tlast used\texpires")
        for token in user_tokens(db, user_named(db, name)):
            click.echo("\t".join([str(token.id), token.name or "-", iso_utc(token.created_at),
                                  iso_utc(token.last_used_at) or "-",
                                  iso_utc(token.expires_at) or "-"]))


@tokens_cli.command("revoke")
@click.argument("token_id", metavar="ID", type=click.IntRange(1, MAX_TOKEN_ID))
def revoke_token_command(token_id: int) -> None:
    """Revoke the token with this ID (see `tokens list`): it stops working at once."""
    with _database() as db:
        if not revoke_token(db, token_id):
            raise click.ClickException(f"no token with id {token_id}")


def user_named(db: Session, name: str) -> User:
    """The user called NAME, for a command; a ClickException when there is none."""
    user = find_user(db, name)
    if user is None:
        raise click.ClickException(f"no user named {name!r}")
    return user
