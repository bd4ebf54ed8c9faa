"""The Flask commands of the public interface: users, tokens, tasks launch, db, demo."""

from __future__ import annotations

import uuid

from flask import Flask

from tests.support.accounts import Account


def run(app: Flask, *args: str, input: str | None = None):
    return app.test_cli_runner().invoke(args=list(args), input=input)


def test_users_create_prints_a_password_that_signs_in(app: Flask) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    result = run(app, "users", "create", name)
    assert result.exit_code == 0, result.output
    password = result.output.strip()
    assert len(password) >= 12
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post("/login", data={"name": name, "password": password,
                                           "csrf_token": token})
    assert response.status_code == 303
    again = run(app, "users", "create", name)
    assert again.exit_code != 0 and "already exists" in again.output


def test_users_create_admin_with_password_from_stdin(app: Flask) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    result = run(app, "users", "create", name, "--admin", "--password-stdin",
                 input="correct horse battery\n")
    assert result.exit_code == 0 and result.output == ""
    token = run(app, "tokens", "create", name).output.strip()
    response = app.test_client().get(
        "/tasks", headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    assert response.status_code == 200


def test_tokens_create_prints_one_line(app: Flask, account: Account) -> None:
    result = run(app, "tokens", "create", account.user.name)
    assert result.exit_code == 0
    assert result.output.count("\n") == 1 and result.output.startswith("bt_")
    assert run(app, "tokens", "create", "nobody-here").exit_code != 0


def test_tasks_launch_refuses_bad_input(app: Flask, account: Account) -> None:
    bad = run(app, "tasks", "launch", "sleep", "--user", account.user.name, "seconds=soon")
    assert bad.exit_code != 0 and "seconds must be a number" in bad.output
    unknown = run(app, "tasks", "launch", "nap", "--user", account.user.name)
    assert unknown.exit_code != 0 and "Unknown kind 'nap'" in unknown.output
    shape = run(app, "tasks", "launch", "sleep", "--user", account.user.name, "seconds")
    assert shape.exit_code != 0 and "key=value" in shape.output
    nobody = run(app, "tasks", "launch", "sleep", "--user", "nobody-here")
    assert nobody.exit_code != 0
    assert account.api("GET", "/tasks").get_json()["total"] == 0


def test_db_upgrade_is_idempotent(app: Flask) -> None:
    assert run(app, "db", "upgrade").exit_code == 0
