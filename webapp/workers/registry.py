"""A consumer's entry in the `consumers` table: registered at start, renewed from a thread
of its own while it runs, removed when it stops, so the administrator's overview and
`flask workers` see every consumer on every host with its tasks in hand.

A consumer killed without a word leaves its row behind: after a lease without a beat it is
shown as gone, and after GONE_KEPT any consumer's beat drops it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import SQLAlchemyError

from webapp.core.db import Database, why
from webapp.core.models import ConsumerProcess, utcnow

log = logging.getLogger(__name__)

# How long a consumer that stopped beating stays on the overview, marked gone.
GONE_KEPT = timedelta(hours=1)


class Registration:
    def __init__(self, database: Database, lease_seconds: float, workers: int,
                 in_hand: Callable[[], int]) -> None:
        self.database = database
        self.workers = workers
        self.in_hand = in_hand
        # A quarter of a lease, as the tasks' own heartbeats: alive means beating.
        self.interval = max(0.2, lease_seconds / 4)
        self.id = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.started_at = utcnow()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._registered = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="registry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            with self.database.session() as db:
                db.execute(delete(ConsumerProcess).where(ConsumerProcess.id == self.id))
                db.commit()
        except SQLAlchemyError as exc:
            log.warning("could not remove this consumer from the registry (%s)", why(exc))

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                self.beat()
            except SQLAlchemyError as exc:
                if not failing:
                    log.warning("could not renew this consumer's registration (%s)", why(exc))
                failing = True
            else:
                if failing:
                    log.info("this consumer's registration is renewed again")
                failing = False
            self._stop.wait(self.interval)

    def beat(self) -> None:
        """Register, or renew; and drop the entries of consumers long gone."""
        now = utcnow()
        with self.database.session() as db:
            if self._registered:
                renewed = db.execute(
                    update(ConsumerProcess).where(ConsumerProcess.id == self.id)
                    .values(heartbeat_at=now, tasks_in_hand=self.in_hand())
                ).rowcount
            else:
                renewed = 0
            if not renewed:
                # First beat, or a row dropped while we could not beat: register (again).
                db.add(ConsumerProcess(
                    id=self.id, host=socket.gethostname()[:255], pid=os.getpid(),
                    workers=self.workers, tasks_in_hand=self.in_hand(), started_at=self.started_at,
                    heartbeat_at=now))
            db.execute(delete(ConsumerProcess)
                       .where(ConsumerProcess.heartbeat_at < now - GONE_KEPT))
            db.commit()
        self._registered = True
