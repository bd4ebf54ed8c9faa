"""Unchanged bell polls in a real browser: htmx 2 gets 204s and the badge stays as it was."""

from __future__ import annotations

import contextlib
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tests.browser.conftest import Site, sign_in, until
from tests.support.accounts import Account, running_sleep
from webapp.core.models import Status


def test_204_polls_keep_the_badge(new_page: Any, fast_poll_site: Site,
                                  account: Account) -> None:
    account.add_task(Status.RUNNING, heartbeat_at=None)
    page = sign_in(new_page(), fast_poll_site, account, "/spaces")
    statuses: list[int] = []
    page.on("response", lambda response: statuses.append(response.status)
            if "/notifications/badge" in response.url else None)
    until(page, lambda: statuses.count(204) >= 3)
    assert set(statuses) == {204}
    expect(page.locator("#bell-badge .badge-count")).to_have_text("1")


def test_a_refresh_asked_while_one_is_on_its_way_is_not_lost(
        new_page: Any, site: Site, account: Account) -> None:
    """A refresh asked for while an older one is on its way is still sent once that one's
    answer lands (CI saw a badge stuck at 1 when the answer replaced the badge's element,
    and with it what was queued there and its listeners)."""
    page = sign_in(new_page(), site, account, "/spaces")
    badge = page.locator("#bell-badge")
    expect(badge.locator(".badge-count")).to_have_count(0)
    task_id = running_sleep(account, "Long copy")
    held: list[tuple[Any, Any]] = []

    def hold_the_first(route: Any) -> None:
        if held:
            route.continue_()
        else:
            held.append((route, route.fetch()))  # answered by the server now, delivered later

    page.route("**/notifications/badge*", hold_the_first)
    page.evaluate("htmx.trigger(document.body, 'tasks-changed')")
    until(page, lambda: held)
    route, running = held[0]
    assert 'data-count="1"' in running.text()
    account.api("POST", f"/tasks/{task_id}/cancel")
    account.final(task_id)
    page.evaluate("htmx.trigger(document.body, 'tasks-changed')")
    # Should the page have given that request up, delivering it is moot.
    with contextlib.suppress(PlaywrightError):
        route.fulfill(response=running)
    expect(badge.locator(".badge-count")).to_have_count(0)
