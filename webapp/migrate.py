"""Schema migrations with Alembic, and the `db` command that applies them."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant will do: it names the advisory lock every upgrader takes.
ADVISORY_LOCK_KEY = 0x7461736B73  # "tasks"


def init_app(app: Flask) -> None:
    app.cli.add_command(db_cli)


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Percent signs in passwords would otherwise read as interpolation.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    with _one_upgrader_at_a_time(database_url):
        command.upgrade(alembic_config(database_url), revision)


@contextmanager
def _one_upgrader_at_a_time(database_url: str) -> Iterator[None]:
    """Every host may run the upgrade as it deploys: one applies the migrations while the
    others wait, then find nothing left to do (two at once would both create tables)."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        engine = create_engine(url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT pg_advisory_lock(:key)"),
                                   {"key": ADVISORY_LOCK_KEY})
                try:
                    yield
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                       {"key": ADVISORY_LOCK_KEY})
        finally:
            engine.dispose()
    elif url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        with open(f"{url.database}.upgrade-lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
    else:
        yield


@click.group("db", cls=AppGroup, help="Manage the task database's schema.")
def db_cli() -> None:
    pass


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def upgrade_command(revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    upgrade(current_app.config["DATABASE_URL"], revision)


@db_cli.command("revision")
@click.argument("message")
def revision_command(message: str) -> None:
    """Write a new migration from the difference between the models and the database."""
    command.revision(
        alembic_config(current_app.config["DATABASE_URL"]), message=message, autogenerate=True
    )
