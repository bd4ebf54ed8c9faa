"""The tasks view in a real browser: filters, history, pagination, details, hover."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import Site
from tests.support.accounts import Account
from webapp.core.models import Status

LONG = ("Distribute the lecture recordings of the whole winter term to every course space "
        "of the physics department, including the archived ones")


def test_filters_swap_the_table_and_keep_the_url(signed_in: Any, site: Site,
                                                 account: Account) -> None:
    account.add_task(Status.COMPLETED, description="A finished one")
    account.add_task(Status.FAILED, description="A broken one")
    page = signed_in()
    page.evaluate("window.sameDocument = true")
    page.get_by_label("Failed").check()
    page.wait_for_url(f"{site.url}/tasks?status=failed")
    rows = page.locator("#tasks-table tbody tr")
    assert rows.count() == 1 and "A broken one" in rows.first.inner_text()
    assert page.evaluate("window.sameDocument") is True  # swapped, not reloaded
    page.get_by_label("Completed").check()
    page.wait_for_url(f"{site.url}/tasks?status=completed&status=failed")
    assert rows.count() == 2
    page.reload()
    assert page.get_by_role("heading", name="Tasks").is_visible()
    assert page.get_by_label("Failed").is_checked() and page.get_by_label("Completed").is_checked()
    assert rows.count() == 2


def test_pages_and_history_never_show_a_bare_fragment(signed_in: Any, site: Site,
                                                     account: Account) -> None:
    from datetime import timedelta

    from webapp.core.models import utcnow

    now = utcnow()
    for number in range(30):
        account.add_task(Status.COMPLETED, description=f"Task number {number}",
                         created_at=now - timedelta(minutes=number))
    page = signed_in()
    first = page.locator("#tasks-table tbody tr").first
    assert "Task number 0" in first.inner_text()
    page.get_by_role("link", name="Older").click()
    page.wait_for_url(f"{site.url}/tasks?page=2")
    assert "Task number 25" in first.inner_text()
    assert page.locator("#tasks-table tbody tr").count() == 5
    page.go_back()
    page.wait_for_url(f"{site.url}/tasks")
    assert "Task number 0" in first.inner_text()
    page.go_forward()
    page.wait_for_url(f"{site.url}/tasks?page=2")
    assert "Task number 25" in first.inner_text()
    for _ in range(2):
        # A reload and a visit from elsewhere: the whole page, never the table alone.
        assert page.get_by_role("heading", name="Tasks").is_visible()
        assert page.locator("#bell-button").is_visible()
        page.goto(f"{site.url}/tasks/new")
        page.go_back()
        page.wait_for_url(f"{site.url}/tasks?page=2")
    page.reload()
    assert page.get_by_role("heading", name="Tasks").is_visible()
    assert "Task number 25" in first.inner_text()


def test_magnifier_opens_the_outcome_and_hover_shows_the_description(
        signed_in: Any, site: Site, account: Account) -> None:
    task = account.add_task(Status.FAILED, description=LONG, outcome="The archive is corrupt",
                            details="member slides/week-3.pdf: unexpected end of data")
    page = signed_in()
    cell = page.locator(f"#task-{task.id} .col-task .truncate")
    assert cell.get_attribute("title") == LONG
    # Cut short on the screen: the full text is what the hover shows.
    assert page.evaluate("(el) => el.scrollWidth > el.clientWidth", cell.element_handle())
    cell.hover()
    page.get_by_role("link", name=f"Details of task: {LONG[:40]}").click()
    page.wait_for_url(f"{site.url}/tasks/{task.id}")
    assert page.get_by_role("heading", name=LONG).is_visible()
    assert page.get_by_text("The archive is corrupt").is_visible()
    assert page.get_by_text("unexpected end of data").is_visible()


def test_times_are_local_with_a_relative_hint(new_page: Any, site: Site,
                                              account: Account) -> None:
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from tests.browser.conftest import sign_in
    from webapp.core.models import utcnow

    created = utcnow() - timedelta(minutes=3, seconds=5)
    # A zone where it is now about noon, so "today" holds whenever the test runs.
    offset = 12 - created.hour
    zone = f"Etc/GMT{-offset:+d}"  # the IANA names of fixed offsets have the sign reversed
    task = account.add_task(Status.COMPLETED, created_at=created)
    page = sign_in(new_page(timezone_id=zone, locale="en-US"), site, account)
    moment = page.locator(f"#task-{task.id} .col-time time")
    # The column shows when it started (a second after it was created, so no "created").
    local = task.started_at.astimezone(ZoneInfo(zone))
    text = moment.inner_text().replace("\u202f", " ")
    assert text == f"{local:%-I:%M %p} · 3 min. ago"
    assert f"{local:%B %-d, %Y} at {local:%-I:%M:%S}" in moment.get_attribute("title")
