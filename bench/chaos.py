"""Chaos run: launch a few hundred tasks, kill and restart consumers at random, cut the
queue for a while, and check that every task ends in a final state that matches what
happened to it: 0 lost, 0 stuck, 0 run twice.

    .venv/bin/python bench/chaos.py                  # 300 tasks, 60 s of chaos
    .venv/bin/python bench/chaos.py --tasks 60 --seconds 15

Runs on a private instance (SQLite records, SqliteHuey) in a temporary folder; the
queue is cut by holding an exclusive lock on its file, so every consumer and launcher
meets the outage at once.

    .venv/bin/python bench/chaos.py --scale-out      # every fault in turn
    .venv/bin/python bench/chaos.py --scale-out --faults redis-kill,lost-message

`--scale-out` runs on a PostgreSQL and a Redis of its own (initdb in a temporary folder,
spare ports; tests/support/services.py) with two consumers (TASK_LEASE_SECONDS=10,
MAINTENANCE_SECONDS=3) while a task is launched every half second, and injects the
faults one after the other, each followed by a settling time: Redis killed and started
again empty, Redis paused (SIGSTOP) and resumed, PostgreSQL stopped hard for longer than
the lease, consumers killed (SIGKILL) and stopped (SIGTERM) under running tasks, one
launch's queue message lost. For each it reports, over the tasks launched during it:
lost, stuck, run twice, the longest wait from launch to start, and the consumers' log
lines. Exits non-zero when any check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.exc import SQLAlchemyError  # noqa: E402

import webapp.operations  # noqa: F401, E402 - registers the kinds launched here
from tests.support.processes import wait_for  # noqa: E402
from tests.support.services import PrivatePostgres, PrivateRedis  # noqa: E402
from webapp.core import runtime, transitions  # noqa: E402
from webapp.core.db import Database  # noqa: E402
from webapp.core.models import ACTIVE_STATUSES, Status, Task, User, utcnow  # noqa: E402
from webapp.core.queue import TaskQueue  # noqa: E402
from webapp.core.userfiles import UserFiles  # noqa: E402
from webapp.migrate import upgrade  # noqa: E402
from webapp.settings import Settings  # noqa: E402
from webapp.web.auth import create_user  # noqa: E402
from webapp.workers.worker import HANDED_BACK_MESSAGE  # noqa: E402

BIN = Path(sys.executable).parent
LEASE, PERIOD, GRACE = 5, 1, 2
# The scale-out run's lease and maintenance period, and its steady pace of launches.
SCALE_LEASE, SCALE_PERIOD, LAUNCH_EVERY = 10, 3, 0.5
FAULTS = ("redis-kill", "redis-pause", "postgres-stop", "consumers", "lost-message")
ABANDONED = re.compile(r"task ([0-9a-f]{32}) attempt \d+ is no longer ours")
# An attempt that completed but found its record re-queued under it (item 1 of issue 17).
COMPLETED_DROPPED = re.compile(r"task ([0-9a-f]{32}) attempt (\d+) ended \(completed: ")
LEVEL = re.compile(r"^\[[^\]]+\] ([A-Z]+):")


class Cluster:
    """Consumers on one instance, started, killed and replaced at will."""

    def __init__(self, env: dict[str, str], size: int, workers: int = 2) -> None:
        self.env = env
        self.size = size
        self.workers = workers
        self.processes: list[subprocess.Popen[bytes]] = []
        self.log_path = Path(env["INSTANCE_PATH"]) / "consumers.log"
        self.log = open(self.log_path, "ab")  # noqa: SIM115

    def start(self) -> None:
        self.processes.append(subprocess.Popen(
            [str(BIN / "huey_consumer"), "huey_tasks.huey", "-w", str(self.workers),
             "-k", "thread", "-d", "0.05", "-m", "0.3"],
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


def running_ids(database: Database) -> list[str]:
    """Running now, or just handed back by a stopping consumer."""
    with database.session() as db:
        return list(db.scalars(select(Task.id).where(
            (Task.status == Status.RUNNING) | (Task.progress_message == HANDED_BACK_MESSAGE))))


def settle(database: Database, launched_by: datetime | None = None,
           timeout: float = 120) -> None:
    """Wait until no task (of those launched by `launched_by`, when given) is active:
    every lost lease expires and is reaped within a lease and a maintenance period."""
    deadline = time.monotonic() + timeout
    query = select(func.count()).select_from(Task).where(Task.status.in_(ACTIVE_STATUSES))
    if launched_by is not None:
        query = query.where(Task.created_at <= launched_by)
    while time.monotonic() < deadline:
        try:
            with database.session() as db:
                if not db.scalar(query):
                    return
        except SQLAlchemyError:
            pass  # the database is still coming back
        time.sleep(0.5)


@dataclasses.dataclass
class Verdict:
    """What the records say of a set of launches."""

    lost: list[str]
    stuck: list[Task]
    twice: list[Task]
    mismatched: list[Task]

    @property
    def failed(self) -> bool:
        return bool(self.lost or self.stuck or self.twice or self.mismatched)

    def examples(self) -> list[str]:
        return [f"  {t.id} {t.status} attempt {t.attempt} hand-backs {t.hand_backs} "
                f"{t.outcome!r}" for t in (self.stuck + self.twice + self.mismatched)[:10]]


def judge(launched: Iterable[str], tasks: dict[str, Task], allowed_runs: Counter[str],
          log_text: str) -> Verdict:
    """Lost: no record. Stuck: still active. Run twice: more attempts than hand-backs,
    killed workers and transient failures account for, or an attempt that completed and
    was followed by another. `allowed_runs` counts the runs beyond the first a task may
    have had (its worker killed under it, a flaky attempt)."""
    launched = list(launched)
    completed_then_ran = {task_id for task_id, attempt in COMPLETED_DROPPED.findall(log_text)
                          if task_id in tasks and tasks[task_id].attempt > int(attempt)}
    mine = [tasks[i] for i in launched if i in tasks]
    return Verdict(
        lost=[i for i in launched if i not in tasks],
        stuck=[t for t in mine if t.status in ACTIVE_STATUSES],
        twice=[t for t in mine if t.id in completed_then_ran
               or t.attempt - t.hand_backs > 1 + allowed_runs[t.id]],
        mismatched=[t for t in mine if not matches(t)],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=60, help="how long the chaos lasts")
    parser.add_argument("--consumers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--scale-out", action="store_true",
                        help="PostgreSQL and Redis of its own, and the faults in turn")
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help=f"with --scale-out, which faults, in order ({', '.join(FAULTS)})")
    parser.add_argument("--outage", type=float, default=5,
                        help="with --scale-out, how long Redis stays killed or paused")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    random.seed(seed)
    print(f"seed {seed}")
    if args.scale_out:
        faults = [name.strip() for name in args.faults.split(",") if name.strip()]
        unknown = set(faults) - set(FAULTS)
        if unknown:
            parser.error(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
        return scale_out(faults, args.outage)
    return embedded(args)


def embedded(args: argparse.Namespace) -> int:
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
            for task_id in set(cluster.signal_one(sig, lambda: running_ids(database))):
                interrupted[task_id] += 1
            counts["consumers killed (SIGKILL)" if action == "kill" else
                   "consumers stopped (SIGTERM)"] += 1
        cluster.fill()
    launching.join()
    cluster.fill()
    settle(database)
    cluster.stop()

    # A worker too starved to renew its lease loses the task to a re-run, and stops at
    # its next checkpoint without writing: an abandoned attempt, not a second run.
    log_text = cluster.log_path.read_text(errors="replace")
    abandoned = ABANDONED.findall(log_text)
    interrupted.update(abandoned)
    with database.session() as db:
        tasks = {t.id: t for t in db.scalars(select(Task))}
    verdict = judge(launched, tasks, interrupted + expected_retries, log_text)
    final = Counter(t.status for t in tasks.values())

    print(f"tasks launched: {len(launched)}")
    for name, value in sorted(counts.items()):
        print(f"{name}: {value}")
    print(f"tasks whose worker was stopped under them: {len(interrupted)}")
    print(f"attempts abandoned after their lease was taken over: {len(abandoned)}")
    print("final states: " + ", ".join(f"{s} {n}" for s, n in sorted(final.items())))
    for outcome, n in Counter(t.outcome for t in tasks.values()
                              if t.status == Status.FAILED).most_common():
        print(f"  failed {n}: {outcome}")
    print(f"tasks lost: {len(verdict.lost)}")
    print(f"tasks stuck: {len(verdict.stuck)}")
    print(f"tasks run twice: {len(verdict.twice)}")
    print(f"outcomes that do not match the status: {len(verdict.mismatched)}")
    for line in verdict.examples():
        print(line)
    return 1 if verdict.failed else 0


class LosingQueue:
    """The queue, except that a launch's message is lost on the way: as when a consumer
    dies between taking the message and claiming its record. The record says dispatched."""

    def __init__(self, queue: TaskQueue) -> None:
        self.queue = queue

    def enqueue(self, task_id: str, delay: float | None = None) -> None:
        """Lost."""

    def revoke(self, task_id: str) -> None:
        self.queue.revoke(task_id)

    def waiting_ids(self) -> set[str]:
        return self.queue.waiting_ids()


class Launcher(threading.Thread):
    """A task every LAUNCH_EVERY seconds until told to stop, each launch in a session of
    its own, so a database outage refuses only the launches made during it."""

    def __init__(self, database: Database, queue: TaskQueue, files: UserFiles,
                 owner: User) -> None:
        super().__init__(name="launcher", daemon=True)
        self.database = database
        self.queue = queue
        self.files = files
        self.owner = owner
        self.fault = ""  # the fault the launches are counted under
        self.launched: dict[str, list[str]] = {}
        self.refused: Counter[str] = Counter()
        self.flaky: Counter[str] = Counter()  # transient failures a task was launched with
        self.done = threading.Event()

    def launch(self, queue: TaskQueue | LosingQueue, seconds: float, steps: int,
               flaky: int = 0) -> None:
        params = {"seconds": str(seconds), "steps": str(steps), "flaky": str(flaky)}
        fault = self.fault
        try:
            with self.database.session() as db:
                task = runtime.launch(db, queue, self.files, self.owner, "sleep", params)
        except SQLAlchemyError:
            self.refused[fault] += 1  # the launch answers 503: nothing to lose
            return
        self.launched.setdefault(fault, []).append(task.id)
        self.flaky[task.id] = flaky

    def run(self) -> None:
        while not self.done.wait(LAUNCH_EVERY):
            self.launch(self.queue, round(random.uniform(0.2, 2.5), 2), random.randint(2, 8),
                        flaky=1 if random.random() < 0.05 else 0)


@dataclasses.dataclass
class Fault:
    name: str
    told: str  # what was done, for the report
    log_from: int = 0
    log_to: int = 0


def scale_out(faults: list[str], outage: float) -> int:
    # Under /tmp: the postgres user that runs the private server must reach its folder.
    folder = Path(tempfile.mkdtemp(prefix="chaos-scale-out-", dir="/tmp"))
    for part in ("pg", "redis", "instance"):
        (folder / part).mkdir()
    postgres = PrivatePostgres(folder / "pg")
    redis = PrivateRedis(folder / "redis")
    postgres.start()
    redis.start()
    env = {**os.environ, "INSTANCE_PATH": str(folder / "instance"),
           "DATABASE_URL": postgres.url, "HUEY_URL": redis.url, "HUEY_NAME": "chaos",
           "TASK_LEASE_SECONDS": str(SCALE_LEASE), "MAINTENANCE_SECONDS": str(SCALE_PERIOD),
           "SHUTDOWN_GRACE_SECONDS": str(GRACE)}
    cluster: Cluster | None = None
    try:
        settings = Settings.from_env(env)
        upgrade(settings.database_url)
        database = Database(settings.database_url)
        queue = TaskQueue(settings.huey_url, settings.huey_name, timeouts=settings.queue_timeouts,
                          dequeues=False)
        files = UserFiles(settings.data_root)
        with database.session() as db:
            owner = create_user(db, "chaos", "chaos")
        cluster = Cluster(env, 2, workers=4)
        cluster.fill()
        launcher = Launcher(database, queue, files, owner)
        interrupted: Counter[str] = Counter()
        lost_message: list[str] = []

        def stop_consumers() -> str:
            rounds = 6
            for turn in range(rounds):
                sig = signal.SIGKILL if turn % 2 == 0 else signal.SIGTERM
                with contextlib.suppress(AssertionError):  # none running: a quiet stop
                    wait_for(lambda: running_ids(database), timeout=30)
                interrupted.update(set(cluster.signal_one(sig, lambda: running_ids(database))))
                cluster.fill()
                time.sleep(1)
            return f"{rounds} consumers killed (SIGKILL) and stopped (SIGTERM) in turn"

        def redis_kill() -> str:
            redis.stop()
            time.sleep(outage)
            redis.start()
            return f"Redis killed, started again empty after {outage:g} s"

        def redis_pause() -> str:
            redis.pause()
            time.sleep(outage)
            redis.resume()
            return f"Redis paused (SIGSTOP), resumed after {outage:g} s"

        def postgres_stop() -> str:
            seconds = SCALE_LEASE + 5
            postgres.stop("immediate")
            time.sleep(seconds)
            postgres.start()
            return f"PostgreSQL stopped (-m immediate), started again after {seconds} s"

        def lose_message() -> str:
            # Settling waits for it to be sent again, while launches go on.
            launcher.launch(LosingQueue(queue), 1.0, 4)
            lost_message.extend(launcher.launched[launcher.fault][-1:])
            return "one launch's queue message lost"

        inject = {"redis-kill": redis_kill, "redis-pause": redis_pause,
                  "postgres-stop": postgres_stop, "consumers": stop_consumers,
                  "lost-message": lose_message}
        done: list[Fault] = []
        launcher.start()
        for name in faults:
            fault = Fault(name, "", log_from=size(cluster.log_path))
            launcher.fault = name
            time.sleep(2)  # steady launches first, so tasks are running when it hits
            fault.told = inject[name]()
            settle(database, launched_by=utcnow(), timeout=180)
            cluster.fill()
            fault.log_to = size(cluster.log_path)
            done.append(fault)
        launcher.done.set()
        launcher.join()
        settle(database, timeout=180)
        cluster.stop()

        log_text = cluster.log_path.read_text(errors="replace")
        interrupted.update(ABANDONED.findall(log_text))
        with database.session() as db:
            tasks = {t.id: t for t in db.scalars(select(Task))}
        failed = False
        with open(cluster.log_path, "rb") as log:
            for fault in done:
                log.seek(fault.log_from)
                lines = log.read(fault.log_to - fault.log_from).decode(errors="replace")
                failed |= report(fault, launcher, tasks, interrupted + launcher.flaky,
                                 log_text, lines.splitlines())
        for task_id in lost_message:
            print(f"the task whose message was lost started {wait_of(tasks[task_id]):.1f} s "
                  "after its launch")
        final = Counter(t.status for t in tasks.values())
        print("final states: " + ", ".join(f"{s} {n}" for s, n in sorted(final.items())))
        return 1 if failed else 0
    finally:
        if cluster is not None:
            cluster.stop()
        redis.stop()
        postgres.stop()
        # The cluster's files are large and of no use afterwards; the logs stay.
        shutil.rmtree(folder / "pg", ignore_errors=True)
        print(f"consumers' log: {folder / 'instance' / 'consumers.log'}")


def report(fault: Fault, launcher: Launcher, tasks: dict[str, Task],
           allowed_runs: Counter[str], log_text: str, lines: list[str]) -> bool:
    """Print one fault's figures; True when a check failed."""
    launched = launcher.launched.get(fault.name, [])
    verdict = judge(launched, tasks, allowed_runs, log_text)
    waits = [wait_of(tasks[i]) for i in launched if i in tasks and tasks[i].attempt == 1]
    # An entry starts with its time; the lines after it, up to the next, are its own.
    levels = Counter(m.group(1) for line in lines if (m := LEVEL.match(line)))
    # The same warning told again and again, with its ids and numbers left out.
    told = Counter(re.sub(r"[0-9a-f]{32}|\d+(\.\d+)?", "#", line.split(":", 3)[-1])
                   for line in lines if (m := LEVEL.match(line)) and m.group(1) != "INFO")
    print(f"{fault.name}: {fault.told}")
    print(f"  tasks launched {len(launched)}, refused {launcher.refused[fault.name]}")
    print(f"  lost {len(verdict.lost)}, stuck {len(verdict.stuck)}, "
          f"run twice {len(verdict.twice)}, outcomes not matching {len(verdict.mismatched)}")
    print(f"  longest wait (launch to start, tasks run once): {max(waits, default=0):.1f} s")
    print(f"  consumer log lines: {len(lines)}, entries: "
          + ", ".join(f"{level} {n}" for level, n in sorted(levels.items())))
    for line, n in told.most_common(3):
        print(f"    {n} x {line[:110]}")
    for line in verdict.examples():
        print(line)
    return verdict.failed


def wait_of(task: Task) -> float:
    """Launch to (last) start; a task that never started waited nothing it could feel."""
    return (task.started_at - task.created_at).total_seconds() if task.started_at else 0.0


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


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
