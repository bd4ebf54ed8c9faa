"""Small states around cancelling, as a person sees them: the dialog of a queued task says it
will never start, and "Cancelling…" has a look of its own, readable in light and dark."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Site, sign_in
from tests.support.accounts import Account
from webapp.core.models import Status, utcnow


def fresh(**values: Any) -> dict[str, Any]:
    """A queued or running record that the maintenance loop leaves alone for a while."""
    now = utcnow()
    return {"dispatched_at": now, "heartbeat_at": now} | values


# The WCAG contrast ratio of an element's text against its own background.
CONTRAST = """(element) => {
  const rgb = (value) => value.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const luminance = (value) => {
    const [r, g, b] = rgb(value).map((c) => {
      c /= 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const style = getComputedStyle(element);
  const [light, dark] = [luminance(style.color), luminance(style.backgroundColor)]
    .sort((a, b) => b - a);
  return (light + 0.05) / (dark + 0.05);
}"""
LOOK = """(element) => { const style = getComputedStyle(element);
  return [style.color, style.backgroundColor, style.outlineStyle]; }"""


def test_the_dialog_of_a_queued_task_says_it_will_never_start(
        new_page: Any, site: Site, account: Account) -> None:
    task = account.add_task(Status.QUEUED, description="Wait your turn", **fresh())
    page = sign_in(new_page(), site, account)
    row = page.locator(f"#task-{task.id}")
    row.get_by_role("button", name="Cancel task: Wait your turn").click()
    dialog = page.get_by_role("dialog", name="Cancel this task?")
    expect(dialog).to_contain_text("It has not started; it will never run.")
    expect(dialog).not_to_contain_text("safe point")
    keep = dialog.get_by_role("button", name="Keep it queued")
    expect(keep).to_be_focused()
    expect(dialog.get_by_role("button", name="Keep it running")).to_have_count(0)
    keep.click()
    expect(dialog).to_be_hidden()
    expect(row.locator(".status")).to_contain_text("Queued")
    assert account.api("GET", f"/tasks/{task.id}").get_json()["cancel_requested"] is False


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_cancelling_has_a_look_of_its_own(new_page: Any, site: Site, account: Account,
                                          scheme: str) -> None:
    running = account.add_task(Status.RUNNING, description="Going on", **fresh())
    stopping = account.add_task(Status.RUNNING, description="Stopping",
                                **fresh(cancel_requested_at=utcnow()))
    page = sign_in(new_page(color_scheme=scheme), site, account)
    badge = page.locator(f"#task-{stopping.id} .status")
    expect(badge).to_have_text("◌Cancelling…")
    assert badge.inner_text().count("…") == 1
    other = page.locator(f"#task-{running.id} .status").element_handle()
    mine = badge.element_handle()
    color, background, outline = page.evaluate(LOOK, mine)
    assert (color, background) != tuple(page.evaluate(LOOK, other)[:2])
    # Not colour alone: its own icon, and a dashed edge.
    assert outline == "dashed"
    assert page.evaluate(CONTRAST, mine) >= 4.5


def test_the_step_message_shows_once_on_the_detail_page(new_page: Any, site: Site,
                                                        account: Account) -> None:
    task = account.add_task(Status.RUNNING, description="Copy lectures",
                            **fresh(progress_message="Copying lecture 3 of 9"))
    page = sign_in(new_page(), site, account, f"/tasks/{task.id}")
    expect(page.locator("progress")).to_be_visible()
    expect(page.get_by_text("Copying lecture 3 of 9")).to_have_count(1)
