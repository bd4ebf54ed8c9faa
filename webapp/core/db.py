"""The database: one engine per process, a session per request or per task step."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Select, create_engine, event, exc, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker


class Database:
    """An engine and its session factory, usable with or without Flask."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _create_engine(url)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        # PostgreSQL's own transactions cost a BEGIN and a ROLLBACK, each a round trip, on
        # top of a read request's one or two queries. Under READ COMMITTED a transaction
        # gives its statements no common snapshot anyway, so reads lose nothing without it.
        # A pool of its own, whose connections stay in autocommit: switching a pooled
        # connection in and out of it on every request cost 0.1 to 0.2 ms. (It connects
        # only when a read asks: a consumer never does.)
        self.autocommit_engine = (None if url.startswith("sqlite")
                                  else _create_engine(url, isolation_level="AUTOCOMMIT"))

    def session(self, *, autocommit: bool = False) -> Session:
        """A session; `autocommit` for a request that reads, and writes at most one
        statement per commit (a GET marking what the user saw)."""
        if autocommit and self.autocommit_engine is not None:
            return self.Session(bind=self.autocommit_engine)
        return self.Session()

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    @property
    def engines(self) -> list[Engine]:
        """The engine of transactions, and the one of reads where it is another."""
        return [self.engine] + ([self.autocommit_engine] if self.autocommit_engine else [])

    def dispose(self) -> None:
        """Close every pooled connection (before a database is dropped, say)."""
        for engine in self.engines:
            engine.dispose()


class Precompiled:
    """A Core SELECT compiled once per dialect and handed to the driver as it is.

    On every run SQLAlchemy walks a statement whole for its cache key: for a page of the
    tasks view (subqueries, a join, its total) that took 0.2 ms, and its result and ORM
    layers as much again, where PostgreSQL took 0.4 ms to answer. For the few
    statements every open view runs every few seconds, this compiles once and gives the
    driver the SQL and the parameters; each column comes back through its type's own
    processing, so the rows hold what SQLAlchemy would have given.
    """

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        # By dialect: the SQL, the values it holds, the order of its parameters where the
        # driver takes them by position (else None), and each column's processing once
        # the first result has said what the driver returns.
        self._compiled: dict[str, tuple[str, dict[str, Any], list[str] | None,
                                        list[tuple[int, Any]] | None]] = {}

    def rows(self, db: Session, params: dict[str, Any]) -> list[list[Any]]:
        """The statement's rows for these parameters (those it has no value for)."""
        connection = db.connection()
        dialect = connection.dialect
        found = self._compiled.get(dialect.name)
        if found is None:
            # Values the statement holds are made the driver's once; those given at each
            # run are plain numbers. (A statement with a list parameter has no SQL before
            # its values are known: it cannot be compiled once.)
            compiled = self.statement.compile(dialect=dialect)
            held: dict[str, Any] = {}
            for name, value in compiled.params.items():
                process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(
                    dialect) if name in compiled.binds else None
                held[name] = value if process is None or value is None else process(value)
            order = list(compiled.positiontup or ()) if compiled.positional else None
            found = self._compiled[dialect.name] = (str(compiled), held, order, None)
        sql, held, order, processors = found
        values = {**held, **params}
        arguments: Any = values if order is None else tuple(values[name] for name in order)
        result = connection.exec_driver_sql(sql, arguments)
        if processors is None:
            # Some types' processing depends on what the driver says it returns.
            described = result.cursor.description or ()
            processors = [(index, process) for index, (column, about)
                          in enumerate(zip(self.statement.selected_columns, described,
                                           strict=True))
                          if (process := column.type.dialect_impl(dialect)
                              .result_processor(dialect, about[1])) is not None]
            self._compiled[dialect.name] = (sql, held, order, processors)
        # The driver's rows as they are: SQLAlchemy's row objects would cost as much as
        # the processing below.
        rows = [list(row) for row in result.cursor.fetchall()]
        result.close()
        for row in rows:
            for index, process in processors:
                row[index] = process(row[index])
        return rows


def why(exc: BaseException) -> str:
    """What went wrong with the database, on one line for the logs: the driver's own first
    line, without SQLAlchemy's statement and link (a log entry is a line an operator greps)."""
    cause = getattr(exc, "orig", None) or exc
    first = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {first[0] if first else ''}"


# A pooled connection idle longer than this is tested before use (see _ping_when_idle).
PING_AFTER_IDLE_SECONDS = 1.0


def _create_engine(url: str, **options: Any) -> Engine:
    if not url.startswith("sqlite"):
        engine = create_engine(url, **options)
        _ping_when_idle(engine)
        return engine
    # Web threads and consumer workers write the same file: wait for the lock
    # instead of failing, and let readers go on while one writes (WAL).
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Test a pooled connection before use only when it has been idle a while.

    SQLAlchemy's pool_pre_ping costs a round trip on every checkout: a fifth of a
    polled page's time on PostgreSQL. A server restart or an idle timeout ends
    connections that have sat in the pool; one handed back a moment ago (a busy web
    node's) is as good as the ping would say, and if the server went away in that
    moment the statement fails as any statement during an outage does, and the
    failure invalidates the whole pool.
    """

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # Every connection made before this one is as old: replace them all.
            raise exc.InvalidatePoolError(f"idle connection failed its ping: {error}") from error


def init_app(app: Any) -> None:
    """Give each request its own session, closed when the request ends."""
    from flask import g

    app.extensions["database"] = Database(app.config["DATABASE_URL"])

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()


def get_session() -> Session:
    """The current request's session: in autocommit for GET and HEAD, which only read or
    write one statement at a time."""
    from flask import current_app, g, request

    if "db_session" not in g:
        g.db_session = current_app.extensions["database"].session(
            autocommit=request.method in ("GET", "HEAD"))
    return g.db_session
