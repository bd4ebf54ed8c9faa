"""A web process knows its signed-in users on PostgreSQL: a request finds its user in
memory rather than reading it, and a change to the user's row, made anywhere, is read
again (at once when this process made it, as soon as it is announced otherwise)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, text, update

from tests.support.accounts import Account
from tests.support.processes import wait_for
from tests.support.queries import statements_of
from tests.test_bell_versions import current_version, poll
from webapp.core.models import User
from webapp.settings import Settings
from webapp.web import known_users
from webapp.web.known_users import KnownUsers


@pytest.fixture
def known(app: Flask) -> KnownUsers:
    known = app.extensions["known_users"]
    if known is None:
        pytest.skip("only PostgreSQL announces changes (the scale-out run)")
    return known


@pytest.fixture
def elsewhere(settings: Settings) -> Iterator[Any]:
    """Writes made by another process: none of this app's sessions sees them."""
    engine = create_engine(settings.database_url)

    def write(account: Account, sql: str) -> None:
        with engine.begin() as connection:
            connection.execute(text(sql), {"id": account.user.id})

    yield write
    engine.dispose()


def table(account: Account) -> tuple[Any, list[str]]:
    return statements_of(account.app, lambda: account.client.get(
        "/tasks", headers={"HX-Request": "true"}))


def reads_user(statements: list[str]) -> bool:
    return any("FROM users" in statement for statement in statements)


def known_by_now(account: Account) -> None:
    """The first requests read the user and teach the process its row; then none does."""
    wait_for(lambda: not reads_user(table(account)[1]), timeout=10, interval=0.05)


def test_a_signed_in_request_reads_its_user_only_where_nothing_announces_changes(
        app: Flask, account: Account) -> None:
    account.login()
    if app.extensions["known_users"] is None:
        for _ in range(3):
            response, statements = table(account)
            assert response.status_code == 200 and reads_user(statements)
        return
    known_by_now(account)


def test_a_sign_out_made_elsewhere_ends_the_session_once_announced(
        known: KnownUsers, account: Account, elsewhere: Any) -> None:
    account.login()
    known_by_now(account)
    elsewhere(account, "UPDATE users SET session_version = session_version + 1 WHERE id = :id")
    wait_for(lambda: account.client.get("/tasks").status_code == 302, timeout=5, interval=0.02)


def badge_poll(account: Account) -> tuple[Any, list[str]]:
    """The bell's poll, unchanged since the user's current version, and its statements."""
    version = current_version(account.app, account)
    return statements_of(account.app, lambda: poll(account, version))


def answered_from_memory(account: Account) -> bool:
    response, statements = badge_poll(account)
    return response.status_code == 204 and not statements


def test_a_session_signed_out_elsewhere_has_no_poll_answered_from_memory(
        known: KnownUsers, account: Account, elsewhere: Any) -> None:
    known_by_now(account.login())
    wait_for(lambda: answered_from_memory(account), timeout=5, interval=0.02)
    # Signed out everywhere, by another process: the versions the polls compare stay.
    elsewhere(account, "UPDATE users SET session_version = session_version + 1 WHERE id = :id")
    wait_for(lambda: badge_poll(account)[0].status_code == 401, timeout=5, interval=0.02)


def test_polls_are_answered_from_memory_for_more_users_than_rows_are_kept(
        known: KnownUsers, make_account: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(known_users, "MAX_ROWS", 1)
    first, second = make_account().login(), make_account().login()
    known_by_now(first)
    known_by_now(second)  # the only row kept is the second user's now
    with first.app.extensions["database"].session() as db:
        assert known.user(db, first.user.id)[0] is None
    assert answered_from_memory(first)


def test_a_page_size_chosen_elsewhere_reaches_the_next_request(
        known: KnownUsers, account: Account, elsewhere: Any) -> None:
    for _ in range(12):
        account.add_task()
    account.login()
    known_by_now(account)
    elsewhere(account, "UPDATE users SET per_page = 10 WHERE id = :id")

    def rows() -> int:
        return table(account)[0].get_data(as_text=True).count('<tr id="task-')

    wait_for(lambda: rows() == 10, timeout=5, interval=0.02)


def test_what_this_process_writes_is_read_again_at_once(
        known: KnownUsers, account: Account) -> None:
    for _ in range(12):
        account.add_task()
    account.login()
    known_by_now(account)
    # The user's own choice: the very next request, no waiting, has it.
    account.client.get("/tasks?per_page=10", headers={"HX-Request": "true"})
    response, statements = table(account)
    assert reads_user(statements)
    assert response.get_data(as_text=True).count('<tr id="task-') == 10


def test_a_read_that_raced_a_change_is_not_kept(
        app: Flask, known: KnownUsers, account: Account, elsewhere: Any) -> None:
    with app.extensions["database"].session() as db:
        known_by_now(account.login())
        known.forget_rows({account.user.id})
        user, mark = known.user(db, account.user.id)
        assert user is None
        stale = db.get(User, account.user.id)
        bell = stale.bell_version
        # Changed after the read began: the row and the bell, so the test can tell when
        # this process has heard of it.
        elsewhere(account, "UPDATE users SET per_page = 50, bell_version = bell_version + 1 "
                           "WHERE id = :id")
        wait_for(lambda: known.get(account.user.id).bell > bell, timeout=5, interval=0.02)
        known.remember_user(stale, mark)
        assert known.user(db, account.user.id)[0] is None


def test_a_deleted_user_is_forgotten(app: Flask, known: KnownUsers, make_account: Any,
                                     elsewhere: Any) -> None:
    account = make_account().login()
    known_by_now(account)
    elsewhere(account, "DELETE FROM users WHERE id = :id")
    wait_for(lambda: known.get(account.user.id) is None, timeout=5, interval=0.02)
    assert account.client.get("/tasks").status_code == 302
    with app.extensions["database"].session() as db:
        assert db.execute(update(User).where(User.id == account.user.id)
                          .values(per_page=10)).rowcount == 0


def test_rows_are_kept_for_a_bounded_number_of_users(
        app: Flask, known: KnownUsers, make_account: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr("webapp.web.known_users.MAX_ROWS", 2)
    # Never signed in, so no change of theirs is still on its way to the listener.
    users = [make_account().user.id for _ in range(3)]
    wait_for(known.epoch, timeout=10)
    with app.extensions["database"].session() as db:
        for user_id in users:
            unknown, mark = known.user(db, user_id)
            assert unknown is None
            known.remember_user(db.get(User, user_id), mark)
    with app.extensions["database"].session() as db:
        kept = [known.user(db, user_id)[0] is not None for user_id in users]
    # The third row made room by dropping the others; each is read again when next asked.
    assert kept == [False, False, True]
