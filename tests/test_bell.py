"""The bell: counters, cheap unchanged polls, the dropdown, and 'new since you looked'."""

from __future__ import annotations

import re

from tests.conftest import Account
from webapp.models import Status, utcnow


def badge(account: Account, query: str = "", **headers: str):
    return account.client.get(f"/notifications/badge{query}",
                              headers={**account.bearer, "HX-Request": "true", **headers})


def since(response) -> str:
    match = re.search(r"since=(\d+)", response.get_data(as_text=True))
    assert match
    return match.group(1)


def test_badge_counts_active_and_new(account: Account) -> None:
    account.add_task(Status.RUNNING)
    account.add_task(Status.QUEUED)
    account.add_task(Status.COMPLETED)
    text = badge(account).get_data(as_text=True)
    assert 'data-count="2"' in text
    assert 'data-unseen="1"' in text
    assert "2 active, 1 finished since you last looked" in text


def test_unchanged_poll_is_204_without_a_body(account: Account) -> None:
    first = badge(account)
    version = since(first)
    unchanged = badge(account, f"?since={version}")
    assert unchanged.status_code == 204 and unchanged.get_data() == b""
    assert unchanged.headers["Cache-Control"] == "private, no-cache"
    account.api("POST", "/tasks", json={"kind": "sleep", "seconds": 0})
    changed = badge(account, f"?since={version}")
    assert changed.status_code == 200 and since(changed) != version


def test_etag_for_scripts(account: Account) -> None:
    first = account.client.get("/notifications/badge", headers=account.bearer)
    again = account.client.get("/notifications/badge",
                               headers={**account.bearer, "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


def test_opening_the_tasks_view_clears_new(account: Account) -> None:
    account.add_task(Status.FAILED)
    assert 'data-unseen="1"' in badge(account).get_data(as_text=True)
    account.client.get("/tasks", headers={**account.bearer, "HX-Request": "true"})
    assert "data-unseen" not in badge(account).get_data(as_text=True)
    account.add_task(Status.COMPLETED, finished_at=utcnow())
    assert 'data-unseen="1"' in badge(account).get_data(as_text=True)


def test_every_page_has_the_bell(account: Account) -> None:
    account.add_task(Status.RUNNING)
    page = account.client.get("/tasks/new", headers=account.bearer).get_data(as_text=True)
    assert 'aria-label="Notifications"' in page
    assert 'hx-trigger="every 30s, tasks-changed from:body, tab-visible from:body"' in page
    assert 'hx-sync="this:queue last"' in page
    assert 'data-count="1"' in page


def test_dropdown_lists_five_newest_and_tasks_entry(account: Account) -> None:
    tasks = [account.add_task(Status.COMPLETED, description=f"job {n}") for n in range(7)]
    menu = account.client.get("/notifications", headers=account.bearer).get_data(as_text=True)
    shown = re.findall(r'href="/tasks/([0-9a-f]{32})"', menu)
    assert len(shown) == 5
    assert '>Tasks</a>' in menu
    newest = sorted(tasks, key=lambda t: (t.created_at, t.id), reverse=True)[:5]
    assert shown == [t.id for t in newest]
