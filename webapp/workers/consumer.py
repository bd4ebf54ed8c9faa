"""A consumer process, wired: Huey's consumer, the Worker that runs tracked tasks, and
the maintenance thread. Imported only where consumers run (huey_tasks.py, and tests
and benchmarks that run a worker); web processes never import it.

Consumers must use thread workers (`-k thread`, the default): the graceful hand-back
relies on the workers sharing the consumer's memory.
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from huey.api import Huey
from huey.consumer import Consumer

import webapp.operations  # noqa: F401 - registers every kind the worker may run
from webapp.core.db import Database
from webapp.core.metrics import scrape_app
from webapp.core.queue import UNREACHABLE, TaskQueue
from webapp.core.userfiles import UserFiles
from webapp.logs import log_like
from webapp.settings import Settings
from webapp.workers.maintenance import Maintenance
from webapp.workers.registry import Registration
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


log = logging.getLogger(__name__)


class Backoff:
    """While the queue is away, each thread (worker, scheduler) says so once per step and
    waits twice as long as the step before, up to LONGEST; then once that it is back."""

    FIRST = 0.5
    LONGEST = 8.0

    def __init__(self) -> None:
        self._local = threading.local()

    def failed(self, what: str, exc: Exception) -> float:
        last: float = getattr(self._local, "pause", 0.0)
        pause = min(self.LONGEST, last * 2) if last else self.FIRST
        self._local.pause = pause
        log.warning("the queue is unreachable (%s: %s); %s again in %.1f s",
                    type(exc).__name__, exc, what, pause)
        return pause

    def recovered(self, what: str) -> None:
        if getattr(self._local, "pause", 0.0):
            self._local.pause = 0.0
            log.info("the queue is reachable again; %s", what)


class TrackedHuey(Huey):
    """A Huey whose consumer hands running tasks back when it stops, and rides out a queue
    outage quietly: one line per thread per back-off step instead of a traceback per try."""

    side: ConsumerSide
    backoff = Backoff()

    def create_consumer(self, **options: Any) -> Consumer:
        return TrackedConsumer(self, self.side, **options)

    def dequeue(self) -> Any:
        return self._unless_unreachable("reading", super().dequeue, None)

    def read_schedule(self, timestamp: Any) -> list[Any]:
        return self._unless_unreachable("scheduling", partial(super().read_schedule, timestamp),
                                        [])

    def delete(self, key: str) -> bool:
        # After a run Huey clears the task's revoke flag. A flag left behind names a record
        # that has finished, whose id no message will carry again: harmless, and no reason
        # to report the task as failed ("Unhandled error during execution").
        try:
            return super().delete(key)
        except UNREACHABLE:
            return False

    def _unless_unreachable(self, what: str, read: Any, nothing: Any) -> Any:
        try:
            found = read()
        except UNREACHABLE as exc:
            # The worker's loop would log a traceback and retry almost at once.
            self.side.worker.stopping.wait(self.backoff.failed(what, exc))
            return nothing
        self.backoff.recovered(what)
        return found


class TrackedConsumer(Consumer):
    """Runs the maintenance thread, registers itself (and its metrics port, if any), and on
    SIGINT, SIGTERM or SIGHUP stops taking work,
    lets running tasks reach a checkpoint for the grace period, then hands back the rest."""

    def __init__(self, huey: Huey, side: ConsumerSide, **options: Any) -> None:
        if options.get("shutdown_timeout") is None:
            options["shutdown_timeout"] = side.settings.shutdown_grace_seconds
        super().__init__(huey, **options)
        # huey_consumer configured its own "huey" logger only: the app's lines would come
        # out bare (warnings) or not at all (info) without its handler and level.
        log_like(logging.getLogger("huey"), side.settings.log_format)
        self.worker = side.worker
        self.maintenance = Maintenance(side.database, side.queue, side.files, side.settings)
        self.registration = Registration(side.database, side.settings.task_lease_seconds,
                                         self.workers, self.worker.in_hand)
        self.metrics: MetricsServer | None = None
        if side.settings.consumer_metrics_bind:
            self.metrics = MetricsServer(side.settings)

    def start(self) -> None:
        super().start()
        self.maintenance.start()
        self.registration.start()
        if self.metrics:
            self.metrics.start()

    def stop(self, graceful: bool = False) -> None:
        # Every stop is graceful: checkpoints now raise WorkerStopping and hand tasks back.
        self.worker.stopping.set()
        self.maintenance.stop()
        if self.metrics:
            self.metrics.shutdown()
        super().stop(graceful=True)
        self.worker.hand_back_unfinished()
        self.registration.stop()


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """A scrape every 15 s is not news."""


class MetricsServer(ThreadingMixIn, WSGIServer):
    """This consumer's own metrics at CONSUMER_METRICS_BIND, guarded as a web node's
    /metrics is (METRICS_TOKEN, METRICS_ALLOW). A consumer serves its own because it may
    run on any host: Prometheus scrapes each one. The records' gauges come from the web
    nodes' /metrics alone, so they are not counted once per consumer."""

    daemon_threads = True

    def __init__(self, settings: Settings) -> None:
        host, _, port = (settings.consumer_metrics_bind or "").rpartition(":")
        super().__init__((host.strip("[]") or "0.0.0.0", int(port)), _Quiet)
        self.set_app(scrape_app(settings.metrics_token, settings.metrics_allow))

    def start(self) -> None:
        threading.Thread(target=self.serve_forever, name="metrics", daemon=True).start()
        log.info("metrics at http://%s:%s/metrics", *self.server_address[:2])
