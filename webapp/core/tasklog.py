"""A task's own log: the short lines its operation and its state machine write, made safe,
kept with the task and bounded (the latest MAX_LINES of MAX_TEXT characters each).

Lines are numbered per task by `tasks.log_seq`, raised in the same statement that moves or
reports the task, so the kept lines are always the range (log_seq - MAX_LINES, log_seq]
and how many were dropped is known without counting.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from webapp.core.models import MAX_TEXT, Task, TaskLogLine, utcnow
from webapp.core.text import REPLACEMENT, storable

MAX_LINES = 1000
INFO = "info"
WARNING = "warning"
LEVELS = (INFO, WARNING)

# A line is one line: breaks and tabs become spaces.
_BREAKS = re.compile(r"[\t\n\r\v\f\x85\u2028\u2029]+")
# What a page must never show as it is: other control characters (what no database takes,
# surrogates and NUL, is text.storable's).
_CONTROLS = re.compile("[\x01-\x1f\x7f-\x9f]")


def clean(text: Any) -> str:
    """The text as a line that any database stores and any page shows as it is."""
    line = storable(_CONTROLS.sub(REPLACEMENT, _BREAKS.sub(" ", str(text)))).strip()
    return line if len(line) <= MAX_TEXT else line[: MAX_TEXT - 1] + "…"


@dataclass(frozen=True)
class Line:
    """A line not stored yet; `at` is when it was written, not when it is stored."""

    text: str
    level: str = INFO
    at: datetime = field(default_factory=utcnow)


def line(text: Any, level: str = INFO) -> Line:
    if level not in LEVELS:
        raise ValueError(f"a log line's level is one of {', '.join(LEVELS)}, not {level!r}")
    return Line(clean(text), level)


@dataclass(frozen=True)
class Batch:
    """Lines to store together, and how many lines before them were already dropped (an
    attempt that logged more than MAX_LINES between two writes)."""

    lines: Sequence[Line] = ()
    skipped: int = 0

    @property
    def count(self) -> int:
        """How far the task's line number moves."""
        return len(self.lines) + self.skipped

    def then(self, *more: Line) -> Batch:
        return Batch([*self.lines, *more], self.skipped)


NO_LINES = Batch()


def said(text: Any, level: str = INFO) -> Batch:
    """One line, as a batch: what a transition adds to the log."""
    return Batch([line(text, level)])


class Pending:
    """What an attempt logged that is not stored yet, bounded like the store; the
    operation adds while the heartbeat thread takes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: deque[Line] = deque(maxlen=MAX_LINES)
        self._skipped = 0

    def add(self, one: Line) -> None:
        with self._lock:
            if len(self._lines) == MAX_LINES:
                self._skipped += 1
            self._lines.append(one)

    def take(self) -> Batch:
        with self._lock:
            batch = Batch(list(self._lines), self._skipped)
            self._lines.clear()
            self._skipped = 0
        return batch

    def restore(self, batch: Batch) -> None:
        """Put back what could not be stored, before what was added since."""
        with self._lock:
            lines = [*batch.lines, *self._lines]
            over = max(0, len(lines) - MAX_LINES)
            self._lines.clear()
            self._lines.extend(lines[over:])
            self._skipped += batch.skipped + over

    def peek(self) -> list[Line]:
        with self._lock:
            return list(self._lines)


def store(session: Session, moved: Iterable[tuple[str, int]], batch: Batch) -> None:
    """Insert the batch into the log of each (task id, its log_seq once raised by
    batch.count) and drop what falls out of the bound; the caller commits."""
    rows = []
    for task_id, last in moved:
        kept = batch.lines[-MAX_LINES:]
        first = last - len(kept) + 1
        rows += [{"task_id": task_id, "seq": first + number, "at": one.at, "level": one.level,
                  "text": one.text} for number, one in enumerate(kept)]
        if last > MAX_LINES:
            session.execute(delete(TaskLogLine).where(TaskLogLine.task_id == task_id,
                                                      TaskLogLine.seq <= last - MAX_LINES))
    if rows:
        session.execute(insert(TaskLogLine), rows)


@dataclass
class Log:
    """A task's log as read: the lines after a number, and how many were dropped."""

    lines: list[TaskLogLine]
    dropped: int
    last: int

    def to_json(self) -> dict[str, Any]:
        return {
            "lines": [{"seq": one.seq, "at": one.at.isoformat().replace("+00:00", "Z"),
                       "level": one.level, "text": one.text} for one in self.lines],
            "dropped": self.dropped,
            "last": self.last,
        }


def read(session: Session, task: Task, after: int = 0) -> Log:
    """The task's kept lines numbered above `after`, oldest first."""
    lines = list(session.scalars(
        select(TaskLogLine)
        .where(TaskLogLine.task_id == task.id, TaskLogLine.seq > after)
        .order_by(TaskLogLine.seq)
    ))
    last = max([task.log_seq, *(one.seq for one in lines[-1:])])
    return Log(lines, max(0, last - MAX_LINES), last)
