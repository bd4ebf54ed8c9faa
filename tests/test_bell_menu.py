"""The bell's menu and the small states around cancelling, as HTML: active tasks first,
"new" said in words, one step message, a dialog that knows a queued task from a running one."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import update

from tests.support.accounts import Account
from webapp.core.models import Status, User, utcnow


def fresh(**values: object) -> dict[str, object]:
    """A queued or running record that the maintenance loop leaves alone for a while."""
    now = utcnow()
    return {"dispatched_at": now, "heartbeat_at": now} | values


def menu(account: Account) -> str:
    return account.client.get("/notifications", headers=account.bearer).get_data(as_text=True)


def listed(html: str) -> list[str]:
    return re.findall(r'href="/tasks/([0-9a-f]{32})"', html)


def see_until(account: Account, moment: object) -> None:
    with account.app.extensions["database"].session() as db:
        db.execute(update(User).where(User.id == account.user.id).values(tasks_seen_at=moment))
        db.commit()


def test_active_tasks_come_first_running_then_queued(account: Account) -> None:
    now = utcnow()
    old_queued = account.add_task(Status.QUEUED, **fresh(created_at=now - timedelta(hours=3)))
    running = account.add_task(Status.RUNNING, **fresh(created_at=now - timedelta(hours=2)))
    new_queued = account.add_task(Status.QUEUED, **fresh(created_at=now - timedelta(hours=1)))
    finished = [account.add_task(Status.COMPLETED, created_at=now - timedelta(minutes=m))
                for m in (30, 20, 10)]
    assert listed(menu(account)) == [
        running.id, new_queued.id, old_queued.id, finished[2].id, finished[1].id]


def test_the_latest_finished_fill_the_rest_by_when_they_finished(account: Account) -> None:
    now = utcnow()
    long_job = account.add_task(Status.COMPLETED, created_at=now - timedelta(hours=5),
                                finished_at=now - timedelta(minutes=1))
    quick = [account.add_task(Status.FAILED, created_at=now - timedelta(minutes=m))
             for m in (50, 40, 30, 20, 10)]
    shown = listed(menu(account))
    assert shown[0] == long_job.id
    assert shown[1:] == [quick[4].id, quick[3].id, quick[2].id, quick[1].id]


def test_at_most_five_even_with_many_active(account: Account) -> None:
    for _ in range(7):
        account.add_task(Status.QUEUED, **fresh())
    account.add_task(Status.RUNNING, **fresh())
    html = menu(account)
    assert len(listed(html)) == 5
    assert "8 active" in html


def test_new_finished_tasks_are_marked_and_counted_in_words(account: Account) -> None:
    now = utcnow()
    seen = account.add_task(Status.COMPLETED, created_at=now - timedelta(hours=1))
    unseen = account.add_task(Status.FAILED, created_at=now - timedelta(minutes=5))
    see_until(account, now - timedelta(minutes=30))
    badge = account.client.get("/notifications/badge", headers=account.bearer)
    assert 'title="1 finished since you last looked"' in badge.get_data(as_text=True)
    html = menu(account)
    assert "1 finished since you last looked" in html
    items = dict(zip(listed(html), re.split(r'href="/tasks/[0-9a-f]{32}"', html)[1:],
                     strict=True))
    assert 'class="new-tag">new<' in items[unseen.id]
    assert "new-tag" not in items[seen.id]
    # The open menu was the user looking: nothing is new any more.
    badge = account.client.get("/notifications/badge", headers=account.bearer)
    assert "badge-new" not in badge.get_data(as_text=True)
    assert "new-tag" not in menu(account)


def test_nothing_new_says_nothing(account: Account) -> None:
    account.add_task(Status.COMPLETED)
    see_until(account, utcnow())
    html = menu(account)
    assert "since you last looked" not in html and "new-tag" not in html


def test_the_step_message_shows_once_on_the_detail_page(account: Account) -> None:
    task = account.add_task(Status.RUNNING, **fresh(progress_message="Copying lecture 3 of 9"))
    page = account.client.get(f"/tasks/{task.id}", headers=account.bearer).get_data(as_text=True)
    assert page.count("Copying lecture 3 of 9") == 1


def test_the_cancel_form_carries_the_status_and_cancelling_one_ellipsis(account: Account) -> None:
    queued = account.add_task(Status.QUEUED, **fresh())
    stopping = account.add_task(Status.RUNNING, **fresh(cancel_requested_at=utcnow()))
    html = account.client.get("/tasks", headers=account.bearer).get_data(as_text=True)
    form = re.search(rf'<form[^>]*action="/tasks/{queued.id}/cancel"[^>]*>', html)
    assert form and 'data-status="queued"' in form.group(0)
    badge = re.search(rf'id="task-{stopping.id}".*?(<span class="status status-cancelling">'
                      r'.*?</span>.*?</span>)', html, re.S)
    assert badge and re.sub(r"<[^>]+>", "", badge.group(1)).count("…") == 1


def test_the_dialog_has_words_for_queued_and_running(account: Account) -> None:
    html = account.client.get("/tasks/new", headers=account.bearer).get_data(as_text=True)
    assert 'data-queued="It has not started; it will never run."' in html
    assert 'data-queued="Keep it queued"' in html and 'data-running="Keep it running"' in html
