"""Fixed-window counters in the task database, shared by every web process and host.

Flask-Limiter's storages are memory (one process), Redis, Memcached and MongoDB; the
embedded default has none of those, while the task database is shared by every process of
both configurations, so the counters live there: one row per limit, window and subject,
incremented with one upsert.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from webapp.core.models import RateCount


@dataclass(frozen=True)
class Limit:
    """At most `count` events per subject in each window of `seconds`."""

    name: str
    count: int
    seconds: int

    def key(self, subject: str, now: float) -> str:
        # Subjects are what clients send (a name typed at the login form): hashed, they
        # are short and safe to store whatever they hold.
        digest = hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        return f"{self.name}:{int(now // self.seconds)}:{digest}"

    def seconds_left(self, now: float) -> int:
        """Until the current window ends: the Retry-After of a refusal."""
        return max(1, math.ceil((now // self.seconds + 1) * self.seconds - now))


def retry_after(db: Session, limit: Limit, subject: str) -> int | None:
    """Seconds until `subject` may try again when its window is full, else None."""
    now = time.time()
    count = db.scalar(select(RateCount.count).where(RateCount.key == limit.key(subject, now)))
    return limit.seconds_left(now) if count is not None and count >= limit.count else None


def hit(db: Session, limit: Limit, subject: str) -> int | None:
    """Count one event of `subject`; like retry_after, the seconds to wait when this event
    is one too many (it is counted all the same), else None. Commits."""
    now = time.time()
    key = limit.key(subject, now)
    expires = datetime.fromtimestamp((now // limit.seconds + 1) * limit.seconds, UTC)
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(RateCount).values(key=key, count=1, expires_at=expires)
    statement = statement.on_conflict_do_update(
        index_elements=[RateCount.key], set_={"count": RateCount.count + 1}
    ).returning(RateCount.count)
    count = db.execute(statement).scalar_one()
    if count == 1:
        # A new window: a good moment to drop the windows that are over.
        db.execute(delete(RateCount).where(RateCount.expires_at <= datetime.now(UTC)))
    db.commit()
    return limit.seconds_left(now) if count > limit.count else None
