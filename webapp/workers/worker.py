"""The consumer's side of a run: claim the record, run the operation with a heartbeat,
write how it ended, and hand tasks back when the consumer stops.

Every write is a transition of webapp.core.transitions, conditional on (id, status, attempt),
so a worker that lost its task (reaped, cancelled, handed back) can never overwrite
what happened since.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from webapp.core import tasklog, transitions
from webapp.core.db import Database, why
from webapp.core.kinds import InvalidParameters, Kind, get_kind
from webapp.core.models import MAX_TEXT, Status, Task, utcnow
from webapp.core.runtime import (
    LeaseLost,
    TaskCancelled,
    TaskContext,
    TransientError,
    WorkerStopping,
    describe_failure,
)
from webapp.core.transitions import CANCELLED_OUTCOME, Queue
from webapp.core.userfiles import UserFiles
from webapp.logs import bind, in_own_context
from webapp.settings import Settings

log = logging.getLogger(__name__)

STOPPED_OUTCOME = "The worker was stopped before the task finished"
HANDED_BACK_MESSAGE = "Handed back by a stopping worker; it runs again shortly"

T = TypeVar("T")


class Worker:
    """One consumer process's view: is it stopping, and which tasks is it running."""

    # How long a worker keeps retrying a write while the database is away.
    WRITE_PATIENCE = 120.0

    def __init__(
        self, database: Database, queue: Queue, files: UserFiles, settings: Settings
    ) -> None:
        self.database = database
        self.queue = queue
        self.files = files
        self.settings = settings
        self.lease_seconds = settings.task_lease_seconds
        self.stopping = threading.Event()
        self._in_flight: dict[str, tuple[int, Kind, TaskContext]] = {}
        self._lock = threading.Lock()
        self._heartbeat: threading.Thread | None = None

    def in_hand(self) -> int:
        """How many tasks this consumer is running now."""
        with self._lock:
            return len(self._in_flight)

    # What a run binds to its log lines (the task, at its claim) ends with the run.
    @in_own_context
    def execute(self, task_id: str) -> None:
        """Run one tracked task, moving its record to a final status (or back to queued)."""
        if self.stopping.is_set():
            # Taken from the queue just as we stop: put the message back for another consumer.
            self._dispatch(task_id)
            return
        claimed = self._claim(task_id)
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
            root=self.files.root(owner_name),
            settings=kind.settings(self.settings) if kind.settings else None,
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
            completed = self._run(kind, task, context)
        finally:
            with self._lock:
                self._in_flight.pop(task.id, None)
        if completed:
            context.run_afterwards()

    def _beat(self) -> None:
        """Renews the lease of every running task from one thread of the consumer's own,
        so a long blocking step (one large file copy) still counts as alive."""
        interval = max(0.2, self.lease_seconds / 4)
        failing: set[str] = set()
        while True:
            time.sleep(interval)
            with self._lock:
                running = [context for _, _, context in self._in_flight.values()]
            failing &= {context.task_id for context in running}
            for context in running:
                # Whatever one task's report does, the others must keep their leases:
                # this thread dying would get every task of the consumer reaped.
                try:
                    context.heartbeat()
                except Exception:
                    if context.task_id not in failing:
                        failing.add(context.task_id)
                        log.exception("task %s: its heartbeat failed; still beating",
                                      context.task_id)

    def _run(self, kind: Kind, task: Task, context: TaskContext) -> bool:
        """Run the operation and write how it ended; whether it completed."""
        try:
            outcome = kind.run(context.params, context)
        except TaskCancelled as exc:
            # An operation may say what it had done before it stopped.
            outcome = str(exc) or CANCELLED_OUTCOME
            self._finish(task, context, Status.CANCELLED, outcome)
        except WorkerStopping:
            self._hand_back(task.id, task.attempt, HANDED_BACK_MESSAGE, context.unwritten_log())
        except LeaseLost:
            log.warning("task %s attempt %s is no longer ours; stopping it", task.id, task.attempt)
        except TransientError as exc:
            if task.attempts_spent < kind.max_attempts:
                self._retry(kind, task, str(exc), context.unwritten_log())
            else:
                self._finish(task, context, Status.FAILED, str(exc))
        except Exception as exc:
            log.exception("task %s (%s) failed", task.id, task.kind)
            self._finish(
                task,
                context,
                Status.FAILED,
                describe_failure(exc),
                error_trace=traceback.format_exc(),
            )
        else:
            self._finish(task, context, Status.COMPLETED, outcome or "Completed", progress=1.0)
            return True
        return False

    # -- shutdown -----------------------------------------------------------

    def hand_back_unfinished(self) -> None:
        """After the grace period: re-queue what may run again, fail the rest, honestly.
        A hand-back spends none of the kind's attempts: a rolling deploy must not."""
        with self._lock:
            unfinished = dict(self._in_flight)
        for task_id, (attempt, kind, context) in unfinished.items():
            if kind.retry_safe:
                self._hand_back(task_id, attempt, HANDED_BACK_MESSAGE, context.unwritten_log())
            else:
                self._end(task_id, attempt, Status.FAILED, STOPPED_OUTCOME,
                          log=context.unwritten_log())

    # -- record transitions (webapp.core.transitions), patient with the database ---

    def _claim(self, task_id: str) -> tuple[Task, str] | None:
        claimed = self._write(transitions.claim, task_id)
        if claimed is None:
            log.info("task %s is no longer queued; message dropped", task_id)
        else:
            # The rest of this run's lines name the task (LOG_FORMAT=json).
            task, owner_name = claimed
            bind(task_id=task.id, kind=task.kind, attempt=task.attempt, user=owner_name)
        return claimed

    def _finish(
        self,
        task: Task,
        context: TaskContext,
        status: Status,
        outcome: str,
        *,
        progress: float | None = None,
        error_trace: str | None = None,
    ) -> None:
        details = context.details
        if len(outcome) > MAX_TEXT:
            details = details or outcome
            outcome = outcome[: MAX_TEXT - 1] + "…"
        values: dict[str, Any] = {"details": details, "error_trace": error_trace,
                                  "log": context.unwritten_log()}
        if progress is not None:
            values["progress"] = progress
        self._end(task.id, task.attempt, status, outcome, **values)

    def _end(self, task_id: str, attempt: int, status: Status, outcome: str, **values: Any) -> None:
        if self._write(transitions.finish, task_id, attempt, status, outcome,
                       **values) is False:
            self._moved_on(task_id, attempt, f"{status}: {outcome}")

    def _retry(self, kind: Kind, task: Task, message: str, lines: tasklog.Batch) -> None:
        delay = kind.retry_delay * 2 ** (task.attempts_spent - 1)
        outcome = (
            f"Attempt {task.attempts_spent} of {kind.max_attempts} failed: {message}. "
            f"Retrying in {delay:g} s."
        )
        run_after = utcnow() + timedelta(seconds=delay)
        self._requeue(task.id, task.attempt, f"Retrying in {delay:g} s", delay=delay,
                      run_after=run_after, outcome=outcome, log=lines)

    def _hand_back(self, task_id: str, attempt: int, message: str,
                   lines: tasklog.Batch) -> None:
        self._requeue(task_id, attempt, message, handed_back=True, log=lines)

    def _requeue(self, task_id: str, attempt: int, reason: str, delay: float | None = None,
                 **values: Any) -> None:
        moved = self._write(transitions.requeue, task_id, attempt, reason, **values)
        if moved:
            self._dispatch(task_id, delay=delay)
        elif moved is False:
            self._moved_on(task_id, attempt, reason)

    @staticmethod
    def _moved_on(task_id: str, attempt: int, ending: str) -> None:
        """An attempt's ending found the record no longer its own (reaped and run again,
        say): it is dropped, which an operator must be able to see."""
        log.warning("task %s attempt %s ended (%s) but the record had moved on; dropped",
                    task_id, attempt, ending)

    def _dispatch(self, task_id: str, delay: float | None = None) -> None:
        """Hand a queued record to the queue; if that fails the dispatcher does it later."""
        try:
            self._write(transitions.dispatch, self.queue, task_id, delay)
        except Exception as exc:
            log.warning("could not enqueue task %s (%s); the dispatcher will", task_id, exc)

    def _write(self, step: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """One transition in a session of its own, retried while the database is away."""

        def write() -> T:
            with self.database.session() as session:
                return step(session, *args, **kwargs)

        return self._patiently(write)

    def _patiently(self, write: Callable[[], T]) -> T | None:
        """Retry a database step with backoff while the database is away, for a while."""
        deadline = time.monotonic() + self.WRITE_PATIENCE
        pause = 0.2
        while True:
            try:
                return write()
            except SQLAlchemyError as exc:
                if time.monotonic() + pause > deadline:
                    log.error("giving up on a write after %.0f s: %s", self.WRITE_PATIENCE,
                              why(exc))
                    return None
                log.warning("database unavailable (%s); retrying in %.1f s", why(exc), pause)
                time.sleep(pause)
                pause = min(pause * 2, 10.0)
