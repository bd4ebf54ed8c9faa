"""The tasks view: filters, pages, page vs fragment vs JSON, and refusing bad input."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.support.accounts import Account
from webapp.core.models import Status, utcnow

ALL = [s.value for s in Status]


@pytest.fixture
def mixed(account: Account) -> Account:
    """Two tasks in each status, newest first by creation."""
    start = utcnow() - timedelta(hours=1)
    for index, status in enumerate(list(Status) * 2):
        account.add_task(status, created_at=start + timedelta(minutes=index),
                         description=f"{status.value} #{index}")
    return account


def listing(account: Account, query: str = "") -> dict:
    response = account.api("GET", f"/tasks{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.mark.parametrize("status", ALL)
def test_filter_by_each_status(mixed: Account, status: str) -> None:
    body = listing(mixed, f"?status={status}")
    assert body["total"] == 2
    assert {t["status"] for t in body["tasks"]} == {status}
    assert body["statuses"] == [status]


def test_filter_combinations_and_none(mixed: Account) -> None:
    both = listing(mixed, "?status=failed&status=queued")
    assert {t["status"] for t in both["tasks"]} == {"failed", "queued"}
    assert both["statuses"] == ["queued", "failed"]  # one order, whatever the URL's
    everything = listing(mixed)
    assert everything["total"] == 10
    assert listing(mixed, "?status=")["total"] == 10
    created = [t["created_at"] for t in everything["tasks"]]
    assert created == sorted(created, reverse=True)  # newest first


def test_pagination_edges(account: Account) -> None:
    start = utcnow() - timedelta(days=1)
    for index in range(60):
        account.add_task(created_at=start + timedelta(seconds=index), description=f"n{index}")
    first = listing(account)
    assert (first["page"], first["pages"], first["total"]) == (1, 3, 60)
    assert first["tasks"][0]["description"] == "n59"
    assert len(first["tasks"]) == 25
    last = listing(account, "?page=3")
    assert [t["description"] for t in last["tasks"]] == [f"n{i}" for i in range(9, -1, -1)]
    assert listing(account, "?page=4")["tasks"] == []
    page = account.client.get("/tasks?page=4", headers=account.bearer).get_data(as_text=True)
    assert "There is no page 4" in page
    page2 = account.client.get("/tasks?page=2", headers=account.bearer).get_data(as_text=True)
    assert 'aria-current="page"' in page2 and "?page=3" in page2 and 'href="/tasks"' in page2


def test_empty_states(account: Account) -> None:
    page = account.client.get("/tasks", headers=account.bearer).get_data(as_text=True)
    assert "No tasks yet" in page
    page = account.client.get("/tasks?status=failed", headers=account.bearer).get_data(as_text=True)
    assert "No failed tasks" in page
    page = account.client.get("/tasks?status=queued&status=running",
                              headers=account.bearer).get_data(as_text=True)
    assert "No queued or running tasks" in page


def test_page_fragment_json_and_history_restore(mixed: Account) -> None:
    headers = mixed.bearer
    page = mixed.client.get("/tasks?status=failed", headers=headers)
    assert page.get_data(as_text=True).lstrip().startswith("<!doctype html>")
    assert "HX-Request" in page.headers["Vary"]
    fragment = mixed.client.get("/tasks?status=failed", headers={**headers, "HX-Request": "true"})
    text = fragment.get_data(as_text=True)
    assert text.lstrip().startswith('<section id="tasks-table"')
    assert "<html" not in text and "failed #" in text and "completed #" not in text
    assert "HX-Request" in fragment.headers["Vary"]
    restore = mixed.client.get(
        "/tasks?status=failed",
        headers={**headers, "HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert restore.get_data(as_text=True).lstrip().startswith("<!doctype html>")
    as_json = mixed.client.get("/tasks", headers={**headers, "Accept": "application/json"})
    assert as_json.is_json and "Accept" in as_json.headers["Vary"]


def test_filter_form_is_a_get_form_with_labels(account: Account) -> None:
    page = account.client.get("/tasks?status=running", headers=account.bearer).get_data(
        as_text=True)
    assert 'method="get" action="/tasks"' in page
    for status in ALL:
        assert f'value="{status}"' in page
        assert status.capitalize() in page
    assert 'value="running" checked' in page
    # A filter is navigation, as a page is: Back undoes it (inside the portal both replace).
    # Typing a search is not: the search box alone replaces the address.
    assert 'hx-push-url="true"' in page and page.count("hx-replace-url") == 1
    assert re.search(r'id="search-q"[^>]*hx-replace-url="true"', page)
    assert '"historyRestoreAsHxRequest": false' in page


def test_rows_show_the_columns(account: Account) -> None:
    running = account.add_task(Status.RUNNING, description="Copy the files")
    done = account.add_task(Status.COMPLETED, description="All done")
    page = account.client.get("/tasks", headers=account.bearer).get_data(as_text=True)
    assert 'aria-label="Cancel task: Copy the files"' in page
    # The table polls as one unit; no row polls on its own.
    assert 'data-live="/tasks"' in page and f'hx-get="/tasks/{running.id}"' not in page
    assert '<progress max="1" value="0.4"' in page
    assert "took 2.0 s" in page  # started 1 s after creation, finished at 3 s
    assert f'<time datetime="{done.started_at.isoformat(timespec="seconds")[:19]}Z"' in page
    assert f'href="/tasks/{done.id}"' in page


def test_detail_page_shows_full_outcome(account: Account) -> None:
    long = "x" * 300 + " the end"
    task = account.add_task(Status.FAILED, outcome=long, details="line one\nline two",
                            error_trace="Traceback: secret internals")
    page = account.client.get(f"/tasks/{task.id}", headers=account.bearer).get_data(as_text=True)
    assert long in page and "line one\nline two" in page
    assert "secret internals" not in page  # the trace is for administrators
    body = account.api("GET", f"/tasks/{task.id}").get_json()
    assert body["details"] == "line one\nline two" and "error_trace" not in body


@pytest.mark.parametrize("query", [
    "?status=bogus", "?status=RUNNING", "?page=0", "?page=-1", "?page=1.5", "?page=abc",
    "?page=99999999999999999999", "?page=%EF%BC%91", "?status=running&status=nope",
])
def test_bad_query_is_400_with_a_message(account: Account, query: str) -> None:
    response = account.api("GET", f"/tasks{query}")
    assert response.status_code == 400
    message = response.get_json()["error"]
    assert "queued, running" in message or "page must be" in message
    html = account.client.get(f"/tasks{query}", headers=account.bearer)
    assert html.status_code == 400 and "<html" in html.get_data(as_text=True)


@pytest.mark.parametrize("body,message", [
    ({"kind": "nope"}, "Unknown kind 'nope'; choose one of: distribute, extract_archive, "
                         "rest_space, sleep, wake_space"),
    ({}, "Unknown kind '(none)'"),
    ({"kind": "sleep", "seconds": "ten"}, "seconds must be a number from 0 to 86400"),
    ({"kind": "sleep", "seconds": -1}, "seconds must be a number from 0 to 86400"),
    ({"kind": "sleep", "seconds": "nan"}, "seconds must be a number"),
    ({"kind": "sleep", "steps": 1.5}, "steps must be a whole number from 1 to 100000"),
    ({"kind": "sleep", "steps": True}, "steps must be a whole number"),
    ({"kind": "sleep", "colour": "red"}, "sleep does not take colour"),
    ({"kind": "sleep", "description": "x" * 501}, "description must be 1 to 500 characters"),
    ({"kind": "sleep", "fail": ["a", "b"]}, "fail must be text"),
    ({"kind": ["sleep"]}, "Unknown kind"),
])
def test_bad_launch_is_400_and_changes_nothing(account: Account, body: dict, message: str) -> None:
    response = account.api("POST", "/tasks", json=body)
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert listing(account)["total"] == 0


def test_bad_launch_bodies(account: Account) -> None:
    not_json = account.api("POST", "/tasks", data="{nope",
                           headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and "JSON object" in not_json.get_json()["error"]
    a_list = account.api("POST", "/tasks", json=["sleep"])
    assert a_list.status_code == 400
    form = account.client.post("/tasks", data={"kind": "sleep", "seconds": "x"},
                               headers=account.bearer)
    assert form.status_code == 400
    assert "seconds must be a number" in form.get_data(as_text=True)
    assert listing(account)["total"] == 0


def test_unknown_ids_are_404(account: Account) -> None:
    for method, url in [("GET", "/tasks/nope"), ("POST", "/tasks/nope/cancel"),
                        ("GET", "/tasks/" + "a" * 500), ("GET", "/no/such/page")]:
        response = account.api(method, url)
        assert response.status_code == 404, url
        assert response.get_json()["error"]


def test_method_not_allowed_is_405(account: Account) -> None:
    assert account.api("DELETE", "/tasks").status_code == 405


def test_a_page_past_the_end_does_not_claim_to_be_one(account: Account) -> None:
    account.add_task(Status.COMPLETED)
    page = account.client.get("/tasks?page=99", headers=account.bearer).get_data(as_text=True)
    assert "page 99 of" not in page
    assert "There is no page 99; the last page is" in page
