"""Sessions end when they should: sign out, `users sign-out`, and an embedded session's
partitioned cookie; and a page view extends the session."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from tests.support.accounts import Account
from webapp.web import sessions
from webapp.web.embed import sign_token


def _copy_of(account: Account) -> FlaskClient:
    """Another client holding a copy of the account's session cookie, as a stolen or
    saved cookie would be."""
    cookie = account.client.get_cookie("session")
    assert cookie is not None
    other = account.app.test_client()
    other.set_cookie("session", cookie.value)
    return other


def test_a_saved_cookie_stops_working_once_its_user_signs_out(make_account) -> None:
    account, bystander = make_account().login(), make_account().login()
    saved = _copy_of(account)
    assert saved.get("/tasks").status_code == 200
    out = account.client.post("/logout", data={"csrf_token": account.csrf()})
    assert out.status_code == 303
    assert saved.get("/tasks").status_code == 302
    assert saved.get("/tasks", headers={"Accept": "application/json"}).status_code == 401
    assert bystander.client.get("/tasks").status_code == 200
    assert account.api("GET", "/tasks").status_code == 200, "API tokens are not sessions"
    account.login()
    assert account.client.get("/tasks").status_code == 200


def test_users_sign_out_ends_every_session_of_that_user(app: Flask, make_account) -> None:
    account, bystander = make_account().login(), make_account().login()
    embedded = app.test_client()
    assert embedded.get(f"/embed?token={_embed_token(app, account)}").status_code == 303
    result = app.test_cli_runner().invoke(args=["users", "sign-out", account.user.name])
    assert result.exit_code == 0, result.output
    assert account.client.get("/tasks").status_code == 302
    assert embedded.get("/tasks").status_code == 302
    assert bystander.client.get("/tasks").status_code == 200
    missing = app.test_cli_runner().invoke(args=["users", "sign-out", "no-such-user"])
    assert missing.exit_code != 0 and "no user named" in missing.output


def test_signing_out_of_an_embedded_session_clears_its_partitioned_cookie(
        app: Flask, account: Account) -> None:
    client = account.client
    client.get(f"/embed?token={_embed_token(app, account)}")
    out = client.post("/logout", data={"csrf_token": account.csrf()})
    assert out.status_code == 303
    deletion = out.headers["Set-Cookie"]
    assert deletion.startswith("session=;") and "Expires=Thu, 01 Jan 1970" in deletion
    for attribute in ("Partitioned", "Secure", "SameSite=None"):
        assert attribute in deletion
    assert client.get_cookie("session") is None


def _embed_token(app: Flask, account: Account) -> str:
    return sign_token(app.config["EMBED_SECRET_KEY"], account.user.name)


def test_a_new_password_ends_every_session(app: Flask, make_account) -> None:
    account = make_account().login()
    result = app.test_cli_runner().invoke(args=["users", "password", account.user.name,
                                                "--password-stdin"], input="new secret\n")
    assert result.exit_code == 0 and result.output == ""
    assert account.client.get("/tasks").status_code == 302
    account.password = "new secret"
    account.login()
    assert account.client.get("/tasks").status_code == 200
    generated = app.test_cli_runner().invoke(args=["users", "password", account.user.name])
    assert generated.exit_code == 0 and len(generated.output.strip()) >= 12
    assert account.client.get("/tasks").status_code == 302


def test_a_page_view_extends_the_session_once_its_cookie_is_a_minute_old(
    make_account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cookie is signed again, moving the session's end, at most once a REFRESH:
    a view right after the last signing leaves it as it is."""
    account = make_account().login()
    account.client.get("/tasks")  # the first page view may start the form token
    signed = account.client.get_cookie("session")
    assert signed is not None
    again = account.client.get("/tasks")
    assert again.status_code == 200 and "Set-Cookie" not in again.headers
    monkeypatch.setattr(sessions, "REFRESH", timedelta(0))
    version = again.headers["X-Live-Version"]
    poll = account.client.get(f"/tasks?since={version}", headers={"HX-Request": "true"})
    assert poll.status_code == 204 and "Set-Cookie" not in poll.headers  # not activity
    later = account.client.get("/tasks")  # the view that answers polls shows the page too
    assert "Set-Cookie" in later.headers
    assert later.headers["Set-Cookie"].startswith("session=")
    assert account.client.get("/tasks").status_code == 200


def test_a_cookie_checked_before_still_ends_with_its_lifetime(
    app: Flask, make_account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process keeps the cookies whose signature it checked (sessions.CHECKED_KEPT), but
    their age is checked at every request, and another signature is checked anew."""
    account = make_account().login()
    assert account.client.get("/tasks").status_code == 200  # checked, and kept
    cookie = account.client.get_cookie("session")
    assert cookie is not None
    forged = app.test_client()
    forged.set_cookie("session", cookie.value[:-4] + ("AAAA" if cookie.value[-4:] != "AAAA"
                                                      else "BBBB"))
    assert forged.get("/tasks").status_code == 302
    monkeypatch.setitem(app.config, "PERMANENT_SESSION_LIFETIME", timedelta(0))
    assert account.client.get("/tasks").status_code == 302


def test_each_request_gets_its_own_copy_of_what_a_kept_cookie_holds(app: Flask) -> None:
    """flash() appends to the list the session holds: one request's message must not
    reach the next request that sends the same cookie."""
    interface = app.session_interface
    serializer = interface.get_signing_serializer(app)
    assert serializer is not None
    cookie = f"session={serializer.dumps({'_flashes': [('status', 'first')]})}"
    with app.test_request_context(headers={"Cookie": cookie}):
        opened = interface.open_session(app, request)
        assert opened is not None
        opened["_flashes"].append(("status", "second"))
    with app.test_request_context(headers={"Cookie": cookie}):
        again = interface.open_session(app, request)
        assert again is not None and again["_flashes"] == [("status", "first")]
