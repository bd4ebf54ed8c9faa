"""What an operator sees of the whole system: the queue, the consumers, everyone's running
tasks and the last 24 hours, read for the administrator's overview, `flask workers` and
the metrics' gauges alike."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from webapp.core.listing import count_tasks
from webapp.core.models import ConsumerProcess, Status, Task, utcnow

# The charts' window, in hours, and how many running tasks the overview lists.
HOURS = 24
RUNNING_SHOWN = 100
FINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


@dataclass(frozen=True)
class QueueState:
    queued: int
    running: int
    # The oldest queued task (None: nothing waits), and the oldest heartbeat of a running one.
    oldest_waiting: Task | None
    oldest_heartbeat: datetime | None


def queue_state(db: Session) -> QueueState:
    """From the counters and the heads of two index ranges: no scan of history."""
    oldest = db.scalar(
        select(Task).options(joinedload(Task.owner)).where(Task.status == Status.QUEUED)
        .order_by(Task.created_at, Task.id).limit(1)
    )
    return QueueState(
        queued=count_tasks(db, None, (Status.QUEUED,)),
        running=count_tasks(db, None, (Status.RUNNING,)),
        oldest_waiting=oldest,
        oldest_heartbeat=db.scalar(select(func.min(Task.heartbeat_at))
                                   .where(Task.status == Status.RUNNING)),
    )


@dataclass(frozen=True)
class ConsumerState:
    process: ConsumerProcess
    # No heartbeat for a lease: killed, or its host is down.
    gone: bool


def consumers(db: Session, lease_seconds: float) -> list[ConsumerState]:
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    rows = db.scalars(select(ConsumerProcess)
                      .order_by(ConsumerProcess.host, ConsumerProcess.started_at))
    return [ConsumerState(row, row.heartbeat_at < cutoff) for row in rows]


@dataclass(frozen=True)
class Hour:
    start: datetime
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class KindDuration:
    kind: str
    median_seconds: float
    runs: int


@dataclass(frozen=True)
class Overview:
    queue: QueueState
    consumers: list[ConsumerState]
    running: list[Task]
    hours: list[Hour]
    durations: list[KindDuration]
    finished: int


def last_day(db: Session, now: datetime) -> tuple[list[Hour], list[KindDuration]]:
    """Tasks finished in each of the last 24 hours by status (the current hour last), and
    the median run time of each kind's tasks that ran, over the same window."""
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)
    rows = db.execute(
        select(Task.status, Task.kind, Task.started_at, Task.finished_at)
        .where(Task.finished_at >= first)
    ).all()
    counts: list[Counter[str]] = [Counter() for _ in range(HOURS)]
    runs: dict[str, list[float]] = {}
    for status, kind, started_at, finished_at in rows:
        index = int((finished_at - first).total_seconds() // 3600)
        if 0 <= index < HOURS:
            counts[index][status] += 1
        if started_at is not None:
            runs.setdefault(kind, []).append((finished_at - started_at).total_seconds())
    hours = [Hour(first + timedelta(hours=i), {s: counts[i][s] for s in FINAL})
             for i in range(HOURS)]
    durations = [KindDuration(kind, statistics.median(seconds), len(seconds))
                 for kind, seconds in sorted(runs.items())]
    return hours, durations


def read_overview(db: Session, lease_seconds: float) -> Overview:
    running = list(db.scalars(
        select(Task).options(joinedload(Task.owner)).where(Task.status == Status.RUNNING)
        .order_by(Task.started_at, Task.id).limit(RUNNING_SHOWN)
    ))
    hours, durations = last_day(db, utcnow())
    return Overview(queue_state(db), consumers(db, lease_seconds), running, hours, durations,
                    sum(hour.total for hour in hours))
