"""Unchanged polls answered from memory: on PostgreSQL a web process listens to the
users' versions the database announces, and never trusts what it might have missed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from tests.support.accounts import Account
from tests.support.processes import wait_for
from tests.support.queries import statements_of
from webapp.core.models import bump_bell
from webapp.settings import Settings
from webapp.web.known_users import KnownUsers, Versions, for_database


def poll(account: Account, version: int, **headers: str) -> Any:
    return account.client.get(f"/notifications/badge?since={version}",
                              headers={"HX-Request": "true", **headers})


def bump(app: Flask, account: Account) -> None:
    """A change made elsewhere (a worker finishing a task, say)."""
    with app.extensions["database"].session() as db:
        bump_bell(db, account.user.id)
        db.commit()


def current_version(app: Flask, account: Account) -> int:
    with app.extensions["database"].session() as db:
        return db.scalar(text("SELECT bell_version FROM users WHERE id = :id"),
                         {"id": account.user.id})


def test_unchanged_polls_skip_the_database_only_where_it_announces_changes(
        app: Flask, account: Account) -> None:
    account.login()
    version = current_version(app, account)
    if app.extensions["database"].engine.dialect.name != "postgresql":
        assert app.extensions["known_users"] is None
        response, statements = statements_of(app, lambda: poll(account, version))
        assert response.status_code == 204 and len(statements) == 1
        return

    def answered_from_memory() -> bool:
        response, statements = statements_of(app, lambda: poll(account, version))
        assert response.status_code == 204
        return statements == []

    # The first polls read the user (and teach the process its version); then none do.
    wait_for(answered_from_memory, timeout=10, interval=0.1)


def test_a_change_made_elsewhere_reaches_the_next_polls(app: Flask, account: Account) -> None:
    account.login()
    version = current_version(app, account)
    wait_for(lambda: poll(account, version).status_code == 204)
    poll(account, version)
    bump(app, account)
    # PostgreSQL announces the change when it commits; the listener hears it at once.
    changed = wait_for(lambda: (r := poll(account, version)).status_code == 200 and r,
                       timeout=5, interval=0.02)
    assert changed.headers["X-Live-Version"] == str(version + 1)


def test_after_the_users_own_action_the_bell_reads_the_database(app: Flask,
                                                               account: Account) -> None:
    account.login()
    version = current_version(app, account)
    wait_for(lambda: poll(account, version).status_code == 204)
    bump(app, account)
    # No waiting: the page asks for fresh counts after the user's own launch or cancel.
    assert poll(account, version, **{"X-Bell-Fresh": "1"}).status_code == 200


def tasks_version(app: Flask, account: Account) -> int:
    with app.extensions["database"].session() as db:
        return db.scalar(text("SELECT tasks_version FROM users WHERE id = :id"),
                         {"id": account.user.id})


def test_a_poll_answered_from_memory_says_what_the_view_would(app: Flask,
                                                             account: Account) -> None:
    account.login()
    url = f"/tasks?since={tasks_version(app, account)}"
    from_memory = wait_for(lambda: (r := account.client.get(url, headers={
        "HX-Request": "true"})).status_code == 204 and r)
    # X-Bell-Fresh sends the same poll on to the view, which reads the database.
    from_view = account.client.get(url, headers={"HX-Request": "true", "X-Bell-Fresh": "1"})
    assert from_view.status_code == 204 and from_memory.get_data() == b""

    def said(response: Any) -> dict[str, str]:
        # A 204 has no body, so no type; each answer has a request id of its own.
        return {name: value for name, value in response.headers.items()
                if name not in ("Content-Type", "X-Request-Id")}

    assert said(from_memory) == said(from_view)
    assert from_memory.headers["X-Request-Id"] != from_view.headers["X-Request-Id"]


def test_a_cookie_that_is_forged_or_expired_is_never_answered_from_memory(
        app: Flask, account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    account.login()
    url = f"/tasks?since={tasks_version(app, account)}"
    wait_for(lambda: account.client.get(url, headers={"HX-Request": "true"}).status_code
             == 204)
    cookie = account.client.get_cookie("session")
    assert cookie is not None
    forged = app.test_client()
    forged.set_cookie("session", cookie.value[:-2] + ("AA" if cookie.value[-2:] != "AA"
                                                      else "BB"))
    assert forged.get(url, headers={"HX-Request": "true"}).status_code == 401
    monkeypatch.setitem(app.config, "PERMANENT_SESSION_LIFETIME", timedelta(0))
    assert account.client.get(url, headers={"HX-Request": "true"}).status_code == 401


def test_a_listener_that_lost_its_connection_trusts_nothing_it_knew(
        settings: Settings, app: Flask, account: Account) -> None:
    if not settings.database_url.startswith("postgresql"):
        # Nothing announces changes here, so there is nothing to listen to or lose.
        assert for_database(settings.database_url) is None
        return
    versions = KnownUsers(settings.database_url)
    listening = wait_for(versions.epoch, timeout=10)
    versions.remember(account.user.id, Versions(7, 3), listening)
    versions.remember(account.user.id, Versions(5, 4), listening)  # versions only grow
    assert versions.get(account.user.id) == Versions(7, 4)
    with app.extensions["database"].session() as db:
        db.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND query LIKE 'LISTEN%'"))
    wait_for(lambda: versions.epoch() != listening, timeout=10)
    assert versions.get(account.user.id) is None
    # A read that began before the break is not kept; the listener comes back.
    versions.remember(account.user.id, Versions(7, 4), listening)
    assert versions.get(account.user.id) is None
    back = wait_for(versions.epoch, timeout=15)
    assert back != listening
    bump(app, account)
    wait_for(lambda: (known := versions.get(account.user.id)) is not None
             and known.bell == current_version(app, account), timeout=5)
