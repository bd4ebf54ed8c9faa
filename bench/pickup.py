"""Pick-up: how long a task launched onto an idle queue waits before a worker starts it,
on the embedded default (SQLite + SqliteHuey) and on PostgreSQL + Redis, against a bare
Huey task on the same storage with the same consumer flags.

    .venv/bin/python bench/pickup.py                     # both configurations, 20 launches each
    .venv/bin/python bench/pickup.py --backends redis --runs 100 --idle 2

Each configuration runs on a private instance (PostgreSQL: a database of its own; Redis:
a Huey name of its own), with one consumer started exactly as `make run` starts it
(webapp/dev/devserver.py). Before each launch the queue sits idle for a random time up to
--idle seconds, so SqliteHuey's workers have backed off towards their longest poll
interval, as on a quiet server. Tracked pick-up is the record's `started_at` (the worker
claiming it) minus its `created_at` (the launch, before its commit and enqueue); bare
pick-up is the bare task's start minus the moment before its enqueue. Targets (issue 5):
median within 50 ms on Redis, within 1 s on SQLite.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from collections.abc import Callable

from common import (
    CONFIGURATIONS,
    CONSUMER,
    FLAGS,
    configuration,
    consumer_options,
    median,
    p95,
    start_process,
    stop_process,
)
from huey import Huey

import webapp.operations  # noqa: F401 - registers the kinds launched here
from webapp.core import runtime
from webapp.core.db import Database
from webapp.core.models import Status, Task
from webapp.core.queue import TaskQueue, create_huey
from webapp.core.userfiles import UserFiles
from webapp.settings import Settings
from webapp.web.auth import create_user


def bare_huey(settings: Settings) -> tuple[Huey, Callable[..., object]]:
    """A plain Huey on the configuration's storage, and a task that notes when it starts."""
    huey = create_huey(settings.huey_url, f"{settings.huey_name}-bare", huey_class=Huey)

    @huey.task(name="stamp")
    def stamp(key: str) -> None:
        huey.put(key, time.time())

    return huey, stamp


def run_bare_consumer() -> None:
    """What huey_consumer does with FLAGS, for the bare Huey (it lives in this script)."""
    huey, _ = bare_huey(Settings.from_env())
    huey.create_consumer(**consumer_options()).run()


def idle(limit: float) -> None:
    time.sleep(random.uniform(limit / 3, limit))


def wait(check: Callable[[], object], timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise TimeoutError("the task did not start; see the consumer's log")
        time.sleep(0.01)
    return value


def tracked_pickups(env: dict[str, str], runs: int, idle_limit: float) -> list[float]:
    settings = Settings.from_env(env)
    database = Database(settings.database_url)
    queue = TaskQueue(settings.huey_url, settings.huey_name)
    files = UserFiles(settings.data_root)
    with database.session() as db:
        user = create_user(db, f"pickup-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex)
    consumer = start_process(CONSUMER, env, settings.instance_path / "consumer.log")
    figures = []
    try:
        for n in range(runs + 2):
            idle(idle_limit)
            with database.session() as db:
                task_id = runtime.launch(db, queue, files, user, "sleep",
                                         {"seconds": 0, "steps": 1}).id

            def started(task_id: str = task_id) -> Task | None:
                with database.session() as db:
                    task = db.get(Task, task_id)
                    return task if task and task.status == Status.COMPLETED else None

            task = wait(started)
            assert isinstance(task, Task) and task.started_at and task.created_at
            if n >= 2:  # the first two warm the consumer up
                figures.append((task.started_at - task.created_at).total_seconds())
    finally:
        stop_process(consumer)
        database.dispose()
    return figures


def bare_pickups(env: dict[str, str], runs: int, idle_limit: float) -> list[float]:
    settings = Settings.from_env(env)
    huey, stamp = bare_huey(settings)
    consumer = start_process([sys.executable, __file__, "--bare-consumer"], env,
                     settings.instance_path / "bare-consumer.log")
    figures = []
    try:
        for n in range(runs + 2):
            idle(idle_limit)
            key = uuid.uuid4().hex
            enqueued = time.time()
            stamp(key)
            began = wait(lambda key=key: huey.get(key))
            if n >= 2:
                figures.append(float(began) - enqueued)  # type: ignore[arg-type]
    finally:
        stop_process(consumer)
        huey.flush()
    return figures


def measure(backend: str, runs: int, idle_limit: float) -> None:
    with configuration(backend, "pickup") as env:
        tracked = tracked_pickups(env, runs, idle_limit)
        bare = bare_pickups(env, runs, idle_limit)
    print(f"{CONFIGURATIONS[backend]}: {runs} launches onto an idle queue, "
          f"consumer flags {' '.join(FLAGS)}")
    for label, values in (("tracked task", tracked), ("bare Huey task", bare)):
        print(f"  {label:15} median {median(values) * 1000:7.1f} ms"
              f"   p95 {p95(values) * 1000:7.1f} ms")
    print(f"  tracked / bare medians: {median(tracked) / median(bare):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", choices=["sqlite", "redis"],
                        default=["sqlite", "redis"])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--idle", type=float, default=4.0,
                        help="longest idle time before a launch, in seconds")
    parser.add_argument("--bare-consumer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_consumer:
        run_bare_consumer()
        return
    for backend in args.backends:
        measure(backend, args.runs, args.idle)


if __name__ == "__main__":
    main()
