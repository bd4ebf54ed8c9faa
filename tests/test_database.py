"""The database's connection pool: a connection the server ended while it sat idle in
the pool is replaced before use, and a busy pool is not pinged on every checkout."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, exc, text
from sqlalchemy.pool import NullPool

from webapp.core import db as database_module
from webapp.core.db import Database
from webapp.settings import Settings


def end_backend(url: str, pid: int) -> None:
    """End one server connection from outside the pool, as a restart or an idle timeout does."""
    outside = create_engine(url, poolclass=NullPool)
    with outside.connect() as connection:
        assert connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    outside.dispose()


def backend(database: Database) -> int:
    with database.engine.connect() as connection:
        return int(connection.scalar(text("SELECT pg_backend_pid()")))


def test_a_connection_ended_while_idle_is_replaced_before_use(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    if not settings.database_url.startswith("postgresql"):
        # SQLite's connections are files opened in this process: no server can end them.
        return
    database = Database(settings.database_url)
    try:
        first = backend(database)
        end_backend(settings.database_url, first)
        monkeypatch.setattr(database_module, "PING_AFTER_IDLE_SECONDS", 0.0)
        second = backend(database)  # no error: the ping found it gone and a new one served
        assert second != first
    finally:
        database.dispose()


def test_a_connection_back_a_moment_ago_is_used_without_a_ping(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    if not settings.database_url.startswith("postgresql"):
        return
    monkeypatch.setattr(database_module, "PING_AFTER_IDLE_SECONDS", 3600.0)
    database = Database(settings.database_url)
    try:
        first = backend(database)
        end_backend(settings.database_url, first)
        # Not pinged, so the statement meets the ended connection, as any statement
        # does in an outage; the failure empties the pool and the next one is served.
        with pytest.raises(exc.OperationalError) as failure:
            backend(database)
        assert failure.value.connection_invalidated
        assert backend(database) != first
    finally:
        database.dispose()
