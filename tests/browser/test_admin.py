"""The administrator's overview in a real browser: axe-core finds nothing serious in light
or dark, the charts and their data tables are there, and the page keeps polling quietly
(a 204 while nothing changed) without errors in the console."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Site, axe_violations, screenshot, sign_in
from tests.support.accounts import Account
from webapp.core.models import Status, utcnow


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_overview_is_accessible(new_page: Any, site: Site, scheme: str,
                                    make_account: Callable[..., Account]) -> None:
    admin, someone = make_account(admin=True), make_account()
    now = utcnow()
    for hours, status in ((1, Status.COMPLETED), (3, Status.FAILED), (6, Status.CANCELLED)):
        someone.add_task(status, kind="distribute", finished_at=now - timedelta(hours=hours),
                         started_at=now - timedelta(hours=hours, seconds=42),
                         created_at=now - timedelta(hours=hours, seconds=43))
    page = sign_in(new_page(color_scheme=scheme, viewport={"width": 1200, "height": 900}),
                   site, admin, path="/admin")
    # The session's consumer registered itself.
    expect(page.locator(".consumer-row").first).to_contain_text("Alive")
    expect(page.get_by_role("img", name="Tasks finished per hour, by status")).to_be_visible()
    expect(page.get_by_role("img", name="Median run time by kind")).to_be_visible()
    screenshot(page, f"admin-{scheme}")
    page.get_by_text("Data table").first.click()
    expect(page.get_by_role("table", name="Tasks finished per hour, by status")).to_be_visible()
    assert axe_violations(page) == []
