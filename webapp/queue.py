"""The Huey side of the runtime: the Huey instance a configuration names, and the
one Huey task that runs tracked tasks by record id."""

from __future__ import annotations

from urllib.parse import urlsplit

from huey import PriorityRedisHuey, SqliteHuey
from huey.api import Huey

from webapp import runtime
from webapp.db import Database
from webapp.settings import ConfigurationError, Settings


def create_huey(huey_url: str) -> Huey:
    """`sqlite:///absolute/path` or `redis://host:port/db`."""
    parts = urlsplit(huey_url)
    if parts.scheme == "sqlite":
        # Our records are the results users see; Huey keeps no results of its own.
        return SqliteHuey("tasks", filename=parts.path, results=False)
    if parts.scheme in ("redis", "rediss"):
        return PriorityRedisHuey("tasks", url=huey_url, results=False, blocking=True)
    raise ConfigurationError(f"HUEY_URL must start with sqlite:/// or redis://, not {huey_url!r}")


class TaskQueue:
    """Hands tracked tasks to Huey; the Huey task id is the record's id."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.huey = create_huey(settings.huey_url)
        self.database = database
        self.settings = settings
        self.data_root = settings.data_root
        self._run = self.huey.task(name="run_tracked_task")(self._run_tracked_task)

    def _run_tracked_task(self, task_id: str) -> None:
        runtime.execute(self.database, task_id, self.settings)

    def enqueue(self, task_id: str, delay: float | None = None) -> None:
        self.huey.enqueue(self._run.s(task_id, id=task_id, delay=delay))

    def revoke(self, task_id: str) -> None:
        # revoke_once: the flag is consumed when the message is dropped, so none pile up.
        self.huey.revoke_by_id(task_id, revoke_once=True)

    def ping(self) -> None:
        self.huey.storage.queue_size()
