"""The task's state machine: every change of a record's status, in one place.

Each transition is one conditional UPDATE on what the record must still be (its
status, and for a running task its attempt), plus the bell bump where what the bell
shows changes and the line it adds to the task's own log (webapp.core.tasklog),
committed together. A race (cancel against start, a reaper against a
slow worker, two cancels) therefore always ends in one state, and a worker that lost
its task can never overwrite what happened since.

    launch -> queued -> claim -> running -> finish -> completed | failed | cancelled
    queued -> cancel_queued -> cancelled     running -> request_cancel (a flag)
    (cancel_many: both, for a batch of tasks in one transaction)
    running -> requeue | reap -> queued      running -> reap -> failed

The callers (webapp.core.runtime on the web side, webapp.workers.worker and
webapp.workers.maintenance on the consumer side) decide when; this module decides what
each move writes, and counts each move that happened (webapp.core.metrics) in the process
that made it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Row, select, update
from sqlalchemy.orm import Session

from webapp.core import metrics, tasklog
from webapp.core.models import MAX_TEXT, Status, Task, User, bump_bell, utcnow
from webapp.core.tasklog import INFO, NO_LINES, WARNING, Batch, said
from webapp.core.text import storable

log = logging.getLogger(__name__)

CANCELLED_OUTCOME = "Cancelled by user"
LOST_OUTCOME = "The worker running this task stopped unexpectedly"
# What a task's log says of a cancel, queued and running.
STOPPED_LINE = "Cancelled before it started"
FLAGGED_LINE = "Cancel requested: the task stops at its next safe point"


class Queue(Protocol):
    """Where records are handed over to be run: the Huey task id is the record's id."""

    def enqueue(self, task_id: str, delay: float | None = None) -> None: ...

    def revoke(self, task_id: str) -> None: ...

    def waiting_ids(self) -> set[str]: ...


# -- launch -----------------------------------------------------------------


def insert(session: Session, task: Task) -> None:
    """Write a new queued record, and tell its owner's bell."""
    task.description = storable(task.description)
    session.add(task)
    bump_bell(session, task.owner_id)
    session.commit()
    metrics.launched(task.kind)


def mark_undispatched(session: Session, task_id: str) -> None:
    """Its enqueue failed: the dispatcher hands it over later."""
    session.execute(update(Task).where(Task.id == task_id).values(dispatched_at=None))
    session.commit()


def mark_dispatched(session: Session, task_id: str) -> None:
    """Its message is in the queue; a record that moved on meanwhile is left alone."""
    session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status == Status.QUEUED)
        .values(dispatched_at=utcnow())
    )
    session.commit()


def dispatch(session: Session, queue: Queue, task_id: str, delay: float | None = None) -> None:
    """Enqueue a queued record, then say so. An enqueue that fails raises, and leaves the
    record undispatched for the dispatcher."""
    queue.enqueue(task_id, delay=delay)
    mark_dispatched(session, task_id)


# -- cancel -----------------------------------------------------------------


def cancel_queued(session: Session, task_id: str, owner_id: int) -> bool:
    """queued -> cancelled at once; False when it was not queued any more."""
    now = utcnow()
    moved = session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status == Status.QUEUED)
        .values(
            status=Status.CANCELLED,
            cancel_requested_at=now,
            finished_at=now,
            outcome=CANCELLED_OUTCOME,
            log_seq=Task.log_seq + 1,
        )
        .returning(Task.log_seq, Task.kind)
    ).one_or_none()
    if moved is None:
        return _commit_with_bell(session, None)
    tasklog.store(session, [(task_id, moved.log_seq)], said(STOPPED_LINE))
    _commit_with_bell(session, owner_id)
    metrics.finished(moved.kind, Status.CANCELLED, None)
    return True


def request_cancel(session: Session, task_id: str, owner_id: int) -> bool:
    """Flag a running task, which stops at its next checkpoint; False when it was not
    running or was flagged already."""
    last = session.execute(
        update(Task)
        .where(
            Task.id == task_id,
            Task.status == Status.RUNNING,
            Task.cancel_requested_at.is_(None),
        )
        .values(cancel_requested_at=utcnow(), log_seq=Task.log_seq + 1)
        .returning(Task.log_seq)
    ).scalar_one_or_none()
    if last is not None:
        tasklog.store(session, [(task_id, last)], said(FLAGGED_LINE))
    return _commit_with_bell(session, owner_id if last is not None else None)


def cancel_many(
    session: Session, task_ids: Sequence[str], owner_id: int | None
) -> tuple[list[str], list[str]]:
    """A batch of cancels in one transaction, each by the rules of a single one (queued ->
    cancelled at once, running -> flagged); `owner_id` limits them to one user's tasks.
    Returns the ids stopped and the ids flagged; each owner's bell is bumped once.

    The rows are locked in id order first, so two batches over the same tasks wait for
    each other instead of deadlocking."""
    scope = [Task.id.in_(task_ids)]
    if owner_id is not None:
        scope.append(Task.owner_id == owner_id)
    session.execute(select(Task.id).where(*scope).order_by(Task.id).with_for_update())
    now = utcnow()
    stopped = session.execute(
        update(Task)
        .where(*scope, Task.status == Status.QUEUED)
        .values(status=Status.CANCELLED, cancel_requested_at=now, finished_at=now,
                outcome=CANCELLED_OUTCOME, log_seq=Task.log_seq + 1)
        .returning(Task.id, Task.owner_id, Task.log_seq, Task.kind)
        .execution_options(synchronize_session=False)
    ).all()
    flagged = session.execute(
        update(Task)
        .where(*scope, Task.status == Status.RUNNING, Task.cancel_requested_at.is_(None))
        .values(cancel_requested_at=now, log_seq=Task.log_seq + 1)
        .returning(Task.id, Task.owner_id, Task.log_seq)
        .execution_options(synchronize_session=False)
    ).all()
    tasklog.store(session, [(row.id, row.log_seq) for row in stopped], said(STOPPED_LINE))
    tasklog.store(session, [(row.id, row.log_seq) for row in flagged], said(FLAGGED_LINE))
    for owner in sorted({row.owner_id for row in [*stopped, *flagged]}):
        bump_bell(session, owner)
    session.commit()
    for row in stopped:
        metrics.finished(row.kind, Status.CANCELLED, None)
    return [row.id for row in stopped], [row.id for row in flagged]


# -- a worker's run ---------------------------------------------------------


def claim(session: Session, task_id: str) -> tuple[Task, str] | None:
    """queued -> running as a new attempt, in one statement that also names the owner;
    None when the record moved on (its message is then simply dropped).

    The bell is not bumped: its counts are of active tasks, and queued and running
    both are, so a claim changes nothing it shows. The log says where the attempt runs:
    the claim is made by the worker's own process.
    """
    now = utcnow()
    owner_name = select(User.name).where(User.id == Task.owner_id).scalar_subquery()
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
            log_seq=Task.log_seq + 1,
        )
        .returning(Task, owner_name)
        # The new attempt and line number, even over a copy this session already holds.
        .execution_options(populate_existing=True)
    ).one_or_none()
    if claimed is None:
        session.rollback()
        return None
    task, name = claimed
    started = tasklog.line(f"Attempt {task.attempt} started on {socket.gethostname()}/"
                           f"{os.getpid()}")
    tasklog.store(session, [(task.id, task.log_seq)], Batch([started]))
    session.commit()
    return task, name


def report(session: Session, task_id: str, attempt: int, values: dict[str, Any],
           log: Batch = NO_LINES) -> None:
    """Progress and heartbeat of a running attempt, with the lines its operation logged
    since the last report; nothing the bell shows. The lines of an attempt that is no
    longer the record's are dropped with it."""
    if log.count:
        values = values | {"log_seq": Task.log_seq + log.count}
    last = session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status == Status.RUNNING, Task.attempt == attempt)
        .values(**_storable(values))
        .returning(Task.log_seq)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if last is not None and log.count:
        tasklog.store(session, [(task_id, last)], log)
    session.commit()


def finish(
    session: Session,
    task_id: str,
    attempt: int,
    status: Status,
    outcome: str,
    log: Batch = NO_LINES,
    **values: Any,
) -> bool:
    """running -> a final status, with the outcome (and details, progress, trace in
    `values`) and the attempt's last log lines; False when the attempt was no longer the
    record's."""
    now = utcnow()
    values |= {"status": status, "finished_at": now, "heartbeat_at": now, "outcome": outcome}
    text = outcome if outcome.lower().startswith(status.value) else (
        f"{status.value.capitalize()}: {outcome}")
    ended = tasklog.line(text, WARNING if status == Status.FAILED else INFO)
    moved = _move_running(session, task_id, attempt, values, log.then(ended))
    if moved is not None:
        metrics.finished(moved.kind, status, moved.started_at)
    return moved is not None


def requeue(
    session: Session,
    task_id: str,
    attempt: int,
    reason: str,
    *,
    run_after: datetime | None = None,
    outcome: str | None = None,
    handed_back: bool = False,
    log: Batch = NO_LINES,
) -> bool:
    """running -> queued for another attempt, `reason` shown as its progress message
    (and `outcome`, for a retry, saying what failed); False when the attempt was no
    longer the record's. The caller then dispatches it. A hand-back by a stopping
    consumer is counted apart, so that it spends none of the kind's attempts. The log
    gets the attempt's last lines, then the outcome of a retry (a warning) or the reason."""
    values = _back_to_queued(reason, run_after)
    if outcome is not None:
        values["outcome"] = outcome[:MAX_TEXT]
    if handed_back:
        values["hand_backs"] = Task.hand_backs + 1
    why = tasklog.line(outcome, WARNING) if outcome is not None else tasklog.line(reason)
    moved = _move_running(session, task_id, attempt, values, log.then(why))
    if moved is not None and handed_back:
        metrics.handed_back(moved.kind)
    return moved is not None


def reap(session: Session, task_id: str, attempt: int, cutoff: datetime, *, again: bool) -> bool:
    """A running attempt whose heartbeat is older than cutoff: back to queued when it may
    run again, else failed. False when its worker renewed the lease meanwhile (or the
    record moved on), which then keeps it."""
    if again:
        values = _back_to_queued(f"{LOST_OUTCOME}; it runs again")
    else:
        values = {"status": Status.FAILED, "finished_at": utcnow(), "outcome": LOST_OUTCOME}
    lost = said(f"Attempt {attempt}: {values.get('progress_message') or LOST_OUTCOME}",
                WARNING)
    moved = _move_running(session, task_id, attempt, values, lost, Task.heartbeat_at < cutoff)
    if moved is not None:
        metrics.reaped(moved.kind, moved.started_at, again=again)
    return moved is not None


def _back_to_queued(reason: str, run_after: datetime | None = None) -> dict[str, Any]:
    """What every way back to queued resets: the attempt's times, its progress, and its
    dispatch, so that the next claim starts clean and the dispatcher sees it."""
    return {
        "status": Status.QUEUED,
        "started_at": None,
        "heartbeat_at": None,
        "dispatched_at": None,
        "run_after": run_after,
        "progress": None,
        "progress_message": reason[:MAX_TEXT],
    }


def _move_running(
    session: Session,
    task_id: str,
    attempt: int,
    values: dict[str, Any],
    log: Batch,
    *conditions: ColumnElement[bool],
) -> Row[tuple[int, str, datetime | None, int]] | None:
    """The move with its log lines, committed; the record's owner, kind, start (the
    attempt's, on a move to a final status) and last log line when it moved, None when
    the attempt was no longer the record's."""
    moved = session.execute(
        update(Task)
        .where(
            Task.id == task_id, Task.status == Status.RUNNING, Task.attempt == attempt,
            *conditions,
        )
        .values(**_storable(values), log_seq=Task.log_seq + log.count)
        .returning(Task.owner_id, Task.kind, Task.started_at, Task.log_seq)
        # No objects in this session to keep in step: skip the ORM's bookkeeping.
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if moved is not None:
        tasklog.store(session, [(task_id, moved.log_seq)], log)
    _commit_with_bell(session, None if moved is None else moved.owner_id)
    return moved


# Columns that carry file names and users' words (webapp.core.text).
_TEXT = frozenset({"progress_message", "outcome", "details", "error_trace"})


def _storable(values: dict[str, Any]) -> dict[str, Any]:
    """Text the database could not take would fail the write, and with it the task's end
    or the heartbeat of every task of its consumer."""
    return {key: storable(value) if key in _TEXT and value is not None else value
            for key, value in values.items()}


def _commit_with_bell(session: Session, owner_id: int | None) -> bool:
    """Commit a move, with the owner's bell bump in the same transaction when it moved.

    Committed (not rolled back) when nothing moved: a rollback would expire the caller's
    loaded objects, and the statement changed nothing anyway."""
    if owner_id is not None:
        bump_bell(session, owner_id)
    session.commit()
    return owner_id is not None
