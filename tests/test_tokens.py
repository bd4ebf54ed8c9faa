"""API tokens: named, expiring, revocable, their last use recorded; the commands and the
page where users manage their own."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from sqlalchemy import update

from tests.support.accounts import Account
from webapp.core.models import ApiToken, utcnow


def run(app: Flask, *args: str):
    return app.test_cli_runner().invoke(args=list(args))


def _get(app: Flask, token: str):
    return app.test_client().get("/tasks", headers={"Authorization": f"Bearer {token}",
                                                   "Accept": "application/json"})


def _rows(app: Flask, name: str) -> list[list[str]]:
    result = run(app, "tokens", "list", name)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == "id\tname\tcreated\tlast used\texpires"
    return [line.split("\t") for line in lines[1:]]


def test_tokens_list_revoke_and_expire_from_the_command_line(app: Flask,
                                                             account: Account) -> None:
    name = account.user.name
    made = run(app, "tokens", "create", name, "--expires-in", "7", "--name", "backup script")
    assert made.exit_code == 0, made.output
    token = made.output.strip()
    rows = _rows(app, name)
    assert len(rows) == 2  # the fixture's token and this one
    newest = rows[0]
    assert newest[1] == "backup script" and newest[3] == "-"
    assert newest[4].startswith((utcnow() + timedelta(days=7)).date().isoformat())
    assert _get(app, token).status_code == 200
    assert _rows(app, name)[0][3] != "-", "its use is recorded"
    revoked = run(app, "tokens", "revoke", newest[0])
    assert revoked.exit_code == 0, revoked.output
    refused = _get(app, token)
    assert refused.status_code == 401 and "revoked" in refused.get_json()["error"]
    again = run(app, "tokens", "revoke", newest[0])
    assert again.exit_code != 0 and "no token with id" in again.output
    assert _get(app, account.token).status_code == 200


def test_an_expired_token_is_refused_in_words(app: Flask, account: Account) -> None:
    token = run(app, "tokens", "create", account.user.name, "--expires-in", "1").output.strip()
    with app.extensions["database"].session() as db:
        db.execute(update(ApiToken).where(ApiToken.name == "", ApiToken.expires_at.is_not(None),
                                          ApiToken.user_id == account.user.id)
                   .values(expires_at=utcnow() - timedelta(minutes=1)))
        db.commit()
    refused = _get(app, token)
    assert refused.status_code == 401
    assert "expired on" in refused.get_json()["error"]
    assert run(app, "tokens", "create", account.user.name, "--expires-in", "0").exit_code != 0


def test_last_use_is_written_at_most_once_a_minute(app: Flask, account: Account) -> None:
    assert _get(app, account.token).status_code == 200
    first = _rows(app, account.user.name)[0][3]
    with app.extensions["database"].session() as db:
        earlier = utcnow() - timedelta(seconds=30)
        db.execute(update(ApiToken).where(ApiToken.user_id == account.user.id)
                   .values(last_used_at=earlier))
        db.commit()
    assert _get(app, account.token).status_code == 200
    kept = _rows(app, account.user.name)[0][3]
    assert kept != first and kept == earlier.isoformat(timespec="seconds").replace("+00:00", "Z")


def test_the_tokens_page_creates_shows_once_and_revokes(account: Account) -> None:
    client = account.login().client
    page = client.get("/tokens").get_data(as_text=True)
    assert "API tokens" in page and "Create token" in page
    csrf = account.csrf()
    made = client.post("/tokens", data={"name": "laptop", "expires_in_days": "30",
                                        "csrf_token": csrf})
    assert made.status_code == 303 and made.headers["Location"] == "/tokens"
    page = client.get("/tokens").get_data(as_text=True)
    token = re.search(r'<code id="new-token">([^<]+)</code>', page)
    assert token and "shown only this once" in page and "laptop" in page
    assert _get(account.app, token.group(1)).status_code == 200
    assert 'id="new-token"' not in client.get("/tokens").get_data(as_text=True)
    listed = account.api("GET", "/tokens").get_json()["tokens"]
    laptop = next(t for t in listed if t["name"] == "laptop")
    assert laptop["expires_at"] and laptop["last_used_at"]
    bad = client.post("/tokens", data={"expires_in_days": "-3", "csrf_token": csrf})
    assert bad.status_code == 400 and "1 to 3650" in bad.get_data(as_text=True)
    out = client.post(f"/tokens/{laptop['id']}/revoke", data={"csrf_token": csrf})
    assert out.status_code == 303
    assert _get(account.app, token.group(1)).status_code == 401


def test_tokens_are_each_users_own(make_account) -> None:
    alice, bob = make_account(), make_account()
    bobs = bob.api("GET", "/tokens").get_json()["tokens"][0]["id"]
    assert alice.api("POST", f"/tokens/{bobs}/revoke").status_code == 404
    assert bob.api("GET", "/tasks").status_code == 200
    made = alice.api("POST", "/tokens", data={"name": "more"})
    assert made.status_code == 403 and "cannot create tokens" in made.get_json()["error"]


def test_revoking_an_id_out_of_range_is_refused_in_words(app: Flask) -> None:
    result = run(app, "tokens", "revoke", str(10**25))
    assert result.exit_code != 0 and "range" in result.output
