"""Find a task: `q=` (words of the description, the last one a prefix), `kind=` and a
creation range (`from=`, `to=`) on the tasks view, with the status filter and pages, in
the query and in every answer (page, fragment, JSON, live poll)."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.support.accounts import Account
from webapp.core import listing as listing_module
from webapp.core.listing import Listing, list_tasks
from webapp.core.models import Status, Task, User, utcnow
from webapp.core.search import parse_search

DAY = datetime(2026, 3, 1, tzinfo=UTC)
# (kind, description, status, days after DAY)
TASKS = [
    ("extract_archive", "Extract site-3.tar.gz into docs", Status.COMPLETED, 0),
    ("distribute", "Distribute docs/report to alpha and beta", Status.FAILED, 1),
    ("distribute", "Distribute reports/q3 to gamma", Status.COMPLETED, 2),
    ("wake_space", "Wake alpha", Status.QUEUED, 3),
    ("rest_space", "Put gamma to rest", Status.RUNNING, 4),
    ("sleep", "Café break (a+b) OR \"quoted\"", Status.CANCELLED, 5),
]


@pytest.fixture
def searched(account: Account) -> dict[str, str]:
    """The account's tasks, by description: their ids."""
    ids = {}
    for kind, description, status, days in TASKS:
        task = account.add_task(status, kind=kind, description=description,
                                created_at=DAY + timedelta(days=days, hours=12))
        ids[description] = task.id
    return ids


def found(account: Account, query: str = "", status: tuple[Status, ...] = (),
          kinds: tuple[str, ...] = (), start: str = "", end: str = "", page: int = 1,
          per_page: int = 25) -> Listing:
    with account.app.extensions["database"].session() as db:
        user = db.get(User, account.user.id)
        assert user is not None
        return list_tasks(db, user, statuses=status, page=page, per_page=per_page,
                          search=parse_search(query, list(kinds), start, end))


def descriptions(listing: Listing) -> list[str]:
    return [task.description for task in listing.tasks]


def test_words_are_anded_and_the_last_one_is_a_prefix(
        account: Account, searched: dict[str, str]) -> None:
    assert descriptions(found(account, "docs")) == [
        "Distribute docs/report to alpha and beta", "Extract site-3.tar.gz into docs"]
    # Punctuation separates words: "reports/q3", "site-3.tar.gz".
    assert descriptions(found(account, "rep")) == [
        "Distribute reports/q3 to gamma", "Distribute docs/report to alpha and beta"]
    assert descriptions(found(account, "DOCS rep")) == [
        "Distribute docs/report to alpha and beta"]
    assert descriptions(found(account, "tar site")) == ["Extract site-3.tar.gz into docs"]
    # Only the last word is a prefix.
    assert descriptions(found(account, "rep docs")) == []
    assert descriptions(found(account, "café")) == ["Café break (a+b) OR \"quoted\""]
    assert found(account, "alpha").total == 2


def test_kinds_range_and_statuses_combine(account: Account, searched: dict[str, str]) -> None:
    assert descriptions(found(account, kinds=("distribute", "wake_space"))) == [
        "Wake alpha", "Distribute reports/q3 to gamma",
        "Distribute docs/report to alpha and beta"]
    assert descriptions(found(account, "alpha", kinds=("distribute",))) == [
        "Distribute docs/report to alpha and beta"]
    # A date is a whole UTC day, both ends included; a date and time is exact.
    assert descriptions(found(account, start="2026-03-02", end="2026-03-03")) == [
        "Distribute reports/q3 to gamma", "Distribute docs/report to alpha and beta"]
    assert descriptions(found(account, start="2026-03-02T13:00")) == [
        "Café break (a+b) OR \"quoted\"", "Put gamma to rest", "Wake alpha",
        "Distribute reports/q3 to gamma"]
    assert descriptions(found(account, end="2026-03-02T12:00:00+00:00")) == [
        "Extract site-3.tar.gz into docs"]
    assert descriptions(found(account, "docs", status=(Status.FAILED,))) == [
        "Distribute docs/report to alpha and beta"]
    # Several statuses: each read in its own index range, then merged.
    both = found(account, "d", status=(Status.COMPLETED, Status.FAILED))
    assert both.total == 3 and descriptions(both) == [
        "Distribute reports/q3 to gamma", "Distribute docs/report to alpha and beta",
        "Extract site-3.tar.gz into docs"]


def test_another_users_tasks_are_never_found(
        account: Account, make_account: Any, searched: dict[str, str]) -> None:
    other = make_account()
    other.add_task(Status.COMPLETED, description="Distribute docs to alpha")
    assert found(other, "docs").total == 1
    assert found(account, "docs").total == 2


WORDS = ["amber", "basalt", "cobalt", "dune", "ember", "fjord"]


def test_pages_of_a_search_equal_a_plain_query(account: Account) -> None:
    rng = random.Random(15)
    base = utcnow() - timedelta(days=1)
    for number in range(40):
        account.add_task(rng.choice(list(Status)), kind=rng.choice(["sleep", "distribute"]),
                         description=" ".join(rng.sample(WORDS, 3)),
                         created_at=base + timedelta(minutes=number % 7, seconds=number))
    for query, status, kinds in [("amber", (), ()), ("cobalt du", (), ()),
                                 ("e", (Status.COMPLETED, Status.FAILED), ("distribute",)),
                                 ("basalt fj", (Status.QUEUED,), ())]:
        search = parse_search(query, list(kinds), "", "")
        with account.app.extensions["database"].session() as db:
            everything = db.scalars(select(Task).where(Task.owner_id == account.user.id)
                                    .order_by(Task.created_at.desc(), Task.id.desc())).all()
            expected = [t.id for t in everything
                        if (not status or t.state in status)
                        and search.matches(t.kind, t.description, t.created_at)]
        assert expected, query
        pages: list[str] = []
        page = 0
        while True:
            page += 1
            listing = found(account, query, status, kinds, page=page, per_page=4)
            pages += [t.id for t in listing.tasks]
            if page >= listing.pages:
                break
        assert pages == expected, query
        assert listing.total == len(expected) and not listing.limited


def test_a_search_counts_two_pages_ahead(account: Account) -> None:
    for number in range(8):
        account.add_task(Status.COMPLETED, description=f"Counted {number}")
    first = found(account, "counted", per_page=2)
    assert first.limited and first.total == 6 and first.pages == 3
    third = found(account, "counted", page=3, per_page=2)
    assert not third.limited and third.total == 8 and third.pages == 4
    account.api("GET", "/tasks?per_page=10")
    body = account.client.get("/tasks?q=counted&per_page=10&page=1",
                              headers={**account.bearer, "Accept": "text/html"})
    assert "8 tasks matching “counted” · page 1 of 1" in body.get_data(as_text=True)


def test_a_search_counts_its_first_matches_only(account: Account,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for number in range(5):
        account.add_task(Status.COMPLETED, description=f"Common word {number}")
    monkeypatch.setattr(listing_module, "MAX_MATCHES", 3)
    listing = found(account, "common", per_page=10)
    assert listing.limited and listing.total == 3 and len(listing.tasks) == 3
    body = account.api("GET", "/tasks?q=common").get_json()
    assert body["total"] == 3 and body["total_limited"] is True
    page = account.api("GET", "/tasks?q=common", headers={"Accept": "text/html"})
    assert ("More than 3 tasks matching “common” · page 1 · a search shows its newest 3"
            in page.get_data(as_text=True))


# -- the view ----------------------------------------------------------------


def test_json_takes_the_same_parameters(account: Account, searched: dict[str, str]) -> None:
    body = account.api(
        "GET", "/tasks?q=alpha&kind=distribute&kind=wake_space&from=2026-03-01&to=2026-03-04"
               "&status=failed&status=queued").get_json()
    assert [t["description"] for t in body["tasks"]] == [
        "Wake alpha", "Distribute docs/report to alpha and beta"]
    assert body["total"] == 2 and body["total_limited"] is False
    assert body["search"] == {"q": "alpha", "words": ["alpha"],
                              "kinds": ["distribute", "wake_space"],
                              "from": "2026-03-01T00:00:00Z", "to": "2026-03-05T00:00:00Z"}
    assert account.api("GET", "/tasks").get_json()["search"]["q"] == ""


def test_the_page_and_the_fragment_carry_the_search(
        account: Account, searched: dict[str, str]) -> None:
    headers = {**account.bearer, "Accept": "text/html"}
    url = "/tasks?q=docs&kind=distribute&status=failed"
    page = account.client.get(url, headers=headers).get_data(as_text=True)
    assert 'name="q" value="docs"' in page
    assert re.search(r'value="distribute" checked', page)
    assert "1 task matching “docs”, of kind distribute · failed" in page
    # Live polls, page links and cancels come back to the same search.
    assert 'data-live="/tasks?status=failed&amp;q=docs&amp;kind=distribute"' in page
    fragment = account.client.get(url, headers={**headers, "HX-Request": "true"})
    body = fragment.get_data(as_text=True)
    assert body.lstrip().startswith('<section id="tasks-table"')
    assert searched["Distribute docs/report to alpha and beta"] in body
    assert searched["Extract site-3.tar.gz into docs"] not in body


def test_an_empty_result_says_what_was_searched_and_offers_to_clear_it(
        account: Account, searched: dict[str, str]) -> None:
    page = account.client.get("/tasks?q=nowhere&status=running&from=2026-03-02",
                              headers={**account.bearer, "Accept": "text/html"})
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "No running tasks matching “nowhere”, created from 2026-03-02." in body
    assert '<a href="/tasks?status=running">Clear the search</a>' in body


@pytest.mark.parametrize("query", [
    '"docs', "docs\"", "docs OR beta", "(docs", "docs)", "NEAR(docs beta)", "docs*", "-docs",
    "docs:*", "!docs & | <->", "docs\x00beta", "col:docs", "'; DROP TABLE tasks; --",
    "\\", "%_", "\u202edocs",
])
def test_any_text_is_plain_words(account: Account, searched: dict[str, str],
                                 query: str) -> None:
    response = account.api("GET", "/tasks", query_string={"q": query})
    assert response.status_code == 200, response.get_json()
    words = response.get_json()["search"]["words"]
    assert all(re.fullmatch(r"[^\W_]+", word) for word in words)
    html = account.client.get("/tasks", query_string={"q": query},
                              headers={**account.bearer, "Accept": "text/html"})
    assert html.status_code == 200


def test_punctuation_alone_searches_for_nothing(account: Account,
                                                searched: dict[str, str]) -> None:
    body = account.api("GET", "/tasks", query_string={"q": "(*)"}).get_json()
    assert body["total"] == len(TASKS) and body["search"]["words"] == []


@pytest.mark.parametrize(("query", "message"), [
    ("q=" + "a" * 201, "q must be at most 200 characters, not 201."),
    ("q=" + "+".join("abcdefghijk"), "q may hold at most 10 words."),
    ("kind=nap", "Unknown kind 'nap'; use any of: distribute, extract_archive, rest_space, "
                 "sleep, wake_space."),
    ("from=yesterday", "from must be a date (2026-12-31) or a date and time"),
    ("to=2026-02-30", "to must be a date"),
    ("from=2026-03-01T25:00", "from must be a date"),
    ("from=0001-01-01T00:00%2B05:00", "from must be a date"),
    ("from=2026-03-05&to=2026-03-01", "from (2026-03-05) must be before to (2026-03-01)."),
])
def test_bad_search_is_a_400_that_says_why(account: Account, query: str, message: str) -> None:
    response = account.api("GET", f"/tasks?{query}")
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    page = account.client.get(f"/tasks?{query}", headers={**account.bearer,
                                                          "Accept": "text/html"})
    assert page.status_code == 400


# -- the live view ---------------------------------------------------------------


def rows_of(page: str) -> list[str]:
    return re.findall(r'<tr id="task-([0-9a-f]+)"', page)


def live_poll(account: Account, url: str, page: str) -> Any:
    since = re.search(r'data-version="([^"]+)"', page)
    assert since
    headers = {**account.bearer, "HX-Request": "true", "X-Live-Rows": ",".join(rows_of(page))}
    return account.client.get(f"{url}&since={since.group(1)}", headers=headers)


def table(account: Account, url: str) -> str:
    return account.client.get(url, headers={**account.bearer, "HX-Request": "true"}).get_data(
        as_text=True)


def test_a_live_search_shows_only_new_tasks_that_match(account: Account,
                                                       searched: dict[str, str]) -> None:
    url = "/tasks?q=alpha"
    page = table(account, url)
    assert len(rows_of(page)) == 2
    account.add_task(Status.QUEUED, description="Wake beta", created_at=utcnow())
    unmatched = live_poll(account, url, page)
    assert unmatched.status_code == 200 and unmatched.headers["HX-Reswap"] == "none"
    assert rows_of(unmatched.get_data(as_text=True)) == []
    new = account.add_task(Status.QUEUED, kind="wake_space", description="Wake alpha again",
                           created_at=utcnow())
    body = live_poll(account, url, page).get_data(as_text=True)
    assert rows_of(body) == [new.id, *rows_of(page)]
    assert "3 tasks matching “alpha”" in body


def test_a_row_that_no_longer_matches_stays_marked(account: Account,
                                                   searched: dict[str, str]) -> None:
    url = "/tasks?q=gamma"
    resting = searched["Put gamma to rest"]
    page = table(account, url)
    with account.app.extensions["database"].session() as db:
        task = db.get(Task, resting)
        assert task is not None
        task.description = "Put delta to rest"
        db.commit()
    body = live_poll(account, url, page).get_data(as_text=True)
    assert rows_of(body) == [resting]
    assert "row-left" in body and "no longer in this filter" in body


def test_past_page_one_only_matching_new_tasks_are_counted(account: Account) -> None:
    for number in range(4):
        account.add_task(Status.COMPLETED, description=f"Extract part {number}",
                         created_at=utcnow() - timedelta(minutes=10 - number))
    account.api("GET", "/tasks?per_page=10")
    url = "/tasks?q=extract&page=2&per_page=10"
    for number in range(12):
        account.add_task(Status.COMPLETED, description=f"Extract more {number}",
                         created_at=utcnow() - timedelta(minutes=9, seconds=60 - number))
    page = table(account, url)
    assert len(rows_of(page)) == 6
    account.add_task(Status.QUEUED, description="Extract the newest", created_at=utcnow())
    account.add_task(Status.QUEUED, description="Something else", created_at=utcnow())
    body = live_poll(account, url, page).get_data(as_text=True)
    assert rows_of(body) == [] and "1 new task — show" in body


def test_a_forms_empty_fields_leave_the_url(account: Account) -> None:
    query = "/tasks?q=&from=&to=&status=failed&kind=distribute&kind="
    page = account.client.get(query, headers={**account.bearer, "Accept": "text/html"})
    assert page.status_code == 303
    assert page.headers["Location"] == "/tasks?status=failed&kind=distribute"
    # htmx swaps the table and is told the URL to show: a filter adds it to history,
    # typing a search replaces the address. JSON answers as asked.
    fragment = account.client.get(query, headers={**account.bearer, "HX-Request": "true",
                                                  "HX-Trigger": "filters"})
    assert fragment.status_code == 200
    assert fragment.headers["HX-Push-Url"] == "/tasks?status=failed&kind=distribute"
    typed = account.client.get(query, headers={**account.bearer, "HX-Request": "true",
                                               "HX-Trigger": "search-q"})
    assert typed.headers["HX-Replace-Url"] == "/tasks?status=failed&kind=distribute"
    assert account.api("GET", query).status_code == 200
    canonical = account.client.get("/tasks?status=failed&kind=distribute",
                                   headers={**account.bearer, "HX-Request": "true"})
    assert not {"HX-Push-Url", "HX-Replace-Url"} & set(canonical.headers.keys())
