"""Throttling: wrong passwords per account and per address, launches per user; each a 429
with Retry-After and words, counted in the database that every web process shares."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.accounts import Account
from webapp import create_app
from webapp.core.models import Status
from webapp.settings import Settings


def _client(app: Flask) -> FlaskClient:
    """A browser at an address of its own, so other tests' sign-ins do not count here."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"
    return client


def _sign_in(client: FlaskClient, name: str, password: str):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    return client.post("/login", data={"name": name, "password": password,
                                       "csrf_token": token.group(1)})


@pytest.fixture
def limits(app: Flask, monkeypatch: pytest.MonkeyPatch):
    """Set some of the limits for one test."""

    def set_limits(**values: int) -> None:
        monkeypatch.setitem(app.config, "USER_LIMITS",
                            replace(app.config["USER_LIMITS"], **values))

    return set_limits


def test_wrong_passwords_pause_the_account_even_for_the_right_one(
        app: Flask, make_account, settings: Settings) -> None:
    account, other = make_account(), make_account()
    client = _client(app)
    allowed = app.config["USER_LIMITS"].login_failures_per_account
    for _ in range(allowed):
        assert _sign_in(client, account.user.name, "wrong").status_code == 401
    # Another web process (another app on the same database) sees the same counts, and
    # the pause holds from another address too.
    elsewhere = _client(create_app(settings, TESTING=True))
    refused = _sign_in(elsewhere, account.user.name, account.password)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 900
    text = refused.get_data(as_text=True)
    assert "Too many wrong passwords for this account" in text and "Too many requests" in text
    assert _sign_in(client, other.user.name, other.password).status_code == 303


def test_wrong_passwords_from_one_address_pause_that_address(app: Flask, make_account,
                                                             limits) -> None:
    limits(login_failures_per_address=3)
    client, account = _client(app), make_account()
    for _ in range(3):
        assert _sign_in(client, f"nobody-{uuid.uuid4().hex}", "x").status_code == 401
    refused = _sign_in(client, account.user.name, account.password)
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert "for this address" in refused.get_data(as_text=True)
    assert _sign_in(_client(app), account.user.name, account.password).status_code == 303


def test_launches_per_minute_per_user(account: Account, make_account, limits) -> None:
    limits(launches_per_minute=3)
    statuses = []
    # A minute may turn over once during the test; it cannot twice.
    for _ in range(7):
        response = account.api("POST", "/tasks", json={"kind": "sleep", "seconds": 0})
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[-1] == 429 and statuses.count(201) <= 6
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert "launched 3 tasks this minute" in response.get_json()["error"]
    assert make_account().api("POST", "/tasks", json={"kind": "sleep",
                                                      "seconds": 0}).status_code == 201


def test_active_tasks_per_user(app: Flask, account: Account, limits) -> None:
    limits(max_active_tasks_per_user=2)
    account.add_task(Status.QUEUED)
    account.add_task(Status.RUNNING)
    account.add_task(Status.COMPLETED)
    refused = account.api("POST", "/tasks", json={"kind": "sleep", "seconds": 0})
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "10"
    assert "2 tasks queued or running" in refused.get_json()["error"]
    account.login()
    page = account.client.post("/tasks", data={"kind": "sleep", "seconds": "0",
                                               "csrf_token": account.csrf()})
    assert page.status_code == 429 and "cancel some" in page.get_data(as_text=True)
    # Operators launching from the command line are not limited.
    result = app.test_cli_runner().invoke(args=["tasks", "launch", "sleep", "--user",
                                                account.user.name, "seconds=0"])
    assert result.exit_code == 0, result.output
