"""A queue of a test's own on the session's backends: a Huey name no other consumer reads,
and a lease no other test's records reach, so a consumer started on it takes only the
test's tasks and reaps none of the others'."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask

from tests.support.accounts import Account
from webapp import create_app
from webapp.settings import Settings
from webapp.web.auth import create_token, create_user


@contextmanager
def private_queue(environment: dict[str, str]) -> Iterator[tuple[dict[str, str], Flask]]:
    """The environment for the consumer, and an app that launches onto its queue."""
    env = environment | {"HUEY_NAME": f"private-{uuid.uuid4().hex[:8]}",
                         "TASK_LEASE_SECONDS": "100000"}
    app = create_app(Settings.from_env(env), TESTING=True)
    try:
        yield env, app
    finally:
        app.extensions["task_queue"].huey.flush()
        app.extensions["database"].dispose()


def fresh_account(app: Flask) -> Account:
    password = uuid.uuid4().hex
    with app.extensions["database"].session() as db:
        user = create_user(db, f"user-{uuid.uuid4().hex[:10]}", password)
        return Account(app, user, password, create_token(db, user))
