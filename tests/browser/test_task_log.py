"""A task's own log in a real browser: the task's page follows it while the task runs,
with the page's one live poll and no other."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Site, axe_violations
from tests.support.accounts import Account
from tests.support.processes import wait_for


def test_the_tasks_page_follows_its_log_while_it_runs(signed_in: Any, site: Site,
                                                      account: Account) -> None:
    task_id = account.launch("sleep", seconds=6, steps=6, description="Copy the slides")

    def logged() -> list[str]:
        body = account.api("GET", f"/tasks/{task_id}/log").get_json()
        return [line["text"] for line in body["lines"]]

    wait_for(lambda: "Step 1 of 6 done" in logged())
    page = signed_in(f"/tasks/{task_id}")
    page.evaluate("window.sameDocument = true")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    log = page.get_by_role("region", name="Log")
    expect(log.get_by_role("cell", name="Step 1 of 6 done")).to_be_visible()
    assert account.final(task_id)["status"] == "completed"
    # Lines written after the page was loaded arrive by its live poll, in place.
    expect(log.get_by_role("cell", name="Completed: Slept 6 s in 6 steps")).to_be_visible()
    for step in range(1, 7):
        expect(log.get_by_role("cell", name=f"Step {step} of 6 done")).to_be_visible()
    assert page.evaluate("window.sameDocument") is True
    assert requests and all(f"/tasks/{task_id}?" in url for url in requests
                            if task_id in url), requests
    assert not [url for url in requests if "/log" in url]
    assert axe_violations(page, "#task-log") == []
