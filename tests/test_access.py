"""Who can reach what: sessions, tokens, CSRF, other users' tasks, administrators."""

from __future__ import annotations

from tests.support.accounts import Account
from webapp.core.models import Status


def test_pages_need_a_sign_in(app) -> None:
    client = app.test_client()
    page = client.get("/tasks?status=running")
    assert page.status_code == 302
    assert page.headers["Location"] == "/login?next=/tasks?status%3Drunning"
    assert client.get("/tasks", headers={"Accept": "application/json"}).status_code == 401
    fragment = client.get("/notifications/badge", headers={"HX-Request": "true"})
    assert fragment.status_code == 401 and fragment.headers["HX-Redirect"] == "/login"


def test_login_and_logout(account: Account) -> None:
    client = account.client
    wrong = client.post("/login", data={"name": account.user.name, "password": "nope",
                                        "csrf_token": _login_csrf(account)})
    assert wrong.status_code == 401
    assert "do not match" in wrong.get_data(as_text=True)
    account.login()
    assert client.get("/tasks").status_code == 200
    out = client.post("/logout", data={"csrf_token": account.csrf()})
    assert out.status_code == 303
    assert client.get("/tasks").status_code == 302


def test_login_never_redirects_off_site(account: Account) -> None:
    for target in ["https://evil.example/", "//evil.example/x", "/\\evil.example"]:
        # A fresh browser each time: a signed-in one is sent on from the form.
        account.client = account.app.test_client()
        response = account.client.post("/login", data={
            "name": account.user.name, "password": account.password,
            "csrf_token": _login_csrf(account), "next": target})
        assert response.headers["Location"] == "/tasks", target


def test_cookie_post_needs_csrf_token_bearer_does_not(account: Account) -> None:
    account.login()
    refused = account.client.post("/tasks", data={"kind": "sleep", "seconds": "0"})
    assert refused.status_code == 400
    assert "CSRF" in refused.get_data(as_text=True)
    accepted = account.client.post("/tasks", data={"kind": "sleep", "seconds": "0",
                                                   "csrf_token": account.csrf()})
    assert accepted.status_code == 303
    assert accepted.headers["Location"].startswith("/tasks/")
    header = account.client.post(
        "/tasks", data={"kind": "sleep", "seconds": "0"},
        headers={"X-CSRFToken": account.csrf(), "HX-Request": "true"},
    )
    assert header.status_code == 303
    assert header.headers["HX-Trigger"] == "tasks-changed"
    bearer = account.api("POST", "/tasks", json={"kind": "sleep", "seconds": 0})
    assert bearer.status_code == 201
    assert bearer.headers["Location"] == f"/tasks/{bearer.get_json()['id']}"


def test_bad_tokens_are_401(app) -> None:
    client = app.test_client()
    for header in ["Bearer nope", "Basic abc", "Bearer "]:
        response = client.get("/tasks", headers={"Authorization": header,
                                                 "Accept": "application/json"})
        assert response.status_code == 401, header


def test_users_reach_only_their_own_tasks(make_account) -> None:
    alice, bob = make_account(), make_account()
    theirs = bob.add_task(Status.RUNNING, description="Bob's task")
    assert alice.api("GET", f"/tasks/{theirs.id}").status_code == 404
    assert alice.api("POST", f"/tasks/{theirs.id}/cancel").status_code == 404
    assert bob.task(theirs.id).cancel_requested_at is None
    assert alice.api("GET", "/tasks").get_json()["total"] == 0
    page = alice.client.get("/tasks", headers=alice.bearer).get_data(as_text=True)
    assert "Bob&#39;s task" not in page and "Bob's task" not in page
    assert alice.api("GET", f"/tasks?owner={bob.user.name}").status_code == 403


def test_admin_sees_everyone_with_owner_column_and_filter(make_account) -> None:
    admin, bob, carol = make_account(admin=True), make_account(), make_account()
    bobs = bob.add_task(Status.FAILED, error_trace="Traceback: boom")
    carol.add_task(Status.COMPLETED)
    everyone = admin.api("GET", "/tasks").get_json()
    assert {bobs.id} <= {t["id"] for t in everyone["tasks"]}
    only_bob = admin.api("GET", f"/tasks?owner={bob.user.name}").get_json()
    assert [t["id"] for t in only_bob["tasks"]] == [bobs.id]
    page = admin.client.get(f"/tasks?owner={bob.user.name}", headers=admin.bearer)
    text = page.get_data(as_text=True)
    assert '<th scope="col">Owner</th>' in text and bob.user.name in text
    detail = admin.api("GET", f"/tasks/{bobs.id}").get_json()
    assert detail["owner"] == bob.user.name and detail["error_trace"] == "Traceback: boom"
    page = admin.client.get(f"/tasks/{bobs.id}", headers=admin.bearer).get_data(as_text=True)
    assert "Traceback: boom" in page
    assert admin.api("GET", "/tasks?owner=nobody-at-all").status_code == 400


def test_html_in_descriptions_and_outcomes_is_escaped(account: Account) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    task = account.add_task(Status.FAILED, description=evil, outcome=evil, details=evil)
    for url in ["/tasks", f"/tasks/{task.id}"]:
        page = account.client.get(url, headers=account.bearer).get_data(as_text=True)
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert" in page
    menu = account.client.get("/notifications", headers=account.bearer).get_data(as_text=True)
    assert "<script>alert" not in menu


def test_security_headers(account: Account) -> None:
    response = account.client.get("/tasks", headers=account.bearer)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp
    assert "frame-ancestors 'self'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "X-Frame-Options" not in response.headers


def _login_csrf(account: Account) -> str:
    import re

    page = account.client.get("/login").get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


def test_a_signed_in_user_is_sent_on_from_the_sign_in_form(account: Account) -> None:
    account.login()
    assert account.client.get("/login").headers["Location"] == "/tasks"
    assert account.client.get("/login?next=/spaces").headers["Location"] == "/spaces"
    assert account.client.get("/login?next=https://evil.example/").headers["Location"] == "/tasks"
    # A script with a token still gets the form (it has no session to go on with).
    assert account.app.test_client().get("/login", headers=account.bearer).status_code == 200
