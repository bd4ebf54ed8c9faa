"""What a user does next, in a real browser: run a task again, cancel many at once, the
page size."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import update

from tests.browser.conftest import Site
from tests.support.accounts import Account
from webapp.core.models import Status, Task, utcnow


def test_run_again_opens_the_new_task_linked_to_the_first(signed_in: Any, site: Site,
                                                          account: Account) -> None:
    first = account.add_task(Status.FAILED, description="Copy the slides",
                             params={"seconds": 0.2, "steps": 1, "fail": "", "flaky": 0})
    page = signed_in(f"/tasks/{first.id}")
    page.get_by_role("button", name="Run again").click()
    page.wait_for_url(lambda url: url.startswith(f"{site.url}/tasks/") and first.id not in url)
    assert page.get_by_role("heading", name="Copy the slides").is_visible()
    page.get_by_role("link", name="Copy the slides").click()
    page.wait_for_url(f"{site.url}/tasks/{first.id}")
    assert page.get_by_text("Run again as").is_visible()


def test_cancel_the_selected_rows_in_one_go(signed_in: Any, site: Site,
                                            account: Account) -> None:
    first = account.add_task(Status.RUNNING, description="First copy")
    second = account.add_task(Status.RUNNING, description="Second copy")
    account.add_task(Status.COMPLETED, description="Long done")
    page = signed_in()
    page.evaluate("window.sameDocument = true")
    page.get_by_label("Select: First copy").check()
    # A live update morphs the changed row afresh; the selection stays.
    with account.app.extensions["database"].session() as db:
        db.execute(update(Task).where(Task.id == first.id).values(progress_message="Nearly"))
        db.commit()
    expect(page.locator(f"#task-{first.id}")).to_contain_text("Nearly")
    expect(page.get_by_label("Select: First copy")).to_be_checked()
    page.get_by_label("Select all on this page").check()
    expect(page.get_by_label("Select: Second copy")).to_be_checked()
    page.get_by_role("button", name="Cancel selected").click()
    dialog = page.get_by_role("dialog", name="Cancel 2 selected tasks?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel tasks").click()
    expect(page.locator("#bulk-result")).to_have_text(
        "2 tasks running stop at their next safe point.")
    for task in (first, second):
        expect(page.locator(f"#task-{task.id} .status")).to_contain_text("Cancelling…")
    assert page.evaluate("window.sameDocument") is True


def test_cancel_all_queued_asks_with_the_count(signed_in: Any, site: Site,
                                               account: Account) -> None:
    # Not due for an hour: the suite's consumer must not dispatch and run them meanwhile.
    later = utcnow() + timedelta(hours=1)
    for number in range(2):
        account.add_task(Status.QUEUED, description=f"Waiting {number}", run_after=later)
    page = signed_in()
    page.get_by_role("link", name="Cancel all my queued tasks…").click()
    expect(page.get_by_text("2 queued tasks will be cancelled")).to_be_visible()
    page.get_by_role("button", name="Cancel 2 queued tasks").click()
    page.wait_for_url(f"{site.url}/tasks")
    expect(page.locator("#bulk-result")).to_have_text("Cancelled 2 tasks that had not started.")
    expect(page.locator(".status-cancelled")).to_have_count(2)


def test_the_page_size_swaps_the_table_and_is_remembered(signed_in: Any, site: Site,
                                                         account: Account) -> None:
    now = utcnow()
    for number in range(12):
        account.add_task(Status.COMPLETED, description=f"Row {number}",
                         created_at=now - timedelta(minutes=number))
    page = signed_in()
    page.evaluate("window.sameDocument = true")
    rows = page.locator("#tasks-table tbody tr")
    expect(rows).to_have_count(12)
    page.get_by_label("Failed").check()
    page.wait_for_url(f"{site.url}/tasks?status=failed")
    page.get_by_label("Failed").uncheck()
    page.get_by_label("Rows per page").select_option("10")
    expect(rows).to_have_count(10)
    assert page.evaluate("window.sameDocument") is True
    assert "per_page=10" in page.url
    page.goto(f"{site.url}/tasks")
    expect(rows).to_have_count(10)
    expect(page.get_by_label("Rows per page")).to_have_value("10")
