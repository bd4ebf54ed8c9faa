"""Tracking overhead: no-op tasks per second through the tracked runtime against bare
Huey no-op tasks per second, on the same storage with the same consumer flags.

    .venv/bin/python bench/overhead.py                    # SQLite and Redis, 3 rounds
    .venv/bin/python bench/overhead.py --backends sqlite --tasks 500 --rounds 1

SQLite: records in a SQLite file, SqliteHuey. Redis: records in PostgreSQL (a database
of its own, dropped after), Redis storage under a Huey name of its own. The tracked
no-op is the diagnostic `sleep` kind with seconds=0, steps=1: claim, one checkpoint,
the final progress, finish. The bare no-op is a Huey task that does nothing.

Each round enqueues --tasks tasks onto an idle queue, then starts one consumer with
`make run`'s flags (4 thread workers); the consumer counts completions (Huey's
SIGNAL_COMPLETE, the same in both) and the rate is taken between the first and the
last, so start-up is not in it. Tracked and bare rounds alternate; figures are medians.
The consumer also reports its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from common import (
    CONFIGURATIONS,
    FLAGS,
    configuration,
    consumer_options,
    median,
    peak_rss_mb,
    start_process,
)
from huey import Huey
from huey.signals import SIGNAL_COMPLETE

import webapp.operations  # noqa: F401 - registers the kinds launched here
from webapp.core import runtime
from webapp.core.db import Database
from webapp.core.queue import TaskQueue, create_huey
from webapp.core.userfiles import UserFiles
from webapp.settings import Settings
from webapp.web.auth import create_user


def bare_huey(settings: Settings) -> tuple[Huey, Any]:
    huey = create_huey(settings.huey_url, f"{settings.huey_name}-bare", huey_class=Huey)

    @huey.task(name="noop")
    def noop() -> None:
        pass

    return huey, noop


def run_consumer(which: str, expected: int, report: Path) -> None:
    """In a child process: run a consumer until `expected` tasks completed, then write
    the first and last completion times and the peak RSS to `report`, and stop."""
    if which == "bare":
        huey, _ = bare_huey(Settings.from_env())
    else:
        import huey_tasks

        huey = huey_tasks.huey
    done: list[float] = []
    lock = threading.Lock()

    @huey.signal(SIGNAL_COMPLETE)
    def completed(_signal: str, _task: Any, *_args: Any) -> None:
        with lock:
            done.append(time.monotonic())
            if len(done) == expected:
                report.write_text(json.dumps({"first": done[0], "last": done[-1],
                                              "rss_mb": peak_rss_mb(os.getpid())}))
                os.kill(os.getpid(), signal.SIGINT)

    huey.create_consumer(**consumer_options()).run()


def one_round(which: str, env: dict[str, str], tasks: int, users: int) -> dict[str, float]:
    settings = Settings.from_env(env)
    if which == "bare":
        _, noop = bare_huey(settings)
        for _ in range(tasks):
            noop()
    else:
        database = Database(settings.database_url)
        queue = TaskQueue(settings.huey_url, settings.huey_name)
        files = UserFiles(settings.data_root)
        with database.session() as db:
            owners = [create_user(db, f"overhead-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex)
                      for _ in range(users)]
            for n in range(tasks):
                runtime.launch(db, queue, files, owners[n % users], "sleep",
                               {"seconds": 0, "steps": 1})
        database.dispose()
    report = settings.instance_path / f"report-{uuid.uuid4().hex[:6]}.json"
    consumer = start_process(
        [sys.executable, __file__, "--consumer", which, "--tasks", str(tasks),
         "--report", str(report)],
        env, settings.instance_path / f"{which}-consumer.log")
    try:
        consumer.wait(timeout=600)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    figures = json.loads(report.read_text())
    return {"rate": (tasks - 1) / (figures["last"] - figures["first"]),
            "rss_mb": figures["rss_mb"]}


def measure(backend: str, tasks: int, rounds: int, users: int) -> None:
    with configuration(backend, "overhead") as env:
        results: dict[str, list[dict[str, float]]] = {"tracked": [], "bare": []}
        try:
            for _ in range(rounds):
                for which in ("bare", "tracked"):
                    results[which].append(one_round(which, env, tasks, users))
        finally:
            create_huey(env["HUEY_URL"], env["HUEY_NAME"] + "-bare").flush()
    print(f"\n== {CONFIGURATIONS[backend]}: {tasks} no-op tasks of {users} user(s) x {rounds} "
          f"rounds, consumer flags {' '.join(FLAGS)}")
    for which in ("bare", "tracked"):
        rates = [r["rate"] for r in results[which]]
        print(f"  {which:8} median {median(rates):7.0f} tasks/s  (rounds: "
              f"{', '.join(f'{r:.0f}' for r in rates)}); consumer peak RSS "
              f"{max(r['rss_mb'] for r in results[which]):.0f} MiB")
    ratio = median([r["rate"] for r in results["tracked"]]) / median(
        [r["rate"] for r in results["bare"]])
    print(f"  tracked / bare: {ratio:.2f} (target ≥ 0.7)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,redis")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=1,
                        help="owners the tasks are spread over (their counters and bell rows)")
    parser.add_argument("--consumer", choices=["bare", "tracked"], help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.consumer:
        run_consumer(args.consumer, args.tasks, args.report)
        return
    for backend in args.backends.split(","):
        measure(backend, args.tasks, args.rounds, args.users)


if __name__ == "__main__":
    main()
