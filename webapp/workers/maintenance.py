"""Periodic work that keeps tasks from being lost or stuck, done by one consumer at a time:
dispatch launches the queue never got, reap tasks whose worker died, purge old tasks
and the uploads no task will read, and empty the trash.

Huey drops a message when a worker takes it and has no acknowledgement, so the
records, not the queue, are what this repairs from.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, selectinload

from webapp.core import metrics, transitions
from webapp.core.db import Database, why
from webapp.core.kinds import all_kinds, kind_named
from webapp.core.models import ACTIVE_STATUSES, FINAL_STATUSES, Status, Task, WorkerLock, utcnow
from webapp.core.queue import UNREACHABLE
from webapp.core.transitions import Queue
from webapp.core.userfiles import UserFiles, empty_trash, remove
from webapp.settings import Settings

log = logging.getLogger(__name__)

MAINTENANCE_LOCK = "maintenance"
PURGE_EVERY = timedelta(hours=1)
BATCH = 500


def acquire_lock(db: Session, name: str, holder: str, ttl: float) -> bool:
    """Take (or keep) a lock until now + ttl; it frees itself if its holder dies."""
    now = utcnow()
    expires = now + timedelta(seconds=ttl)
    taken = db.execute(
        update(WorkerLock)
        .where(
            WorkerLock.name == name,
            or_(WorkerLock.expires_at < now, WorkerLock.holder == holder),
        )
        .values(holder=holder, expires_at=expires)
    ).rowcount
    if not taken:
        try:
            db.add(WorkerLock(name=name, holder=holder, expires_at=expires))
            db.flush()
            taken = 1
        except IntegrityError:
            db.rollback()
            return False
    db.commit()
    return bool(taken)


def dispatch_lost(db: Session, queue: Queue, lease_seconds: float) -> int:
    """Enqueue queued records that were never handed over, or whose message is gone.

    A record dispatched over a lease ago whose id is neither in the queue nor in its
    schedule lost its message (a consumer died between taking it and claiming the
    record, say, or Redis restarted empty), however many other messages wait. Enqueuing
    again is safe: a worker claims a record only while it is still queued, so a message
    taken just as we look merely becomes one that is dropped.
    """
    now = utcnow()
    due = (Task.status == Status.QUEUED) & or_(Task.run_after.is_(None), Task.run_after <= now)
    ids = list(db.scalars(select(Task.id).where(due, Task.dispatched_at.is_(None)).limit(BATCH)))
    stale = list(
        db.scalars(
            select(Task.id)
            .where(due, Task.dispatched_at < now - timedelta(seconds=lease_seconds))
            .order_by(Task.created_at)
        )
    )
    lost = []
    if stale:
        waiting = queue.waiting_ids()
        lost = [task_id for task_id in stale if task_id not in waiting][:BATCH]
    metrics.redispatched("never_enqueued", len(ids))
    metrics.redispatched("message_lost", len(lost))
    ids += lost
    for task_id in ids:
        transitions.dispatch(db, queue, task_id)
    return len(ids)


def reap_expired(db: Session, queue: Queue, lease_seconds: float) -> tuple[int, int]:
    """Running tasks whose heartbeat stopped: run again where safe, else fail them.

    Returns (re-queued, failed).
    """
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    expired = db.execute(
        select(Task.id, Task.kind, Task.attempt, Task.hand_backs)
        .where(Task.status == Status.RUNNING, Task.heartbeat_at < cutoff)
        .limit(BATCH)
    ).all()
    requeued = failed = 0
    for task_id, kind_name, attempt, hand_backs in expired:
        kind = kind_named(kind_name)
        # Attempts a stopping consumer handed back spent nothing.
        spent = attempt - hand_backs
        again = kind is not None and kind.retry_safe and spent < kind.max_attempts
        if not transitions.reap(db, task_id, attempt, cutoff, again=again):
            continue
        log.warning("task %s lost its worker; %s", task_id, "re-queued" if again else "failed")
        if again:
            requeued += 1
            transitions.dispatch(db, queue, task_id)
        else:
            failed += 1
    return requeued, failed


def purge_finished(db: Session, older_than: datetime) -> int:
    """Delete finished tasks older than the retention, in batches that keep locks short."""
    purged = 0
    while True:
        batch = list(
            db.scalars(
                select(Task.id)
                .where(Task.status.in_(FINAL_STATUSES), Task.finished_at < older_than)
                .limit(BATCH)
            )
        )
        if not batch:
            return purged
        db.execute(delete(Task).where(Task.id.in_(batch)))
        db.commit()
        purged += len(batch)


def purge_uploads(db: Session, files: UserFiles, older_than: datetime) -> int:
    """Remove uploaded files that no queued or running task will read.

    An extraction removes its upload when it runs; an upload whose task was cancelled
    while queued, failed before it started, or whose launch never committed would
    otherwise stay for good. Only folders older than `older_than` go, so a launch
    still between keeping its file and committing its record is left alone.
    """
    fields = {k.name: [f.name for f in k.fields if f.upload] for k in all_kinds()}
    waiting = db.scalars(
        select(Task)
        .where(Task.status.in_(ACTIVE_STATUSES), Task.kind.in_([k for k, f in fields.items() if f]))
        .options(selectinload(Task.owner))
    )
    wanted = {
        (files.root(task.owner.name) / str(task.params.get(name, ""))).parent
        for task in waiting
        for name in fields[task.kind]
    }
    removed = 0
    for folder in files.upload_folders():
        if folder not in wanted and folder.stat().st_mtime < older_than.timestamp():
            remove(folder)
            removed += 1
    return removed


class Continuity:
    """How long this process has reached the database without a break, as sampled by its
    maintenance runs: a run that failed, or a gap between runs longer than `gap` (a
    stalled or frozen process), starts the count again."""

    def __init__(self, gap: float) -> None:
        self.gap = gap
        self._since: float | None = None
        self._last: float | None = None

    def reached(self) -> None:
        now = time.monotonic()
        if self._last is None or now - self._last > self.gap:
            self._since = now
        self._last = now

    def lost(self) -> None:
        self._since = self._last = None

    def seconds(self) -> float:
        return 0.0 if self._since is None else time.monotonic() - self._since


class Maintenance:
    """A consumer's background thread for the periodic work; the lock makes one run it.

    It reaps only once it has itself reached the database for a whole lease without a
    break: while the database was away, no worker could renew its heartbeat either, and a
    heartbeat that could not be written is not a dead worker. A lease after the database
    is back, every live worker has written one again.
    """

    def __init__(
        self, database: Database, queue: Queue, files: UserFiles, settings: Settings
    ) -> None:
        self.database = database
        self.queue = queue
        self.files = files
        self.settings = settings
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self.continuity = Continuity(gap=2 * settings.maintenance_seconds + 1)
        self._stop = threading.Event()
        self._next_purge = utcnow()
        self._thread = threading.Thread(target=self._loop, name="maintenance", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.maintenance_seconds):
            try:
                self.run_once()
            except (SQLAlchemyError, *UNREACHABLE) as exc:
                # The database or the queue is away: one line, and again next period.
                log.warning("maintenance failed (%s); retrying in %s s", why(exc),
                            self.settings.maintenance_seconds)
            except Exception:
                # Anything else is a bug to see in full; still never die.
                log.exception("maintenance failed; retrying in %s s",
                              self.settings.maintenance_seconds)

    def run_once(self) -> None:
        try:
            self._run()
        except SQLAlchemyError:
            self.continuity.lost()
            raise

    def _run(self) -> None:
        period = self.settings.maintenance_seconds
        lease = self.settings.task_lease_seconds
        with self.database.session() as db:
            taken = acquire_lock(db, MAINTENANCE_LOCK, self.holder, ttl=2 * period)
            self.continuity.reached()
            if not taken:
                return
            dispatched = dispatch_lost(db, self.queue, lease)
            requeued = failed = 0
            if self.continuity.seconds() >= lease:
                requeued, failed = reap_expired(db, self.queue, lease)
            if dispatched or requeued or failed:
                log.info("maintenance: dispatched %s, re-queued %s, failed %s",
                         dispatched, requeued, failed)
            if utcnow() >= self._next_purge:
                self._next_purge = utcnow() + PURGE_EVERY
                cutoff = utcnow() - timedelta(days=self.settings.retention_days)
                purged = purge_finished(db, cutoff)
                uploads = purge_uploads(db, self.files, utcnow() - PURGE_EVERY)
                if purged or uploads:
                    log.info("maintenance: purged %s finished tasks, %s unused uploads",
                             purged, uploads)
        # Every run, not hourly: the trash holds disk space no user sees (the old trees
        # distributions replaced). Out of the session, which a large tree would hold long.
        began = time.monotonic()
        emptied = empty_trash(self.files.trash)
        if emptied:
            log.info("maintenance: emptied the trash (removed: %s) in %.2f s", emptied,
                     time.monotonic() - began)

