"""The bell: counters, cheap unchanged polls, the dropdown, and 'new since you looked'."""

from __future__ import annotations

import json
import re

from flask import template_rendered

from tests.support.accounts import Account
from tests.support.queries import statements_of
from webapp.core.models import Status, utcnow


def badge(account: Account, query: str = "", **headers: str):
    return account.client.get(f"/notifications/badge{query}",
                              headers={**account.bearer, "HX-Request": "true", **headers})


def since(response) -> str:
    """The bell version an answer names: on a page the badge's, else the poll's header."""
    match = re.search(r'id="bell-badge"[^>]*data-version="(\d+)"', response.get_data(as_text=True))
    if match:
        return match.group(1)
    return response.headers["X-Live-Version"]


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


def test_every_answer_says_how_to_cache_it(account: Account) -> None:
    first = badge(account)
    unchanged = badge(account, f"?since={since(first)}")
    revalidated = account.client.get("/notifications/badge", headers={
        **account.bearer, "If-None-Match": first.headers["ETag"]})
    assert (first.status_code, unchanged.status_code, revalidated.status_code) == (200, 204, 304)
    for response in (first, unchanged, revalidated):
        assert response.headers["Cache-Control"] == "private, no-cache"
        vary = {v.strip() for v in response.headers["Vary"].split(",")}
        assert {"HX-Request", "Cookie", "Authorization"} <= vary


def test_an_unchanged_poll_is_one_query_and_no_template(app, account: Account) -> None:
    """The user's row, read to authenticate the request, is all it reads (on PostgreSQL,
    once the process knows the version, not even that: tests/test_bell_versions.py)."""
    account.login()
    account.add_task(Status.RUNNING)
    version = since(account.client.get("/notifications/badge", headers={"HX-Request": "true"}))
    rendered: list[str] = []

    def render(_app, template, **_context) -> None:
        rendered.append(template.name)

    with template_rendered.connected_to(render, app):
        response, statements = statements_of(app, lambda: account.client.get(
            f"/notifications/badge?since={version}", headers={"HX-Request": "true"}))
    assert response.status_code == 204
    assert len(statements) <= 1 and all("FROM users" in sql for sql in statements), statements
    assert rendered == []


def test_htmx_swaps_nothing_on_204(account: Account) -> None:
    """htmx 2 applies the first responseHandling rule whose code matches: a 204 must
    leave the badge alone (a 304 never reaches htmx: the browser answers it from cache)."""
    page = account.client.get("/tasks", headers=account.bearer).get_data(as_text=True)
    match = re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", page)
    assert match
    rules = json.loads(match.group(1))["responseHandling"]
    first = next(rule for rule in rules if re.fullmatch(rule["code"], "204"))
    assert first["swap"] is False


def test_a_poll_neither_extends_the_session_nor_signs_its_cookie_again(account: Account) -> None:
    account.login()
    page = account.client.get("/tasks")
    assert "Set-Cookie" in page.headers  # a page view is activity: the session is extended
    version = since(page)
    for query in (f"?since={version}", ""):
        response = account.client.get(f"/notifications/badge{query}",
                                      headers={"HX-Request": "true"})
        assert response.status_code in (200, 204)
        assert "Set-Cookie" not in response.headers
