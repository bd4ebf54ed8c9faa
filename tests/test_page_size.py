"""Page size: `per_page` of 10, 25, 50 or 100, remembered for the user."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask, url_for

from tests.support.accounts import Account
from webapp.core.listing import Listing
from webapp.core.models import Status, utcnow
from webapp.core.search import parse_search
from webapp.web.rows import at_page


@pytest.fixture
def many(account: Account) -> Account:
    now = utcnow()
    for number in range(60):
        account.add_task(Status.COMPLETED, description=f"Task {number}",
                         created_at=now - timedelta(minutes=number))
    return account


def test_per_page_is_remembered_for_the_user(many: Account,
                                             make_account: Callable[..., Account]) -> None:
    assert many.api("GET", "/tasks").get_json()["per_page"] == 25
    chosen = many.api("GET", "/tasks?per_page=50").get_json()
    assert chosen["per_page"] == 50 and len(chosen["tasks"]) == 50 and chosen["pages"] == 2
    later = many.api("GET", "/tasks?page=2").get_json()
    assert later["per_page"] == 50 and len(later["tasks"]) == 10
    assert many.api("GET", "/tasks?per_page=10").get_json()["pages"] == 6
    assert many.api("GET", "/tasks").get_json()["per_page"] == 10
    # Another user keeps the default.
    assert make_account().api("GET", "/tasks").get_json()["per_page"] == 25


def test_links_carry_a_size_other_than_the_default(many: Account) -> None:
    headers = {"Accept": "text/html"}
    page = many.api("GET", "/tasks?per_page=10", headers=headers).get_data(as_text=True)
    assert 'href="/tasks?per_page=10&amp;page=2"' in page
    assert '<option selected>10</option>' in page
    many.api("GET", "/tasks?per_page=25")
    page = many.api("GET", "/tasks", headers=headers).get_data(as_text=True)
    assert 'href="/tasks?page=2"' in page


@pytest.mark.parametrize("value", ["0", "20", "1000", "ten", "-10"])
def test_other_sizes_are_400(account: Account, value: str) -> None:
    response = account.api("GET", f"/tasks?per_page={value}")
    assert response.status_code == 400
    assert "per_page must be one of 10, 25, 50, 100" in response.get_json()["error"]



@pytest.mark.parametrize(("statuses", "words", "per_page_in_url"), [
    ((), None, False), ((), None, True), ((Status.QUEUED, Status.RUNNING), None, False),
    ((Status.COMPLETED,), "report & café", True)])
def test_a_pagers_links_are_the_urls_url_for_makes(
        app: Flask, statuses: tuple[Status, ...], words: str | None,
        per_page_in_url: bool) -> None:
    """at_page makes every page link from the first page's URL: each must be what
    url_for makes of the listing's arguments at that page."""
    search = parse_search(words, ["sleep"] if words else [], None, None)
    listing = Listing([], 500, 3, 10, statuses, None, per_page_in_url=per_page_in_url,
                      search=search)
    with app.test_request_context("/tasks"):
        first = url_for("tasks.index", **listing.query_args(page=1))
        for number in (1, 2, 3, 50):
            assert at_page(first, number) == url_for("tasks.index",
                                                     **listing.query_args(page=number))
