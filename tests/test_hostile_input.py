"""Hostile input: whatever a client sends is a 4xx that says what is allowed, never a 500,
never half-read and acted on, and never a redirect off this site."""

from __future__ import annotations

import io
import re
import time

import itsdangerous
import pytest

from tests.support.accounts import Account
from webapp.core.models import Status
from webapp.web.embed import SALT
from webapp.web.responses import local_path


def _launches(account: Account) -> int:
    return account.api("GET", "/tasks").get_json()["total"]


def test_deeply_nested_json_is_a_400(account: Account) -> None:
    body = "[" * 100_000 + "]" * 100_000
    for url in ("/tasks", "/tasks/cancel"):
        response = account.api("POST", url, data=body,
                               headers={"Content-Type": "application/json"})
        assert response.status_code == 400, url
        assert "nested" in response.get_json()["error"]
    assert _launches(account) == 0


@pytest.mark.parametrize("field, extra", [
    ("description", {}),
    ("fail", {}),
    ("target", {"kind": "extract_archive", "archive_path": "a.zip"}),
    ("archive_path", {"kind": "extract_archive", "target": "site"}),
])
def test_a_lone_surrogate_is_a_400_naming_the_field(account: Account, field: str,
                                                    extra: dict[str, str]) -> None:
    body = {"kind": "sleep", "seconds": 0} | extra | {field: "x\ud800"}
    if body["kind"] != "sleep":
        body.pop("seconds")
        (account.root / "a.zip").parent.mkdir(parents=True, exist_ok=True)
        (account.root / "a.zip").write_bytes(b"PK")
    response = account.api("POST", "/tasks", json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert field in error and "Unicode" in error, error
    assert _launches(account) == 0


def test_text_fields_refuse_nul_characters(account: Account) -> None:
    response = account.api("POST", "/tasks", json={"kind": "sleep", "seconds": 0,
                                                   "description": "a\x00b"})
    assert response.status_code == 400
    assert "description" in response.get_json()["error"]


def test_task_ids_that_cannot_be_ids_are_not_found(account: Account) -> None:
    for task_id in ("x%00y", "%ED%A0%80"):
        assert account.api("GET", f"/tasks/{task_id}").status_code == 404
        assert account.api("POST", f"/tasks/{task_id}/cancel").status_code == 404
    refused = account.api("POST", "/tasks/cancel", json={"ids": ["a\x00", "b\ud800"]})
    assert refused.status_code == 400
    assert "task ids" in refused.get_json()["error"]


@pytest.mark.parametrize("exp", [10**30, -10**20, -1e20, 1e300, True])
def test_embed_tokens_with_absurd_expiry_are_refused_in_words(account: Account, exp) -> None:
    app = account.app
    token = itsdangerous.URLSafeSerializer(app.config["EMBED_SECRET_KEY"], salt=SALT).dumps(
        {"user": account.user.name, "exp": exp, "jti": "j" * 32})
    response = app.test_client().get(f"/embed?token={token}")
    assert response.status_code in (401, 403)
    text = response.get_data(as_text=True)
    assert "sign-in link" in text


def test_a_chunked_body_past_the_limit_is_refused_whole(account: Account) -> None:
    body = f"kind=sleep&seconds=0&description={'d' * (1200 * 1024)}&fail=boom".encode()
    # As gunicorn hands over a chunked body: no Content-Length, a stream it terminates.
    response = account.app.test_client().post(
        "/tasks", input_stream=io.BytesIO(body),
        headers={**account.bearer, "Accept": "application/json",
                 "Content-Type": "application/x-www-form-urlencoded",
                 "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413
    assert "1 MiB" in response.get_json()["error"]
    assert _launches(account) == 0


def test_anonymous_requests_get_the_small_body_limit(app) -> None:
    body = b"x" * (2 * 1024 * 1024)
    response = app.test_client().post(
        "/tasks", data={"kind": "extract_archive", "archive": (io.BytesIO(body),
                                                                "a.zip")},
        headers={"Accept": "application/json"})
    assert response.status_code == 413


def test_signed_in_uploads_keep_the_large_limit(account: Account) -> None:
    body = b"x" * (2 * 1024 * 1024)
    response = account.api("POST", "/tasks", data={
        "kind": "extract_archive", "target": "big",
        "archive": (io.BytesIO(body), "a.zip")})
    assert response.status_code == 201, response.get_json()


OFF_SITE = ["////evil.example/x", "///evil.example/x", "//evil.example", "/\\evil.example",
            "/\t/evil.example", "/\n/evil.example", "https://evil.example/", "\\\\evil.example",
            " //evil.example", "/%09/evil.example", "javascript:alert(1)", "evil.example"]


@pytest.mark.parametrize("target", OFF_SITE)
def test_local_path_keeps_only_same_site_paths(target: str) -> None:
    assert local_path(target) is None


def test_local_path_keeps_paths_and_queries() -> None:
    assert local_path("/spaces") == "/spaces"
    assert local_path("/tasks?status=running&page=2") == "/tasks?status=running&page=2"


def _csrf(account: Account) -> str:
    page = account.client.get("/login").get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


def test_no_form_redirects_off_site(account: Account) -> None:
    login = account.client.post("/login", data={
        "name": account.user.name, "password": account.password,
        "csrf_token": _csrf(account), "next": "////evil.example/x"})
    assert login.headers["Location"] == "/tasks"
    token = account.csrf()
    refused = account.client.post("/tasks", data={
        "kind": "sleep", "seconds": "-1", "csrf_token": token, "next": "////evil.example/x"})
    assert refused.status_code == 400
    task = account.add_task(Status.RUNNING)
    cancel = account.client.post(f"/tasks/{task.id}/cancel", data={
        "csrf_token": token, "next": "/\\evil.example"})
    assert cancel.headers["Location"] == f"/tasks/{task.id}"


def test_names_no_account_can_have_are_unknown_not_errors(app, make_account) -> None:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "10.250.0.1"
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    login = client.post("/login", data={"name": "a\x00b", "password": "x",
                                        "csrf_token": token.group(1)})
    assert login.status_code == 401 and "do not match" in login.get_data(as_text=True)
    admin = make_account(admin=True)
    owner = admin.api("GET", "/tasks?owner=a%00b")
    assert owner.status_code == 400 and "no user named" in owner.get_json()["error"]
    embed = itsdangerous.URLSafeSerializer(app.config["EMBED_SECRET_KEY"], salt=SALT).dumps(
        {"user": "a\x00b", "exp": int(time.time()) + 60, "jti": "k" * 32})
    assert app.test_client().get(f"/embed?token={embed}").status_code == 403
    made = app.test_cli_runner().invoke(args=["users", "create", "a\x00b"])
    assert made.exit_code != 0 and "NUL" in made.output


def test_numbers_too_large_for_any_type_are_a_400(account: Account) -> None:
    for value in (10**400, -(10**400)):
        response = account.api("POST", "/tasks", json={"kind": "sleep", "seconds": value})
        assert response.status_code == 400
        assert "seconds must be a number from 0 to 86400" in response.get_json()["error"]
    huge = account.api("POST", f"/tokens/{10**25}/revoke")
    assert huge.status_code == 404 and "error" in huge.get_json()
    assert _launches(account) == 0
