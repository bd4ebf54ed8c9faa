"""The spaces page and launching from browser forms: uploads with a session and CSRF,
a refused launch sent back with its reason, the generic form for every kind."""

from __future__ import annotations

import io
import random
import re

import pytest

from tests.support.accounts import Account
from tests.support.files import make_archive, read_tree, sample_tree, write_tree

pytestmark = pytest.mark.usefixtures("consumer")


def test_lists_spaces_and_their_states(account: Account) -> None:
    write_tree(account.root, {"beta": {}, "alpha": {"f": b"1"}, ".uploads": {}, "file.txt": b""})
    write_tree(account.root / ".snapshots", {"gamma.tar": b"", "gamma.tar.sha256": b""})
    page = account.login().client.get("/spaces").get_data(as_text=True)
    assert 'href="/spaces" aria-current="page">Spaces</a>' in page
    rows = page.split("<tbody>")[1].split("</tbody>")[0]
    assert rows.index("alpha") < rows.index("beta") < rows.index("gamma")
    assert "Put to rest" in rows and "Wake" in rows
    assert 'name="targets" value="alpha"' in page
    assert 'name="targets" value="gamma"' not in page  # resting spaces receive nothing
    assert 'enctype="multipart/form-data"' in page
    assert account.api("GET", "/spaces").get_json() == {"spaces": [
        {"name": "alpha", "state": "awake"}, {"name": "beta", "state": "awake"},
        {"name": "gamma", "state": "resting"}]}


def test_upload_from_the_browser_form(account: Account, tmp_path) -> None:
    tree = sample_tree() | {"big.bin": random.Random(2).randbytes(3 << 20)}
    archive = make_archive(write_tree(tmp_path / "s", tree), tmp_path / "a.zip", "zip")
    account.login()
    response = account.client.post("/tasks", data={
        "csrf_token": account.csrf(), "next": "/spaces", "kind": "extract_archive",
        "target": "site", "archive": (io.BytesIO(archive.read_bytes()), "a.zip"),
    })
    assert response.status_code == 303, response.get_data(as_text=True)
    task_id = response.headers["Location"].rsplit("/", 1)[1]
    assert account.final(task_id)["status"] == "completed"
    assert read_tree(account.root / "site") == tree


def test_a_refused_launch_comes_back_filled_in_with_the_reason_by_its_field(
        account: Account) -> None:
    account.login()
    response = account.client.post("/tasks", data={
        "csrf_token": account.csrf(), "next": "/spaces", "kind": "extract_archive",
        "target": "../up", "archive": (io.BytesIO(b"PK"), "a.zip"),
    })
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    field = re.search(r'<input name="target" id="extract_archive-target"[^>]*>', page)
    assert field, page
    assert 'value="../up"' in field.group(0) and 'aria-invalid="true"' in field.group(0)
    assert 'aria-describedby="extract_archive-target-error"' in field.group(0)
    error = re.search(r'id="extract_archive-target-error">([^<]*)<', page)
    assert error and error.group(1).startswith("&#39;../up&#39; leads outside your folder")
    # A browser cannot be given the file back: the page asks for it again.
    assert "Choose the file again" in page
    # The upload of a refused launch is not kept.
    assert list((account.root / ".uploads").iterdir()) == []
    assert account.api("GET", "/tasks").get_json()["total"] == 0


def test_a_refusal_no_form_shows_is_said_above_them(account: Account) -> None:
    account.login()
    response = account.client.post("/tasks", data={
        "csrf_token": account.csrf(), "next": "/spaces", "kind": "wake_space",
        "space": "nowhere"})
    assert response.status_code == 400
    assert "space: there is no space named &#39;nowhere&#39;" in response.get_data(as_text=True)


def test_uploads_are_refused_where_no_field_takes_them(account: Account) -> None:
    response = account.api("POST", "/tasks", data={
        "kind": "sleep", "seconds": "0", "archive": (io.BytesIO(b"x"), "a.zip")})
    assert response.status_code == 400
    assert "sleep takes no uploaded file 'archive'" in response.get_json()["error"]
    both = account.api("POST", "/tasks", data={
        "kind": "extract_archive", "target": "s", "archive_path": "x.zip",
        "archive": (io.BytesIO(b"x"), "a.zip")})
    assert both.status_code == 400
    assert "either archive or archive_path" in both.get_json()["error"]


def test_the_new_task_page_offers_the_operations_then_one_form(account: Account) -> None:
    write_tree(account.root, {"alpha": {"docs": {"a.txt": b"1"}}, "beta": {}})
    client = account.login().client
    page = client.get("/tasks/new").get_data(as_text=True)
    assert "launch-form" not in page
    assert 'href="/tasks/new?kind=extract_archive"' in page
    assert "kind=sleep" not in page  # the diagnostic is for administrators
    assert client.get("/tasks/new?kind=sleep").status_code == 404
    assert client.get("/tasks/new?kind=nothing").status_code == 404
    extract = client.get("/tasks/new?kind=extract_archive").get_data(as_text=True)
    assert extract.count("class=\"card launch-form\"") == 1
    assert 'type="file" name="archive"' in extract
    assert 'type="checkbox" name="merge" id="extract_archive-merge" value="true"' in extract
    # Folders are offered to choose from; targets are the user's own spaces, any number.
    assert '<option value="alpha/docs">' in extract
    distribute = client.get("/tasks/new?kind=distribute").get_data(as_text=True)
    assert '<select name="strategy"' in distribute
    assert '<option value="alpha/docs/a.txt">' in distribute
    assert 'type="checkbox" name="targets" value="alpha"' in distribute
    assert 'type="checkbox" name="targets" value="beta"' in distribute
    # With htmx, the part below the heading: the operations and the chosen form.
    fragment = client.get("/tasks/new?kind=distribute", headers={"HX-Request": "true"})
    assert fragment.get_data(as_text=True).lstrip().startswith('<div id="new-task"')


def test_the_diagnostic_is_offered_to_administrators_and_launched_by_scripts(
        make_account) -> None:
    admin = make_account(admin=True).login()
    assert 'href="/tasks/new?kind=sleep"' in admin.client.get("/tasks/new").get_data(as_text=True)
    assert admin.client.get("/tasks/new?kind=sleep").status_code == 200
    user = make_account()
    assert user.api("POST", "/tasks", json={"kind": "sleep", "seconds": 0}).status_code == 201


def test_a_refused_new_task_form_marks_every_field_at_fault(account: Account) -> None:
    write_tree(account.root, {"alpha": {"docs": {}}})
    account.login()
    response = account.client.post("/tasks", data={
        "csrf_token": account.csrf(), "kind": "distribute", "source": "alpha/nothing",
        "strategy": "mirror", "description": "Course notes"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert re.search(r'id="distribute-source-error">There is nothing at alpha/nothing.<', page)
    assert re.search(r'id="distribute-targets-error">Choose at least one.<', page)
    assert 'value="alpha/nothing"' in page and 'value="Course notes"' in page
    assert re.search(r'<option value="mirror" selected>', page)
    assert "Choose the file again" not in page


def test_only_multipart_bodies_may_be_large(account: Account) -> None:
    response = account.api("POST", "/tasks", json={"kind": "sleep", "fail": "x" * (2 << 20)})
    assert response.status_code == 413
