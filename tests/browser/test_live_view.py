"""The live tasks view in a real browser: tasks launched and changed elsewhere show up,
one poll per view, and nothing the user is doing is disturbed by an update."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Site, sign_in, until
from tests.support.accounts import Account, running_sleep
from tests.support.processes import wait_for

LIVE_POLL = "since="


def live_polls(page: Any) -> list[str]:
    """Record the view's polls from now on."""
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url) if LIVE_POLL in request.url
            and "/notifications/" not in request.url else None)
    return seen


def test_a_task_launched_elsewhere_appears_and_finishes_in_place(
        new_page: Any, fast_poll_site: Site, account: Account) -> None:
    page = sign_in(new_page(), fast_poll_site, account)
    page.evaluate("window.sameDocument = true")
    task_id = account.launch("sleep", seconds=1, steps=2, description="Launched by a script")
    row = page.locator(f"#task-{task_id}")
    # The interval is a second here: two intervals and the task's own start.
    expect(row).to_be_visible(timeout=5_000)
    # How long the task takes on a loaded machine is not the view's doing: wait for the
    # record first, then the view has a few intervals to show it.
    assert account.final(task_id)["status"] == "completed"
    expect(row.locator(".status")).to_contain_text("Completed", timeout=15_000)
    expect(page.locator("#toasts")).to_contain_text("Launched by a script")
    assert page.evaluate("window.sameDocument") is True


def test_a_cancel_made_elsewhere_reaches_its_row(signed_in: Any, site: Site,
                                                 account: Account) -> None:
    task_id = running_sleep(account, "Cancelled by a script")
    page = signed_in()
    row = page.locator(f"#task-{task_id}")
    expect(row.locator(".status")).to_contain_text("Running")
    account.api("POST", f"/tasks/{task_id}/cancel")
    # An active row keeps the view at 2 s, even with the bell's interval at 10 minutes.
    assert account.final(task_id)["status"] == "cancelled"
    expect(row.locator(".status")).to_contain_text("Cancelled", timeout=15_000)
    expect(page.locator("#announcer")).to_have_text("Cancelled by a script: cancelled")


def test_dialog_menu_and_focus_survive_an_update(signed_in: Any, site: Site,
                                                 account: Account) -> None:
    keep = running_sleep(account, "Keep me company")
    finishing = running_sleep(account, "Finishes meanwhile")
    page = signed_in()
    polls = live_polls(page)
    page.locator(f"#task-{keep}").get_by_role(
        "button", name="Cancel task: Keep me company").click()
    dialog = page.get_by_role("dialog", name="Cancel this task?")
    expect(dialog).to_be_visible()
    focused = page.evaluate("document.activeElement.textContent")
    account.api("POST", f"/tasks/{finishing}/cancel")
    assert account.final(finishing)["status"] == "cancelled"
    expect(page.locator(f"#task-{finishing} .status")).to_contain_text("Cancelled",
                                                                       timeout=15_000)
    assert polls, "the view did not poll while the dialog was open"
    expect(dialog).to_be_visible()
    assert page.evaluate("document.activeElement.textContent") == focused
    dialog.get_by_role("button", name="Cancel task").click()
    expect(page.locator(f"#task-{keep} .status")).to_contain_text("Cancel", timeout=15_000)

    # The bell's menu stays open, and the focus where the user left it.
    other = running_sleep(account, "Cancelled while the menu is open")
    expect(page.locator(f"#task-{other}")).to_be_visible(timeout=10_000)
    page.locator("#bell-button").click()
    menu = page.locator("#bell-menu")
    expect(menu).to_be_visible()
    page.locator("#bell-menu a").first.focus()
    before = len(polls)
    account.api("POST", f"/tasks/{other}/cancel")
    assert account.final(other)["status"] == "cancelled"
    expect(page.locator(f"#task-{other} .status")).to_contain_text("Cancelled", timeout=15_000)
    assert len(polls) > before
    expect(menu).to_be_visible()
    assert page.evaluate("document.activeElement.closest('#bell-menu') !== null")


def test_one_poll_per_view_and_none_from_a_hidden_tab(signed_in: Any, site: Site,
                                                      account: Account) -> None:
    for number in range(3):
        running_sleep(account, f"Busy {number}")
    page = signed_in()
    polls = live_polls(page)
    until(page, lambda: len(polls) >= 2, timeout=15)
    # One request per interval for the whole table, however many rows are active.
    assert all("/tasks?" in url for url in polls)
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {value: true, configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    quiet_from = len(polls)
    # Absence needs a window to be seen in: three fast intervals.
    page.wait_for_timeout(6_000)
    assert len(polls) <= quiet_from + 1  # at most one already on its way
    hidden_total = len(polls)
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {value: false, configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    until(page, lambda: len(polls) > hidden_total, timeout=5)
    for task in account.api("GET", "/tasks?status=running").get_json()["tasks"]:
        account.api("POST", f"/tasks/{task['id']}/cancel")
    wait_for(lambda: not account.api("GET", "/tasks?status=running").get_json()["tasks"],
             timeout=60)


def test_a_poll_answered_before_the_users_cancel_does_not_undo_it(
        signed_in: Any, site: Site, account: Account) -> None:
    task_id = running_sleep(account, "Stop me once")
    page = signed_in()
    row = page.locator(f"#task-{task_id}")
    expect(row.locator(".status")).to_contain_text("Running")
    # Every status the row shows from now on.
    page.evaluate("""(id) => {
        window.statuses = [];
        new MutationObserver(() => {
            const row = document.getElementById(`task-${id}`);
            const status = row ? row.dataset.status : "";
            if (status !== window.statuses.at(-1)) window.statuses.push(status);
        }).observe(document.body, {subtree: true, childList: true, attributes: true});
    }""", task_id)
    # The next poll is answered at once (the task running) but its answer is held back
    # until the user's cancel has been answered: the network's order, not the server's.
    held: list[tuple[Any, Any]] = []

    def hold(route: Any) -> None:
        if held:
            route.continue_()
        else:
            held.append((route, route.fetch()))

    page.route(lambda url: LIVE_POLL in url and "/notifications/" not in url, hold)
    until(page, lambda: held, timeout=10)
    row.get_by_role("button", name="Cancel task").click()
    with page.expect_response(lambda response: response.url.endswith("/cancel")):
        page.get_by_role("dialog", name="Cancel this task?").get_by_role(
            "button", name="Cancel task").click()
    expect(row.locator(".status")).to_contain_text("Cancelling…")
    polls = live_polls(page)
    route, answer = held[0]
    route.fulfill(response=answer)
    until(page, lambda: polls, timeout=15)  # the held poll has ended: the next one is sent
    assert account.final(task_id)["status"] == "cancelled"
    expect(row.locator(".status")).to_contain_text("Cancelled", timeout=15_000)
    seen = page.evaluate("window.statuses")
    assert "running" not in seen[seen.index("cancelling"):], seen
