"""Chaos run: launch a few hundred tasks, kill and restart consumers at random, cut the
queue for a while, and check that every task ends in a final state that matches what
happened to it: 0 lost, 0 stuck, 0 run twice.

    .venv/bin/python bench/chaos.py                  # 300 tasks, 60 s of chaos
    .venv/bin/python bench/chaos.py --tasks 60 --seconds 15

Runs on a private instance (SQLite records, SqliteHuey) in a temporary folder; the
queue is cut by holding an exclusive lock on its file, so every consumer and launcher
meets the outage at once. Exits non-zero when any check fails.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

import webapp.operations  # noqa: F401, E402 - registers the kinds launched here
from webapp.core import runtime, transitions  # noqa: E402
from webapp.core.db import Database  # noqa: E402
from webapp.core.models import ACTIVE_STATUSES, Status, Task  # noqa: E402
from webapp.core.queue import TaskQueue  # noqa: E402
from webapp.core.userfiles import UserFiles  # noqa: E402
from webapp.migrate import upgrade  # noqa: E402
from webapp.settings import Settings  # noqa: E402
from webapp.web.auth import create_user  # noqa: E402
from webapp.workers.worker import HANDED_BACK_MESSAGE  # noqa: E402

BIN = Path(sys.executable).parent
LEASE, PERIOD, GRACE = 5, 1, 2


class Cluster:
    """Consumers on one instance, started, killed and replaced at will."""

    def __init__(self, env: dict[str, str], size: int) -> None:
        self.env = env
        self.size = size
        self.processes: list[subprocess.Popen[bytes]] = []
        self.log = open(Path(env["INSTANCE_PATH"]) / "consumers.log", "ab")  # noqa: SIM115

    def start(self) -> None:
        self.processes.append(subprocess.Popen(
            [str(BIN / "huey_consumer"), "huey_tasks.huey", "-w", "2", "-k", "thread",
             "-d", "0.05", "-m", "0.3"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT))

    def fill(self) -> None:
        self.processes = [p for p in self.processes if p.poll() is None]
        while len(self.processes) < self.size:
            self.start()

    def signal_one(self, sig: int, running: Callable[[], list[str]]) -> list[str]:
        """Freeze one consumer, note the running tasks (a superset of its own, as a frozen
        consumer claims nothing more), then signal it. Returns the noted task ids."""
        alive = [p for p in self.processes if p.poll() is None]
        if not alive:
            return []
        victim = random.choice(alive)
        victim.send_signal(signal.SIGSTOP)
        noted = running()
        victim.send_signal(sig)
        victim.send_signal(signal.SIGCONT)
        victim.wait()
        return noted + running()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(timeout=GRACE + 10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.log.close()


def cut_queue(huey_file: str, seconds: float) -> None:
    """Hold the queue's file exclusively: enqueues and dequeues fail until released."""
    connection = sqlite3.connect(huey_file, timeout=30, isolation_level=None)
    connection.execute("BEGIN EXCLUSIVE")
    time.sleep(seconds)
    connection.execute("ROLLBACK")
    connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=60, help="how long the chaos lasts")
    parser.add_argument("--consumers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    random.seed(seed)

    instance = tempfile.mkdtemp(prefix="chaos-")
    env = {**os.environ, "INSTANCE_PATH": instance, "TASK_LEASE_SECONDS": str(LEASE),
           "MAINTENANCE_SECONDS": str(PERIOD), "SHUTDOWN_GRACE_SECONDS": str(GRACE)}
    env.pop("DATABASE_URL", None)
    env.pop("HUEY_URL", None)
    settings = Settings.from_env(env)
    upgrade(settings.database_url)
    database = Database(settings.database_url)
    queue = TaskQueue(settings.huey_url, settings.huey_name)
    files = UserFiles(settings.data_root)
    with database.session() as db:
        owner = create_user(db, "chaos", "chaos")

    cluster = Cluster(env, args.consumers)
    cluster.fill()
    interrupted: Counter[str] = Counter()  # task id -> times its worker was stopped under it
    expected_retries: Counter[str] = Counter()
    cancelled: set[str] = set()
    counts = Counter()
    launched: list[str] = []

    def running_ids() -> list[str]:
        """Running now, or just handed back by a stopping consumer."""
        with database.session() as db:
            return list(db.scalars(select(Task.id).where(
                (Task.status == Status.RUNNING) | (Task.progress_message == HANDED_BACK_MESSAGE))))

    def launcher() -> None:
        # Spread the launches over the chaos; each is one real launch through the runtime.
        pause = args.seconds / max(1, args.tasks) * 0.8
        with database.session() as db:
            for _ in range(args.tasks):
                flaky = 1 if random.random() < 0.1 else 0
                params = {"seconds": str(round(random.uniform(0.05, 1.5), 2)),
                          "steps": str(random.randint(1, 8)), "flaky": str(flaky)}
                task = runtime.launch(db, queue, files, owner, "sleep", params)
                launched.append(task.id)
                expected_retries[task.id] = flaky
                if random.random() < 0.05:
                    try:
                        runtime.cancel(db, queue, task)
                        cancelled.add(task.id)
                    except runtime.AlreadyFinished:
                        pass
                time.sleep(pause)

    launching = threading.Thread(target=launcher)
    launching.start()
    started = time.monotonic()
    while time.monotonic() - started < args.seconds:
        time.sleep(random.uniform(0.5, 2.0))
        action = random.choices(["kill", "term", "cut"], weights=[5, 3, 1])[0]
        if action == "cut":
            counts["queue cuts"] += 1
            cut_queue(str(settings.instance_path / "huey.sqlite3"), random.uniform(2, 6))
        else:
            sig = signal.SIGKILL if action == "kill" else signal.SIGTERM
            for task_id in set(cluster.signal_one(sig, running_ids)):
                interrupted[task_id] += 1
            counts["consumers killed (SIGKILL)" if action == "kill" else
                   "consumers stopped (SIGTERM)"] += 1
        cluster.fill()
    launching.join()
    cluster.fill()

    # Settle: every lost lease expires and is reaped within LEASE + PERIOD.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with database.session() as db:
            active = db.scalar(select(func.count()).select_from(Task).where(
                Task.status.in_(ACTIVE_STATUSES)))
        if not active:
            break
        time.sleep(0.5)
    cluster.stop()

    # A worker too starved to renew its lease loses the task to a re-run, and stops at
    # its next checkpoint without writing: an abandoned attempt, not a second run.
    log_text = (Path(instance) / "consumers.log").read_text(errors="replace")
    abandoned = re.findall(r"task ([0-9a-f]{32}) attempt \d+ is no longer ours", log_text)
    for task_id in abandoned:
        interrupted[task_id] += 1
    with database.session() as db:
        tasks = {t.id: t for t in db.scalars(select(Task))}
    lost = [i for i in launched if i not in tasks]
    stuck = [t for t in tasks.values() if t.status in ACTIVE_STATUSES]
    twice = [t for t in tasks.values()
             if t.attempt > 1 + interrupted[t.id] + expected_retries[t.id]]
    mismatched = [t for t in tasks.values() if not matches(t)]
    final = Counter(t.status for t in tasks.values())

    print(f"seed {seed}")
    print(f"tasks launched: {len(launched)}")
    for name, value in sorted(counts.items()):
        print(f"{name}: {value}")
    print(f"tasks whose worker was stopped under them: {len(interrupted)}")
    print(f"attempts abandoned after their lease was taken over: {len(abandoned)}")
    print("final states: " + ", ".join(f"{s} {n}" for s, n in sorted(final.items())))
    for outcome, n in Counter(t.outcome for t in tasks.values()
                              if t.status == Status.FAILED).most_common():
        print(f"  failed {n}: {outcome}")
    print(f"tasks lost: {len(lost)}")
    print(f"tasks stuck: {len(stuck)}")
    print(f"tasks run twice: {len(twice)}")
    print(f"outcomes that do not match the status: {len(mismatched)}")
    for task in (stuck + twice + mismatched)[:10]:
        print(f"  {task.id} {task.status} attempt {task.attempt} {task.outcome!r}")
    return 1 if lost or stuck or twice or mismatched else 0


def matches(task: Task) -> bool:
    """The outcome tells what happened, in the status's own words."""
    outcome = task.outcome or ""
    if task.status == Status.COMPLETED:
        return outcome.startswith("Slept ")
    if task.status == Status.CANCELLED:
        return outcome == transitions.CANCELLED_OUTCOME
    if task.status == Status.FAILED:
        return outcome != "" and task.finished_at is not None
    return False


if __name__ == "__main__":
    sys.exit(main())
