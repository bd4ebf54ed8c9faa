"""The tables: users, their API tokens, and the task records users see."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    TypeDecorator,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC (SQLite keeps no zone) and always hands back aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def iso(moment: datetime | None) -> str | None:
    """A time as the public interface writes it: ISO 8601 UTC, with a Z."""
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


class Status(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_active(self) -> bool:
        return self in ACTIVE_STATUSES


ACTIVE_STATUSES = frozenset({Status.QUEUED, Status.RUNNING})
FINAL_STATUSES = frozenset(Status) - ACTIVE_STATUSES

# The width of a task's short texts (description, progress message, outcome); longer
# text goes to its details.
MAX_TEXT = 500


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the user last opened the tasks view: tasks finished after it are "new".
    tasks_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped whenever anything the bell shows changes, so an unchanged poll is
    # answered from this number alone.
    bell_version: Mapped[int] = mapped_column(default=0)
    # Bumped by database triggers (migration 0006l) whenever anything the tasks view
    # shows of the user's tasks changes, so an unchanged live poll is answered from it.
    tasks_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # The bell version when the user last saw all their tasks: while it is still the
    # current one, nothing has finished since, so there is nothing to mark seen.
    seen_bell_version: Mapped[int | None] = mapped_column()
    # Rows per page of the tasks view the user last chose (None: the configured default).
    per_page: Mapped[int | None] = mapped_column()
    # Copied into every session cookie and compared on each request: bumping it ends
    # every session of the user (sign out, `users sign-out`).
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # SHA-256 of the token: a leaked table does not leak working tokens.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What the user calls it ("backup script"), to tell tokens apart when revoking one.
    name: Mapped[str] = mapped_column(String(80), default="", server_default="")
    # None: good until revoked.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Written at most once a minute per token, so a script's polls cost no write each.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="tokens")


class RateCount(Base):
    """How many events (failed logins, launches) one subject had in one window of a limit
    (webapp.core.throttle); rows of windows that are over are removed as new ones come."""

    __tablename__ = "rate_counts"

    # The limit's name, the window's number and a hash of the subject.
    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    count: Mapped[int] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class TaskFacts:
    """What a task shows beyond its columns, worked out from them: the one home of these
    rules for the mapped Task and for the plain rows a list reads (listing.ListedTask).
    Typed against the columns each of them has."""

    __slots__ = ()

    if TYPE_CHECKING:  # the columns the rules read (declared here for type checkers only)
        id: str
        kind: str
        description: str
        status: str
        cancel_requested_at: datetime | None
        progress: float | None
        progress_message: str | None
        outcome: str | None
        created_at: datetime
        started_at: datetime | None
        finished_at: datetime | None
        attempt: int
        hand_backs: int
        run_after: datetime | None
        rerun_of: str | None

    @property
    def state(self) -> Status:
        return Status(self.status)

    @property
    def attempts_spent(self) -> int:
        """The attempts that count toward the kind's max_attempts: not the hand-backs."""
        return self.attempt - self.hand_backs

    @property
    def is_cancelling(self) -> bool:
        return self.status == Status.RUNNING and self.cancel_requested_at is not None

    @property
    def cancellable(self) -> bool:
        """Active and not yet asked to stop: what a cancel (one or many) would change."""
        return self.state.is_active and self.cancel_requested_at is None

    @property
    def shown_status(self) -> str:
        """The status as users see it: a running task asked to stop is "cancelling"."""
        return "cancelling" if self.is_cancelling else self.status

    @property
    def scheduled_at(self) -> datetime | None:
        """When a queued task launched for later (or a retry waiting out its backoff) may
        run; None once that time has come."""
        if self.status != Status.QUEUED or self.run_after is None or self.run_after <= utcnow():
            return None
        return self.run_after

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or utcnow()
        return max(0.0, (end - self.started_at).total_seconds())

    def to_json(self) -> dict[str, Any]:
        """The task object of the public interface."""
        return {
            "id": self.id,
            "kind": self.kind,
            "description": self.description,
            "status": self.status,
            "cancel_requested": self.cancel_requested_at is not None,
            "progress": self.progress,
            "progress_message": self.progress_message,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration_seconds": self.duration_seconds,
            "outcome": self.outcome,
            "attempt": self.attempt,
            "rerun_of": self.rerun_of,
        }


class Task(TaskFacts, Base):
    """A background task as users see it; the Huey message only carries its id."""

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(
            f"status IN ({', '.join(repr(status.value) for status in Status)})",
            name="ck_tasks_status",
        ),
        # The tasks view: a user's tasks newest first, with or without a status filter.
        Index("ix_tasks_owner_created", "owner_id", "created_at", "id"),
        Index("ix_tasks_owner_status_created", "owner_id", "status", "created_at", "id"),
        # The bell's "finished since you last looked".
        Index("ix_tasks_owner_finished", "owner_id", "finished_at"),
        # The admin view across users, and the workers' scans by status.
        Index("ix_tasks_created", "created_at", "id"),
        Index("ix_tasks_status_created", "status", "created_at", "id"),
        # "Run again as": the tasks that repeat this one.
        Index("ix_tasks_rerun_of", "rerun_of"),
        # The administrator's overview: everyone's tasks finished in the last 24 hours.
        Index("ix_tasks_finished", "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(MAX_TEXT))
    status: Mapped[str] = mapped_column(String(16), default=Status.QUEUED.value)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    progress: Mapped[float | None] = mapped_column(Float)
    progress_message: Mapped[str | None] = mapped_column(String(MAX_TEXT))
    outcome: Mapped[str | None] = mapped_column(String(MAX_TEXT))
    details: Mapped[str | None] = mapped_column(Text)
    # The traceback of an unexpected failure: for administrators, not users.
    error_trace: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Each claim by a worker is a new attempt; a worker only writes to the record
    # while the attempt is still its own, so a reaped worker cannot overwrite a re-run.
    attempt: Mapped[int] = mapped_column(default=0, server_default="0")
    # How many of those attempts a stopping consumer handed back: they spent nothing.
    hand_backs: Mapped[int] = mapped_column(default=0, server_default="0")
    # When the record was last handed to the queue (None: it still has to be).
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A retry waits until then before it may be dispatched.
    run_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The owner's tasks_version after this row's last visible change (set by triggers).
    version: Mapped[int] = mapped_column(default=0, server_default="0")
    # The user opened this finished task's page: the bell no longer counts it as new.
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The task this one runs again (no foreign key: a purged original leaves the link dangling).
    rerun_of: Mapped[str | None] = mapped_column(String(32))
    # The number of the last line of the task's own log (task_log_lines): how many lines
    # it has ever had, so the lines dropped by the bound are counted without a query.
    # A visible change (migration 0008t), so a live page learns that the log grew.
    log_seq: Mapped[int] = mapped_column(default=0, server_default="0")

    owner: Mapped[User] = relationship()

    @property
    def owner_name(self) -> str:
        return self.owner.name


class TaskLogLine(Base):
    """A line of a task's own log (webapp.core.tasklog), numbered from 1 per task; only
    the latest tasklog.MAX_LINES are kept. Goes with its task."""

    __tablename__ = "task_log_lines"

    task_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    level: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(String(MAX_TEXT))


class TaskCount(Base):
    """How many tasks a user has in each status, so a page or a poll never counts history.

    Kept by database triggers on `tasks` (migration 0004p), in the same transaction as
    every insert, status change and delete, whichever code or tool makes it. A later
    migration that rebuilds `tasks` on SQLite (a batch copy) must create them again.
    """

    __tablename__ = "task_counts"

    owner_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)


class WorkerLock(Base):
    """A lock with a time to live, so one consumer at a time does the periodic work."""

    __tablename__ = "worker_locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConsumerProcess(Base):
    """A consumer process that is running, or was: it registers at start, renews its
    heartbeat while it runs and removes itself when it stops (webapp/workers/registry.py).
    One whose heartbeat is older than a lease is gone (killed, its host down)."""

    __tablename__ = "consumers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    # How many tasks it runs at once (--workers), and how many it runs now.
    workers: Mapped[int]
    tasks_in_hand: Mapped[int] = mapped_column(default=0, server_default="0")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UsedEmbedToken(Base):
    """An embed token already exchanged for a session: each one signs in once."""

    __tablename__ = "used_embed_tokens"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Past this the token's signature refuses it anyway, so the row can go.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


# What migrations keep outside these models, in one dialect's own SQL: the words of
# descriptions (0009f), SQLite's FTS5 table (and its shadow tables, task_words_*) or
# PostgreSQL's generated column and its GIN index.
UNMODELLED = ("task_words", "ix_tasks_words")


def modelled(name: str | None, type_: str, parent_names: Any) -> bool:
    """Whether a table or index of the database is one of the models' (Alembic's
    include_name): autogenerate and the schema check leave the others alone."""
    return not (name or "").startswith(UNMODELLED)


def bump_bell(session: Session, user_id: int) -> None:
    """Tell the user's bell that something it shows has changed."""
    session.execute(
        update(User).where(User.id == user_id).values(bell_version=User.bell_version + 1)
    )
