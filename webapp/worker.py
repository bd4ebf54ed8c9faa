"""The consumer's side of a run: claim the record, run the operation with a heartbeat,
write how it ended, and hand tasks back when the consumer stops.

Every write is a conditional UPDATE on (id, status, attempt), so a worker that lost
its task (reaped, cancelled, handed back) can never overwrite what happened since.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from webapp.db import Database
from webapp.kinds import InvalidParameters, Kind, get_kind
from webapp.models import Status, Task, User, bump_bell, utcnow
from webapp.runtime import (
    CANCELLED_OUTCOME,
    LeaseLost,
    Queue,
    TaskCancelled,
    TaskContext,
    TransientError,
    WorkerStopping,
    describe_failure,
)
from webapp.settings import Settings
from webapp.userfiles import user_root

log = logging.getLogger(__name__)

STOPPED_OUTCOME = "The worker was stopped before the task finished"
HANDED_BACK_MESSAGE = "Handed back by a stopping worker; it runs again shortly"

T = TypeVar("T")


class Worker:
    """One consumer process's view: is it stopping, and which tasks is it running."""

    # How long a worker keeps retrying a write while the database is away.
    WRITE_PATIENCE = 120.0

    def __init__(self, database: Database, queue: Queue, settings: Settings) -> None:
        self.database = database
        self.queue = queue
        self.settings = settings
        self.lease_seconds = settings.task_lease_seconds
        self.stopping = threading.Event()
        self._in_flight: dict[str, tuple[int, Kind, TaskContext]] = {}
        self._lock = threading.Lock()
        self._heartbeat: threading.Thread | None = None

    def execute(self, task_id: str) -> None:
        """Run one tracked task, moving its record to a final status (or back to queued)."""
        if self.stopping.is_set():
            # Taken from the queue just as we stop: put the message back for another consumer.
            self._dispatch(task_id)
            return
        claimed = self._patiently(lambda: self._claim(task_id))
        if claimed is None:
            return
        task, owner_name = claimed
        try:
            kind = get_kind(task.kind)
        except InvalidParameters:
            self._end(task.id, task.attempt, Status.FAILED, "This kind of task no longer exists")
            return
        context = TaskContext(
            self.database,
            task.id,
            dict(task.params),
            root=user_root(self.settings.data_root, owner_name),
            limits=self.settings.archive_limits,
            attempt=task.attempt,
            stopping=self.stopping,
        )
        with self._lock:
            self._in_flight[task.id] = (task.attempt, kind, context)
            if self._heartbeat is None:
                self._heartbeat = threading.Thread(target=self._beat, name="heartbeat",
                                                   daemon=True)
                self._heartbeat.start()
        try:
            self._run(kind, task, context)
        finally:
            with self._lock:
                self._in_flight.pop(task.id, None)

    def _beat(self) -> None:
        """Renews the lease of every running task from one thread of the consumer's own,
        so a long blocking step (one large file copy) still counts as alive."""
        interval = max(0.2, self.lease_seconds / 4)
        while True:
            time.sleep(interval)
            with self._lock:
                running = [context for _, _, context in self._in_flight.values()]
            for context in running:
                context.heartbeat()

    def _run(self, kind: Kind, task: Task, context: TaskContext) -> None:
        try:
            outcome = kind.run(context.params, context)
        except TaskCancelled as exc:
            # An operation may say what it had done before it stopped.
            outcome = str(exc) or CANCELLED_OUTCOME
            self._finish(task, Status.CANCELLED, outcome, details=context.details)
        except WorkerStopping:
            self._hand_back(task.id, task.attempt, HANDED_BACK_MESSAGE)
        except LeaseLost:
            log.warning("task %s attempt %s is no longer ours; stopping it", task.id, task.attempt)
        except TransientError as exc:
            if task.attempt < kind.max_attempts:
                self._retry(kind, task, str(exc))
            else:
                self._finish(task, Status.FAILED, str(exc), details=context.details)
        except Exception as exc:
            log.exception("task %s (%s) failed", task.id, task.kind)
            self._finish(
                task,
                Status.FAILED,
                describe_failure(exc),
                details=context.details,
                error_trace=traceback.format_exc(),
            )
        else:
            self._finish(
                task,
                Status.COMPLETED,
                outcome or "Completed",
                details=context.details,
                progress=1.0,
            )

    # -- shutdown -----------------------------------------------------------

    def hand_back_unfinished(self) -> None:
        """After the grace period: re-queue what may run again, fail the rest, honestly."""
        with self._lock:
            unfinished = dict(self._in_flight)
        for task_id, (attempt, kind, _) in unfinished.items():
            if kind.retry_safe and attempt < kind.max_attempts:
                self._hand_back(task_id, attempt, HANDED_BACK_MESSAGE)
            else:
                self._end(task_id, attempt, Status.FAILED, STOPPED_OUTCOME)

    # -- record transitions -------------------------------------------------

    def _claim(self, task_id: str) -> tuple[Task, str] | None:
        """queued -> running as a new attempt, in one statement that also names the owner;
        a message whose record moved on is dropped.

        The bell is not bumped: its counts are of active tasks, and queued and running
        both are, so a claim changes nothing it shows.
        """
        now = utcnow()
        owner_name = select(User.name).where(User.id == Task.owner_id).scalar_subquery()
        with self.database.session() as session:
            claimed = session.execute(
                update(Task)
                .where(Task.id == task_id, Task.status == Status.QUEUED)
                .values(
                    status=Status.RUNNING,
                    started_at=now,
                    heartbeat_at=now,
                    attempt=Task.attempt + 1,
                    progress=None,
                    progress_message=None,
                )
                .returning(Task, owner_name)
            ).one_or_none()
            if claimed is None:
                session.rollback()
                log.info("task %s is no longer queued; message dropped", task_id)
                return None
            session.commit()
            task, name = claimed
            return task, name

    def _finish(
        self,
        task: Task,
        status: Status,
        outcome: str,
        *,
        details: str | None = None,
        progress: float | None = None,
        error_trace: str | None = None,
    ) -> None:
        if len(outcome) > 500:
            details = details or outcome
            outcome = outcome[:499] + "…"
        values: dict[str, Any] = {"details": details, "error_trace": error_trace}
        if progress is not None:
            values["progress"] = progress
        self._end(task.id, task.attempt, status, outcome, **values)

    def _end(self, task_id: str, attempt: int, status: Status, outcome: str, **values: Any) -> None:
        now = utcnow()
        values |= {"status": status, "finished_at": now, "heartbeat_at": now, "outcome": outcome}
        self._patiently(lambda: self._transition(task_id, attempt, values))

    def _retry(self, kind: Kind, task: Task, message: str) -> None:
        delay = kind.retry_delay * 2 ** (task.attempt - 1)
        outcome = (
            f"Attempt {task.attempt} of {kind.max_attempts} failed: {message}. "
            f"Retrying in {delay:g} s."
        )
        now = utcnow()
        values = {
            "status": Status.QUEUED,
            "outcome": outcome[:500],
            "started_at": None,
            "heartbeat_at": None,
            "run_after": now + timedelta(seconds=delay),
            "dispatched_at": None,
        }
        if self._patiently(lambda: self._transition(task.id, task.attempt, values)):
            self._dispatch(task.id, delay=delay)

    def _hand_back(self, task_id: str, attempt: int, message: str) -> None:
        values = {
            "status": Status.QUEUED,
            "started_at": None,
            "heartbeat_at": None,
            "progress": None,
            "progress_message": message,
            "dispatched_at": None,
        }
        if self._patiently(lambda: self._transition(task_id, attempt, values)):
            self._dispatch(task_id)

    def _transition(self, task_id: str, attempt: int, values: dict[str, Any]) -> bool:
        """Move a running record this worker still owns; False when it moved on without us."""
        with self.database.session() as session:
            owner = session.execute(
                update(Task)
                .where(Task.id == task_id, Task.status == Status.RUNNING, Task.attempt == attempt)
                .values(**values)
                .returning(Task.owner_id)
                # No objects in this session to keep in step: skip the ORM's bookkeeping.
                .execution_options(synchronize_session=False)
            ).scalar_one_or_none()
            if owner is not None:
                bump_bell(session, owner)
            session.commit()
            return owner is not None

    def _dispatch(self, task_id: str, delay: float | None = None) -> None:
        """Hand a queued record to the queue; if that fails the dispatcher does it later."""
        try:
            self.queue.enqueue(task_id, delay=delay)
        except Exception as exc:
            log.warning("could not enqueue task %s (%s); the dispatcher will", task_id, exc)
            return
        with self.database.session() as session:
            session.execute(
                update(Task)
                .where(Task.id == task_id, Task.status == Status.QUEUED)
                .values(dispatched_at=utcnow())
            )
            session.commit()

    def _patiently(self, write: Callable[[], T]) -> T | None:
        """Retry a database step with backoff while the database is away, for a while."""
        deadline = time.monotonic() + self.WRITE_PATIENCE
        pause = 0.2
        while True:
            try:
                return write()
            except SQLAlchemyError as exc:
                if time.monotonic() + pause > deadline:
                    log.error("giving up on a write after %.0f s: %s", self.WRITE_PATIENCE, exc)
                    return None
                log.warning("database unavailable (%s); retrying in %.1f s", exc, pause)
                time.sleep(pause)
                pause = min(pause * 2, 10.0)
