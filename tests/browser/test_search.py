"""Finding a task in a real browser: typing searches, kinds and dates filter, the URL
keeps it all, an empty result offers to clear it; with JavaScript off, a plain form."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Site
from tests.support.accounts import Account
from webapp.core.models import Status


def test_typing_searches_and_the_url_keeps_the_search(signed_in: Any, site: Site,
                                                      account: Account) -> None:
    account.add_task(Status.COMPLETED, kind="distribute",
                     description="Distribute lectures/week-3 to physics")
    account.add_task(Status.FAILED, kind="extract_archive",
                     description="Extract lectures.zip into chemistry")
    account.add_task(Status.COMPLETED, description="Sleep for a while")
    page = signed_in()
    page.evaluate("window.sameDocument = true")
    rows = page.locator("#tasks-table tbody tr")
    expect(rows).to_have_count(3)
    # The last word is a prefix: what is being typed already finds.
    page.get_by_label("Search").press_sequentially("lect")
    page.wait_for_url(f"{site.url}/tasks?q=lect")
    expect(rows).to_have_count(2)
    page.get_by_label("Distribute to spaces").check()
    page.wait_for_url(f"{site.url}/tasks?q=lect&kind=distribute")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Distribute lectures/week-3 to physics")
    expect(page.locator("#tasks-summary")).to_contain_text(
        "1 task matching “lect”, of kind distribute")
    assert page.evaluate("window.sameDocument") is True  # swapped, not reloaded
    page.get_by_label("Search").fill("lectures biology")
    page.wait_for_url(f"{site.url}/tasks?q=lectures+biology&kind=distribute")
    empty = page.locator("#tasks-table .empty")
    expect(empty).to_contain_text(
        "No tasks matching “lectures biology”, of kind distribute.")
    page.reload()
    expect(page.get_by_label("Search")).to_have_value("lectures biology")
    expect(page.get_by_label("Distribute to spaces")).to_be_checked()
    page.get_by_role("link", name="Clear the search").click()
    page.wait_for_url(re.compile(re.escape(f"{site.url}/tasks") + r"\??$"))
    expect(rows).to_have_count(3)
    expect(page.get_by_label("Search")).to_have_value("")


def test_without_javascript_the_search_is_a_plain_form(signed_in: Any, site: Site,
                                                       account: Account) -> None:
    account.add_task(Status.FAILED, description="Extract lectures.zip into chemistry")
    account.add_task(Status.COMPLETED, description="Extract notes.zip into chemistry")
    page = signed_in(java_script_enabled=False)
    page.get_by_label("Search").fill("chemistry")
    page.get_by_label("Failed").check()
    page.get_by_label("Created from").fill("2000-01-01")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(f"{site.url}/tasks?q=chemistry&from=2000-01-01&status=failed")
    rows = page.locator("#tasks-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Extract lectures.zip into chemistry")
