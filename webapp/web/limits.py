"""What one client may do: wrong passwords per account and per address, and launches per
user (active tasks, launches a minute). A refusal is a 429 with Retry-After and words."""

from __future__ import annotations

from flask import current_app, request
from sqlalchemy.orm import Session
from werkzeug.exceptions import TooManyRequests

from webapp.core.listing import count_tasks
from webapp.core.models import ACTIVE_STATUSES, User
from webapp.core.throttle import Limit, hit, retry_after
from webapp.settings import UserLimits

# Nobody knows when a task will end; a script that waits this long and retries is polite.
ACTIVE_RETRY_SECONDS = 10


def _limits() -> UserLimits:
    return current_app.config["USER_LIMITS"]


def _login_limits() -> list[tuple[Limit, str]]:
    limits = _limits()
    window = limits.login_window_seconds
    name = request.form.get("name", "").strip()
    return [
        (Limit("login-account", limits.login_failures_per_account, window), name),
        (Limit("login-address", limits.login_failures_per_address, window),
         request.remote_addr or "unknown"),
    ]


def check_login(db: Session) -> None:
    """Refuse a sign-in before its password is hashed once the account, or the client's
    address, has had too many wrong passwords in this window (the right one too: that is
    what stops guessing)."""
    for limit, subject in _login_limits():
        if (seconds := retry_after(db, limit, subject)) is not None:
            raise _refusal(
                f"Too many wrong passwords for this {_what(limit)}: sign-in is paused for "
                f"{_duration(seconds)}.", seconds)


def count_login_failure(db: Session) -> None:
    for limit, subject in _login_limits():
        hit(db, limit, subject)


def check_launch(db: Session, user: User) -> None:
    """Refuse a launch over HTTP when the user has too many tasks queued or running, or
    launched too many this minute. Launches from the command line are not limited."""
    limits = _limits()
    active = count_tasks(db, user, tuple(ACTIVE_STATUSES))
    if active >= limits.max_active_tasks_per_user:
        raise _refusal(
            f"You have {active} tasks queued or running, the most one user may have "
            f"({limits.max_active_tasks_per_user}); launch more once some have finished, "
            "or cancel some.", ACTIVE_RETRY_SECONDS)
    per_minute = Limit("launches", limits.launches_per_minute, 60)
    if (seconds := hit(db, per_minute, str(user.id))) is not None:
        raise _refusal(
            f"You have launched {limits.launches_per_minute} tasks this minute, the most one "
            f"user may; try again in {_duration(seconds)}.", seconds)


def _what(limit: Limit) -> str:
    return "account" if limit.name == "login-account" else "address"


def _duration(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} seconds"
    return f"{round(seconds / 60)} minutes"


def _refusal(message: str, seconds: int) -> TooManyRequests:
    return TooManyRequests(message, retry_after=seconds)
