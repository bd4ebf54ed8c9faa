"""A consumer process, wired: Huey's consumer, the Worker that runs tracked tasks, and
the maintenance thread. Imported only where consumers run (huey_tasks.py, and tests
and benchmarks that run a worker); web processes never import it.

Consumers must use thread workers (`-k thread`, the default): the graceful hand-back
relies on the workers sharing the consumer's memory.
"""

from __future__ import annotations

import logging
from typing import Any

from huey.api import Huey
from huey.consumer import Consumer

import webapp.operations  # noqa: F401 - registers every kind the worker may run
from webapp.core.db import Database
from webapp.core.queue import TaskQueue
from webapp.core.userfiles import UserFiles
from webapp.logs import log_like
from webapp.settings import Settings
from webapp.workers.maintenance import Maintenance
from webapp.workers.worker import Worker


class ConsumerSide:
    """What a consumer process holds: its database, users' files, its queue with the
    worker plugged in as the executor of run_tracked_task, and the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database = Database(settings.database_url)
        self.files = UserFiles(settings.data_root)
        self.queue = TaskQueue(settings.huey_url, settings.huey_name, TrackedHuey,
                               settings.queue_timeouts)
        self.worker = Worker(self.database, self.queue, self.files, settings)
        self.queue.executor = self.worker.execute
        self.huey: TrackedHuey = self.queue.huey  # type: ignore[assignment]
        self.huey.side = self


class TrackedHuey(Huey):
    """A Huey whose consumer hands running tasks back when it stops."""

    side: ConsumerSide

    def create_consumer(self, **options: Any) -> Consumer:
        return TrackedConsumer(self, self.side, **options)


class TrackedConsumer(Consumer):
    """Runs the maintenance thread, and on SIGINT, SIGTERM or SIGHUP stops taking work,
    lets running tasks reach a checkpoint for the grace period, then hands back the rest."""

    def __init__(self, huey: Huey, side: ConsumerSide, **options: Any) -> None:
        if options.get("shutdown_timeout") is None:
            options["shutdown_timeout"] = side.settings.shutdown_grace_seconds
        super().__init__(huey, **options)
        # huey_consumer configured its own "huey" logger only: the app's lines would come
        # out bare (warnings) or not at all (info) without its handler and level.
        log_like(logging.getLogger("huey"))
        self.worker = side.worker
        self.maintenance = Maintenance(side.database, side.queue, side.files, side.settings)

    def start(self) -> None:
        super().start()
        self.maintenance.start()

    def stop(self, graceful: bool = False) -> None:
        # Every stop is graceful: checkpoints now raise WorkerStopping and hand tasks back.
        self.worker.stopping.set()
        self.maintenance.stop()
        super().stop(graceful=True)
        self.worker.hand_back_unfinished()
