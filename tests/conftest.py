"""Fixtures on real parts: the task database, a real Huey consumer process, and the Flask
app on the same temporary instance folder.

Two configurations, the same tests: the embedded default (a SQLite file and SqliteHuey),
or with `--scale-out` PostgreSQL and Redis (`make test` runs both). A scale-out run gets
a database of its own, created for the session and dropped after, and a Huey name of its
own on the shared Redis, so runs never see each other's tasks.

Tests share one instance and isolate themselves by working as fresh users.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.private_services import (
    SHARED_POSTGRES,
    SHARED_REDIS,
    printable,
    scratch_backends,
    unreachable,
)
from webapp import create_app
from webapp.auth import create_token, create_user
from webapp.migrate import upgrade
from webapp.models import Status, Task, User, utcnow
from webapp.settings import PROJECT_ROOT, Settings

BIN = Path(sys.executable).parent
UNREACHABLE = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--scale-out", action="store_true",
                     help="run on PostgreSQL (TEST_POSTGRES_URL) and Redis (TEST_REDIS_URL), "
                          "a fresh database and Huey name, instead of SQLite + SqliteHuey")


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("--scale-out"):
        return
    problem = unreachable()
    if problem and os.environ.get("CI") == "true":
        pytest.exit(f"scale-out run: {problem}; under CI=true it may not be skipped",
                    returncode=pytest.ExitCode.USAGE_ERROR)
    if problem:
        config.stash[UNREACHABLE] = problem


def pytest_report_header(config: pytest.Config) -> str:
    if not config.getoption("--scale-out"):
        return "configuration: embedded (SQLite records, SqliteHuey queue)"
    return (f"configuration: scale-out (PostgreSQL {printable(SHARED_POSTGRES)}, "
            f"Redis {SHARED_REDIS})")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problem = config.stash.get(UNREACHABLE, None)
    if problem:
        skip = pytest.mark.skip(reason=f"scale-out run skipped: {problem}")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def scale_out(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """For `--scale-out`, a fresh database and Huey name, gone after the session."""
    if not request.config.getoption("--scale-out"):
        yield {}
        return
    with scratch_backends("bt_test") as variables:
        yield variables


@pytest.fixture(scope="session")
def environment(tmp_path_factory: pytest.TempPathFactory,
                scale_out: dict[str, str]) -> dict[str, str]:
    """The environment both the app and the consumer read, on a fresh instance folder.

    What the shell says about the backends is ignored: the configuration is the run's.
    """
    instance = tmp_path_factory.mktemp("instance")
    ignored = ("INSTANCE_PATH", "DATABASE_URL", "HUEY_URL", "HUEY_NAME", "PROXY_COUNT")
    env = {key: value for key, value in os.environ.items() if key not in ignored}
    env["INSTANCE_PATH"] = str(instance)
    return env | scale_out


@pytest.fixture(scope="session")
def settings(environment: dict[str, str]) -> Settings:
    settings = Settings.from_env(environment)
    upgrade(settings.database_url)
    return settings


@pytest.fixture(scope="session")
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings, TESTING=True)
    yield app
    app.extensions["database"].engine.dispose()


def start_consumer(environment: dict[str, str], name: str = "consumer",
                   workers: int = 4) -> subprocess.Popen[bytes]:
    """A real `huey_consumer` process on the environment's instance."""
    log_path = Path(environment["INSTANCE_PATH"]) / f"{name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(BIN / "huey_consumer"), "huey_tasks.huey", "--workers", str(workers),
             "--worker-type", "thread", "--delay", "0.05", "--max-delay", "0.2"],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    time.sleep(0.5)
    if process.poll() is not None:
        pytest.fail(f"the consumer did not start:\n{log_path.read_text()}")
    return process


def stop_consumer(process: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def consumer(app: Flask, environment: dict[str, str]) -> Iterator[None]:
    process = start_consumer(environment)
    yield
    stop_consumer(process)


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(interval)


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
        page = self.client.get("/tasks/new").get_data(as_text=True)
        match = re.search(r'name="csrf_token" value="([^"]+)"', page)
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


@pytest.fixture
def make_account(app: Flask) -> Callable[..., Account]:
    def make(admin: bool = False) -> Account:
        password = uuid.uuid4().hex
        with app.extensions["database"].session() as db:
            user = create_user(db, f"user-{uuid.uuid4().hex[:10]}", password, admin=admin)
            token = create_token(db, user)
        return Account(app, user, password, token)

    return make


@pytest.fixture
def account(make_account: Callable[..., Account]) -> Account:
    return make_account()
