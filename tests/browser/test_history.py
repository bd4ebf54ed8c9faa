"""History outside the portal: a filter is navigation, like a page, so Back undoes it;
Back right after signing in does not show the sign-in form again."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Site
from tests.support.accounts import Account
from webapp.core.models import Status


def test_back_undoes_a_filter_and_forward_does_it_again(signed_in: Any, site: Site,
                                                        account: Account) -> None:
    account.add_task(Status.COMPLETED, description="A finished one")
    account.add_task(Status.FAILED, description="A broken one")
    page = signed_in()
    rows = page.locator("#tasks-table tbody tr")
    expect(rows).to_have_count(2)
    page.get_by_label("Failed").check()
    page.wait_for_url(f"{site.url}/tasks?status=failed")
    expect(rows).to_have_count(1)
    page.go_back()
    page.wait_for_url(f"{site.url}/tasks")
    expect(rows).to_have_count(2)
    expect(page.get_by_label("Failed")).not_to_be_checked()
    page.go_forward()
    page.wait_for_url(f"{site.url}/tasks?status=failed")
    expect(rows).to_have_count(1)


def test_back_after_signing_in_stays_signed_in(signed_in: Any, site: Site,
                                               account: Account) -> None:
    page = signed_in("/spaces")
    response = page.go_back()
    assert response is not None and response.request.redirected_from is not None
    assert response.request.redirected_from.url == f"{site.url}/login?next=/spaces"
    page.wait_for_url(f"{site.url}/spaces")
    expect(page.get_by_role("heading", name="Spaces", exact=True)).to_be_visible()
    expect(page.get_by_label("Password")).to_have_count(0)
