"""The Huey side of the runtime: the Huey instance a configuration names, the one Huey
task that runs tracked tasks by record id, and the consumer that stops gracefully.

Consumers must use thread workers (`-k thread`, the default): the graceful hand-back
relies on the workers sharing the consumer's memory.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any
from urllib.parse import urlsplit

from huey.api import Huey
from huey.consumer import Consumer
from huey.storage import PriorityRedisStorage, SqliteStorage

from webapp.db import Database
from webapp.maintenance import Maintenance
from webapp.settings import ConfigurationError, Settings
from webapp.worker import Worker

log = logging.getLogger(__name__)


class TrackedHuey(Huey):
    """A Huey whose consumer hands running tasks back when it stops."""

    task_queue: TaskQueue

    def create_consumer(self, **options: Any) -> Consumer:
        return TrackedConsumer(self, self.task_queue, **options)


class TrackedConsumer(Consumer):
    """Runs the maintenance thread, and on SIGINT, SIGTERM or SIGHUP stops taking work,
    lets running tasks reach a checkpoint for the grace period, then hands back the rest."""

    def __init__(self, huey: Huey, task_queue: TaskQueue, **options: Any) -> None:
        settings = task_queue.settings
        if options.get("shutdown_timeout") is None:
            options["shutdown_timeout"] = settings.shutdown_grace_seconds
        super().__init__(huey, **options)
        self.task_queue = task_queue
        self.maintenance = Maintenance(task_queue.database, task_queue, settings)

    def start(self) -> None:
        super().start()
        self.maintenance.start()

    def stop(self, graceful: bool = False) -> None:
        # Every stop is graceful: checkpoints now raise WorkerStopping and hand tasks back.
        self.task_queue.worker.stopping.set()
        self.maintenance.stop()
        super().stop(graceful=True)
        self.task_queue.worker.hand_back_unfinished()


def create_huey(huey_url: str, name: str = "tasks",
                huey_class: type[Huey] = TrackedHuey) -> Huey:
    """`sqlite:///absolute/path` or `redis://host:port/db`; `name` prefixes every key.

    Benchmarks pass `huey_class=Huey` for a bare baseline on the very same storage.
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
        return huey_class(name, results=False, storage_class=PriorityRedisStorage,
                          url=huey_url, blocking=True)
    raise ConfigurationError(f"HUEY_URL must start with sqlite:/// or redis://, not {huey_url!r}")


class TaskQueue:
    """Hands tracked tasks to Huey; the Huey task id is the record's id."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database
        self.huey = create_huey(settings.huey_url, settings.huey_name)
        self.huey.task_queue = self
        self.worker = Worker(database, self, settings)
        self._run = self.huey.task(name="run_tracked_task")(self.worker.execute)
        self.data_root = settings.data_root

    def enqueue(self, task_id: str, delay: float | None = None) -> None:
        self.huey.enqueue(self._run.s(task_id, id=task_id, delay=delay))

    def revoke(self, task_id: str) -> None:
        # revoke_once: the flag is consumed when the message is dropped, so none pile up.
        self.huey.revoke_by_id(task_id, revoke_once=True)

    def pending(self) -> int:
        return self.huey.pending_count()

    def ping(self) -> None:
        self.huey.storage.queue_size()
