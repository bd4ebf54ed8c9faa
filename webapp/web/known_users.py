"""What a web process knows of its users without asking the database: each polling user's
versions (the bell's and the tasks view's), and the rows of the users it serves.

PostgreSQL announces every change of a user's row (migrations 0005b, 0006l and 0010u:
NOTIFY bell_versions, "user bell tasks", with " row" when more than the versions changed,
or "user gone"); a thread of the web process listens. Most polls are unchanged, so most
are answered from memory, and most signed-in requests find their user here rather than
reading it. What this process knows is trusted only while it listens: a notification
sent while the connection was down is lost, so on any break everything known is
forgotten and requests read the database again until the listener is back.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, NamedTuple

import psycopg
from sqlalchemy import event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import ORMExecuteState, Session, make_transient_to_detached, sessionmaker
from sqlalchemy.sql.elements import BinaryExpression, BindParameter

from webapp.core.models import User

log = logging.getLogger(__name__)

CHANNEL = "bell_versions"
# Forget everything past this many users rather than grow without bound; the requests
# that follow read the database once each and are remembered again.
MAX_USERS = 100_000
# Rows take about a kilobyte each, versions a tenth of that: fewer of them are kept.
MAX_ROWS = 20_000
# How long the listener waits for a notification before it checks the connection.
IDLE_CHECK_SECONDS = 30.0

# A user's row as kept: its versions are kept apart (and move without the row).
_ROW_COLUMNS = tuple(attribute.key for attribute in inspect(User).column_attrs
                     if attribute.key not in ("bell_version", "tasks_version"))


class Versions(NamedTuple):
    """What a user's polls compare: the bell's counters and the tasks view's rows."""

    bell: int
    tasks: int


class RowMark(NamedTuple):
    """Taken before reading a user's row: the read is kept only if nothing changed the row
    (that this process heard of) since it began."""

    epoch: int | None
    changes: int


class KnownUsers:
    """Users' versions and rows as PostgreSQL last announced them, or None when not known."""

    def __init__(self, database_url: str) -> None:
        self._conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._lock = threading.Lock()
        self._versions: dict[int, Versions] = {}
        self._rows: dict[int, dict[str, Any]] = {}
        # Each user's session_version, learnt and forgotten with the row but kept as long
        # as the versions are (rows are dropped sooner): what a poll's session is checked by.
        self._sessions: dict[int, int] = {}
        # Row changes heard so far, and the count at each user's last one.
        self._changes = 0
        self._changed_at: dict[int, int] = {}
        # Bumped whenever what is known is forgotten; None while not listening.
        self._epoch: int | None = None
        self._epochs = 0
        self._pid: int | None = None

    # -- versions ----------------------------------------------------------------------

    def get(self, user_id: int) -> Versions | None:
        self._ensure_listening()
        with self._lock:
            return self._versions.get(user_id) if self._epoch is not None else None

    def of_session(self, user_id: int, session_version: int | None) -> Versions | None:
        """A signed-in session's versions, known only while its user's row, as last read,
        says the session is current: a sign-out made anywhere bumps the row's
        session_version, so that session's polls go on to be refused."""
        self._ensure_listening()
        with self._lock:
            current = self._sessions.get(user_id) if self._epoch is not None else None
            if current is None or current != session_version:
                return None
            return self._versions[user_id]

    def epoch(self) -> int | None:
        """Take this before reading a version from the database, and hand it to remember():
        a read is only kept if the listener heard every change since it began."""
        self._ensure_listening()
        with self._lock:
            return self._epoch

    def remember(self, user_id: int, versions: Versions, epoch: int | None) -> None:
        with self._lock:
            if epoch is not None and epoch == self._epoch:
                self._learn(user_id, versions)

    # -- rows --------------------------------------------------------------------------

    def user(self, db: Session, user_id: int) -> tuple[User | None, RowMark]:
        """The user as a row of `db` when this process knows it, without a read; else
        None, and the mark to hand remember_user() with the row read instead."""
        self._ensure_listening()
        with self._lock:
            values = self._rows.get(user_id) if self._epoch is not None else None
            mark = RowMark(self._epoch, self._changes)
            if values is None:
                return None, mark
            # A kept row's versions are known too: both are learnt together and forgotten
            # together.
            versions = self._versions[user_id]
        user = User(**values, bell_version=versions.bell, tasks_version=versions.tasks)
        # As if just read: the session writes its changes back as usual.
        make_transient_to_detached(user)
        db.add(user)
        return user, mark

    def remember_user(self, user: User, mark: RowMark) -> None:
        with self._lock:
            if (mark.epoch is None or mark.epoch != self._epoch
                    or self._changed_at.get(user.id, -1) > mark.changes):
                return
            self._learn(user.id, Versions(user.bell_version, user.tasks_version))
            self._sessions[user.id] = user.session_version
            if len(self._rows) >= MAX_ROWS:
                # Dropping rows nobody changed makes no read that is under way wrong.
                self._rows.clear()
            self._rows[user.id] = {column: getattr(user, column) for column in _ROW_COLUMNS}

    def forget_rows(self, user_ids: set[int] | None) -> None:
        """This process changed these users' rows (None: some it cannot name): read them
        again rather than wait to hear of it."""
        with self._lock:
            if user_ids is None:
                self._forget(listening=self._epoch is not None)
                return
            for user_id in user_ids:
                self._row_changed(user_id)

    # -- what is heard -----------------------------------------------------------------

    def _learn(self, user_id: int, versions: Versions) -> None:
        # Versions only grow: a read that raced a notification must not undo it.
        known = self._versions.get(user_id)
        if known is not None:
            versions = Versions(max(known.bell, versions.bell), max(known.tasks, versions.tasks))
        elif len(self._versions) >= MAX_USERS:
            self._forget(listening=True)
        self._versions[user_id] = versions

    def _row_changed(self, user_id: int) -> None:
        if len(self._changed_at) >= MAX_USERS:
            # A new epoch: no read begun before this is kept, so nothing heard is missed.
            self._forget(listening=self._epoch is not None)
        self._rows.pop(user_id, None)
        self._sessions.pop(user_id, None)
        self._changes += 1
        self._changed_at[user_id] = self._changes

    def _hear(self, payload: str) -> None:
        user, *rest = payload.split()
        user_id = int(user)
        with self._lock:
            if rest == ["gone"]:
                self._versions.pop(user_id, None)
                self._row_changed(user_id)
                return
            if rest[2:] == ["row"]:
                self._row_changed(user_id)
            self._learn(user_id, Versions(int(rest[0]), int(rest[1])))

    def _forget(self, *, listening: bool) -> None:
        self._versions.clear()
        self._rows.clear()
        self._sessions.clear()
        self._changed_at.clear()
        self._epochs += 1
        self._epoch = self._epochs if listening else None

    def _ensure_listening(self) -> None:
        # Started on first use, in the process that uses it: gunicorn forks its workers.
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._forget(listening=False)
        threading.Thread(target=self._listen_forever, name="known-users", daemon=True).start()

    def _listen_forever(self) -> None:
        delay = 1.0
        while True:
            began = time.monotonic()
            try:
                self._listen()
            except Exception as exc:  # a lost connection, a database restart
                log.warning("known users: not listening (%s); retrying in %.0f s", exc, delay)
            with self._lock:
                self._forget(listening=False)
            # Back off while the database stays away; start over after a good long listen.
            delay = 1.0 if time.monotonic() - began > 60 else min(delay * 2, 30.0)
            time.sleep(delay)

    def _listen(self) -> None:
        # TCP keepalives: a silently dropped connection is noticed within half a minute.
        with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10, keepalives=1,
                             keepalives_idle=10, keepalives_interval=5,
                             keepalives_count=3) as connection:
            connection.execute(f"LISTEN {CHANNEL}")
            with self._lock:
                self._forget(listening=True)
            while True:
                for notice in connection.notifies(timeout=IDLE_CHECK_SECONDS):
                    self._hear(notice.payload)
                # Quiet for a while: make sure the connection is still there.
                connection.execute("SELECT 1")


def for_database(database_url: str) -> KnownUsers | None:
    """Only PostgreSQL announces changes; elsewhere every request reads the database."""
    return KnownUsers(database_url) if database_url.startswith("postgresql") else None


def forget_what_sessions_write(sessions: sessionmaker[Session], known: KnownUsers) -> None:
    """Users this process writes are read again once the write commits, not only once
    PostgreSQL's announcement of it arrives (a moment later, on another thread)."""

    @event.listens_for(sessions, "do_orm_execute")
    def _statement(state: ORMExecuteState) -> None:
        if (state.is_update or state.is_delete) and state.bind_mapper is inspect(User):
            _written(state.session).append(_named_user(state.statement.whereclause))

    @event.listens_for(sessions, "before_flush")
    def _flush(session: Session, *_args: Any) -> None:
        written = _written(session)
        for instance in (*session.dirty, *session.deleted):
            if isinstance(instance, User):
                written.append(instance.id)

    @event.listens_for(sessions, "after_commit")
    def _committed(session: Session) -> None:
        written = session.info.pop("users_written", None)
        if written:
            known.forget_rows(None if None in written else set(written))

    @event.listens_for(sessions, "after_rollback")
    def _rolled_back(session: Session) -> None:
        session.info.pop("users_written", None)


def _written(session: Session) -> list[int | None]:
    return session.info.setdefault("users_written", [])


def _named_user(where: Any) -> int | None:
    """The id of `WHERE users.id = <value>`, the shape of every write of one user; None
    for any other."""
    if (isinstance(where, BinaryExpression) and isinstance(where.right, BindParameter)
            and where.left.compare(User.__table__.c.id) and isinstance(where.right.value, int)):
        return where.right.value
    return None
