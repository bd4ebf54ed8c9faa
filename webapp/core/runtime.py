"""The tracked-task runtime shared by web and workers: launch, cancel, and the context
an operation reports through. The worker's side of a run is in webapp.workers.worker; what
each change of status writes is in webapp.core.transitions.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from webapp.core import tasklog, transitions
from webapp.core.db import Database, why
from webapp.core.kinds import describe, get_kind, kind_named
from webapp.core.models import MAX_TEXT, Status, Task, User, utcnow
from webapp.core.transitions import Queue
from webapp.core.userfiles import UPLOADS, PathError, UserFiles

log = logging.getLogger(__name__)


class OperationError(Exception):
    """A failure the user can understand and act on: its message becomes the outcome."""


class TransientError(OperationError):
    """A failure worth another attempt (a network blip, a busy service): retried with
    backoff while the kind's attempts remain."""


# The three signals a checkpoint raises derive from BaseException, like KeyboardInterrupt,
# so an operation's `except Exception` (to clean up, say) cannot swallow them.


class TaskCancelled(BaseException):
    """Raised by a checkpoint once cancel was requested.

    An operation may raise it again with a message that says what it had done
    (which targets were updated, say); that message becomes the outcome.
    """


class WorkerStopping(BaseException):
    """Raised by a checkpoint when the consumer is shutting down: the task is handed back."""


class LeaseLost(BaseException):
    """Raised by a checkpoint when the record is no longer this worker's attempt (it was
    reaped, say): the worker stops without writing anything more."""


class AlreadyFinished(Exception):
    """Cancel asked of a task that has already reached a final status."""

    def __init__(self, task: Task) -> None:
        super().__init__(f"This task is already {task.status}; there is nothing to cancel.")
        self.task = task


def launch(
    session: Session,
    queue: Queue,
    files: UserFiles,
    owner: User,
    kind_name: Any,
    raw_params: Mapping[str, Any],
    *,
    delay: float | None = None,
    rerun_of: str | None = None,
) -> Task:
    """Write the record first, then enqueue it under the record's own id.

    Raises InvalidParameters, having changed nothing, when the request is bad.
    """
    kind = get_kind(kind_name)
    params = kind.parse(raw_params, files.root(owner.name))
    now = utcnow()
    task = Task(
        id=uuid.uuid4().hex,
        owner_id=owner.id,
        kind=kind.name,
        description=describe(kind, params, raw_params.get("description")),
        status=Status.QUEUED,
        params=params,
        created_at=now,
        # Set before the enqueue so a launch costs one write; cleared if the enqueue fails.
        dispatched_at=now,
        run_after=None if delay is None else now + timedelta(seconds=delay),
        rerun_of=rerun_of,
    )
    transitions.insert(session, task)
    try:
        queue.enqueue(task.id, delay=delay)
    except Exception as exc:
        # The record stays queued and undispatched; the dispatcher hands it over later.
        log.warning("could not enqueue task %s (%s); the dispatcher will", task.id, exc)
        transitions.mark_undispatched(session, task.id)
        task.dispatched_at = None
    return task


class CannotRerun(Exception):
    """Run again asked of a task that is still active, or whose inputs are gone."""


def missing_inputs(files: UserFiles, owner_name: str, task: Task) -> str | None:
    """What a run again of the task would lack, in words, or None. An upload is kept only
    until its task runs (or an hour, unused), so a finished task's is usually gone."""
    kind = kind_named(task.kind)
    if kind is None:
        return f"The kind {task.kind} no longer exists."
    root = files.root(owner_name)
    for one in kind.fields:
        value = task.params.get(one.name)
        uploaded = one.upload and str(value or "").startswith(f"{UPLOADS}/")
        if uploaded and not (root / str(value)).is_file():
            return (f"The uploaded {one.upload} was removed once its task ran: "
                    f"upload it again in a new task.")
    return None


def rerun(session: Session, queue: Queue, files: UserFiles, owner: User, task: Task) -> Task:
    """A new task of the same kind with the same parameters and description, checked again
    as any launch is. Raises CannotRerun (task active, inputs gone) or InvalidParameters."""
    if task.state.is_active:
        raise CannotRerun(f"This task is still {task.status}; it can run again once it ends.")
    missing = missing_inputs(files, owner.name, task)
    if missing:
        raise CannotRerun(missing)
    raw = {**task.params, "description": task.description}
    return launch(session, queue, files, owner, task.kind, raw, rerun_of=task.id)


def cancel(session: Session, queue: Queue, task: Task) -> Task:
    """Cancel a queued task at once, or ask a running one to stop at its next checkpoint."""
    stopped = transitions.cancel_queued(session, task.id, task.owner_id)
    if stopped:
        # Drop the message before a worker takes it; once taken, the record wins.
        queue.revoke(task.id)
    else:
        transitions.request_cancel(session, task.id, task.owner_id)
    # Reloaded in place; a row purged meanwhile had finished long ago, and the caller
    # keeps what it loaded.
    current = session.scalars(
        select(Task).where(Task.id == task.id).execution_options(populate_existing=True)
    ).one_or_none()
    if current is None:
        raise AlreadyFinished(task)
    if not stopped and task.status != Status.RUNNING:
        raise AlreadyFinished(task)
    return task


# Cancels per transaction: a user's whole queue is cancelled in batches of this many.
CANCEL_BATCH = 500


@dataclass
class Cancelled:
    """What a batch cancel did: stopped (queued -> cancelled), flagged (running, stops at
    its next checkpoint), and the asked-for ids that were already finished or flagged."""

    stopped: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, list[str]]:
        return {"cancelled": self.stopped, "cancel_requested": self.flagged,
                "unchanged": self.unchanged}


def cancel_many(session: Session, queue: Queue, viewer: User, task_ids: Sequence[str]) -> Cancelled:
    """Cancel the tasks the viewer may see among `task_ids`, in one transaction, with the
    rules of a single cancel. Ids that are not the viewer's are left out of the answer."""
    owner_id = None if viewer.is_admin else viewer.id
    ids = list(dict.fromkeys(task_ids))
    stopped, flagged = transitions.cancel_many(session, ids, owner_id)
    _revoke(queue, stopped)
    moved = {*stopped, *flagged}
    visible = select(Task.id).where(Task.id.in_(ids))
    if owner_id is not None:
        visible = visible.where(Task.owner_id == owner_id)
    unchanged = [i for i in session.scalars(visible) if i not in moved]
    return Cancelled(stopped, flagged, sorted(unchanged))


def cancel_all_queued(session: Session, queue: Queue, owner: User) -> list[str]:
    """Cancel every queued task of the owner, a batch per transaction; the ids cancelled."""
    cancelled: list[str] = []
    while True:
        batch = list(session.scalars(
            select(Task.id)
            .where(Task.owner_id == owner.id, Task.status == Status.QUEUED)
            .order_by(Task.id)
            .limit(CANCEL_BATCH)
        ))
        if not batch:
            return cancelled
        stopped, _ = transitions.cancel_many(session, batch, owner.id)
        _revoke(queue, stopped)
        cancelled += stopped


def _revoke(queue: Queue, task_ids: Sequence[str]) -> None:
    """Drop the messages of cancelled tasks; best effort, as the record wins at the claim."""
    for task_id in task_ids:
        try:
            queue.revoke(task_id)
        except Exception as exc:
            log.warning("could not revoke task %s (%s); its claim will drop it", task_id, exc)


class TaskContext:
    """What an operation gets besides its parameters: progress, its own log, heartbeat,
    checkpoints, the owner's folder (`root`), and `settings`: what its kind takes from
    the configuration (Kind.settings; None for a kind that takes nothing)."""

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
        settings: Any = None,
        attempt: int = 1,
        stopping: threading.Event | None = None,
    ) -> None:
        self.database = database
        self.task_id = task_id
        self.params = params
        self.root = root
        self.settings = settings
        self.attempt = attempt
        self.stopping = stopping or threading.Event()
        # Longer text for the detail view (a per-item summary, say), kept with the outcome.
        self.details: str | None = None
        self._started = time.monotonic()
        self._last_progress = 0.0
        # A report held back by the interval, written with the next heartbeat if no
        # later report is written first.
        self._pending: dict[str, Any] | None = None
        # The claim has just read the record as running and not cancelled (a queued
        # task is cancelled outright), so the first look is due an interval from now.
        self._last_check = time.monotonic()
        # Whether the database was away at the last look. An outage is told once per task,
        # when it begins and when it ends, not at every checkpoint and heartbeat (up to ten
        # a second per task).
        self._away = False
        # Log lines wait for the next write the task makes anyway (a progress report, the
        # heartbeat, the end): a line costs no commit of its own. One write at a time
        # takes them, so the end never overtakes a heartbeat's lines.
        self._log = tasklog.Pending()
        self._writing = threading.Lock()
        self._afterwards: list[Callable[[], None]] = []

    def afterwards(self, work: Callable[[], None]) -> None:
        """Work the task's result does not wait for (a cache made of what it wrote, say):
        run by its worker once the record says the task completed, so its time is not
        the task's. It must hold what locks it needs itself, give up when `stopping` is
        set (by raising WorkerStopping), and leave nothing half-made that the next
        operation does not clean."""
        self._afterwards.append(work)

    def run_afterwards(self) -> None:
        """Run what afterwards() was given, in order; a failure is logged, not raised: the
        task ended as its record says whatever this does."""
        work, self._afterwards = self._afterwards, []
        for one in work:
            try:
                one()
            except WorkerStopping:
                return
            except Exception:
                log.exception("task %s: work after its end failed", self.task_id)

    def log(self, text: str, level: str = tasklog.INFO) -> None:
        """Add a line to the task's own log (`tasklog.INFO` or `tasklog.WARNING`): what it
        did ("Copied 1,204 files to t2") or skipped. Made safe and cut to 500 characters;
        the task keeps its latest 1,000 lines."""
        self._log.add(tasklog.line(text, level))

    def unwritten_log(self) -> tasklog.Batch:
        """The lines no write has taken yet, for the attempt's end to store."""
        with self._writing:
            return self._log.take()

    def progress(self, fraction: float | None, message: str | None = None) -> None:
        """Report how far the task is (0..1, or None when unknown) and what it is doing.

        Nothing is written in a task's first interval: a short task's finish says it all,
        and saves a commit. A report held back then is written by the next heartbeat.
        """
        if fraction is not None:
            fraction = min(1.0, max(0.0, float(fraction)))
        values: dict[str, Any] = {"progress": fraction}
        if message is not None:
            values["progress_message"] = message[:MAX_TEXT]
        now = time.monotonic()
        final = fraction is not None and fraction >= 1
        if (now - self._started < self.PROGRESS_INTERVAL
                or (not final and now - self._last_progress < self.PROGRESS_INTERVAL)):
            self._pending = (self._pending or {}) | values
            return
        self._last_progress = now
        self._pending = None
        self._update_running(values | {"heartbeat_at": utcnow()})

    def heartbeat(self) -> None:
        """Say the worker is alive, for steps that report no progress."""
        pending, self._pending = self._pending, None
        self._update_running((pending or {}) | {"heartbeat_at": utcnow()})

    def checkpoint(self) -> None:
        """A safe point to stop: raises TaskCancelled once cancel was requested,
        WorkerStopping when the consumer shuts down, LeaseLost when the task is not
        this worker's any more."""
        now = time.monotonic()
        stopping = self.stopping.is_set()
        if not stopping and now - self._last_check < self.CHECKPOINT_INTERVAL:
            return
        self._last_check = now
        try:
            with self.database.session() as session:
                row = session.execute(
                    select(Task.status, Task.attempt, Task.cancel_requested_at).where(
                        Task.id == self.task_id
                    )
                ).one_or_none()
        except SQLAlchemyError as exc:
            # The database is away for a moment: carry on and look again at the next one.
            self._unreachable("read its record at a checkpoint", exc)
            row = None
        else:
            self._reached()
            if row is None or row.status != Status.RUNNING or row.attempt != self.attempt:
                raise LeaseLost()
            if row.cancel_requested_at is not None:
                raise TaskCancelled()
        if stopping:
            raise WorkerStopping()

    def _update_running(self, values: dict[str, Any]) -> None:
        """Best effort: a report lost to a database hiccup is replaced by the next one, and
        its log lines go with that one."""
        with self._writing:
            lines = self._log.take()
            try:
                self._report(values, lines)
            except (OperationalError, InterfaceError) as exc:
                self._log.restore(lines)
                self._unreachable("report its progress and heartbeat", exc)
                return
            except SQLAlchemyError as exc:
                if not lines.count:
                    self._unreachable("report its progress and heartbeat", exc)
                    return
                # The database refused the lines themselves: they go, the heartbeat stays.
                log.warning("task %s could not store %s log lines (%s); they are dropped",
                            self.task_id, lines.count, why(exc))
                try:
                    self._report(values, tasklog.NO_LINES)
                except SQLAlchemyError as again:
                    self._unreachable("report its progress and heartbeat", again)
                    return
            self._reached()

    def _report(self, values: dict[str, Any], lines: tasklog.Batch) -> None:
        with self.database.session() as session:
            transitions.report(session, self.task_id, self.attempt, values, lines)

    def _unreachable(self, what: str, exc: SQLAlchemyError) -> None:
        if not self._away:
            self._away = True
            log.warning("task %s could not %s (%s); it carries on, and says when the "
                        "database is back", self.task_id, what, why(exc))

    def _reached(self) -> None:
        if self._away:
            self._away = False
            log.info("task %s reaches the database again", self.task_id)


def duration_text(seconds: float) -> str:
    """A task's duration or time left in words: 'under a second', '4.2 s', '3 min 05 s',
    '1 h 02 min'."""
    if seconds < 1:
        return "under a second"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


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
