"""Nothing lost, nothing stuck: killed consumers, failed enqueues, graceful stops,
retries, races and retention, with real processes and real signals.

These tests run on an instance of their own with a short lease, so their consumers
never take the shared suite's tasks.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from tests.support.accounts import Account
from tests.support.context import run
from tests.support.files import read_tree, write_tree
from tests.support.processes import log_tail, start_consumer, stop_consumer, wait_for
from webapp import create_app
from webapp.core import runtime, transitions
from webapp.core.db import Database
from webapp.core.kinds import get_kind
from webapp.core.models import Status, Task, utcnow
from webapp.core.queue import TaskQueue
from webapp.core.runtime import TaskContext
from webapp.core.transitions import LOST_OUTCOME
from webapp.core.userfiles import SPARES, save_upload
from webapp.migrate import upgrade
from webapp.settings import Settings
from webapp.web.auth import create_token, create_user
from webapp.workers.maintenance import (
    MAINTENANCE_LOCK,
    Maintenance,
    acquire_lock,
    dispatch_lost,
    purge_finished,
    purge_uploads,
    reap_expired,
)
from webapp.workers.worker import HANDED_BACK_MESSAGE, Worker

LEASE = 2
PERIOD = 1


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory,
             environment: dict[str, str]) -> Iterator[tuple[dict[str, str], Flask]]:
    instance = tmp_path_factory.mktemp("reliability")
    env = {**environment, "INSTANCE_PATH": str(instance), "TASK_LEASE_SECONDS": str(LEASE),
           "MAINTENANCE_SECONDS": str(PERIOD), "SHUTDOWN_GRACE_SECONDS": "3"}
    # The embedded default, whatever the suite runs on: these tests cut its queue file.
    env.pop("DATABASE_URL", None)
    env.pop("HUEY_URL", None)
    settings = Settings.from_env(env)
    upgrade(settings.database_url)
    app = create_app(settings, TESTING=True)
    yield env, app
    app.extensions["database"].dispose()


@pytest.fixture
def user(isolated: tuple[dict[str, str], Flask]) -> Account:
    _, app = isolated
    with app.extensions["database"].session() as db:
        user = create_user(db, f"r-{uuid.uuid4().hex[:8]}", "pw")
        token = create_token(db, user)
    return Account(app, user, "pw", token)


@pytest.fixture
def consumers(isolated: tuple[dict[str, str], Flask]) -> Iterator[Callable[..., object]]:
    env, _ = isolated
    started = []

    def start(extra_env: dict[str, str] | None = None, **kwargs: object):
        process = start_consumer(env | (extra_env or {}), name="reliability", **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        stop_consumer(process, signal.SIGKILL)


def told_in_order(user: Account, task_id: str, expected: list[str]) -> bool:
    """Whether the task's own log holds these lines in this order (among others), each
    claim's "on host/pid" left out."""
    lines = user.api("GET", f"/tasks/{task_id}/log").get_json()["lines"]
    said = iter(re.sub(r" on \S+/\d+$", "", line["text"]) for line in lines)
    return all(any(text == one for text in said) for one in expected)


def launch(user: Account, **params: object) -> str:
    response = user.api("POST", "/tasks", json={"kind": "sleep", **params})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def test_killed_consumer_task_runs_again(user: Account, consumers) -> None:
    first = consumers()
    task_id = launch(user, seconds=4, steps=8)
    bystander = launch(user, seconds=0.1, steps=1)
    wait_for(lambda: user.task(task_id).status == Status.RUNNING)
    wait_for(lambda: user.task(bystander).status == Status.COMPLETED)
    first.send_signal(signal.SIGKILL)
    first.wait()
    consumers()
    # Once its lease ran out, maintenance re-queues it; then it runs to the end.
    wait_for(lambda: user.task(task_id).attempt == 2, timeout=60)
    done = wait_for(lambda: (t := user.task(task_id)).status == Status.COMPLETED and t, timeout=15)
    assert done.attempt == 2 and done.outcome == "Slept 4 s in 8 steps"
    assert user.task(bystander).attempt == 1
    # The task's own log tells its owner what happened, in order.
    assert told_in_order(user, task_id, [
        "Attempt 1 started", f"Attempt 1: {LOST_OUTCOME}; it runs again",
        "Attempt 2 started", "Completed: Slept 4 s in 8 steps"])


def test_reaper_fails_what_may_not_run_again(user: Account, isolated) -> None:
    _, app = isolated
    stale = utcnow() - timedelta(seconds=LEASE + 1)
    exhausted = user.add_task(Status.RUNNING, attempt=3, heartbeat_at=stale)
    retryable = user.add_task(Status.RUNNING, attempt=1, heartbeat_at=stale)
    unknown = user.add_task(Status.RUNNING, kind="retired", attempt=1, heartbeat_at=stale)
    alive = user.add_task(Status.RUNNING, attempt=1, heartbeat_at=utcnow())
    queue = app.extensions["task_queue"]
    with app.extensions["database"].session() as db:
        requeued, failed = reap_expired(db, queue, LEASE)
    assert requeued >= 1
    assert failed >= 2
    assert user.task(exhausted.id).status == Status.FAILED
    assert user.task(exhausted.id).outcome == LOST_OUTCOME
    assert user.task(unknown.id).status == Status.FAILED
    assert user.task(retryable.id).status == Status.QUEUED
    assert user.task(alive.id).status == Status.RUNNING


def own_maintenance(isolated: tuple[dict[str, str], Flask]) -> Maintenance:
    """The maintenance, run by the test itself, once it holds the lock (a consumer an
    earlier test killed may still hold it)."""
    env, app = isolated
    database = app.extensions["database"]
    maintenance = Maintenance(database, app.extensions["task_queue"],
                              app.extensions["user_files"], Settings.from_env(env))

    def lock() -> bool:
        with database.session() as db:
            return acquire_lock(db, MAINTENANCE_LOCK, maintenance.holder, ttl=2 * PERIOD)

    wait_for(lock, timeout=10 * PERIOD)
    return maintenance


def test_no_reaping_until_the_database_was_reached_for_a_lease(
    user: Account, isolated, tmp_path: Path
) -> None:
    maintenance = own_maintenance(isolated)
    reachable = maintenance.database
    # Its worker is alive, but could not renew its heartbeat while the database was away.
    alive = user.add_task(Status.RUNNING, attempt=1,
                          heartbeat_at=utcnow() - timedelta(seconds=LEASE + 1))
    maintenance.database = Database(f"sqlite:///{tmp_path}/away/tasks.sqlite3")
    with pytest.raises(SQLAlchemyError):
        maintenance.run_once()
    maintenance.database = reachable
    maintenance.run_once()  # the database is back: the stale heartbeat is the outage's
    assert user.task(alive.id).status == Status.RUNNING
    # Reached for a whole lease with no heartbeat since: now the worker is presumed lost.
    wait_for(lambda: maintenance.run_once() or user.task(alive.id).status == Status.QUEUED,
             timeout=LEASE + 10, interval=PERIOD / 4)


def test_a_finish_that_lost_its_attempt_is_logged(
    user: Account, isolated, caplog: pytest.LogCaptureFixture
) -> None:
    env, app = isolated
    worker = Worker(app.extensions["database"], app.extensions["task_queue"],
                    app.extensions["user_files"], Settings.from_env(env))
    rerun = user.add_task(Status.RUNNING, attempt=2)
    worker._end(rerun.id, 1, Status.COMPLETED, "Done")  # attempt 1, reaped meanwhile
    assert user.task(rerun.id).status == Status.RUNNING
    assert f"task {rerun.id} attempt 1 ended" in caplog.text


def test_a_database_outage_is_told_once_per_task(
    user: Account, isolated, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, app = isolated
    running = user.add_task(Status.RUNNING, attempt=1)
    away = Database(f"sqlite:///{tmp_path}/away/tasks.sqlite3")
    context = TaskContext(away, running.id, {}, root=tmp_path, attempt=1)
    context.CHECKPOINT_INTERVAL = 0  # every checkpoint looks, as a busy task's would
    for _ in range(5):
        context.checkpoint()
        context.heartbeat()
    context.database = app.extensions["database"]
    context.checkpoint()
    context.heartbeat()
    told = [(r.levelname, r.getMessage()) for r in caplog.records if running.id in r.getMessage()]
    # When the outage began, and when it ended: not a line per checkpoint and heartbeat.
    assert [level for level, _ in told] == ["WARNING", "INFO"], told
    assert "reaches the database again" in told[1][1]
    assert "\n" not in told[0][1] and "OperationalError: unable to open" in told[0][1], told


class Exploding(TaskContext):
    """A task whose report fails in a way no one foresaw."""

    def heartbeat(self) -> None:
        raise RuntimeError("a report that cannot be written")


def test_the_heartbeat_stores_unsafe_text_and_outlives_any_error(
    user: Account, isolated, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env, app = isolated
    database = app.extensions["database"]
    worker = Worker(database, app.extensions["task_queue"], app.extensions["user_files"],
                    Settings.from_env(env))  # a lease of 2 s: a beat every 0.5 s
    broken, named, bystander = (user.add_task(Status.RUNNING, attempt=1) for _ in range(3))
    contexts = [Exploding(database, broken.id, {}, root=tmp_path),
                TaskContext(database, named.id, {}, root=tmp_path),
                TaskContext(database, bystander.id, {}, root=tmp_path)]
    # A member named by the byte \xff, reported in the task's first half second: held
    # back, so it is the heartbeat that writes it.
    contexts[1].progress(0.5, "Extracting \udcff/notes.txt")
    with worker._lock:
        worker._in_flight.update({c.task_id: (1, get_kind("sleep"), c) for c in contexts})
    threading.Thread(target=worker._beat, daemon=True).start()
    try:
        wait_for(lambda: user.task(named.id).progress_message == "Extracting \ufffd/notes.txt")
        beats = []
        for _ in range(3):  # the bystander's lease is renewed beat after beat
            wait_for(lambda: user.task(bystander.id).heartbeat_at not in (
                bystander.heartbeat_at, *beats))
            beats.append(user.task(bystander.id).heartbeat_at)
    finally:
        with worker._lock:
            worker._in_flight.clear()
    told = [r for r in caplog.records if broken.id in r.getMessage()]
    assert len(told) == 1 and "still beating" in told[0].getMessage(), told


def test_a_failure_in_words_no_database_takes_still_ends_the_task(
    user: Account, isolated
) -> None:
    env, app = isolated
    worker = Worker(app.extensions["database"], app.extensions["task_queue"],
                    app.extensions["user_files"], Settings.from_env(env))
    # As a JSON body with a lone surrogate reaches a launch that does not refuse it.
    task = user.add_task(Status.QUEUED, params={"seconds": 0.0, "steps": 1, "flaky": 0,
                                                "fail": "broken \ud800 \x00 here"})
    worker.execute(task.id)
    done = user.task(task.id)
    assert (done.status, done.outcome) == (Status.FAILED, "broken \ufffd \ufffd here")


def test_a_worker_waiting_for_the_database_logs_one_line_per_try(
    user: Account, isolated, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env, app = isolated
    worker = Worker(Database(f"sqlite:///{tmp_path}/away/tasks.sqlite3"),
                    app.extensions["task_queue"], app.extensions["user_files"],
                    Settings.from_env(env))
    worker.WRITE_PATIENCE = 0.5
    assert worker._claim(user.add_task(Status.QUEUED).id) is None
    told = [r.getMessage() for r in caplog.records if r.name == "webapp.workers.worker"]
    # Retries, then giving up: each an entry of one line an operator can grep.
    assert any("giving up" in line for line in told), told
    assert all("\n" not in line and "OperationalError: unable to open" in line
               for line in told if "message dropped" not in line), told


def test_failed_enqueue_is_dispatched_later_and_runs_once(
    user: Account, isolated, consumers
) -> None:
    env, _ = isolated
    huey_file = Path(env["INSTANCE_PATH"]) / "huey.sqlite3"
    consumers()
    # A fresh app whose queue storage cannot be opened: the queue is down.
    moved = huey_file.with_suffix(".away")
    os.rename(huey_file, moved)
    huey_file.mkdir()
    try:
        down = create_app(Settings.from_env(env), TESTING=True)
        response = down.test_client().post(
            "/tasks", json={"kind": "sleep", "seconds": 0.1, "steps": 1},
            headers={**user.bearer, "Accept": "application/json"})
        assert response.status_code == 201
        task_id = response.get_json()["id"]
        assert user.task(task_id).dispatched_at is None
        assert down.test_client().get("/healthz").status_code == 503
    finally:
        huey_file.rmdir()
        os.rename(moved, huey_file)
    done = wait_for(lambda: (t := user.task(task_id)).status == Status.COMPLETED and t,
                    timeout=PERIOD + 10)
    assert done.attempt == 1


def test_a_lost_message_is_sent_again_while_newer_ones_wait(
    user: Account, isolated, environment: dict[str, str]
) -> None:
    _, app = isolated
    # The suite's queue backend (Redis on a scale-out run), under a name no consumer reads.
    queue = TaskQueue(Settings.from_env(environment).huey_url, f"lost-{uuid.uuid4().hex[:8]}")
    old = utcnow() - timedelta(seconds=LEASE + 1)
    lost = user.add_task(Status.QUEUED, dispatched_at=old)
    waiting = user.add_task(Status.QUEUED, dispatched_at=old)
    newer = [user.add_task(Status.QUEUED, dispatched_at=utcnow()) for _ in range(3)]
    try:
        # More messages wait than records are overdue: a count would see nothing missing.
        for task in (waiting, *newer):
            queue.enqueue(task.id)
        with app.extensions["database"].session() as db:
            dispatch_lost(db, queue, LEASE)
        assert lost.id in {message.id for message in queue.huey.pending()}
        assert user.task(lost.id).dispatched_at > old
        # The one whose message is still there is not sent twice.
        assert user.task(waiting.id).dispatched_at < utcnow() - timedelta(seconds=LEASE)
    finally:
        queue.huey.flush()


def test_sigterm_hands_back_at_a_checkpoint(user: Account, consumers) -> None:
    # A grace period far longer than the wait below: the consumer can only have stopped
    # in time by handing the task back at its next checkpoint.
    first = consumers(extra_env={"SHUTDOWN_GRACE_SECONDS": "600"})
    task_id = launch(user, seconds=30, steps=60)
    wait_for(lambda: user.task(task_id).status == Status.RUNNING)
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=120)
    task = user.task(task_id)
    assert task.status == Status.QUEUED
    assert task.progress_message == HANDED_BACK_MESSAGE
    consumers()
    wait_for(lambda: user.task(task_id).status == Status.RUNNING)
    assert user.task(task_id).attempt == 2
    user.api("POST", f"/tasks/{task_id}/cancel")
    wait_for(lambda: user.task(task_id).status == Status.CANCELLED)
    assert told_in_order(user, task_id, [
        "Attempt 1 started", HANDED_BACK_MESSAGE, "Attempt 2 started",
        transitions.FLAGGED_LINE, "Cancelled by user"])


def test_sigterm_without_a_checkpoint_in_the_grace_period(user: Account, consumers) -> None:
    first = consumers()
    task_id = launch(user, seconds=60, steps=1)  # one blocking minute, no checkpoint
    wait_for(lambda: user.task(task_id).status == Status.RUNNING)
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=120)  # the grace is 3 s; this only bounds a hang
    task = user.task(task_id)
    # sleep is safe to run again, so it is queued again, not stranded as running.
    assert task.status == Status.QUEUED and task.progress_message == HANDED_BACK_MESSAGE
    assert user.api("POST", f"/tasks/{task_id}/cancel").get_json()["status"] == "cancelled"


def test_hand_backs_spend_no_attempts(user: Account, isolated, consumers) -> None:
    # A rolling deploy: two consumers stopped gracefully under the task, then one lost.
    task_id = launch(user, seconds=60, steps=120)
    env, _ = isolated

    def found() -> str:
        """What a failure needs: the record, and what the consumers said last."""
        task = user.task(task_id)
        return (f"the task is {task.status} (attempt {task.attempt}, hand-backs "
                f"{task.hand_backs}, {task.progress_message!r}); the consumers' log ends:\n"
                + log_tail(Path(env["INSTANCE_PATH"]) / "reliability.log"))

    for attempt in (1, 2, 3):
        # A long lease for the consumers: on a loaded machine a 2 s one may lapse under a
        # live worker, and its reap would spend an attempt this test does not mean to.
        consumer = consumers(extra_env={"SHUTDOWN_GRACE_SECONDS": "600",
                                        "TASK_LEASE_SECONDS": "60"})
        # A new consumer's start and first pick-up: a bound for a failure, wide enough for
        # a loaded machine whose SQLite writers queue behind one another, and for the
        # dispatcher to send a message again after a lease (60 s) should one be lost (CI
        # once waited more than 60 s here). A reap instead of a hand-back would still show
        # in the attempts counted at the end.
        wait_for(lambda n=attempt: (t := user.task(task_id)).status == Status.RUNNING
                 and t.attempt == n, timeout=120, explain=found)
        consumer.send_signal(signal.SIGTERM if attempt < 3 else signal.SIGKILL)
        consumer.wait(timeout=120)
    maintenance = own_maintenance(isolated)
    # One attempt of three was spent (lost), so the reaper runs it again.
    task = wait_for(lambda: maintenance.run_once() or (
        (t := user.task(task_id)).status != Status.RUNNING and t), timeout=LEASE + 10)
    assert (task.status, task.attempt, task.hand_backs) == (Status.QUEUED, 3, 2)
    assert user.api("POST", f"/tasks/{task_id}/cancel").get_json()["status"] == "cancelled"


def test_transient_failure_is_retried(user: Account, consumers) -> None:
    consumers()
    task_id = launch(user, seconds=0, steps=1, flaky=1)
    waiting = wait_for(lambda: (t := user.task(task_id)).outcome and t, timeout=10)
    assert waiting.outcome.startswith("Attempt 1 of 3 failed: Flaky on purpose")
    page = user.client.get("/tasks", headers=user.bearer).get_data(as_text=True)
    assert "Attempt 1 of 3 failed" in page
    done = wait_for(lambda: (t := user.task(task_id)).status == Status.COMPLETED and t,
                    timeout=15)
    assert done.attempt == 2
    page = user.client.get("/tasks", headers=user.bearer).get_data(as_text=True)
    assert "attempt 2 of 3" in page


def test_retries_run_out(user: Account, consumers) -> None:
    consumers()
    task_id = launch(user, seconds=0, steps=1, flaky=5)
    done = wait_for(lambda: (t := user.task(task_id)).status == Status.FAILED and t, timeout=20)
    assert done.attempt == 3 and done.outcome == "Flaky on purpose (attempt 3)"


def race(*steps: Callable[[], object]) -> list[object]:
    """Run the steps at the same instant in threads; exceptions are returned, not raised."""
    barrier = threading.Barrier(len(steps))
    results: list[object] = [None] * len(steps)

    def run(index: int, step: Callable[[], object]) -> None:
        barrier.wait()
        try:
            results[index] = step()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=item) for item in enumerate(steps)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def consistent(task: Task) -> None:
    """One final state whose outcome matches it."""
    expected = {Status.CANCELLED: "Cancelled by user", Status.COMPLETED: "Done",
                Status.FAILED: LOST_OUTCOME}
    if task.status in expected:
        assert task.outcome == expected[task.status]
        assert task.finished_at is not None
    else:
        assert task.finished_at is None and task.outcome is None


@pytest.mark.parametrize("round_", range(25))
def test_races_end_in_one_consistent_state(user: Account, isolated, round_: int) -> None:
    _, app = isolated
    queue = app.extensions["task_queue"]
    database = app.extensions["database"]

    def cancel(task_id: str) -> Callable[[], object]:
        def step() -> object:
            with database.session() as db:
                return runtime.cancel(db, queue, db.get(Task, task_id))
        return step

    def claim(task_id: str) -> Callable[[], object]:
        def step() -> object:
            with database.session() as db:
                return transitions.claim(db, task_id)
        return step

    def complete(task_id: str, attempt: int) -> Callable[[], object]:
        def step() -> object:
            with database.session() as db:
                return transitions.finish(db, task_id, attempt, Status.COMPLETED, "Done")
        return step

    # Cancel against start.
    queued = user.add_task(Status.QUEUED)
    race(cancel(queued.id), claim(queued.id))
    task = user.task(queued.id)
    assert (task.status, task.started_at is None) in {(Status.CANCELLED, True),
                                                      (Status.RUNNING, False)}
    consistent(task)
    # Cancel against completion.
    running = user.add_task(Status.RUNNING, attempt=1)
    race(cancel(running.id), complete(running.id, 1))
    task = user.task(running.id)
    assert task.status == Status.COMPLETED
    consistent(task)
    # Two cancels.
    twice = user.add_task(Status.QUEUED)
    results = race(cancel(twice.id), cancel(twice.id))
    assert sum(isinstance(r, runtime.AlreadyFinished) for r in results) <= 1
    consistent(user.task(twice.id))
    # The reaper against a slow worker that finishes just then.
    slow = user.add_task(Status.RUNNING, attempt=3,
                         heartbeat_at=utcnow() - timedelta(seconds=LEASE + 1))

    def reap() -> object:
        with database.session() as db:
            return reap_expired(db, queue, LEASE)

    race(reap, complete(slow.id, 3))
    task = user.task(slow.id)
    assert task.status in (Status.COMPLETED, Status.FAILED)
    consistent(task)


def test_lock_has_one_holder_until_it_expires(isolated) -> None:
    _, app = isolated
    name = f"lock-{uuid.uuid4().hex[:6]}"
    with app.extensions["database"].session() as db:
        assert acquire_lock(db, name, "a", ttl=60)
        assert not acquire_lock(db, name, "b", ttl=60)
        assert acquire_lock(db, name, "a", ttl=-1)  # the holder renews; here into the past
        assert acquire_lock(db, name, "b", ttl=60)


def test_retention_purges_old_finished_tasks_only(user: Account, isolated) -> None:
    _, app = isolated
    old = utcnow() - timedelta(days=100)
    purged = [user.add_task(status, created_at=old, finished_at=old)
              for status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)]
    kept = [user.add_task(Status.RUNNING, created_at=old),
            user.add_task(Status.COMPLETED)]
    with app.extensions["database"].session() as db:
        assert purge_finished(db, utcnow() - timedelta(days=90)) >= 3
        assert all(db.get(Task, t.id) is None for t in purged)
        assert all(db.get(Task, t.id) is not None for t in kept)


def test_uploads_no_task_will_read_are_purged(user: Account, isolated) -> None:
    _, app = isolated
    files = app.extensions["user_files"]
    root = files.root(user.user.name)

    def upload(age_hours: float) -> tuple[str, Path]:
        path, folder = save_upload(root, "site.tar", lambda p: p.write_bytes(b"tar"))
        old = time.time() - age_hours * 3600
        os.utime(folder, (old, old))
        return path, folder

    _, abandoned = upload(2)  # its launch was refused, or its task cancelled while queued
    waiting_path, waiting = upload(2)  # a queued extraction will still read it
    _, fresh = upload(0)  # a launch may be about to commit its record
    user.add_task(Status.QUEUED, kind="extract_archive",
                  params={"archive_path": waiting_path, "target": "site", "merge": False})
    with app.extensions["database"].session() as db:
        assert purge_uploads(db, files, utcnow() - timedelta(hours=1)) >= 1
    assert not abandoned.exists()
    assert waiting.is_dir() and fresh.is_dir()


def test_maintenance_empties_the_trash(user: Account, isolated) -> None:
    """The trash holds what a task let go of in one rename: here the spare a
    distribution kept, once its space is put to rest."""
    _, app = isolated
    files = app.extensions["user_files"]
    root = files.root(user.user.name)
    write_tree(root, {"s1": {"site": {"a.txt": b"new"}},
                      "t": {"site": {"a.txt": b"old", "b": {"c.txt": b"c"}}}})
    run("distribute", root, {"source": "s1/site", "targets": ["t"], "strategy": "mirror"})
    assert (root / SPARES / "t" / "site").is_dir()
    run("rest_space", root, {"space": "t"})
    assert any(files.trash.iterdir()), "the spare was not put in the trash"
    own_maintenance(isolated).run_once()
    assert list(files.trash.iterdir()) == []
    run("wake_space", root, {"space": "t"})
    assert read_tree(root / "t") == {"site": {"a.txt": b"new"}}
