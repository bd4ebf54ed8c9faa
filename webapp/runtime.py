"""The tracked-task runtime: launch and cancel on the web side, run and report on the worker.

Every change of status is one conditional UPDATE, so a race (cancel against
start, cancel against completion, two cancels) always ends in one state.
"""

from __future__ import annotations

import errno
import logging
import time
import traceback
import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from webapp.db import Database
from webapp.kinds import describe, get_kind
from webapp.models import Status, Task, User, bump_bell, utcnow
from webapp.settings import ArchiveLimits, Settings
from webapp.userfiles import PathError, user_root

log = logging.getLogger(__name__)

CANCELLED_OUTCOME = "Cancelled by user"
INTERRUPTED_OUTCOME = "The worker was stopped before the task finished"


class Queue(Protocol):
    # Where users' files live: launch checks the paths users give against it.
    data_root: Path

    def enqueue(self, task_id: str, delay: float | None = None) -> None: ...

    def revoke(self, task_id: str) -> None: ...


class OperationError(Exception):
    """A failure the user can understand and act on: its message becomes the outcome."""


class TaskCancelled(Exception):
    """Raised by a checkpoint once cancel was requested.

    An operation may raise it again with a message that says what it had done
    (which targets were updated, say); that message becomes the outcome.
    """


class AlreadyFinished(Exception):
    """Cancel asked of a task that has already reached a final status."""

    def __init__(self, task: Task) -> None:
        super().__init__(f"This task is already {task.status}; there is nothing to cancel.")
        self.task = task


def launch(
    session: Session,
    queue: Queue,
    owner: User,
    kind_name: Any,
    raw_params: Mapping[str, Any],
    *,
    delay: float | None = None,
) -> Task:
    """Write the record first, then enqueue it under the record's own id.

    Raises InvalidParameters, having changed nothing, when the request is bad.
    """
    kind = get_kind(kind_name)
    params = kind.parse(raw_params, user_root(queue.data_root, owner.name))
    task = Task(
        id=uuid.uuid4().hex,
        owner_id=owner.id,
        kind=kind.name,
        description=describe(kind, params, raw_params.get("description")),
        status=Status.QUEUED,
        params=params,
        created_at=utcnow(),
    )
    session.add(task)
    bump_bell(session, owner.id)
    session.commit()
    try:
        queue.enqueue(task.id, delay=delay)
    except Exception:
        # The record stays queued; the dispatcher hands it to the queue again.
        log.exception("could not enqueue task %s; it stays queued", task.id)
    return task


def cancel(session: Session, queue: Queue, task: Task) -> Task:
    """Cancel a queued task at once, or ask a running one to stop at its next checkpoint."""
    now = utcnow()
    stopped = session.execute(
        update(Task)
        .where(Task.id == task.id, Task.status == Status.QUEUED)
        .values(
            status=Status.CANCELLED,
            cancel_requested_at=now,
            finished_at=now,
            outcome=CANCELLED_OUTCOME,
        )
    ).rowcount
    if stopped:
        bump_bell(session, task.owner_id)
        session.commit()
        # Drop the message before a worker takes it; once taken, the record wins.
        queue.revoke(task.id)
    else:
        flagged = session.execute(
            update(Task)
            .where(
                Task.id == task.id,
                Task.status == Status.RUNNING,
                Task.cancel_requested_at.is_(None),
            )
            .values(cancel_requested_at=now)
        ).rowcount
        if flagged:
            bump_bell(session, task.owner_id)
        session.commit()
    session.refresh(task)
    if not stopped and task.status != Status.RUNNING:
        raise AlreadyFinished(task)
    return task


class TaskContext:
    """What an operation gets besides its parameters: progress, heartbeat, checkpoints,
    the owner's folder (`root`) and the limits operations enforce."""

    # Progress is written at most this often; a fast loop must not hammer the database.
    PROGRESS_INTERVAL = 0.5
    # A checkpoint reads the cancel flag at most this often.
    CHECKPOINT_INTERVAL = 0.1

    def __init__(
        self,
        database: Database,
        task_id: str,
        params: dict[str, Any],
        *,
        root: Path,
        limits: ArchiveLimits,
    ) -> None:
        self.database = database
        self.task_id = task_id
        self.params = params
        self.root = root
        self.limits = limits
        # Longer text for the detail view (a per-item summary, say), kept with the outcome.
        self.details: str | None = None
        self._last_progress = 0.0
        self._last_check = 0.0

    def progress(self, fraction: float | None, message: str | None = None) -> None:
        """Report how far the task is (0..1, or None when unknown) and what it is doing."""
        now = time.monotonic()
        final = fraction is not None and fraction >= 1
        if not final and now - self._last_progress < self.PROGRESS_INTERVAL:
            return
        self._last_progress = now
        if fraction is not None:
            fraction = min(1.0, max(0.0, float(fraction)))
        values: dict[str, Any] = {"progress": fraction, "heartbeat_at": utcnow()}
        if message is not None:
            values["progress_message"] = message[:500]
        self._update_running(values)

    def heartbeat(self) -> None:
        """Say the worker is alive, for steps that report no progress."""
        self._update_running({"heartbeat_at": utcnow()})

    def checkpoint(self) -> None:
        """A safe point to stop: raises TaskCancelled once cancel was requested."""
        now = time.monotonic()
        if now - self._last_check < self.CHECKPOINT_INTERVAL:
            return
        self._last_check = now
        with self.database.session() as session:
            requested = session.scalar(
                select(Task.cancel_requested_at).where(Task.id == self.task_id)
            )
        if requested is not None:
            raise TaskCancelled()

    def _update_running(self, values: dict[str, Any]) -> None:
        with self.database.session() as session:
            session.execute(
                update(Task)
                .where(Task.id == self.task_id, Task.status == Status.RUNNING)
                .values(**values)
            )
            session.commit()


def execute(database: Database, task_id: str, settings: Settings) -> None:
    """Run one tracked task on a worker, moving its record to a final status."""
    task = _claim(database, task_id)
    if task is None:
        return
    context = TaskContext(
        database,
        task.id,
        dict(task.params),
        root=user_root(settings.data_root, task.owner.name),
        limits=settings.archive_limits,
    )
    try:
        kind = get_kind(task.kind)
        outcome = kind.run(context.params, context)
    except TaskCancelled as exc:
        outcome = str(exc) or CANCELLED_OUTCOME
        _finish(database, task, Status.CANCELLED, outcome, details=context.details)
    except KeyboardInterrupt:
        _finish(database, task, Status.FAILED, INTERRUPTED_OUTCOME, details=context.details)
        raise
    except Exception as exc:
        log.exception("task %s (%s) failed", task.id, task.kind)
        _finish(
            database,
            task,
            Status.FAILED,
            describe_failure(exc),
            details=context.details,
            error_trace=traceback.format_exc(),
        )
    else:
        _finish(
            database,
            task,
            Status.COMPLETED,
            outcome or "Completed",
            details=context.details,
            progress=1.0,
        )


def _claim(database: Database, task_id: str) -> Task | None:
    """queued -> running in one conditional update; a message whose record moved on is dropped."""
    now = utcnow()
    with database.session() as session:
        claimed = session.execute(
            update(Task)
            .where(Task.id == task_id, Task.status == Status.QUEUED)
            .values(status=Status.RUNNING, started_at=now, heartbeat_at=now)
        ).rowcount
        if not claimed:
            session.rollback()
            log.info("task %s is no longer queued; message dropped", task_id)
            return None
        task = session.get(Task, task_id)
        assert task is not None
        task.owner  # noqa: B018 - loaded now, for use after the session closes
        bump_bell(session, task.owner_id)
        session.commit()
        return task


def _finish(
    database: Database,
    task: Task,
    status: Status,
    outcome: str,
    *,
    details: str | None = None,
    progress: float | None = None,
    error_trace: str | None = None,
) -> None:
    if len(outcome) > 500 and details is None:
        details = outcome
    now: datetime = utcnow()
    values: dict[str, Any] = {
        "status": status,
        "finished_at": now,
        "heartbeat_at": now,
        "outcome": outcome if len(outcome) <= 500 else outcome[:499] + "…",
        "details": details,
        "error_trace": error_trace,
    }
    if progress is not None:
        values["progress"] = progress
    with database.session() as session:
        moved = session.execute(
            update(Task).where(Task.id == task.id, Task.status == Status.RUNNING).values(**values)
        ).rowcount
        if moved:
            bump_bell(session, task.owner_id)
        session.commit()


def describe_failure(exc: BaseException) -> str:
    """Say what went wrong in words a user understands; the traceback goes to the details."""
    if isinstance(exc, OperationError | PathError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"A file or folder was not found: {exc.filename or exc}"
    if isinstance(exc, PermissionError):
        return f"Permission denied: {exc.filename or exc}"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "The disk is full"
    if isinstance(exc, MemoryError):
        return "The task ran out of memory"
    return (
        f"The task stopped because of an unexpected error ({type(exc).__name__}); "
        "an administrator can see the details"
    )
