"""Cancelling from the tasks view: the red cross, the in-page dialog, the row and the bell."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Site
from tests.support.accounts import Account, running_sleep


def test_cancel_with_the_dialog_without_reloading(signed_in: Any, site: Site,
                                                  account: Account) -> None:
    task_id = running_sleep(account, "Copy the big folder")
    page = signed_in()
    page.evaluate("window.sameDocument = true")
    row = page.locator(f"#task-{task_id}")
    badge = page.locator("#bell-badge .badge-count")
    expect(badge).to_have_text("1")
    expect(row.locator(".status")).to_contain_text("Running")
    row.get_by_role("button", name="Cancel task: Copy the big folder").click()
    dialog = page.get_by_role("dialog", name="Cancel this task?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Copy the big folder")
    # The answer to the cancel is the row saying "Cancelling…"; the live view may replace
    # it with "Cancelled" before anyone looks, so the answer is what is checked.
    with page.expect_response(lambda response: response.url.endswith("/cancel")) as answer:
        dialog.get_by_role("button", name="Cancel task").click()
    assert "Cancelling…" in answer.value.text()
    expect(dialog).to_be_hidden()
    assert account.final(task_id)["status"] == "cancelled"
    expect(row.locator(".status")).to_contain_text("Cancelled")
    # The bell polls every 10 minutes here: only the cancel itself can have refreshed it.
    expect(badge).to_have_count(0)
    expect(page.locator("#announcer")).to_have_text("Copy the big folder: cancelled")
    assert page.evaluate("window.sameDocument") is True
    assert account.api("GET", f"/tasks/{task_id}").get_json()["status"] == "cancelled"


def test_keeping_it_running_changes_nothing(signed_in: Any, site: Site,
                                            account: Account) -> None:
    task_id = running_sleep(account, "Keep me")
    page = signed_in()
    row = page.locator(f"#task-{task_id}")
    row.get_by_role("button", name="Cancel task: Keep me").click()
    dialog = page.get_by_role("dialog", name="Cancel this task?")
    dialog.get_by_role("button", name="Keep it running").click()
    expect(dialog).to_be_hidden()
    expect(row.locator(".status")).to_contain_text("Running")
    assert account.api("GET", f"/tasks/{task_id}").get_json()["cancel_requested"] is False
    account.api("POST", f"/tasks/{task_id}/cancel")
