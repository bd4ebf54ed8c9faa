"""Accessibility: axe-core finds nothing serious, the keyboard reaches everything, changes
are announced; and the screenshots the README shows, light, dark and phone-sized."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect

from tests.browser.conftest import Site, axe_violations, screenshot, sign_in
from tests.support.accounts import Account, running_sleep, seed_demo
from tests.support.files import holding_lock
from tests.support.processes import wait_for
from webapp.web.auth import create_token, create_user


@pytest.fixture(scope="module")
def showcase(app: Flask, site: Site) -> Iterator[tuple[Account, str]]:
    """A person with what `flask demo` makes, run by the consumer, and one task really
    running (waiting for a space another holds), for the checks and the screenshots;
    returns the account and the running task's id."""
    password = uuid.uuid4().hex
    with app.extensions["database"].session() as db:
        user = create_user(db, "Ada Lovelace", password)  # one per fresh instance
        token = create_token(db, user)
    account = Account(app, user, password, token)
    ids = seed_demo(account, later=3600)
    scheduled = ids[5]
    for task_id in ids:
        if task_id != scheduled:
            account.final(task_id)
    with holding_lock(account.root, "physics-102"):
        task_id = account.launch("rest_space", space="physics-102")
        wait_for(lambda: account.api("GET", f"/tasks/{task_id}").get_json()["progress_message"])
        yield account, task_id
    account.api("POST", f"/tasks/{scheduled}/cancel")
    account.final(task_id)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_violations_and_screenshots(new_page: Any, site: Site, scheme: str,
                                               showcase: tuple[Account, str]) -> None:
    account, task_id = showcase
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


def test_phone_width(new_page: Any, site: Site, showcase: tuple[Account, str]) -> None:
    account, _ = showcase
    page = sign_in(new_page(viewport={"width": 390, "height": 844}, is_mobile=True,
                            has_touch=True, device_scale_factor=2), site, account)
    # Nothing wider than the screen: no sideways scrolling to read a row.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert axe_violations(page) == []
    screenshot(page, "tasks-phone")


def test_embedded_portal_screenshot(new_page: Any, site: Site, start_portal: Any,
                                    showcase: tuple[Account, str]) -> None:
    account, _ = showcase
    page = new_page(viewport={"width": 1280, "height": 860})
    page.goto(start_portal(account.user.name))
    frame = page.frame_locator("#tasks-frame")
    expect(frame.locator("#tasks-table tbody tr")).to_have_count(8)
    screenshot(page, "embedded-portal")


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
    # The cancel's own answer first, then the task's end: the row says so at the next
    # poll after the consumer stopped the task, however long that took.
    with page.expect_response(lambda response: response.url.endswith("/cancel")) as answer:
        page.keyboard.press("Enter")
    assert "Cancelling…" in answer.value.text()
    assert account.final(task_id)["status"] == "cancelled"
    expect(row.locator(".status")).to_contain_text("Cancelled")
    announcer = page.locator("#announcer")
    expect(announcer).to_have_attribute("aria-live", "polite")
    expect(announcer).to_have_text("Use the keyboard: cancelled")
