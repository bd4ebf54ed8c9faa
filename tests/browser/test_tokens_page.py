"""The API tokens page in a browser: a token is created and shown once, the page passes
axe on a desktop and a phone, and revoking takes it off the list."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Site, axe_violations


def test_create_see_once_and_revoke(signed_in: Any, site: Site) -> None:
    page = signed_in("/tasks")
    page.get_by_role("link", name="API tokens").click()
    page.wait_for_url(f"{site.url}/tokens")
    page.get_by_label("Name").fill("nightly backup")
    page.get_by_label("Expires in days").fill("30")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token")
    expect(token).to_have_text(re.compile(r"^bt_"))
    assert axe_violations(page) == []
    page.reload()
    expect(page.locator("#new-token")).to_have_count(0)
    row = page.get_by_role("row").filter(has_text="nightly backup")
    expect(row).to_contain_text("Never")
    row.get_by_role("button", name="Revoke nightly backup").click()
    expect(page.get_by_role("status")).to_contain_text("revoked")
    expect(page.get_by_role("row").filter(has_text="nightly backup")).to_have_count(0)


def test_phone_width(signed_in: Any) -> None:
    page = signed_in("/tokens", viewport={"width": 390, "height": 844}, is_mobile=True,
                     has_touch=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert axe_violations(page) == []
