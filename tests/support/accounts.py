"""A fresh user as the tests drive one: a browser-like client, an API token, records
written straight to the database, and launches through the JSON API."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.support.processes import wait_for
from webapp.core.models import Status, Task, User, utcnow


class Account:
    """A fresh user with a browser-like client (session + CSRF) and an API token."""

    def __init__(self, app: Flask, user: User, password: str, token: str) -> None:
        self.app = app
        self.user = user
        self.password = password
        self.token = token
        self.client: FlaskClient = app.test_client()

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def api(self, method: str, url: str, **kwargs: Any) -> Any:
        headers = {"Accept": "application/json", **self.bearer, **kwargs.pop("headers", {})}
        return self.app.test_client().open(url, method=method, headers=headers, **kwargs)

    def csrf(self) -> str:
        # Every page's body carries it for htmx, embedded or not, whatever forms it has.
        page = self.client.get("/tasks/new").get_data(as_text=True)
        match = re.search(r'"X-CSRFToken": "([^"]+)"', page)
        assert match, "no CSRF token on the page"
        return match.group(1)

    def login(self) -> Account:
        page = self.client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token
        response = self.client.post(
            "/login",
            data={"name": self.user.name, "password": self.password, "csrf_token": token.group(1)},
        )
        assert response.status_code == 303, response.get_data(as_text=True)
        return self

    def add_task(self, status: Status = Status.COMPLETED, **values: Any) -> Task:
        """A record written straight to the database, for views that only read records."""
        now = utcnow()
        created = values.pop("created_at", now - timedelta(seconds=10))
        defaults: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "owner_id": self.user.id,
            "kind": "sleep",
            "description": f"{status} task",
            "status": status,
            "params": {"seconds": 1.0, "steps": 1, "fail": "", "flaky": 0},
            "created_at": created,
        }
        if status != Status.QUEUED:
            defaults["started_at"] = created + timedelta(seconds=1)
            defaults["heartbeat_at"] = created + timedelta(seconds=1)
        if status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED):
            defaults["finished_at"] = created + timedelta(seconds=3)
            defaults["outcome"] = {"completed": "Done", "failed": "It broke",
                                   "cancelled": "Cancelled by user"}[status]
        if status == Status.RUNNING:
            defaults["progress"] = 0.4
            defaults["progress_message"] = "Step 2 of 5"
        task = Task(**(defaults | values))
        with self.app.extensions["database"].session() as db:
            db.add(task)
            db.commit()
        return task

    @property
    def root(self) -> Path:
        """The user's folder under DATA_ROOT, as the operations see it."""
        return self.app.extensions["user_files"].root(self.user.name)

    def launch(self, kind: str, **params: Any) -> str:
        """Launch through the JSON API; returns the task id."""
        response = self.api("POST", "/tasks", json={"kind": kind, **params})
        assert response.status_code == 201, response.get_json()
        return response.get_json()["id"]

    def final(self, task_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """The task's JSON (with details) once it has reached a final status. Generous:
        a loaded machine is slow, and a test of what happens must not test how fast."""

        def done() -> dict[str, Any] | None:
            body = self.api("GET", f"/tasks/{task_id}").get_json()
            return body if body["status"] in ("completed", "failed", "cancelled") else None

        return wait_for(done, timeout=timeout)

    def task(self, task_id: str) -> Task:
        with self.app.extensions["database"].session() as db:
            task = db.get(Task, task_id)
            assert task is not None
            return task


def running_sleep(account: Account, description: str) -> str:
    """A long sleep task of the account's, once it runs."""
    task_id = account.launch("sleep", seconds=60, steps=120, description=description)
    wait_for(lambda: account.api("GET", f"/tasks/{task_id}").get_json()["status"] == "running")
    return task_id


def seed_demo(account: Account, later: float) -> list[str]:
    """What `flask demo` makes, for this account: the ids of the tasks it launched."""
    from webapp.dev.demo import seed_tasks

    app = account.app
    with app.extensions["database"].session() as db:
        user = db.merge(account.user)
        tasks = seed_tasks(db, app.extensions["task_queue"], app.extensions["user_files"],
                           user, later=later)
        return [task.id for task in tasks]
