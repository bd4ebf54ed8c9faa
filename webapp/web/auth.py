"""Who is asking: login sessions, API tokens, and the `users` and `tokens` commands."""

from __future__ import annotations

import functools
import hashlib
import secrets
import sys
from collections.abc import Callable
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
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.core.db import get_session
from webapp.core.models import ApiToken, User
from webapp.web import limits
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
    if db.scalar(select(User.id).where(User.name == name)) is not None:
        raise ValueError(f"user {name!r} already exists")
    user = User(name=name, password_hash=generate_password_hash(password), is_admin=admin)
    db.add(user)
    db.commit()
    return user


def authenticate(db: Session, name: str, password: str) -> User | None:
    user = db.scalar(select(User).where(User.name == name))
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


def create_token(db: Session, user: User) -> str:
    """A new API token; only its hash is stored, so it is shown once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.add(ApiToken(user_id=user.id, token_hash=_hash_token(token)))
    db.commit()
    return token


def user_for_token(db: Session, token: str) -> User | None:
    api_token = db.scalar(select(ApiToken).where(ApiToken.token_hash == _hash_token(token)))
    return None if api_token is None else api_token.user


# -- every request ----------------------------------------------------------


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
        user = user_for_token(get_session(), token.strip())
        if user is None:
            abort(401, "This API token is not valid; create one with 'flask tokens create NAME'.")
        g.user, g.auth = user, "token"
    elif (user_id := signed_in_user_id()) is not None:
        user = get_session().get(User, user_id)
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
def login() -> str:
    return render_template("auth/login.html", next=local_path(request.args.get("next")))


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


@users_cli.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Can see and cancel everyone's tasks.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user_command(name: str, admin: bool, password_stdin: bool) -> None:
    """Create a user and print the password (generated unless read from stdin)."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else secrets.token_urlsafe(12)
    if not password:
        raise click.ClickException("the password must not be empty")
    with _database() as db:
        try:
            create_user(db, name, password, admin=admin)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
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
def create_token_command(name: str) -> None:
    """Print a new API token for user NAME, on one line."""
    with _database() as db:
        click.echo(create_token(db, user_named(db, name)))


def user_named(db: Session, name: str) -> User:
    """The user called NAME, for a command; a ClickException when there is none."""
    user = db.scalar(select(User).where(User.name == name))
    if user is None:
        raise click.ClickException(f"no user named {name!r}")
    return user
