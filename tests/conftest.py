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
import uuid
from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from tests.support.accounts import Account
from tests.support.processes import start_consumer, stop_consumer
from tests.support.services import (
    SHARED_POSTGRES,
    SHARED_REDIS,
    printable,
    scratch_backends,
    unreachable,
)
from webapp import create_app
from webapp.migrate import upgrade
from webapp.settings import Settings
from webapp.web.auth import create_token, create_user

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
    app.extensions["database"].dispose()


@pytest.fixture(scope="session")
def consumer(app: Flask, environment: dict[str, str]) -> Iterator[None]:
    process = start_consumer(environment)
    yield
    stop_consumer(process)


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
