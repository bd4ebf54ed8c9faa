"""Launching from the forms in a real browser: the operation first, then its form; a refused
form comes back filled in with its errors by their fields; an upload shows its progress;
the same without JavaScript."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Console, Site, axe_violations
from tests.support.accounts import Account
from tests.support.files import make_archive, write_tree


def test_choose_the_operation_then_fill_its_form(signed_in: Any, site: Site, account: Account,
                                                 console: Console) -> None:
    console.expect("400")
    write_tree(account.root, {"physics": {"notes": {"week-1.txt": b"units\n"}},
                              "chemistry": {}, "biology": {}})
    page = signed_in("/tasks/new")
    page.evaluate("window.sameDocument = true")
    expect(page.locator(".launch-form")).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile("Sleep"))).to_have_count(0)
    page.get_by_role("link", name=re.compile("Distribute to spaces")).click()
    page.wait_for_url(f"{site.url}/tasks/new?kind=distribute")
    expect(page.locator(".launch-form")).to_have_count(1)
    assert page.evaluate("window.sameDocument") is True  # swapped in, not reloaded
    # The source is offered from the user's own folders; nothing chosen as a target yet.
    options = page.locator("#distribute-source-options option")
    assert "physics/notes/week-1.txt" in options.evaluate_all("(os) => os.map((o) => o.value)")
    page.locator("#distribute-source").fill("physics/nowhere")
    page.get_by_label("Description").fill("Week one for everyone")
    page.get_by_role("button", name="Launch").click()
    source_error = page.locator("#distribute-source-error")
    expect(source_error).to_have_text("There is nothing at physics/nowhere.")
    expect(page.locator("#distribute-targets-error")).to_have_text("Choose at least one.")
    expect(page.locator("#distribute-source")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#distribute-source")).to_have_value("physics/nowhere")
    expect(page.get_by_label("Description")).to_have_value("Week one for everyone")
    assert axe_violations(page) == []
    # Any number of targets, chosen from the user's spaces.
    page.locator("#distribute-source").fill("physics/notes")
    page.get_by_label("chemistry").check()
    page.get_by_label("biology").check()
    page.get_by_role("button", name="Launch").click()
    page.wait_for_url(re.compile(re.escape(f"{site.url}/tasks/") + "[0-9a-f]{32}$"))
    task_id = page.url.rsplit("/", 1)[1]
    assert account.final(task_id)["status"] == "completed"
    for space in ("chemistry", "biology"):
        assert (account.root / space / "notes" / "week-1.txt").read_text() == "units\n"
    page.go_back()
    page.wait_for_url(f"{site.url}/tasks/new?kind=distribute")
    page.go_back()
    page.wait_for_url(f"{site.url}/tasks/new")
    expect(page.locator(".launch-form")).to_have_count(0)


# What the form shows at each upload progress event, kept across the page change that
# follows the launch (after app.js has handled the event).
RECORD_PROGRESS = """
document.addEventListener("htmx:xhr:progress", (event) => queueMicrotask(() => {
  const form = event.target.closest(".launch-form");
  const bar = form.querySelector(".upload-progress");
  const seen = JSON.parse(sessionStorage.getItem("progress") || "[]");
  seen.push({value: bar.value, shown: !bar.hidden,
             disabled: form.querySelector("button[type=submit]").disabled});
  sessionStorage.setItem("progress", JSON.stringify(seen));
}));
"""


def test_an_upload_shows_its_progress_and_disables_the_button(
        signed_in: Any, site: Site, account: Account, tmp_path: Path) -> None:
    tree = {"course": {"big.bin": random.Random(3).randbytes(4 << 20), "a.txt": b"a\n"}}
    archive = make_archive(write_tree(tmp_path / "s", tree), tmp_path / "course.zip", "zip")
    page = signed_in("/spaces")
    page.add_init_script(RECORD_PROGRESS)
    page.reload()
    form = page.locator("#launch-extract_archive")
    form.get_by_label("Archive").set_input_files(str(archive))
    form.get_by_label("Target folder").fill("course-1")
    form.get_by_role("button", name="Upload and extract").click()
    page.wait_for_url(re.compile(re.escape(f"{site.url}/tasks/") + "[0-9a-f]{32}$"))
    seen = page.evaluate("JSON.parse(sessionStorage.getItem('progress') || '[]')")
    uploading = [one for one in seen if one["value"] > 0]
    assert uploading, seen
    assert all(one["shown"] and one["disabled"] for one in uploading), seen
    assert max(one["value"] for one in uploading) == 100
    assert account.final(page.url.rsplit("/", 1)[1])["status"] == "completed"
    assert (account.root / "course-1" / "course" / "a.txt").read_text() == "a\n"


def test_a_refused_upload_asks_for_the_file_again(signed_in: Any, site: Site,
                                                  account: Account, tmp_path: Path,
                                                  console: Console) -> None:
    console.expect("400")
    write_tree(account.root, {"taken": {}})
    archive = make_archive(write_tree(tmp_path / "s", {"a.txt": b"a"}), tmp_path / "a.zip", "zip")
    page = signed_in("/spaces")
    form = page.locator("#launch-extract_archive")
    form.get_by_label("Archive").set_input_files(str(archive))
    form.get_by_label("Target folder").fill("taken")
    form.get_by_role("button", name="Upload and extract").click()
    form = page.locator("#launch-extract_archive")
    expect(form.locator("#extract_archive-target-error")).to_contain_text("taken already exists")
    expect(form.locator("#extract_archive-archive-error")).to_have_text(
        "Choose the file again: a browser cannot keep it.")
    expect(form.get_by_label("Target folder")).to_have_value("taken")
    expect(form.get_by_label("Archive")).to_be_focused()  # the first field to see to
    assert page.url == f"{site.url}/spaces"


def test_without_javascript_a_list_of_operations_then_the_form(signed_in: Any, site: Site,
                                                               account: Account) -> None:
    write_tree(account.root, {"physics": {"a.txt": b"a"}})
    page = signed_in("/tasks/new", java_script_enabled=False)
    page.get_by_role("link", name=re.compile("Put a space to rest")).click()
    page.wait_for_url(f"{site.url}/tasks/new?kind=rest_space")
    page.get_by_role("combobox", name="Space").fill("chemistry")
    page.get_by_role("button", name="Launch").click()
    expect(page.locator("#rest_space-space-error")).to_have_text(
        "There is no space named 'chemistry'.")
    expect(page.get_by_role("combobox", name="Space")).to_have_value("chemistry")
    page.get_by_role("combobox", name="Space").fill("physics")
    page.get_by_role("button", name="Launch").click()
    page.wait_for_url(re.compile(re.escape(f"{site.url}/tasks/") + "[0-9a-f]{32}$"))
    assert account.final(page.url.rsplit("/", 1)[1])["status"] == "completed"
