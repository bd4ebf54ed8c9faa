"""Cancel many: the selected tasks, or all of a user's queued ones, in one request and one
transaction per batch, by the rules of a single cancel; the bell bumped once."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from tests.support.accounts import Account
from webapp.core import runtime
from webapp.core.models import Status, Task, User, utcnow


def waiting(account: Account, **fields: object) -> Task:
    """A queued record not due for an hour, so a consumer of the suite never runs it."""
    return account.add_task(Status.QUEUED, run_after=utcnow() + timedelta(hours=1), **fields)


def bell_version(account: Account) -> int:
    with account.app.extensions["database"].session() as db:
        return db.scalar(select(User.bell_version).where(User.id == account.user.id))


def statuses(account: Account, *tasks: Task) -> list[tuple[str, bool]]:
    with account.app.extensions["database"].session() as db:
        rows = {t.id: t for t in db.scalars(select(Task).where(Task.id.in_([t.id for t in tasks])))}
        return [(rows[t.id].status, rows[t.id].cancel_requested_at is not None) for t in tasks]


def test_selected_tasks_are_cancelled_by_the_rules_of_one(account: Account) -> None:
    queued = waiting(account)
    running = account.add_task(Status.RUNNING)
    done = account.add_task(Status.COMPLETED)
    before = bell_version(account)
    response = account.api("POST", "/tasks/cancel",
                           json={"ids": [queued.id, running.id, done.id, "nosuchtask"]})
    assert response.status_code == 202
    assert response.get_json() == {"cancelled": [queued.id], "cancel_requested": [running.id],
                                   "unchanged": [done.id]}
    assert statuses(account, queued, running, done) == [
        ("cancelled", True), ("running", True), ("completed", False)]
    assert bell_version(account) == before + 1
    # Again: nothing left to change, and the bell stays.
    again = account.api("POST", "/tasks/cancel", json={"ids": [queued.id, running.id]})
    assert again.get_json()["unchanged"] == sorted([queued.id, running.id])
    assert bell_version(account) == before + 1


def test_other_users_tasks_are_left_alone(account: Account,
                                          make_account: Callable[..., Account]) -> None:
    other = make_account()
    theirs = waiting(other)
    response = account.api("POST", "/tasks/cancel", json={"ids": [theirs.id]})
    assert response.get_json() == {"cancelled": [], "cancel_requested": [], "unchanged": []}
    assert statuses(other, theirs) == [("queued", False)]
    admin = make_account(admin=True)
    assert admin.api("POST", "/tasks/cancel", json={"ids": [theirs.id]}).get_json()[
        "cancelled"] == [theirs.id]


def test_all_queued_tasks_in_batches(account: Account, monkeypatch) -> None:
    monkeypatch.setattr(runtime, "CANCEL_BATCH", 3)
    queued = [waiting(account) for _ in range(7)]
    running = account.add_task(Status.RUNNING)
    before = bell_version(account)
    response = account.api("POST", "/tasks/cancel", data={"all": "queued"})
    assert response.status_code == 202
    assert sorted(response.get_json()["cancelled"]) == sorted(t.id for t in queued)
    assert statuses(account, running) == [("running", False)]
    # One bump per batch's transaction.
    assert bell_version(account) == before + 3
    counts = account.api("GET", "/tasks?status=queued").get_json()
    assert counts["total"] == 0


def test_the_confirmation_says_how_many(account: Account) -> None:
    for _ in range(3):
        waiting(account)
    account.add_task(Status.RUNNING)
    account.login()
    page = account.client.get("/tasks/cancel?all=queued&next=/tasks?status=queued")
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "3 queued tasks will be cancelled" in body
    assert 'value="/tasks?status=queued"' in body
    token = re.search(r'name="csrf_token" value="([^"]+)"', body)
    assert token
    done = account.client.post("/tasks/cancel", data={
        "all": "queued", "next": "/tasks?status=queued", "csrf_token": token.group(1)})
    assert done.status_code == 303 and done.headers["Location"] == "/tasks?status=queued"
    after = account.client.get("/tasks?status=queued").get_data(as_text=True)
    assert "Cancelled 3 tasks that had not started." in after
    none_left = account.client.get("/tasks/cancel?all=queued").get_data(as_text=True)
    assert "You have no queued tasks" in none_left


def test_htmx_gets_the_message_and_the_bell_refresh(account: Account) -> None:
    queued = waiting(account)
    account.login()
    response = account.client.post("/tasks/cancel", data={"ids": [queued.id]}, headers={
        "HX-Request": "true", "X-CSRFToken": account.csrf()})
    assert response.status_code == 200
    assert response.headers["HX-Trigger"]
    body = response.get_data(as_text=True)
    assert 'id="bulk-result"' in body and "Cancelled 1 task that had not started." in body


def test_active_rows_have_a_checkbox_finished_rows_none(account: Account) -> None:
    queued = waiting(account)
    cancelling = account.add_task(Status.RUNNING, cancel_requested_at=queued.created_at)
    done = account.add_task(Status.COMPLETED)
    account.login()
    page = account.client.get("/tasks").get_data(as_text=True)
    boxes = re.findall(r'name="ids" value="([0-9a-f]+)" form="bulk-cancel"', page)
    assert boxes == [queued.id]
    assert 'id="bulk-cancel"' in page and cancelling.id in page and done.id in page


def test_bad_requests_are_400(account: Account) -> None:
    for body in ({}, {"all": "finished"}, {"ids": [1, 2]}, {"ids": ["x"] * 1001}):
        response = account.api("POST", "/tasks/cancel", json=body)
        assert response.status_code == 400, body
        assert response.get_json()["error"]
    assert account.api("GET", "/tasks/cancel").status_code == 400


def test_a_single_cancel_asks_first_on_a_page(account: Account) -> None:
    queued = waiting(account, description="Wait for me")
    account.login()
    page = account.client.get(f"/tasks/{queued.id}/cancel?next=/tasks?status=queued")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Wait for me" in body and "it will never run" in body
    assert 'href="/tasks?status=queued">Keep it queued</a>' in body
    token = re.search(r'name="csrf_token" value="([^"]+)"', body)
    assert token
    # Asking changed nothing; the page's button cancels.
    assert account.api("GET", f"/tasks/{queued.id}").get_json()["status"] == "queued"
    done = account.client.post(f"/tasks/{queued.id}/cancel", data={
        "next": "/tasks?status=queued", "csrf_token": token.group(1)})
    assert done.status_code == 303 and done.headers["Location"] == "/tasks?status=queued"
    again = account.client.get(f"/tasks/{queued.id}/cancel")
    assert again.status_code == 409 and "already ended" in again.get_data(as_text=True)
    assert account.client.get("/tasks/nope/cancel").status_code == 404
