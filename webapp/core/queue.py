"""The queue as the web side sees it: the Huey instance a configuration names, and
enqueue, revoke, the waiting messages, and ping. Web processes never run a task; the consumer is
wired in webapp.workers.consumer, which only consumers import.

Huey names a message by its task, and both sides must know that name: the side that
enqueues to write it, the consumer to run it. So the one Huey task, run_tracked_task,
is registered here, on every TaskQueue, as a thin function that hands the record id
to the executor the consumer plugs in (its Worker). On the web side nothing is plugged
in and nothing calls it; the worker's code is never imported there.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from urllib.parse import urlsplit

import redis
from huey.api import Huey
from huey.storage import PriorityRedisStorage, SqliteStorage

from webapp.settings import ConfigurationError, QueueTimeouts

log = logging.getLogger(__name__)


DEFAULT_TIMEOUTS = QueueTimeouts()
# What the queue raises while it cannot be reached: Redis down, paused or restarting, or
# the SQLite file locked or gone.
UNREACHABLE: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, sqlite3.OperationalError)
# How long a blocking dequeue waits for a message (BZPOPMIN); the socket waits longer.
READ_WAIT = 1.0


def create_huey(huey_url: str, name: str = "tasks", huey_class: type[Huey] = Huey,
                timeouts: QueueTimeouts = DEFAULT_TIMEOUTS, dequeues: bool = True) -> Huey:
    """`sqlite:///absolute/path` or `redis://host:port/db`; `name` prefixes every key.

    The consumer passes its own Huey class (webapp.workers.consumer.TrackedHuey); benchmarks
    use a bare Huey on the very same storage as a baseline. A Huey that never dequeues
    (a web process's) waits `timeouts.command` for an answer; one that does also waits
    out its blocking read. Timeouts given in a redis URL's query win.
    """
    parts = urlsplit(huey_url)
    # Our records are the results users see; Huey keeps no results of its own.
    if parts.scheme == "sqlite":
        huey = huey_class(name, results=False, storage_class=SqliteStorage,
                          filename=parts.path, create_tables=False)
        try:
            huey.storage.initialize_schema()
        except sqlite3.Error as exc:
            # Start anyway: launches stay queued and are dispatched once the file is back.
            log.warning("queue storage %s unavailable: %s", parts.path, exc)
        return huey
    if parts.scheme in ("redis", "rediss"):
        # Blocking dequeue (BZPOPMIN): an idle worker wakes the moment a message lands,
        # instead of polling with the consumer's --delay backoff.
        pool = redis.ConnectionPool.from_url(
            huey_url, socket_connect_timeout=timeouts.command,
            socket_timeout=timeouts.command + (READ_WAIT if dequeues else 0))
        return huey_class(name, results=False, storage_class=PriorityRedisStorage,
                          connection_pool=pool, blocking=True, read_timeout=READ_WAIT)
    raise ConfigurationError(f"HUEY_URL must start with sqlite:/// or redis://, not {huey_url!r}")


class TaskQueue:
    """Hands tracked tasks to Huey; the Huey task id is the record's id."""

    def __init__(self, huey_url: str, name: str, huey_class: type[Huey] = Huey,
                 timeouts: QueueTimeouts = DEFAULT_TIMEOUTS, dequeues: bool = True) -> None:
        self.huey = create_huey(huey_url, name, huey_class, timeouts, dequeues)
        # The health check's own connection, with its own short timeouts.
        self._probe = (redis.Redis.from_url(huey_url, socket_timeout=timeouts.health,
                                            socket_connect_timeout=timeouts.health)
                       if isinstance(self.huey.storage, PriorityRedisStorage) else None)
        # What runs a tracked task by its record id: set by a consumer, None elsewhere.
        self.executor: Callable[[str], None] | None = None
        self._run = self.huey.task(name="run_tracked_task")(self._run_tracked_task)

    def _run_tracked_task(self, task_id: str) -> None:
        if self.executor is None:
            raise RuntimeError("run_tracked_task runs in a consumer (webapp.workers.consumer) only")
        self.executor(task_id)

    def enqueue(self, task_id: str, delay: float | None = None) -> None:
        self.huey.enqueue(self._run.s(task_id, id=task_id, delay=delay))

    def revoke(self, task_id: str) -> None:
        # revoke_once: the flag is consumed when the message is dropped, so none pile up.
        self.huey.revoke_by_id(task_id, revoke_once=True)

    def waiting_ids(self) -> set[str]:
        """The record ids whose messages wait in the queue or in its schedule (a delayed
        retry). Every message is read: the maintenance asks only while records have waited
        over a lease, and a backlog that size is what it must see through."""
        storage = self.huey.storage
        messages = [*storage.enqueued_items(), *storage.scheduled_items()]
        return {self.huey.serializer.deserialize(data).id for data in messages}

    def ping(self) -> None:
        """Raises unless the queue answers within the health check's timeout."""
        if self._probe is not None:
            self._probe.ping()
        else:
            self.huey.storage.queue_size()
