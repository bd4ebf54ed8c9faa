"""Accessibility: axe-core finds nothing serious, the keyboard reaches everything, changes
are announced; and the screenshots the README shows, light, dark and phone-sized."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Site, axe_violations, screenshot
from tests.browser.test_cancel import running_sleep
from tests.conftest import Account
from webapp.models import Status, utcnow


def showcase(account: Account) -> str:
    """Tasks in every state, as in a real week; returns the running task's id."""
    now = utcnow()
    account.add_task(Status.COMPLETED, description="Extract course-materials.zip into Lectures",
                     outcome="Extracted 214 files (1.3 GB) into Lectures",
                     created_at=now - timedelta(days=1, hours=3))
    account.add_task(Status.FAILED, description="Wake the resting space 'Physics 101 (2025)'",
                     outcome="The snapshot's checksum does not match: it was not restored",
                     created_at=now - timedelta(hours=5))
    account.add_task(Status.CANCELLED, description="Re-index the media library",
                     outcome="Cancelled by user", created_at=now - timedelta(hours=2))
    account.add_task(Status.COMPLETED,
                     description="Distribute 'Syllabus' to 12 course spaces of the physics "
                                 "department, including the archived ones",
                     outcome="12 spaces: 48 files created, 3 replaced",
                     created_at=now - timedelta(minutes=42))
    account.add_task(Status.QUEUED, description="Nightly report",
                     created_at=now - timedelta(minutes=1))
    return running_sleep(account, "Put the space 'Chemistry lab' to rest")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_violations_and_screenshots(new_page: Any, site: Site, account: Account,
                                               scheme: str) -> None:
    from tests.browser.conftest import sign_in

    task_id = showcase(account)
    page = sign_in(new_page(color_scheme=scheme, viewport={"width": 1200, "height": 760}),
                   site, account)
    expect(page.locator(f"#task-{task_id} .status")).to_contain_text("Running")
    assert axe_violations(page) == []
    screenshot(page, f"tasks-{scheme}")

    page.get_by_role("button", name="Notifications").click()
    expect(page.locator("#bell-menu .menu-item").first).to_be_visible()
    assert axe_violations(page) == []
    screenshot(page, f"bell-menu-{scheme}")
    page.keyboard.press("Escape")

    page.locator(f"#task-{task_id} .details-link").click()
    page.wait_for_url(f"{site.url}/tasks/{task_id}")
    assert axe_violations(page) == []
    account.api("POST", f"/tasks/{task_id}/cancel")


def test_phone_width(new_page: Any, site: Site, account: Account) -> None:
    from tests.browser.conftest import sign_in

    showcase(account)
    page = sign_in(new_page(viewport={"width": 390, "height": 844}, is_mobile=True,
                            has_touch=True, device_scale_factor=2), site, account)
    # Nothing wider than the screen: no sideways scrolling to read a row.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert axe_violations(page) == []
    screenshot(page, "tasks-phone")


def test_keyboard_bell_menu_and_dialog(signed_in: Any, site: Site, account: Account) -> None:
    task_id = running_sleep(account, "Use the keyboard")
    page = signed_in()
    bell = page.get_by_role("button", name="Notifications")
    bell.focus()
    page.keyboard.press("Enter")
    expect(bell).to_have_attribute("aria-expanded", "true")
    first = page.locator("#bell-menu .menu-item").first
    expect(first).to_be_visible()
    page.keyboard.press("Tab")
    expect(first).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#bell-menu")).to_be_hidden()
    expect(bell).to_be_focused()

    row = page.locator(f"#task-{task_id}")
    row.get_by_role("button", name="Cancel task").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Cancel this task?")
    expect(dialog.get_by_role("button", name="Keep it running")).to_be_focused()
    page.keyboard.press("Escape")  # Escape keeps the task
    expect(dialog).to_be_hidden()
    expect(row.locator(".status")).to_contain_text("Running")
    row.get_by_role("button", name="Cancel task").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Cancel task")).to_be_focused()
    page.keyboard.press("Enter")
    expect(row.locator(".status")).to_contain_text("Cancelled")
    announcer = page.locator("#announcer")
    expect(announcer).to_have_attribute("aria-live", "polite")
    expect(announcer).to_have_text("Use the keyboard: cancelled")
