"""The bell's menu in a real browser: active tasks first, "new" said in words, the whole menu
on a phone's screen, the menu button's keys, and the opt-in to browser notifications."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import update

from tests.browser.conftest import Site, axe_violations, sign_in, until
from tests.support.accounts import Account
from webapp.core.models import Status, User, utcnow

# The items the keys move between (the menu's shown links and buttons), and which has focus.
ITEMS = """() => [...document.querySelectorAll('#bell-menu a[href], #bell-menu button')]
  .filter(item => !item.hidden)"""
LAST_ITEM = f"() => ({ITEMS})().at(-1).textContent.trim()"
FOCUSED = f"() => ({ITEMS})().indexOf(document.activeElement)"


def fresh(**values: Any) -> dict[str, Any]:
    """A queued or running record that the maintenance loop leaves alone for a while."""
    now = utcnow()
    return {"dispatched_at": now, "heartbeat_at": now} | values


def open_menu(page: Any) -> tuple[Any, Any]:
    button = page.get_by_role("button", name="Notifications")
    button.click()
    menu = page.locator("#bell-menu")
    expect(menu.get_by_role("link", name="Tasks", exact=True)).to_be_visible()
    return button, menu


def test_active_tasks_first_and_new_said_in_words(new_page: Any, site: Site,
                                                 account: Account) -> None:
    now = utcnow()
    account.add_task(Status.COMPLETED, description="Seen report",
                     created_at=now - timedelta(hours=2))
    account.add_task(Status.QUEUED, description="Waiting copy",
                     **fresh(created_at=now - timedelta(hours=1)))
    account.add_task(Status.RUNNING, description="Busy copy",
                     **fresh(created_at=now - timedelta(minutes=50)))
    account.add_task(Status.FAILED, description="Fresh failure",
                     created_at=now - timedelta(minutes=5))
    with account.app.extensions["database"].session() as db:
        db.execute(update(User).where(User.id == account.user.id)
                   .values(tasks_seen_at=now - timedelta(minutes=30)))
        db.commit()
    # Not the tasks view: opening it counts as having seen everything.
    page = sign_in(new_page(), site, account, "/spaces")
    expect(page.locator("#bell-badge .badge-new")).to_have_attribute(
        "title", "1 finished since you last looked")
    expect(page.locator("#bell-badge .badge-count")).to_have_attribute("title", "2 active")
    _, menu = open_menu(page)
    items = menu.locator(".menu-item")
    expect(items).to_have_count(4)
    for index, text in enumerate(["Busy copy", "Waiting copy", "Fresh failure", "Seen report"]):
        expect(items.nth(index)).to_contain_text(text)
    expect(menu).to_contain_text("1 finished since you last looked")
    expect(items.nth(2).locator(".new-tag")).to_have_text("new")
    expect(menu.locator(".new-tag")).to_have_count(1)
    assert axe_violations(page, "#bell") == []


@pytest.mark.parametrize("width", [390, 320])
def test_the_menu_fits_a_phone(new_page: Any, site: Site, account: Account,
                               width: int) -> None:
    account.add_task(Status.RUNNING, description="Distribute the syllabus to every course "
                     "space of the physics department, including the archived ones", **fresh())
    account.add_task(Status.RUNNING, description="Stop me", **fresh(cancel_requested_at=utcnow()))
    page = sign_in(new_page(viewport={"width": width, "height": 640}, is_mobile=True,
                            has_touch=True), site, account, "/spaces")
    page.get_by_role("button", name="Notifications").tap()
    menu = page.locator("#bell-menu")
    tasks = menu.get_by_role("link", name="Tasks", exact=True)
    expect(tasks).to_be_visible()
    box = menu.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box
    expect(tasks).to_be_in_viewport(ratio=1)
    expect(menu.get_by_text("Recent tasks")).to_be_in_viewport(ratio=1)
    for item in menu.locator(".menu-item").all():
        item_box = item.bounding_box()
        assert item_box is not None and item_box["x"] + item_box["width"] <= width
    tasks.tap()
    page.wait_for_url(f"{site.url}/tasks")


def test_the_menu_buttons_keys(new_page: Any, site: Site, account: Account) -> None:
    for number in range(3):
        account.add_task(Status.COMPLETED, description=f"Report {number}",
                         created_at=utcnow() - timedelta(minutes=10 - number))
    page = sign_in(new_page(), site, account, "/spaces")
    bell = page.get_by_role("button", name="Notifications")
    menu = page.locator("#bell-menu")
    bell.focus()
    # Down on the button opens the menu at its first item, once it has loaded.
    page.keyboard.press("ArrowDown")
    expect(bell).to_have_attribute("aria-expanded", "true")
    expect(menu.locator(".menu-item").first).to_be_focused()
    assert page.evaluate(LAST_ITEM) in ("Tasks", "Notify me when tasks finish")
    last = page.evaluate(f"() => ({ITEMS})().length") - 1
    assert last >= 3
    page.keyboard.press("ArrowDown")
    assert page.evaluate(FOCUSED) == 1
    page.keyboard.press("End")
    assert page.evaluate(FOCUSED) == last
    page.keyboard.press("ArrowDown")  # wraps around
    assert page.evaluate(FOCUSED) == 0
    page.keyboard.press("ArrowUp")
    assert page.evaluate(FOCUSED) == last
    page.keyboard.press("Home")
    assert page.evaluate(FOCUSED) == 0
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(bell).to_be_focused()
    expect(bell).to_have_attribute("aria-expanded", "false")

    # Up opens it at its last item; Tab past the last item closes it.
    page.keyboard.press("ArrowUp")
    expect(bell).to_have_attribute("aria-expanded", "true")
    page.wait_for_function(f"() => ({FOCUSED})() === {last}")
    page.keyboard.press("Tab")
    expect(menu).to_be_hidden()
    expect(bell).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_role("button", name="Sign out")).to_be_focused()

    # Enter opens it as before; Tab then walks into it.
    bell.focus()
    page.keyboard.press("Enter")
    expect(bell).to_have_attribute("aria-expanded", "true")
    expect(menu.locator(".menu-item").first).to_be_visible()
    page.keyboard.press("Tab")
    expect(menu.locator(".menu-item").first).to_be_focused()


# The browser's answer, decided by the test: Notification.permission reads window.permission,
# requestPermission counts its calls and grants, and each notification shown is recorded.
FAKE_NOTIFICATIONS = """(() => {
  window.permission = 'default'; window.asked = 0; window.shown = [];
  class FakeNotification {
    constructor(title, options) { window.shown.push({title, body: options.body}); }
    addEventListener() {}
    static get permission() { return window.permission; }
    static requestPermission() { window.asked += 1; window.permission = 'granted';
                                 return Promise.resolve('granted'); }
  }
  window.Notification = FakeNotification;
})()"""
SET_HIDDEN = """() => {
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
}"""
FINISHED = """(task) => document.dispatchEvent(new CustomEvent('task-status', {detail: task}))"""


def test_the_keyboard_keeps_its_place_when_the_menu_refreshes(new_page: Any, site: Site,
                                                              account: Account) -> None:
    for number in range(2):
        account.add_task(Status.COMPLETED, description=f"Copy {number}")
    page = sign_in(new_page(), site, account, "/spaces")
    bell = page.get_by_role("button", name="Notifications")
    menu = page.locator("#bell-menu")
    bell.click()
    expect(menu.locator(".menu-item").first).to_be_visible()
    bell.click()
    expect(menu).to_be_hidden()
    # Reopened, the menu shows its last list while the fresh one is on its way: hold that
    # answer until the keyboard is inside the list.
    held: list[Any] = []
    page.route("**/notifications", lambda route: held.append(route))
    bell.focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    first = menu.locator(".menu-item").first
    expect(first).to_be_focused()
    until(page, lambda: held)
    with page.expect_response("**/notifications"):
        held[0].continue_()
    page.wait_for_function("() => !document.querySelector('#bell-menu').hidden")
    expect(first).to_be_focused()


def test_browser_notifications_are_asked_for_on_a_click_only(new_page: Any, site: Site,
                                                            account: Account) -> None:
    page = new_page()
    page.add_init_script(FAKE_NOTIFICATIONS)
    sign_in(page, site, account, "/spaces")
    _, menu = open_menu(page)
    offer = menu.get_by_role("button", name="Notify me when tasks finish")
    expect(offer).to_be_visible()
    assert page.evaluate("window.asked") == 0
    offer.click()
    expect(offer).to_be_hidden()
    assert page.evaluate("window.asked") == 1
    # Granted: a task that finishes while the tab is hidden is told by the browser too.
    # (A hidden tab does not poll; the event stands for what the page learns on its return.)
    page.evaluate(SET_HIDDEN)
    page.evaluate(FINISHED, {"id": "abc", "before": "running", "now": "failed",
                             "wasActive": True, "active": False,
                             "description": "Nightly copy", "outcome": "Disk full",
                             "url": "/tasks/abc"})
    assert page.evaluate("window.shown") == [{"title": "Nightly copy: failed",
                                              "body": "Disk full"}]


def test_no_offer_inside_the_portals_frame(new_page: Any, site: Site, start_portal: Any,
                                           account: Account) -> None:
    page = new_page()
    page.add_init_script(FAKE_NOTIFICATIONS)
    page.goto(start_portal(account.user.name))
    frame = page.frame_locator("#tasks-frame")
    frame.get_by_role("button", name="Notifications").click()
    menu = frame.locator("#bell-menu")
    expect(menu.get_by_role("link", name="Tasks", exact=True)).to_be_visible()
    expect(menu.locator("[data-notify]")).to_be_hidden()


def test_no_offer_once_denied(new_page: Any, site: Site, account: Account) -> None:
    page = new_page()
    page.add_init_script(FAKE_NOTIFICATIONS + ";window.permission = 'denied'")
    sign_in(page, site, account, "/spaces")
    _, menu = open_menu(page)
    expect(menu.locator("[data-notify]")).to_be_hidden()
