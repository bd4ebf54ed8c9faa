"""What running on several engines rests on: the run really uses the configuration it names,
the migrations go up and down on it and match the models, and the maintenance lock has
one holder however many consumers race for it."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from huey.storage import PriorityRedisStorage, SqliteStorage
from sqlalchemy import create_engine

from tests.support.services import scratch_backends
from webapp.core.models import Base, modelled
from webapp.migrate import alembic_config, upgrade
from webapp.settings import PROJECT_ROOT
from webapp.workers.maintenance import acquire_lock


def test_the_run_uses_the_configuration_it_names(
    app: Flask, environment: dict[str, str], request: pytest.FixtureRequest
) -> None:
    dialect = app.extensions["database"].engine.dialect.name
    huey = app.extensions["task_queue"].huey
    if request.config.getoption("--scale-out"):
        assert dialect == "postgresql"
        assert isinstance(huey.storage, PriorityRedisStorage) and huey.storage.blocking
        assert huey.name == environment["HUEY_NAME"] != "tasks"
    else:
        assert dialect == "sqlite"
        assert isinstance(huey.storage, SqliteStorage)


@contextmanager
def fresh_database(scale_out: dict[str, str], folder: Path) -> Iterator[str]:
    """An empty database on the run's engine."""
    if scale_out:
        with scratch_backends("bt_migrate") as variables:
            yield variables["DATABASE_URL"]
    else:
        yield f"sqlite:///{folder / 'migrate.sqlite3'}"


def schema_drift(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"include_name": modelled})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_migrations_go_up_and_down_and_match_the_models(
    scale_out: dict[str, str], tmp_path: Path
) -> None:
    with fresh_database(scale_out, tmp_path) as url:
        upgrade(url)
        assert schema_drift(url) == []
        command.downgrade(alembic_config(url), "base")
        upgrade(url)
        assert schema_drift(url) == []


def test_hosts_upgrading_at_once_all_succeed(scale_out: dict[str, str], tmp_path: Path) -> None:
    """As on a deploy where every host runs `flask db upgrade` as it starts."""
    upgrader = "import sys; from webapp.migrate import upgrade; upgrade(sys.argv[1])"
    with fresh_database(scale_out, tmp_path) as url:
        hosts = [subprocess.Popen([sys.executable, "-c", upgrader, url], cwd=PROJECT_ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for _ in range(4)]
        failures = [host.communicate(timeout=120)[1].decode()[-2000:] for host in hosts]
        assert [host.returncode for host in hosts] == [0] * 4, failures
        assert schema_drift(url) == []


@pytest.mark.parametrize("round_", range(5))
def test_the_maintenance_lock_has_one_holder_among_racing_consumers(
    app: Flask, round_: int
) -> None:
    database = app.extensions["database"]
    name = f"race-{uuid.uuid4().hex[:8]}"
    contenders = 6
    barrier = threading.Barrier(contenders)
    taken: dict[str, bool] = {}

    def contend(holder: str) -> None:
        with database.session() as db:
            barrier.wait()
            taken[holder] = acquire_lock(db, name, holder, ttl=60)

    threads = [threading.Thread(target=contend, args=(f"consumer-{n}",))
               for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [holder for holder, won in taken.items() if won]
    assert len(taken) == contenders and len(winners) == 1
    # The lock is held: nobody else gets it, its holder keeps it.
    with database.session() as db:
        losers = [holder for holder in taken if holder != winners[0]]
        assert not any(acquire_lock(db, name, holder, ttl=60) for holder in losers)
        assert acquire_lock(db, name, winners[0], ttl=60)
