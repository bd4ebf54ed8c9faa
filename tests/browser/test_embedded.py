"""The pages inside the example portal's iframe, on another site, as a portal user meets them."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Site, until
from tests.support.accounts import Account, running_sleep
from webapp.core.models import Status


def test_portal_embeds_the_tasks_view_to_filter_and_cancel(
        new_page: Any, site: Site, account: Account, start_portal: Any) -> None:
    account.add_task(Status.COMPLETED, description="Extract course-materials.zip")
    account.add_task(Status.FAILED, description="Wake the resting space 'Physics 101'",
                     outcome="The snapshot's checksum does not match")
    task_id = running_sleep(account, "Distribute 'Syllabus' to 12 course spaces")
    portal_url = start_portal(account.user.name)
    page = new_page(viewport={"width": 1280, "height": 900})
    page.goto(portal_url)
    frame = page.frame_locator("#tasks-frame")
    expect(frame.get_by_role("heading", name="Tasks")).to_be_visible()
    inner = page.frame(url=lambda url: url.startswith(site.url))
    assert inner is not None and inner.url == f"{site.url}/tasks"  # the token left the URL
    # The embedded layout: the bell, no outer chrome.
    expect(frame.get_by_role("button", name="Notifications")).to_be_visible()
    expect(frame.get_by_role("button", name="Sign out")).to_have_count(0)
    expect(frame.locator("#bell-badge .badge-count")).to_have_text("1")

    history = page.evaluate("history.length")
    frame.get_by_label("Failed").check()
    until(page, lambda: inner.url == f"{site.url}/tasks?status=failed")
    expect(frame.locator("#tasks-table tbody tr")).to_have_count(1)
    frame.get_by_label("Failed").uncheck()
    until(page, lambda: inner.url == f"{site.url}/tasks")
    assert page.evaluate("history.length") == history  # the portal's back button is untouched

    row = frame.locator(f"#task-{task_id}")
    row.get_by_role("button", name="Cancel task").click()
    dialog = frame.get_by_role("dialog", name="Cancel this task?")
    dialog.get_by_role("button", name="Cancel task").click()
    expect(row.locator(".status")).to_contain_text("Cancelling…")
    # The row says "Cancelled" at the next poll after the consumer stopped the task.
    assert account.final(task_id)["status"] == "cancelled"
    expect(row.locator(".status")).to_contain_text("Cancelled")
    expect(frame.locator("#bell-badge .badge-count")).to_have_count(0)


def test_an_origin_not_in_frame_ancestors_cannot_frame_it(
        new_page: Any, site: Site, account: Account, start_portal: Any, console: Any) -> None:
    portal_url = start_portal(account.user.name, allowed=False)
    console.expect("frame-ancestors")
    page = new_page()
    refusals: list[str] = []
    page.on("console", lambda message: refusals.append(message.text)
            if "frame-ancestors" in message.text else None)
    page.goto(portal_url)
    until(page, lambda: refusals)
    assert f"Framing '{site.url}/' violates" in refusals[0]
    frame = page.frame_locator("#tasks-frame")
    expect(frame.get_by_role("heading", name="Tasks")).to_have_count(0)
