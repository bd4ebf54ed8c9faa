"""What a user does next, in a real browser: run a task again, cancel many at once."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import Site
from tests.support.accounts import Account
from webapp.core.models import Status


def test_run_again_opens_the_new_task_linked_to_the_first(signed_in: Any, site: Site,
                                                          account: Account) -> None:
    first = account.add_task(Status.FAILED, description="Copy the slides",
                             params={"seconds": 0.2, "steps": 1, "fail": "", "flaky": 0})
    page = signed_in(f"/tasks/{first.id}")
    page.get_by_role("button", name="Run again").click()
    page.wait_for_url(lambda url: url.startswith(f"{site.url}/tasks/") and first.id not in url)
    assert page.get_by_role("heading", name="Copy the slides").is_visible()
    page.get_by_role("link", name="Copy the slides").click()
    page.wait_for_url(f"{site.url}/tasks/{first.id}")
    assert page.get_by_text("Run again as").is_visible()
