"""The queries behind the tasks view and the bell: who sees which tasks, in what order."""

from __future__ import annotations

import functools
import math
from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    bindparam,
    func,
    literal,
    literal_column,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from webapp.core.db import Precompiled
from webapp.core.models import (
    ACTIVE_STATUSES,
    Status,
    Task,
    TaskCount,
    TaskFacts,
    User,
    bump_bell,
    utcnow,
)
from webapp.core.search import MAX_MATCHES, NO_SEARCH, Search

MAX_PAGE = 1_000_000
# How many pages past the one shown a search counts: enough for the pager's links.
SEARCH_LOOKAHEAD = 2
# A search looks through this many times as many of the newest tasks as it needs matches
# before it asks the words index: a word in 4 % of them or more is found there.
SEARCH_WINDOW = 25
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


PAGE_SIZES = (10, 25, 50, 100)


def parse_per_page(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if value not in {str(size) for size in PAGE_SIZES}:
        allowed = ", ".join(map(str, PAGE_SIZES))
        raise InvalidQuery(f"per_page must be one of {allowed}, not {value!r}.")
    return int(value)


def remember_per_page(db: Session, user: User, per_page: int) -> None:
    """The page size the user chose, for their later views."""
    if user.per_page != per_page:
        db.execute(update(User).where(User.id == user.id).values(per_page=per_page))
        db.commit()
        user.per_page = per_page


@dataclass(frozen=True)
class Listing:
    tasks: list[ListedTask]
    total: int
    page: int
    per_page: int
    statuses: tuple[Status, ...]
    owner: User | None
    # Whose tasks these are: the viewer, the owner an administrator chose, or None
    # for everyone's.
    scope_id: int | None = None
    # The version the page was read at, as its live poll sends it back (`since=`).
    marker: str = ""
    # Whether URLs carry the page size: the viewer's differs from the default.
    per_page_in_url: bool = False
    search: Search = NO_SEARCH
    # A search's total counts the matches up to a few pages past this one (and never
    # past MAX_MATCHES): more match.
    limited: bool = False
    # The ids of the page's rows, newest first: all a live poll reads of them.
    ids: tuple[str, ...] = ()

    def shows(self, task: TaskFacts) -> bool:
        """Whether the task belongs in this listing's filter and search."""
        return ((not self.statuses or task.state in self.statuses)
                and self.search.matches(task.kind, task.description, task.created_at))

    @property
    def capped(self) -> bool:
        """More match than a search ever shows: only narrowing it finds the older ones."""
        return self.limited and self.total >= MAX_MATCHES

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

    def query_args(self, page: int | None = None, searched: bool = True) -> dict[str, Any]:
        """URL arguments that reproduce this listing, at another page if given, without
        its search if `searched` is false."""
        args: dict[str, Any] = {"status": [s.value for s in self.statuses]}
        if searched:
            args |= self.search.query_args()
        if self.owner is not None:
            args["owner"] = self.owner.name
        if self.per_page_in_url:
            args["per_page"] = self.per_page
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
            "search": self.search.to_json(),
            "total_limited": self.limited,
            "version": self.marker,
        }


# What a list never shows: left unread (parameters are JSON to parse, details and traces
# long texts). (run_after is shown: a task launched for later says when it runs.)
_NOT_LISTED = {"params", "details", "error_trace", "heartbeat_at", "dispatched_at", "seen_at"}
_LISTED = [column for column in Task.__table__.c if column.key not in _NOT_LISTED]


class ListedTask(TaskFacts, namedtuple("ListedRow", [c.key for c in _LISTED] + ["owner_name"])):
    """A task as a list shows it: its columns but the long ones, and its owner's name for
    an administrator's list (else None). A plain row rather than a mapped Task: a page
    reads 25 of them on every change a live view hears, and the ORM's bookkeeping for
    each cost more than the database took to find them all."""

    __slots__ = ()


def _listed_columns(admin: bool) -> list[Any]:
    """A list's columns of `tasks` (joined with `users` for an administrator's)."""
    return [*_LISTED, User.name if admin else null()]


def _with_owner(admin: bool, query: Select[Any]) -> Select[Any]:
    return query.join(User, User.id == Task.owner_id) if admin else query


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
    with_rows: bool = True,
    changed_after: int | None = None,
    per_page_in_url: bool = False,
    search: Search = NO_SEARCH,
) -> Listing:
    """One page of tasks, newest first, at a cost that does not grow with history.

    The total comes from the per-user counters; the page is found by an offset over
    the (owner, status, created_at, id) index alone, whose cost grows with the page
    number only, then only its rows are read. A search reads the keys of its newest
    matches instead, up to SEARCH_LOOKAHEAD pages past this one (so a common word
    stops early): their number is the total, or a lower bound of it, and the page a
    slice of them. Without `with_rows`, only the page's ids are read (a live poll's
    check for new rows), and with `changed_after` the rows among them whose version is
    above it, in the same statement (a live poll's few).
    """
    # Whose tasks: users only ever their own.
    scope = owner if viewer.is_admin else viewer
    # Read before the rows: a change that lands in between is sent again, never missed.
    marker = version_marker(db, scope)
    # Every status chosen is no filter at all, and the plain index serves it.
    chosen = () if set(statuses) == set(Status) else statuses
    scope_id = None if scope is None else scope.id
    offset = (page - 1) * per_page
    rows: list[ListedTask] = []
    limited = False
    if search:
        # One read serves the count and the page: counting apart would find the matches twice.
        wanted = min(offset + per_page * (1 + SEARCH_LOOKAHEAD), MAX_MATCHES)
        found = _search_ids(db, scope_id, chosen, search, wanted + 1)
        limited, total = len(found) > wanted, min(len(found), wanted)
        ids = found[offset:min(offset + per_page, total)]
        if with_rows and ids:
            rows = find_tasks(db, viewer, ids)
        elif changed_after is not None and ids:
            rows = find_tasks(db, viewer, ids, changed_after=changed_after)
        rows.sort(key=lambda task: (task.created_at, task.id), reverse=True)
    else:
        # The total rides with the page, a round trip saved on every read; only a page
        # with nothing on it (past the end) counts on its own.
        shape = "rows" if with_rows else "ids" if changed_after is None else "changed"
        statement = _page_statement(chosen, scope_id is not None, shape, viewer.is_admin,
                                    per_page)
        params = {"offset": offset, "since": changed_after}
        if scope_id is not None:
            params["owner_id"] = scope_id
        read = statement.rows(db, params)
        if with_rows:
            # Each row: the task's columns, then the total.
            rows = [ListedTask._make(row[:-1]) for row in read]
            ids = [task.id for task in rows]
            total_at = -1
        else:
            # Each row: an id, the total, then (changed) the task's columns or NULLs.
            ids = [row[0] for row in read]
            rows = [ListedTask._make(row[2:]) for row in read
                    if shape == "changed" and row[2] is not None]
            total_at = 1
        total = int(read[0][total_at]) if read else count_tasks(db, scope, chosen)
    return Listing(rows, total, page, per_page, statuses, owner, scope_id, marker,
                   per_page_in_url, search, limited, tuple(ids))


@functools.lru_cache(maxsize=256)
def _page_statement(statuses: tuple[Status, ...], owned: bool, shape: str,
                    admin: bool, per_page: int) -> Precompiled:
    """A page's rows with the total, for each shape of listing built and compiled once:
    the owner, offset (and version) are parameters. Building the statement cost more
    than PostgreSQL took to run it (about 0.3 ms a request).

    The page size is written into the statement. As a parameter, it left PostgreSQL's
    plan for the prepared statement unable to know the page is small, so it planned the
    query anew on every run (0.3 ms, as long as running it); written, the one plan made
    for all owners and offsets is as good and is kept.

    Shapes: "rows", the page's tasks (a list's columns) and the total; "ids", each id
    and the total; "changed", each id, the total and the task's columns if its version
    is above :since (else NULLs).
    """
    owner_id = bindparam("owner_id") if owned else None
    keys = _page_keys(owner_id, statuses, bindparam("offset"), literal_column(str(int(per_page))))
    counted = _counted(owner_id, statuses).scalar_subquery()
    newest_first = (keys.c.created_at.desc(), keys.c.id.desc())
    if shape == "ids":
        return Precompiled(select(keys.c.id, counted).order_by(*newest_first))
    if shape == "changed":
        changed = (Task.id == keys.c.id) & (Task.version > bindparam("since"))
        query = select(keys.c.id, counted, *_listed_columns(admin)).select_from(keys)
        query = query.outerjoin(Task, changed)
        if admin:
            query = query.outerjoin(User, User.id == Task.owner_id)
        return Precompiled(query.order_by(*newest_first))
    query = select(*_listed_columns(admin), counted).join(keys, Task.id == keys.c.id)
    return Precompiled(_with_owner(admin, query).order_by(*newest_first))


def _search_ids(db: Session, owner_id: int | None, statuses: tuple[Status, ...],
                search: Search, limit: int) -> list[str]:
    """The ids of a search's newest `limit` matches, newest first, by the page's plan
    (each status's range in order, merged).

    Words are looked for in the newest SEARCH_WINDOW times `limit` tasks of the rest of the
    search first, read in order: a frequent word stops after its first matches there. Only
    when those hold too few is the words index asked, which is quick for a word that
    is rare, and which a frequent one would make read every match (the planner cannot
    tell the two apart well enough to choose for us). SQLite reads the owner's matches
    from its words index whole before anything else either way, then walks the tasks
    in order against them: there the window would only come on top.
    """
    fields = search.fields()
    dialect = db.get_bind().dialect.name
    words = search.words_match(dialect, owner_id)
    if words is not None and dialect == "postgresql":
        window = _page_keys(owner_id, statuses, 0, SEARCH_WINDOW * limit, fields)
        recent = list(db.scalars(
            select(window.c.id).join(Task, Task.id == window.c.id).where(words)
            .order_by(window.c.created_at.desc(), window.c.id.desc()).limit(limit)))
        if len(recent) == limit:
            return recent
    if words is not None:
        fields.append(words)
    keys = _page_keys(owner_id, statuses, 0, limit, fields)
    return list(db.scalars(select(keys.c.id).order_by(keys.c.created_at.desc(),
                                                      keys.c.id.desc())))


def _matching(owner_id: int | None, statuses: tuple[Status, ...],
              where: list[ColumnElement[bool]]) -> Select[Any]:
    """The ids of the tasks a search finds, in no order."""
    query = select(Task.id).where(*where)
    if owner_id is not None:
        query = query.where(Task.owner_id == owner_id)
    if statuses:
        query = query.where(Task.status.in_(statuses))
    return query


def version_marker(db: Session, scope: User | None) -> str:
    """What a live view of these tasks polls with: the owner's tasks version, or for an
    administrator's view of everyone the sum of all of them (prefixed, so it is never
    taken for one user's version)."""
    if scope is not None:
        return str(scope.tasks_version)
    return f"all-{db.scalar(select(func.coalesce(func.sum(User.tasks_version), 0)))}"


def changed_since(db: Session, viewer: User, ids: Sequence[str],
                  since: int) -> list[ListedTask]:
    """Those of the tasks shown that changed after version `since`, newest first: only
    they are read whole (a poll's few, not its page)."""
    changed = find_tasks(db, viewer, ids, changed_after=since)
    return sorted(changed, key=lambda task: (task.created_at, task.id), reverse=True)


def newer_count(db: Session, listing: Listing, newest_shown: Task) -> int:
    """How many tasks in the listing's filter and search arrived since a later page was
    read: those newer than its top row, less the earlier pages' rows (bounded, as the
    bell's)."""
    above = (listing.page - 1) * listing.per_page
    chosen = () if set(listing.statuses) == set(Status) else listing.statuses
    searched = listing.search.conditions(db.get_bind().dialect.name, listing.scope_id)
    query = _matching(listing.scope_id, chosen, searched).where(
        (Task.created_at > newest_shown.created_at)
        | ((Task.created_at == newest_shown.created_at) & (Task.id > newest_shown.id))
    )
    return max(0, _bounded_count(db, query, above + BELL_COUNT_LIMIT + 1) - above)


Parameter = int | ColumnElement[Any]


def _page_keys(owner_id: Parameter | None, statuses: tuple[Status, ...], offset: Parameter,
               limit: Parameter, where: list[ColumnElement[bool]] | None = None) -> Subquery:
    """The ids and creation times of one page, read from an index only (a search's
    conditions, `where`, read the rows or the words index as well).

    With several statuses each is read in order from its own index range, at most
    offset + limit keys apiece, and the ranges are merged: never a sort of history.
    """

    def keys(status: Status | None) -> Select[Any]:
        query = select(Task.id, Task.created_at).where(*(where or ()))
        if owner_id is not None:
            query = query.where(Task.owner_id == owner_id)
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
    return int(db.scalar(_counted(None if owner is None else owner.id, statuses)) or 0)


def _counted(owner_id: Parameter | None, statuses: tuple[Status, ...]) -> Select[tuple[int]]:
    query = select(func.coalesce(func.sum(TaskCount.count), 0))
    if owner_id is not None:
        query = query.where(TaskCount.owner_id == owner_id)
    if statuses:
        # A parameter per status, not a list: a page's statement is compiled once.
        query = query.where(TaskCount.status.in_([literal(status.value) for status in statuses]))
    return query


def is_task_id(value: object) -> bool:
    """Could be a task's id (hex): anything else names no task, and a NUL or a lone
    surrogate would not even reach the database as a query parameter."""
    return isinstance(value, str) and 0 < len(value) <= 64 and value.isascii() and value.isalnum()


def find_task(db: Session, viewer: User, task_id: str) -> Task | None:
    if not is_task_id(task_id):
        return None
    return db.scalar(visible_tasks(viewer).where(Task.id == task_id))


def _by_ids(admin: bool, changed: bool) -> Select[Any]:
    query = select(*_listed_columns(admin)).where(
        Task.id.in_(bindparam("ids", expanding=True)))
    if changed:
        query = query.where(Task.version > bindparam("since"))
    return _with_owner(admin, query)


# Built once: a live poll asks for its rows every few seconds.
_BY_IDS = {(admin, changed): _by_ids(admin, changed)
           for admin in (False, True) for changed in (False, True)}


def find_tasks(db: Session, viewer: User, ids: Sequence[str], *,
               changed_after: int | None = None) -> list[ListedTask]:
    """The tasks of these ids the viewer may see (only those whose version is above
    `changed_after`, if given), as a list shows them. Read by primary key alone and the
    owner checked here: with `owner_id = ?` in the query, SQLite picks the owner's index
    and walks the user's whole history."""
    ids = [task_id for task_id in ids if is_task_id(task_id)]
    if not ids:
        return []
    statement = _BY_IDS[viewer.is_admin, changed_after is not None]
    found = map(ListedTask._make, db.execute(statement, {"ids": ids, "since": changed_after}))
    return [task for task in found if viewer.is_admin or task.owner_id == viewer.id]


def reruns_of(db: Session, viewer: User, task: Task, limit: int = 5) -> list[Task]:
    """The latest tasks that run this one again, newest first."""
    query = visible_tasks(viewer).where(Task.rerun_of == task.id)
    return list(db.scalars(query.order_by(Task.created_at.desc(), Task.id.desc()).limit(limit)))


def recent_tasks(db: Session, user: User, limit: int = 5) -> list[Task]:
    """The bell's dropdown: the user's active tasks (running, then queued, newest first),
    then the latest finished ones, `limit` in all.

    Two queries, each reading at most `limit` entries of an index per status, however
    many tasks the user has queued or finished.
    """

    def active(status: Status, rank: int) -> Subquery:
        return (
            select(Task.id, Task.created_at, literal(rank).label("rank"))
            .where(Task.owner_id == user.id, Task.status == status)
            .order_by(Task.created_at.desc(), Task.id.desc())
            .limit(limit)
            .subquery()
        )

    branches = [active(Status.RUNNING, 0), active(Status.QUEUED, 1)]
    merged = union_all(*(select(b.c.id, b.c.created_at, b.c.rank) for b in branches)).subquery()
    shown = list(db.scalars(
        select(Task)
        .join(merged, Task.id == merged.c.id)
        .order_by(merged.c.rank, merged.c.created_at.desc(), merged.c.id.desc())
        .limit(limit)
    ))
    if len(shown) < limit:
        shown += db.scalars(
            select(Task)
            .where(Task.owner_id == user.id, Task.finished_at.is_not(None))
            .order_by(Task.finished_at.desc(), Task.id.desc())
            .limit(limit - len(shown))
        )
    return shown


@dataclass(frozen=True)
class BellCounts:
    active: int
    unseen: int

    @staticmethod
    def shown(count: int) -> str:
        return f"{BELL_COUNT_LIMIT}+" if count > BELL_COUNT_LIMIT else str(count)


def _bounded_count(db: Session, query: Select[Any], limit: int = BELL_COUNT_LIMIT + 1) -> int:
    limited = query.limit(limit).subquery()
    return db.scalar(select(func.count()).select_from(limited)) or 0


def bell_counts(db: Session, user: User) -> BellCounts:
    active = count_tasks(db, user, tuple(ACTIVE_STATUSES))
    return BellCounts(active=active, unseen=_bounded_count(db, _unseen(user)))


def _unseen(user: User) -> Select[Any]:
    query = select(Task.id).where(Task.owner_id == user.id, Task.finished_at.is_not(None),
                                  Task.seen_at.is_(None))
    if user.tasks_seen_at is not None:
        query = query.where(Task.finished_at > user.tasks_seen_at)
    return query


def mark_seen(db: Session, user: User) -> bool:
    """The user looked at their tasks (the tasks view, live or not, or the bell's open
    menu): nothing finished so far is new any more."""
    if user.seen_bell_version == user.bell_version:
        return False
    seen_now = db.scalar(_unseen(user).limit(1)) is not None
    values: dict[str, Any] = {}
    if seen_now:
        values = {"tasks_seen_at": utcnow(), "bell_version": User.bell_version + 1}
    # The bell as it stood when this request read the user, plus our own bump: a change
    # committed since then moves it further, and the next view looks again.
    values["seen_bell_version"] = user.bell_version + seen_now
    db.execute(update(User).where(User.id == user.id).values(**values))
    db.commit()
    db.refresh(user)
    return seen_now


def is_unseen(user: User, task: Task) -> bool:
    """The rule of _unseen for one loaded task: a task of the user's, finished since they
    last looked, whose own page they have not opened."""
    return (task.owner_id == user.id and task.finished_at is not None and task.seen_at is None
            and (user.tasks_seen_at is None or task.finished_at > user.tasks_seen_at))


def mark_task_seen(db: Session, user: User, task: Task) -> None:
    """The user opened the page of a finished task of theirs: it is no longer new."""
    if not is_unseen(user, task):
        return
    db.execute(update(Task).where(Task.id == task.id).values(seen_at=utcnow()))
    bump_bell(db, user.id)
    db.commit()
