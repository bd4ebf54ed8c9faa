"""The queries behind the tasks view and the bell: who sees which tasks, in what order."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Subquery, func, select, union_all, update
from sqlalchemy.orm import Session, selectinload

from webapp.models import ACTIVE_STATUSES, Status, Task, TaskCount, User, bump_bell, utcnow

MAX_PAGE = 1_000_000
# The bell shows "99+" beyond this: counting further would cost a scan of history.
BELL_COUNT_LIMIT = 99


class InvalidQuery(ValueError):
    """A query string the tasks view refuses; the message says what is allowed."""


def parse_statuses(values: Sequence[str]) -> tuple[Status, ...]:
    chosen: list[Status] = []
    for value in values:
        if value == "":
            continue
        try:
            status = Status(value)
        except ValueError:
            allowed = ", ".join(s.value for s in Status)
            raise InvalidQuery(f"Unknown status {value!r}; use any of: {allowed}.") from None
        if status not in chosen:
            chosen.append(status)
    # Canonical order, so one filter has one URL.
    return tuple(s for s in Status if s in chosen)


def parse_page(value: str | None) -> int:
    if value is None or value == "":
        return 1
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise InvalidQuery(f"page must be a whole number from 1 to {MAX_PAGE}, not {value!r}.")
    return int(value)


@dataclass(frozen=True)
class Listing:
    tasks: list[Task]
    total: int
    page: int
    per_page: int
    statuses: tuple[Status, ...]
    owner: User | None

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    def page_numbers(self) -> list[int | None]:
        """First, last, and a window around the current page; None marks a gap."""
        wanted = {1, self.pages, *range(self.page - 2, self.page + 3)}
        numbers = sorted(n for n in wanted if 1 <= n <= self.pages)
        shown: list[int | None] = []
        for number in numbers:
            if shown and number - (shown[-1] or 0) > 1:
                shown.append(None)
            shown.append(number)
        return shown

    def query_args(self, page: int | None = None) -> dict[str, Any]:
        """URL arguments that reproduce this listing, at another page if given."""
        args: dict[str, Any] = {"status": [s.value for s in self.statuses]}
        if self.owner is not None:
            args["owner"] = self.owner.name
        page = self.page if page is None else page
        if page != 1:
            args["page"] = page
        return args

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": [task.to_json() for task in self.tasks],
            "total": self.total,
            "page": self.page,
            "pages": self.pages,
            "per_page": self.per_page,
            "statuses": [s.value for s in self.statuses],
        }


def visible_tasks(viewer: User) -> Select[tuple[Task]]:
    """Users see their own tasks; administrators see everyone's."""
    query = select(Task)
    return query if viewer.is_admin else query.where(Task.owner_id == viewer.id)


def list_tasks(
    db: Session,
    viewer: User,
    *,
    statuses: tuple[Status, ...] = (),
    page: int = 1,
    per_page: int = 25,
    owner: User | None = None,
) -> Listing:
    """One page of tasks, newest first, at a cost that does not grow with history.

    The total comes from the per-user counters; the page is found by an offset over
    the (owner, status, created_at, id) index alone, whose cost grows with the page
    number only, then only its rows are read.
    """
    # Whose tasks: users only ever their own.
    scope = owner if viewer.is_admin else viewer
    # Every status chosen is no filter at all, and the plain index serves it.
    chosen = () if set(statuses) == set(Status) else statuses
    total = count_tasks(db, scope, chosen)
    offset = (page - 1) * per_page
    rows: list[Task] = []
    if offset < total:
        keys = _page_keys(scope, chosen, offset, per_page)
        query = (
            select(Task)
            .join(keys, Task.id == keys.c.id)
            .order_by(keys.c.created_at.desc(), keys.c.id.desc())
        )
        if viewer.is_admin:
            # The owner column: one query for the page's owners, not one per row.
            query = query.options(selectinload(Task.owner))
        rows = list(db.scalars(query))
    return Listing(rows, total, page, per_page, statuses, owner)


def _page_keys(owner: User | None, statuses: tuple[Status, ...], offset: int,
               limit: int) -> Subquery:
    """The ids and creation times of one page, read from an index only.

    With several statuses each is read in order from its own index range, at most
    offset + limit keys apiece, and the ranges are merged: never a sort of history.
    """

    def keys(status: Status | None) -> Select[Any]:
        query = select(Task.id, Task.created_at)
        if owner is not None:
            query = query.where(Task.owner_id == owner.id)
        if status is not None:
            query = query.where(Task.status == status)
        return query.order_by(Task.created_at.desc(), Task.id.desc())

    if len(statuses) <= 1:
        return keys(statuses[0] if statuses else None).offset(offset).limit(limit).subquery()
    branches = [keys(status).limit(offset + limit).subquery() for status in statuses]
    merged = union_all(*(select(b.c.id, b.c.created_at) for b in branches)).subquery()
    return (
        select(merged.c.id, merged.c.created_at)
        .order_by(merged.c.created_at.desc(), merged.c.id.desc())
        .offset(offset)
        .limit(limit)
        .subquery()
    )


def count_tasks(db: Session, owner: User | None, statuses: tuple[Status, ...] = ()) -> int:
    """A user's tasks (everyone's when owner is None) in these statuses, or in all, from
    the counters: a few rows per user, whatever the length of history."""
    query = select(func.coalesce(func.sum(TaskCount.count), 0))
    if owner is not None:
        query = query.where(TaskCount.owner_id == owner.id)
    if statuses:
        query = query.where(TaskCount.status.in_(statuses))
    return int(db.scalar(query) or 0)


def find_task(db: Session, viewer: User, task_id: str) -> Task | None:
    return db.scalar(visible_tasks(viewer).where(Task.id == task_id))


def recent_tasks(db: Session, user: User, limit: int = 5) -> list[Task]:
    """The bell's dropdown: the user's own newest tasks."""
    query = (
        select(Task)
        .where(Task.owner_id == user.id)
        .order_by(Task.created_at.desc(), Task.id.desc())
        .limit(limit)
    )
    return list(db.scalars(query))


@dataclass(frozen=True)
class BellCounts:
    active: int
    unseen: int

    @staticmethod
    def shown(count: int) -> str:
        return f"{BELL_COUNT_LIMIT}+" if count > BELL_COUNT_LIMIT else str(count)


def _bounded_count(db: Session, query: Select[Any]) -> int:
    limited = query.limit(BELL_COUNT_LIMIT + 1).subquery()
    return db.scalar(select(func.count()).select_from(limited)) or 0


def bell_counts(db: Session, user: User) -> BellCounts:
    active = count_tasks(db, user, tuple(ACTIVE_STATUSES))
    return BellCounts(active=active, unseen=_bounded_count(db, _unseen(user)))


def _unseen(user: User) -> Select[Any]:
    query = select(Task.id).where(Task.owner_id == user.id, Task.finished_at.is_not(None))
    if user.tasks_seen_at is not None:
        query = query.where(Task.finished_at > user.tasks_seen_at)
    return query


def mark_seen(db: Session, user: User) -> bool:
    """The user opened the tasks view: nothing finished so far is new any more."""
    if db.scalar(_unseen(user).limit(1)) is None:
        return False
    db.execute(update(User).where(User.id == user.id).values(tasks_seen_at=utcnow()))
    bump_bell(db, user.id)
    db.commit()
    db.refresh(user)
    return True
