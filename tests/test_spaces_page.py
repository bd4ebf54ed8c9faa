"""The spaces page and launching from browser forms: uploads with a session and CSRF,
a refused launch sent back with its reason, the generic form for every kind."""

from __future__ import annotations

import io
import random

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


def test_a_refused_launch_goes_back_with_the_reason(account: Account) -> None:
    account.login()
    response = account.client.post("/tasks", data={
        "csrf_token": account.csrf(), "next": "/spaces", "kind": "extract_archive",
        "target": "../up", "archive": (io.BytesIO(b"PK"), "a.zip"),
    })
    assert response.status_code == 303
    assert response.headers["Location"] == "/spaces"
    page = account.client.get("/spaces").get_data(as_text=True)
    assert "target: &#39;../up&#39; leads outside your folder" in page
    # The upload of a refused launch is not kept.
    assert list((account.root / ".uploads").iterdir()) == []
    assert account.api("GET", "/tasks").get_json()["total"] == 0


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


def test_the_generic_form_offers_every_field(account: Account) -> None:
    write_tree(account.root, {"alpha": {}, "beta": {}})
    page = account.login().client.get("/tasks/new").get_data(as_text=True)
    assert 'type="file" name="archive"' in page
    assert 'type="checkbox" name="merge" value="true"' in page
    assert '<select name="strategy">' in page
    # Targets are chosen from the user's own spaces, any number of them.
    assert 'type="checkbox" name="targets" value="alpha"' in page
    assert 'type="checkbox" name="targets" value="beta"' in page


def test_only_multipart_bodies_may_be_large(account: Account) -> None:
    response = account.api("POST", "/tasks", json={"kind": "sleep", "fail": "x" * (2 << 20)})
    assert response.status_code == 413
