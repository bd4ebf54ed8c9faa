"""A 390 px phone (and a 320 px one): nothing wider than the screen, the pager above the
rows too, touch targets a finger can hit, and a tap to read a description whole."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Site, axe_violations, sign_in
from tests.support.accounts import Account, running_sleep
from tests.support.files import write_tree
from webapp.core.models import Status, utcnow

LONG = ("Distribute the lecture recordings of the whole winter term to every course space "
        "of the physics department, including the archived ones, and then the exercises")


def phone(new_page: Any, width: int = 390) -> Any:
    return new_page(viewport={"width": width, "height": 844}, is_mobile=True, has_touch=True,
                    device_scale_factor=2)


def test_the_spaces_page_fits_a_phone(new_page: Any, site: Site, account: Account) -> None:
    write_tree(account.root, {"physics-101": {}, "chemistry-201": {}})
    for width in (390, 320):
        page = sign_in(phone(new_page, width), site, account, "/spaces")
        expect(page.locator("#launch-extract_archive input[type=file]")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        box = page.locator("#launch-extract_archive input[type=file]").bounding_box()
        card = page.locator("#launch-extract_archive").bounding_box()
        assert box["x"] + box["width"] <= card["x"] + card["width"]
    assert axe_violations(page) == []


def test_tasks_on_a_phone(new_page: Any, site: Site, account: Account) -> None:
    now = utcnow()
    for number in range(30):
        account.add_task(Status.COMPLETED, description=f"Old task {number}",
                         created_at=now - timedelta(hours=1, minutes=number))
    account.add_task(Status.FAILED, description=LONG, outcome="The archive is damaged")
    task_id = running_sleep(account, "Copy the recordings")
    page = sign_in(phone(new_page), site, account)
    # The pager is above the rows as well as below them.
    top = page.get_by_role("navigation", name="Pages, above the tasks")
    expect(top).to_be_visible()
    assert top.bounding_box()["y"] < page.locator("#tasks-body").bounding_box()["y"]
    # A finger's worth: at least 44 by 44 CSS pixels.
    for target in (page.locator(f"#task-{task_id} .cancel-button"),
                   page.locator(f"#task-{task_id} .details-link")):
        box = target.bounding_box()
        assert box["width"] >= 44 and box["height"] >= 44, box
    # Cut to two lines on the card; a tap shows the description whole.
    text = page.locator(".col-task .truncate", has_text="Distribute the lecture")
    assert text.evaluate("(el) => el.scrollHeight > el.clientHeight + 1")
    text.tap()
    expect(text).to_have_class("truncate expanded")
    assert text.evaluate("(el) => el.scrollHeight <= el.clientHeight + 1")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert axe_violations(page) == []
    top.get_by_role("link", name="Older").tap()
    page.wait_for_url(f"{site.url}/tasks?page=2")
    account.api("POST", f"/tasks/{task_id}/cancel")
    assert account.final(task_id)["status"] == "cancelled"
