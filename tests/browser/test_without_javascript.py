"""With JavaScript off, the same pages work as plain forms and links."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Site
from tests.support.accounts import Account, running_sleep
from webapp.core.models import Status, utcnow


def test_filters_pages_and_cancel_as_plain_forms(signed_in: Any, site: Site,
                                                 account: Account) -> None:
    now = utcnow()
    for number in range(27):
        account.add_task(Status.COMPLETED, description=f"Old task {number}",
                         created_at=now - timedelta(hours=1, minutes=number))
    account.add_task(Status.FAILED, description="The broken one")
    task_id = running_sleep(account, "Stop me without scripts")
    page = signed_in(java_script_enabled=False)
    page.get_by_label("Failed").check()
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(f"{site.url}/tasks?status=failed")
    expect(page.locator("#tasks-table tbody tr")).to_have_count(1)
    page.get_by_label("Failed").uncheck()
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(re.escape(f"{site.url}/tasks") + r"\??$"))
    page.get_by_role("link", name="Older").click()
    page.wait_for_url(f"{site.url}/tasks?page=2")
    expect(page.locator("#tasks-table tbody tr")).to_have_count(4)
    page.get_by_role("link", name="Newer").click()
    page.wait_for_url(re.compile(re.escape(f"{site.url}/tasks") + r"(\?page=1)?$"))
    row = page.locator(f"#task-{task_id}")
    # No dialog without scripts: the cross opens a page that asks first, then posts, and
    # the 303 comes back to this page. Keeping it running changes nothing.
    row.get_by_role("button", name="Cancel task: Stop me without scripts").click()
    page.wait_for_url(re.compile(re.escape(f"{site.url}/tasks/{task_id}/cancel?")))
    expect(page.get_by_role("heading", name="Cancel this task?")).to_be_visible()
    expect(page.get_by_text("Stop me without scripts")).to_be_visible()
    page.get_by_role("link", name="Keep it running").click()
    page.wait_for_url(re.compile(re.escape(f"{site.url}/tasks") + r"$"))
    assert account.api("GET", f"/tasks/{task_id}").get_json()["status"] == "running"
    row.get_by_role("button", name="Cancel task: Stop me without scripts").click()
    with page.expect_navigation(url=re.compile(re.escape(f"{site.url}/tasks") + r"$")):
        page.get_by_role("button", name="Cancel task").click()
    expect(row.locator(".status")).to_contain_text("Cancel")
    assert account.final(task_id)["status"] == "cancelled"
    page.reload()
    expect(row.locator(".status")).to_contain_text("Cancelled")
    # The bell is a plain link to the tasks view.
    page.get_by_role("button", name="Notifications").click()
    page.wait_for_url(re.compile(re.escape(f"{site.url}/tasks") + r"\??$"))
    expect(page.get_by_role("heading", name="Tasks")).to_be_visible()
