"""The live tasks view: one poll per open view, 204 while nothing it shows changed, and
only what changed when something did (the rows out of band, the table when its set of
rows changed)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from markupsafe import escape
from sqlalchemy import update

from tests.support.accounts import Account
from tests.support.processes import wait_for
from tests.support.queries import statements_of
from webapp.core import models
from webapp.core.models import Status, Task, utcnow
from webapp.web import rows


def marker_of(page: str) -> str:
    """The live view's version (the bell's badge keeps one of its own)."""
    found = re.search(r'data-live="[^"]*" data-version="([^"]+)"', page)
    assert found, page
    return found.group(1)


def rows_of(page: str) -> list[str]:
    return re.findall(r'<tr id="task-([0-9a-f]+)"', page)


def poll(account: Account, url: str, since: str, rows: list[str] | None = None) -> Any:
    headers = {**account.bearer, "HX-Request": "true"}
    if rows is not None:
        headers["X-Live-Rows"] = ",".join(rows)
    join = "&" if "?" in url else "?"
    return account.client.get(f"{url}{join}since={since}", headers=headers)


def change(account: Account, task: Task, **values: Any) -> None:
    """A change made elsewhere: a worker reporting progress or finishing, say."""
    with account.app.extensions["database"].session() as db:
        db.execute(update(Task).where(Task.id == task.id).values(**values))
        db.commit()


def heard(account: Account, since: str) -> None:
    """On PostgreSQL, wait until this process has heard of a change made since `since`: a
    signed-in browser's poll is answered from what the process was last told."""
    versions = account.app.extensions["known_users"]
    if versions is not None:
        wait_for(lambda: (known := versions.get(account.user.id)) is None
                 or str(known.tasks) != since)


def table(account: Account, url: str = "/tasks") -> str:
    return account.client.get(url, headers={**account.bearer, "HX-Request": "true"}).get_data(
        as_text=True)


def untimed(page: str) -> str:
    """A page less its CSRF token, which carries the second it was signed in: two renders
    of the same rows differ by it once a second has passed between them."""
    return re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token"', page)


def test_an_unchanged_view_is_answered_204(account: Account) -> None:
    account.add_task(Status.RUNNING)
    page = table(account)
    response = poll(account, "/tasks", marker_of(page), rows_of(page))
    assert response.status_code == 204 and response.get_data() == b""


def test_a_heartbeat_is_no_change_but_progress_is(account: Account) -> None:
    running = account.add_task(Status.RUNNING)
    page = table(account)
    since = marker_of(page)
    change(account, running, heartbeat_at=utcnow())
    assert poll(account, "/tasks", since, rows_of(page)).status_code == 204
    change(account, running, progress=0.75, progress_message="Step 4 of 5")
    response = poll(account, "/tasks", since, rows_of(page))
    assert response.status_code == 200
    assert response.headers["X-Live-Version"] != since


def test_a_changed_row_is_sent_alone_out_of_band(account: Account) -> None:
    running = account.add_task(Status.RUNNING, description="Will finish")
    quiet = account.add_task(Status.RUNNING, description="Stays put")
    page = table(account)
    change(account, running, status=Status.COMPLETED, finished_at=utcnow(), outcome="All copied")
    response = poll(account, "/tasks", marker_of(page), rows_of(page))
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["HX-Reswap"] == "none"
    assert rows_of(body) == [running.id] and quiet.id not in body
    assert 'hx-swap-oob="morph"' in body and "All copied" in body
    assert 'id="tasks-summary"' in body
    # The next poll with the version the answer gave is unchanged again.
    follow = poll(account, "/tasks", response.headers["X-Live-Version"], rows_of(page))
    assert follow.status_code == 204
    # The table shows the same row in place, not out of band.
    whole = table(account)
    assert "All copied" in whole and "hx-swap-oob" not in whole


def test_a_new_task_on_page_one_sends_the_table(account: Account) -> None:
    old = account.add_task(Status.COMPLETED)
    page = table(account)
    new = account.add_task(Status.QUEUED, created_at=utcnow())
    response = poll(account, "/tasks", marker_of(page), rows_of(page))
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "HX-Reswap" not in response.headers
    assert rows_of(body) == [new.id, old.id]
    assert body.lstrip().startswith('<section id="tasks-table"')


def test_past_page_one_new_tasks_are_counted_not_shifted_in(account: Account) -> None:
    account.app.config["TASKS_PER_PAGE"] = 2
    try:
        for _ in range(4):
            account.add_task(Status.COMPLETED)
        page = table(account, "/tasks?page=2")
        shown = rows_of(page)
        assert len(shown) == 2
        for _ in range(3):
            account.add_task(Status.QUEUED, created_at=utcnow())
        response = poll(account, "/tasks?page=2", marker_of(page), shown)
        body = response.get_data(as_text=True)
    finally:
        account.app.config["TASKS_PER_PAGE"] = 25
    assert response.headers["HX-Reswap"] == "none" and rows_of(body) == []
    assert "3 new tasks — show" in body and 'href="/tasks"' in body


def test_a_row_that_leaves_the_filter_stays_marked(account: Account) -> None:
    running = account.add_task(Status.RUNNING, description="Leaves the filter")
    page = table(account, "/tasks?status=running")
    change(account, running, status=Status.FAILED, finished_at=utcnow(), outcome="Broke")
    body = poll(account, "/tasks?status=running", marker_of(page), rows_of(page)).get_data(
        as_text=True)
    assert rows_of(body) == [running.id]
    assert "row-left" in body and "no longer in this filter" in body
    # A poll that sends the whole table keeps it too, until the user navigates.
    other = account.add_task(Status.RUNNING, created_at=utcnow())
    whole = poll(account, "/tasks?status=running", marker_of(page), rows_of(page)).get_data(
        as_text=True)
    assert rows_of(whole) == [other.id, running.id] and "row-left" in whole
    assert running.id not in table(account, "/tasks?status=running")


def test_a_poll_that_does_not_list_its_rows_gets_the_table(account: Account) -> None:
    account.add_task(Status.RUNNING)
    page = table(account)
    account.add_task(Status.QUEUED, created_at=utcnow())
    body = poll(account, "/tasks", marker_of(page)).get_data(as_text=True)
    assert body.lstrip().startswith('<section id="tasks-table"') and len(rows_of(body)) == 2


def test_scripts_poll_the_json_listing_the_same_way(account: Account) -> None:
    account.add_task(Status.RUNNING)
    headers = {**account.bearer, "Accept": "application/json"}
    listing = account.client.get("/tasks", headers=headers).get_json()
    since = listing["version"]
    assert account.client.get(f"/tasks?since={since}", headers=headers).status_code == 204
    account.add_task(Status.QUEUED)
    fresh = account.client.get(f"/tasks?since={since}", headers=headers)
    assert fresh.status_code == 200 and fresh.get_json()["total"] == 2


def test_the_detail_page_of_a_running_task_follows_the_same_rule(account: Account) -> None:
    running = account.add_task(Status.RUNNING)
    other = account.add_task(Status.RUNNING)
    page = account.client.get(f"/tasks/{running.id}", headers=account.bearer).get_data(
        as_text=True)
    since = marker_of(page)
    assert f'data-live="/tasks/{running.id}"' in page
    change(account, other, progress=0.9)
    # Another task changed: still 204, with the version to poll with from now on.
    unchanged = poll(account, f"/tasks/{running.id}", since)
    assert unchanged.status_code == 204 and unchanged.headers["X-Live-Version"] != since
    change(account, running, status=Status.COMPLETED, finished_at=utcnow(), outcome="Done")
    done = poll(account, f"/tasks/{running.id}", unchanged.headers["X-Live-Version"])
    body = done.get_data(as_text=True)
    assert done.status_code == 200 and "Done" in body and "data-live" not in body


def test_an_unchanged_poll_reads_only_the_user_on_sqlite(account: Account) -> None:
    account.add_task(Status.RUNNING)
    account.login()
    page = account.client.get("/tasks", headers={"HX-Request": "true"}).get_data(as_text=True)
    response, statements = statements_of(account.app, lambda: account.client.get(
        f"/tasks?since={marker_of(page)}",
        headers={"HX-Request": "true", "X-Live-Rows": ",".join(rows_of(page))}))
    assert response.status_code == 204
    # The user, by primary key (on PostgreSQL, once the process listens: nothing at all).
    assert len(statements) <= 1



def test_a_changed_poll_reads_the_page_and_its_changed_rows_at_once(account: Account) -> None:
    running = account.add_task(Status.RUNNING)
    account.add_task(Status.COMPLETED)
    account.login()
    page = account.client.get("/tasks", headers={"HX-Request": "true"}).get_data(as_text=True)
    change(account, running, progress=0.5)
    heard(account, marker_of(page))
    response, statements = statements_of(account.app, lambda: account.client.get(
        f"/tasks?since={marker_of(page)}",
        headers={"HX-Request": "true", "X-Live-Rows": ",".join(rows_of(page))}))
    assert response.status_code == 200 and rows_of(response.get_data(as_text=True)) == [
        running.id]
    # The user; the page's ids, its total and the changed row (and nothing else).
    assert len(statements) == 2, statements


def test_a_kept_running_row_says_how_long_it_has_run_now(account: Account,
                                                          monkeypatch) -> None:
    started = utcnow() - timedelta(minutes=5)
    running = account.add_task(Status.RUNNING, started_at=started, created_at=started)
    first = table(account)
    shown = re.search(r"running for ([^<]+)<", first)
    assert shown and shown.group(1).startswith("5 min")
    # An hour on, nothing about the task has changed (its row is served as kept), but
    # the clock has.
    monkeypatch.setattr(models, "utcnow", lambda: started + timedelta(hours=1, minutes=5))
    later = table(account)
    assert later == first.replace(shown.group(0), "running for 1 h 05 min<")
    assert rows_of(later) == [running.id] and "\x00" not in later

def test_a_running_row_is_rendered_once_for_all_its_progress(account: Account,
                                                           monkeypatch) -> None:
    """Progress and its message are put into the kept row as it is served, and the row
    served is the one the template makes of the task as it is now."""
    running = account.add_task(Status.RUNNING, started_at=utcnow())
    rendered: list[str] = []
    render = rows._render
    monkeypatch.setattr(rows, "_render", lambda task, *args: rendered.append(task.id)
                        or render(task, *args))
    for progress, message, percent in ((0.25, "Copying <b>", "25"), (0.755, "a & b", "76"),
                                       (0.5, None, "50")):
        change(account, running, progress=progress, progress_message=message)
        page = table(account)
        assert f'value="{progress}"' in page and f">{percent}%</progress>" in page
        if message:
            assert f'title="{escape(message)}">{escape(message)}</span>' in page
        assert "\x00" not in page and "<b>" not in page
        with monkeypatch.context() as fresh:
            fresh.setattr(rows, "_kept", type(rows._kept)())
            assert untimed(table(account)) == untimed(page)
    assert rendered.count(running.id) == 4  # the first time, and once per fresh render
    # A change to what the row shows renders it anew.
    change(account, running, cancel_requested_at=utcnow())
    assert "Cancelling" in table(account) and rendered.count(running.id) == 5


def test_rows_poll_no_more(account: Account) -> None:
    running = account.add_task(Status.RUNNING)
    page = table(account)
    assert "every 2s" not in page and f'hx-get="/tasks/{running.id}"' not in page


def test_a_kept_finished_row_follows_a_later_change(account: Account) -> None:
    done = account.add_task(Status.COMPLETED, outcome="First words")
    assert "First words" in table(account)
    # Rendered once and kept by the process; a change bumps its version, so never stale.
    change(account, done, outcome="Second words")
    page = table(account)
    assert "Second words" in page and "First words" not in page
