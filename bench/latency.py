"""Latencies a user feels: launch to running, and cancel to cancelled for a task that
checkpoints every 50 ms, on the embedded default and on PostgreSQL + Redis.

    .venv/bin/python bench/latency.py                     # both, 30 tasks each
    .venv/bin/python bench/latency.py --backends redis --runs 100

One consumer with `make run`'s flags on a private instance. Each run launches a
`sleep` task of 30 s in 600 steps (a checkpoint every 50 ms), waits until it runs,
lets it run a random 0.2 to 0.6 s, and cancels it. Launch to running is the record's
started_at minus created_at; cancel to cancelled is finished_at minus
cancel_requested_at: both stamped by the product itself, so the benchmark's own polling
is not in them. Launches are spaced by the time a run takes, so the queue is idle but
the consumer warm (bench/pickup.py measures a queue idle for seconds).
"""

from __future__ import annotations

import argparse
import random
import time
import uuid

from common import (
    CONFIGURATIONS,
    CONSUMER,
    FLAGS,
    configuration,
    median,
    p95,
    peak_rss_mb,
    start_process,
    stop_process,
)

import webapp.operations  # noqa: F401 - registers the kinds launched here
from webapp.core import runtime
from webapp.core.db import Database
from webapp.core.models import Status, Task
from webapp.core.queue import TaskQueue
from webapp.core.userfiles import UserFiles
from webapp.settings import Settings
from webapp.web.auth import create_user


def poll(database: Database, task_id: str, done: set[str], timeout: float = 30) -> Task:
    deadline = time.monotonic() + timeout
    while True:
        with database.session() as db:
            task = db.get(Task, task_id)
            if task is not None and task.status in done:
                return task
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task_id} did not reach {done}")
        time.sleep(0.005)


def measure(backend: str, runs: int) -> None:
    with configuration(backend, "latency") as env:
        settings = Settings.from_env(env)
        folder = settings.instance_path
        database = Database(settings.database_url)
        queue = TaskQueue(settings.huey_url, settings.huey_name)
        files = UserFiles(settings.data_root)
        with database.session() as db:
            user = create_user(db, "latency", uuid.uuid4().hex)
        consumer = start_process(CONSUMER, env, folder / "consumer.log")
        started: list[float] = []
        stopped: list[float] = []
        try:
            time.sleep(1)
            for n in range(runs + 2):
                with database.session() as db:
                    task = runtime.launch(db, queue, files, user, "sleep",
                                          {"seconds": 30, "steps": 600})
                running = poll(database, task.id, {Status.RUNNING})
                time.sleep(random.uniform(0.2, 0.6))
                with database.session() as db:
                    mine = db.get(Task, task.id)
                    assert mine is not None
                    runtime.cancel(db, queue, mine)
                ended = poll(database, task.id, {Status.CANCELLED, Status.FAILED,
                                                 Status.COMPLETED})
                assert ended.status == Status.CANCELLED, ended.outcome
                if n >= 2:  # the first two warm the consumer up
                    assert running.started_at and ended.finished_at
                    assert ended.cancel_requested_at
                    started.append((running.started_at - running.created_at).total_seconds())
                    stopped.append(
                        (ended.finished_at - ended.cancel_requested_at).total_seconds())
            rss = peak_rss_mb(consumer.pid)
        finally:
            stop_process(consumer)
            database.dispose()
    print(f"\n== {CONFIGURATIONS[backend]}: {runs} tasks, consumer flags {' '.join(FLAGS)}")
    for label, values in (("launch -> running", started), ("cancel -> cancelled", stopped)):
        print(f"  {label:20} median {median(values) * 1000:6.0f} ms   "
              f"p95 {p95(values) * 1000:6.0f} ms")
    print(f"  consumer (4 workers) peak RSS {rss:.0f} MiB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,redis")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    for backend in args.backends.split(","):
        measure(backend, args.runs)


if __name__ == "__main__":
    main()
