"""The demo as a newcomer sees it: rows the real operations produced, in words, and a task
launched for later that says when it runs."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Site, axe_violations
from tests.support.accounts import Account, seed_demo


def test_the_demo_in_the_browser(signed_in: Any, site: Site, account: Account) -> None:
    ids = seed_demo(account, later=3600)
    scheduled = ids[5]
    for task_id in ids[:5] + ids[6:]:
        account.final(task_id)
    page = signed_in(timezone_id="UTC", locale="en-US")
    rows = page.locator("#tasks-table tbody tr")
    expect(rows).to_have_count(len(ids))
    table = page.locator("#tasks-table").inner_text()
    for title in ("Extract an archive", "Distribute to spaces", "Put a space to rest",
                  "Wake a resting space"):
        assert title in table
    assert "extract_archive" not in table and "0.0 s" not in table
    failed = page.locator(f"#task-{ids[3]}")
    expect(failed.locator(".status")).to_have_text(re.compile("Failed"))
    expect(failed.locator(".col-outcome")).to_contain_text("The archive is damaged or truncated")
    # Launched for later: the row says when it runs, and in how long (with the date when
    # that is not today, as it is an hour before midnight).
    later = page.locator(f"#task-{scheduled} .col-time")
    expect(later).to_contain_text(
        re.compile(r"runs at ([A-Z][a-z]{2} \d+, )?\d+:\d\d [AP]M · in (60 min|1 hr)"))
    assert axe_violations(page) == []
    page.locator(f"#task-{ids[1]} .details-link").click()
    page.wait_for_url(f"{site.url}/tasks/{ids[1]}")
    params = page.locator("details.params")
    params.locator("summary").click()
    expect(params).to_contain_text("Replace existing files")
    expect(params).not_to_contain_text("overwrite")
    account.api("POST", f"/tasks/{scheduled}/cancel")
