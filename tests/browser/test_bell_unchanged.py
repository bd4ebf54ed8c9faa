"""Unchanged bell polls in a real browser: htmx 2 gets 204s and the badge stays as it was."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Site, sign_in, until
from tests.support.accounts import Account
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
