"""A TaskContext for calling an operation directly, in memory: no database, no consumer.

It records every progress report and log line and counts checkpoints, and raises TaskCancelled at
the checkpoint a test chooses (its number, or the first one a condition holds at), so
a cancel can be placed at every boundary of an operation, deterministically.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import webapp.operations  # noqa: F401 - registers the kinds run here
from webapp.core.kinds import get_kind
from webapp.core.runtime import TaskCancelled, TaskContext


class TestContext(TaskContext):
    __test__ = False  # not a test class, whatever its name

    def __init__(
        self,
        root: Path,
        *,
        settings: Any = None,
        attempt: int = 1,
        cancel_at: int | None = None,
        cancel_when: Callable[[TestContext], bool] | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        super().__init__(None, "test", {}, root=root, settings=settings,  # type: ignore[arg-type]
                         attempt=attempt, stopping=stopping)
        self.cancel_at = cancel_at
        self.cancel_when = cancel_when
        self.checkpoints = 0
        self.reports: list[tuple[float | None, str | None]] = []

    @property
    def logged(self) -> list[tuple[str, str]]:
        """The log lines so far, as (level, text): kept in memory, made safe and bounded
        as the real context keeps them until a write takes them."""
        return [(one.level, one.text) for one in self._log.peek()]

    @property
    def message(self) -> str:
        """The latest progress message, or ''."""
        return next((m for _, m in reversed(self.reports) if m), "")

    def checkpoint(self) -> None:
        self.checkpoints += 1
        if self.checkpoints == self.cancel_at or (self.cancel_when and self.cancel_when(self)):
            raise TaskCancelled()

    def progress(self, fraction: float | None, message: str | None = None) -> None:
        self.reports.append((fraction, message))

    def heartbeat(self) -> None:
        pass


def run(kind: str, root: Path, params: dict[str, Any], **options: Any) -> tuple[str, TestContext]:
    """Check the parameters as a launch does, run the operation; its outcome and context."""
    found = get_kind(kind)
    context = TestContext(root, **options)
    checked = found.parse(params, root)
    outcome = found.run(checked, context) or "Completed"
    context.run_afterwards()  # as its worker does once the record says it completed
    return outcome, context


def boundaries(kind: str, make_root: Callable[[], Path], params: dict[str, Any],
               **options: Any) -> Iterator[tuple[int, Path, BaseException | None]]:
    """Run the operation once to count its checkpoints, then once per checkpoint on a
    fresh root, cancelled there: yields (checkpoint, root, what was raised)."""
    _, whole = run(kind, make_root(), params, **options)
    for number in itertools.count(1):
        if number > whole.checkpoints:
            return
        root = make_root()
        raised: BaseException | None = None
        try:
            run(kind, root, params, cancel_at=number, **options)
        except TaskCancelled as exc:
            raised = exc
        yield number, root, raised
