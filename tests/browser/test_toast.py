"""Telling the user when a task finishes: a toast with the outcome and a link, a few at a
time, closing by itself or by its button; and the document title counting active tasks."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Site, axe_violations, sign_in
from tests.support.accounts import Account
from tests.support.processes import wait_for

# Generous: the live view polls every 2 s, and a loaded machine is slow.
ARRIVES_MS = 30_000

# Every toast the page ever showed, and the most shown at once.
WATCH_TOASTS = """() => {
  window.toastsSeen = []; window.mostToasts = 0;
  const region = document.getElementById('toasts');
  new MutationObserver((records) => {
    for (const record of records) {
      for (const toast of record.addedNodes) {
        window.toastsSeen.push(toast.getAttribute('data-task'));
      }
    }
    window.mostToasts = Math.max(window.mostToasts, region.children.length);
  }).observe(region, {childList: true});
}"""


def running(account: Account, description: str, seconds: float = 60) -> str:
    task_id = account.launch("sleep", seconds=seconds, steps=int(seconds * 2),
                             description=description)
    wait_for(lambda: account.api("GET", f"/tasks/{task_id}").get_json()["status"] == "running",
             timeout=30)
    return task_id


def test_a_task_finishing_on_screen_shows_a_toast_and_the_title_counts(
        new_page: Any, site: Site, account: Account) -> None:
    page = sign_in(new_page(), site, account, "/spaces")
    expect(page).to_have_title("Spaces · Background tasks")
    task_id = running(account, "Render the lecture video", seconds=6)
    page.goto(f"{site.url}/tasks")
    expect(page).to_have_title("(1) Tasks · Background tasks")
    region = page.locator("#toasts")
    expect(region).to_have_attribute("aria-live", "polite")
    toast = region.locator(".toast")
    expect(toast).to_contain_text("Render the lecture video", timeout=ARRIVES_MS)
    expect(toast).to_contain_text("Completed")
    outcome = account.final(task_id)["outcome"]
    assert outcome
    expect(toast).to_contain_text(outcome)
    link = toast.get_by_role("link", name="Render the lecture video")
    assert link.get_attribute("href").endswith(f"/tasks/{task_id}")
    # The bell hears of it too, and the title with it.
    expect(page).to_have_title("Tasks · Background tasks")
    assert axe_violations(page, "#toasts") == []
    toast.get_by_role("button", name="Dismiss: Render the lecture video").click()
    expect(toast).to_have_count(0)


def test_a_cancel_made_elsewhere_toasts_and_the_toast_goes_by_itself(
        new_page: Any, site: Site, account: Account) -> None:
    task_id = running(account, "Mirror the archive")
    page = sign_in(new_page(), site, account, "/tasks")
    expect(page).to_have_title("(1) Tasks · Background tasks")
    account.api("POST", f"/tasks/{task_id}/cancel")
    toast = page.locator("#toasts .toast")
    expect(toast).to_contain_text("Cancelled", timeout=ARRIVES_MS)
    expect(toast).to_contain_text("Mirror the archive")
    expect(toast).to_have_count(0, timeout=ARRIVES_MS)


def test_a_few_toasts_at_a_time(new_page: Any, site: Site, account: Account) -> None:
    # More tasks than the consumer has workers: some stay queued, and cancel at once.
    ids = [account.launch("sleep", seconds=60, steps=120, description=f"Copy {n}")
           for n in range(6)]
    wait_for(lambda: any(account.api("GET", f"/tasks/{i}").get_json()["status"] == "running"
                         for i in ids), timeout=30)
    page = sign_in(new_page(), site, account, "/tasks")
    for task_id in ids:
        expect(page.locator(f"#task-{task_id}")).to_be_visible()
    page.evaluate(WATCH_TOASTS)
    for task_id in ids:
        account.api("POST", f"/tasks/{task_id}/cancel")
    for task_id in ids:
        expect(page.locator(f"#task-{task_id} .status")).to_contain_text(
            "Cancelled", timeout=ARRIVES_MS)
    page.wait_for_function("window.toastsSeen.length === 6")
    assert page.evaluate("window.mostToasts") <= 3
