"""The bell in a real browser: it updates by itself, its menu survives polls, and it
rests while the tab is hidden."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Site, sign_in, until
from tests.support.accounts import Account

# Headless Chromium keeps every tab visible, so the test tells the page what a browser
# would: the visibility state changes and `visibilitychange` fires.
SET_HIDDEN = """(hidden) => {
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
  Object.defineProperty(document, 'visibilityState', {configurable: true,
    get: () => hidden ? 'hidden' : 'visible'});
  document.dispatchEvent(new Event('visibilitychange'));
}"""


def test_badge_updates_by_itself_and_the_menu_stays_open(
        new_page: Any, fast_poll_site: Site, account: Account) -> None:
    # The spaces page has no task rows whose own refresh could update the bell.
    page = sign_in(new_page(), fast_poll_site, account, "/spaces")
    badge = page.locator("#bell-badge")
    expect(badge.locator(".badge-count")).to_have_count(0)
    task_id = account.launch("sleep", seconds=60, steps=120, description="Long copy")
    expect(badge.locator(".badge-count")).to_have_text("1")
    button = page.get_by_role("button", name="Notifications")
    button.click()
    menu = page.locator("#bell-menu")
    expect(button).to_have_attribute("aria-expanded", "true")
    expect(menu.get_by_role("link", name="Long copy")).to_be_visible()
    # A poll that changes the badge while the menu is open leaves the menu open.
    account.api("POST", f"/tasks/{task_id}/cancel")
    account.final(task_id)
    expect(badge.locator(".badge-count")).to_have_count(0)
    expect(badge.locator(".badge-new")).to_have_count(1)
    expect(menu).to_be_visible()
    expect(button).to_have_attribute("aria-expanded", "true")
    menu.get_by_role("link", name="Tasks", exact=True).click()
    page.wait_for_url(f"{fast_poll_site.url}/tasks")
    expect(page.get_by_role("heading", name="Tasks")).to_be_visible()


def test_no_polling_while_the_tab_is_hidden(new_page: Any, fast_poll_site: Site,
                                            account: Account) -> None:
    page = sign_in(new_page(), fast_poll_site, account, "/spaces")
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url)
            if "/notifications/badge" in request.url else None)
    until(page, lambda: len(polls) >= 2, timeout=10)  # polling while visible
    page.evaluate(SET_HIDDEN, True)
    page.wait_for_timeout(300)  # a poll already on its way may still land
    polls.clear()
    page.wait_for_timeout(3500)  # more than three poll periods
    assert polls == []
    page.evaluate(SET_HIDDEN, False)
    until(page, lambda: len(polls) >= 1)  # and polling resumes
