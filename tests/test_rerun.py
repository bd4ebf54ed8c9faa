"""Run again: a finished task launches a new one of the same kind and parameters, checked
again as any launch is, linked both ways; inputs that are gone are named, not offered."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.accounts import Account
from webapp.core.models import Status


def test_a_finished_task_runs_again_with_the_same_parameters(account: Account) -> None:
    first = account.add_task(Status.FAILED, description="Nightly copy",
                             params={"seconds": 2.0, "steps": 4, "fail": "", "flaky": 0})
    response = account.api("POST", f"/tasks/{first.id}/rerun")
    assert response.status_code == 201
    again = response.get_json()
    assert response.headers["Location"] == f"/tasks/{again['id']}"
    assert again["kind"] == "sleep" and again["description"] == "Nightly copy"
    assert again["status"] == "queued" and again["rerun_of"] == first.id
    assert account.task(again["id"]).params == first.params
    assert account.api("GET", f"/tasks/{first.id}").get_json()["reruns"] == [again["id"]]
    # Linked both ways on the pages.
    old_page = account.api("GET", f"/tasks/{first.id}", headers={"Accept": "text/html"})
    assert "Run again as" in old_page.get_data(as_text=True)
    assert f'href="/tasks/{again["id"]}"' in old_page.get_data(as_text=True)
    new_page = account.api("GET", f"/tasks/{again['id']}", headers={"Accept": "text/html"})
    assert "Run again of" in new_page.get_data(as_text=True)
    assert f'href="/tasks/{first.id}"' in new_page.get_data(as_text=True)


def test_the_browser_form_goes_to_the_new_task(account: Account) -> None:
    first = account.add_task(Status.CANCELLED)
    account.login()
    page = account.client.get(f"/tasks/{first.id}").get_data(as_text=True)
    assert f'action="/tasks/{first.id}/rerun"' in page
    response = account.client.post(f"/tasks/{first.id}/rerun",
                                    data={"csrf_token": account.csrf()})
    assert response.status_code == 303
    new_id = response.headers["Location"].rsplit("/", 1)[1]
    assert account.task(new_id).rerun_of == first.id


@pytest.mark.parametrize("status", [Status.QUEUED, Status.RUNNING])
def test_an_active_task_cannot_run_again(account: Account, status: Status) -> None:
    task = account.add_task(status)
    response = account.api("POST", f"/tasks/{task.id}/rerun")
    assert response.status_code == 409
    assert f"still {status}" in response.get_json()["error"]
    page = account.api("GET", f"/tasks/{task.id}", headers={"Accept": "text/html"})
    assert "/rerun" not in page.get_data(as_text=True)


def test_only_the_owner_runs_a_task_again(account: Account,
                                          make_account: Callable[..., Account]) -> None:
    task = account.add_task(Status.COMPLETED)
    assert make_account().api("POST", f"/tasks/{task.id}/rerun").status_code == 404
    admin = make_account(admin=True)
    assert admin.api("POST", f"/tasks/{task.id}/rerun").status_code == 403
    page = admin.api("GET", f"/tasks/{task.id}", headers={"Accept": "text/html"})
    assert "/rerun" not in page.get_data(as_text=True)


def test_a_removed_upload_is_named_instead_of_offered(account: Account) -> None:
    params = {"archive_path": ".uploads/0123456789ab/site.tar.gz", "target": "site",
              "merge": False}
    task = account.add_task(Status.COMPLETED, kind="extract_archive", params=params)
    page = account.api("GET", f"/tasks/{task.id}", headers={"Accept": "text/html"})
    body = page.get_data(as_text=True)
    assert "The uploaded archive was removed once its task ran" in body
    assert "/rerun" not in body
    response = account.api("POST", f"/tasks/{task.id}/rerun")
    assert response.status_code == 409
    assert "upload it again" in response.get_json()["error"]


def test_a_run_again_is_checked_as_any_launch(account: Account) -> None:
    archive = account.root / "in" / "site.tar"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"")
    params = {"archive_path": "in/site.tar", "target": "site", "merge": False}
    task = account.add_task(Status.FAILED, kind="extract_archive", params=params)
    assert "/rerun" in account.api(
        "GET", f"/tasks/{task.id}", headers={"Accept": "text/html"}).get_data(as_text=True)
    archive.unlink()
    response = account.api("POST", f"/tasks/{task.id}/rerun")
    assert response.status_code == 400
    assert "there is no file at in/site.tar" in response.get_json()["error"]


@pytest.mark.usefixtures("consumer")
def test_the_new_task_runs(account: Account) -> None:
    first = account.final(account.launch("sleep", seconds=0.2, steps=2, description="Twice"))
    again = account.api("POST", f"/tasks/{first['id']}/rerun").get_json()
    done = account.final(again["id"])
    assert done["status"] == "completed" and done["description"] == "Twice"
