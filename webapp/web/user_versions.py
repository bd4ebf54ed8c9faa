"""Every polling user's versions (the bell's and the tasks view's), known to a web process
without asking the database.

PostgreSQL announces each change (migrations 0005b and 0006l: NOTIFY bell_versions, "user
bell tasks"); a thread of the web process listens. Most polls are unchanged, so most are
then answered from memory. What this process knows is trusted only while it listens: a
notification sent while the connection was down is lost, so on any break everything
known is forgotten and polls read the database again until the listener is back.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import NamedTuple

import psycopg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

CHANNEL = "bell_versions"
# Forget everything past this many users rather than grow without bound; the polls that
# follow read the database once each and are remembered again.
MAX_USERS = 100_000
# How long the listener waits for a notification before it checks the connection.
IDLE_CHECK_SECONDS = 30.0


class Versions(NamedTuple):
    """What a user's polls compare: the bell's counters and the tasks view's rows."""

    bell: int
    tasks: int


class UserVersions:
    """A user's versions as PostgreSQL last announced them, or None when not known."""

    def __init__(self, database_url: str) -> None:
        self._conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._lock = threading.Lock()
        self._versions: dict[int, Versions] = {}
        # Bumped whenever what is known is forgotten; None while not listening.
        self._epoch: int | None = None
        self._epochs = 0
        self._pid: int | None = None

    def get(self, user_id: int) -> Versions | None:
        self._ensure_listening()
        with self._lock:
            return self._versions.get(user_id) if self._epoch is not None else None

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

    def _learn(self, user_id: int, versions: Versions) -> None:
        # Versions only grow: a read that raced a notification must not undo it.
        known = self._versions.get(user_id)
        if known is not None:
            versions = Versions(max(known.bell, versions.bell), max(known.tasks, versions.tasks))
        elif len(self._versions) >= MAX_USERS:
            self._forget(listening=True)
        self._versions[user_id] = versions

    def _forget(self, *, listening: bool) -> None:
        self._versions.clear()
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
        threading.Thread(target=self._listen_forever, name="user-versions", daemon=True).start()

    def _listen_forever(self) -> None:
        delay = 1.0
        while True:
            began = time.monotonic()
            try:
                self._listen()
            except Exception as exc:  # a lost connection, a database restart
                log.warning("user versions: not listening (%s); retrying in %.0f s", exc, delay)
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
                    user_id, bell, tasks = (int(part) for part in notice.payload.split())
                    with self._lock:
                        self._learn(user_id, Versions(bell, tasks))
                # Quiet for a while: make sure the connection is still there.
                connection.execute("SELECT 1")


def for_database(database_url: str) -> UserVersions | None:
    """Only PostgreSQL announces changes; elsewhere every poll reads the database."""
    return UserVersions(database_url) if database_url.startswith("postgresql") else None
