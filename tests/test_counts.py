"""The per-user status counters behind totals and the bell: they always equal a count of
the records, through launch, claim, finish, cancel, reap and purge, and through races
between them; and the index-only pages equal plain OFFSET pages."""

from __future__ import annotations

import contextlib
import random
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import create_engine, select, text, update

from tests.support.accounts import Account
from tests.support.processes import wait_for
from webapp.core import runtime
from webapp.core.listing import list_tasks
from webapp.core.models import FINAL_STATUSES, Status, Task, TaskCount, User
from webapp.migrate import upgrade
from webapp.settings import Settings
from webapp.workers.consumer import ConsumerSide
from webapp.workers.maintenance import purge_finished, reap_expired
from webapp.workers.worker import Worker

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def counted(app: Flask, account: Account) -> tuple[Counter[str], Counter[str]]:
    """(the counters, a count of the records) for one user, zeros left out."""
    with app.extensions["database"].session() as db:
        kept = Counter(dict(db.execute(
            select(TaskCount.status, TaskCount.count).where(
                TaskCount.owner_id == account.user.id)).all()))
        records = Counter(db.scalars(select(Task.status).where(
            Task.owner_id == account.user.id)).all())
    assert all(n >= 0 for n in kept.values()), kept
    return +kept, records


def assert_consistent(app: Flask, account: Account) -> Counter[str]:
    kept, records = counted(app, account)
    assert kept == records
    return records


@pytest.fixture(scope="module")
def worker(settings: Settings) -> Iterator[Worker]:
    """A consumer's worker in this process, to run tasks one at a time on this thread."""
    side = ConsumerSide(settings)
    yield side.worker
    side.database.dispose()


def launch(app: Flask, account: Account, **params: object) -> Task:
    """Launched for a minute from now, so the suite's consumer leaves it to this test."""
    with app.extensions["database"].session() as db:
        user = db.get(User, account.user.id)
        assert user is not None
        return runtime.launch(db, app.extensions["task_queue"], app.extensions["user_files"],
                              user, "sleep", {"seconds": 0, "steps": 1, **params}, delay=60)


def backdate_finished(app: Flask, account: Account) -> None:
    """Finished long ago, so a purge up to LONG_AGO takes this user's tasks and no one else's."""
    with app.extensions["database"].session() as db:
        db.execute(update(Task).where(Task.owner_id == account.user.id,
                                      Task.status.in_(FINAL_STATUSES))
                   .values(finished_at=LONG_AGO - timedelta(days=1)))
        db.commit()


def test_every_transition_keeps_the_counts(app: Flask, account: Account, worker: Worker) -> None:
    queue = app.extensions["task_queue"]
    tasks = [launch(app, account) for _ in range(6)]
    assert assert_consistent(app, account)[Status.QUEUED] >= 1
    with app.extensions["database"].session() as db:
        runtime.cancel(db, queue, db.get(Task, tasks[0].id))
    assert_consistent(app, account)
    worker.execute(tasks[1].id)  # claim, run, finish (unless a consumer took it first)
    assert_consistent(app, account)
    # A running task whose worker died: the reaper fails it (or queues it again).
    with app.extensions["database"].session() as db:
        db.execute(update(Task).where(Task.id == tasks[2].id, Task.status == Status.QUEUED)
                   .values(status=Status.RUNNING, attempt=3, heartbeat_at=LONG_AGO))
        db.commit()
        assert_consistent(app, account)
        reap_expired(db, queue, lease_seconds=60)
    assert_consistent(app, account)
    for task in tasks[3:]:
        worker.execute(task.id)
    wait_for(lambda: all(account.task(t.id).status in FINAL_STATUSES for t in tasks))
    backdate_finished(app, account)
    with app.extensions["database"].session() as db:
        assert purge_finished(db, LONG_AGO) >= len(tasks)
    assert assert_consistent(app, account) == Counter()
    # Admin-side totals agree with the records too.
    assert list_tasks_total(app, account) == 0


def list_tasks_total(app: Flask, account: Account) -> int:
    with app.extensions["database"].session() as db:
        user = db.get(User, account.user.id)
        assert user is not None
        return list_tasks(db, user).total


def test_races_keep_the_counts(app: Flask, account: Account, worker: Worker) -> None:
    """Cancel, claim and finish, reap and purge at once on the same tasks."""
    queue = app.extensions["task_queue"]
    database = app.extensions["database"]
    tasks = [launch(app, account).id for _ in range(40)]
    errors: list[BaseException] = []

    def guarded(work):
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)
        return run

    def cancel_all() -> None:
        for task_id in random.sample(tasks, len(tasks)):
            with database.session() as db:
                task = db.get(Task, task_id)
                if task is None:
                    continue  # purged already
                with contextlib.suppress(runtime.AlreadyFinished):
                    runtime.cancel(db, queue, task)

    def run_all() -> None:
        for task_id in tasks:
            worker.execute(task_id)

    def reap_and_purge() -> None:
        for _ in range(20):
            with database.session() as db:
                # Lease 0: every running task counts as lost, racing its own worker.
                reap_expired(db, queue, lease_seconds=0)
            backdate_finished(app, account)
            with database.session() as db:
                purge_finished(db, LONG_AGO)

    threads = [threading.Thread(target=guarded(work))
               for work in (cancel_all, run_all, run_all, reap_and_purge)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert_consistent(app, account)
    # Whatever was queued again by the reaper still runs; the counts follow it to the end.
    for task_id in tasks:
        worker.execute(task_id)
    wait_for(lambda: all(s in FINAL_STATUSES for s in counted(app, account)[1]))
    assert_consistent(app, account)


@pytest.fixture
def history(account: Account) -> Account:
    """Tasks in every status, several created at the same instant (ties broken by id).

    Records only: not due (run_after) and with no heartbeat, so the suite's dispatcher and
    reaper leave them alone instead of keeping its consumer busy with them.
    """
    rng = random.Random(5)
    now = datetime.now(UTC)
    for index in range(140):
        moment = now - timedelta(days=2) + timedelta(seconds=index // 3)
        account.add_task(rng.choice(list(Status)), created_at=moment, heartbeat_at=None,
                         run_after=now + timedelta(days=365))
    return account


def offset_page(app: Flask, owner_id: int | None, statuses: tuple[Status, ...],
                page: int, per_page: int) -> list[str]:
    """The same page the plain way: ORDER BY ... OFFSET over whole rows."""
    query = select(Task.id)
    if owner_id is not None:
        query = query.where(Task.owner_id == owner_id)
    if statuses:
        query = query.where(Task.status.in_(statuses))
    query = query.order_by(Task.created_at.desc(), Task.id.desc())
    with app.extensions["database"].session() as db:
        return list(db.scalars(query.offset((page - 1) * per_page).limit(per_page)))


@pytest.mark.parametrize("statuses", [
    (), (Status.COMPLETED,), (Status.QUEUED, Status.FAILED),
    (Status.QUEUED, Status.RUNNING, Status.COMPLETED, Status.FAILED), tuple(Status),
])
def test_pages_equal_offset_pages(app: Flask, history: Account,
                                  statuses: tuple[Status, ...]) -> None:
    per_page = 7
    with app.extensions["database"].session() as db:
        user = db.get(User, history.user.id)
        assert user is not None
        first = list_tasks(db, user, statuses=statuses, per_page=per_page)
        expected_total = len(offset_page(app, user.id, statuses, 1, 10_000))
        assert first.total == expected_total
        seen: list[str] = []
        for page in range(1, first.pages + 2):
            listing = list_tasks(db, user, statuses=statuses, page=page, per_page=per_page)
            ids = [task.id for task in listing.tasks]
            assert ids == offset_page(app, user.id, statuses, page, per_page), page
            seen += ids
        assert len(seen) == len(set(seen)) == expected_total


def test_admin_pages_equal_offset_pages(app: Flask, history: Account,
                                        make_account) -> None:
    admin = make_account(admin=True)
    with app.extensions["database"].session() as db:
        viewer = db.get(User, admin.user.id)
        owner = db.get(User, history.user.id)
        assert viewer is not None and owner is not None
        for statuses in ((), (Status.FAILED, Status.CANCELLED)):
            for page in (1, 2, 5):
                mine = list_tasks(db, viewer, statuses=statuses, page=page, per_page=9,
                                  owner=owner)
                assert [t.id for t in mine.tasks] == offset_page(app, owner.id, statuses,
                                                                 page, 9)
            everyone = list_tasks(db, viewer, statuses=statuses, page=2, per_page=9)
            assert [t.id for t in everyone.tasks] == offset_page(app, None, statuses, 2, 9)


def test_the_migration_counts_the_tasks_already_there(tmp_path: Path) -> None:
    """An existing history is counted once by the migration; the triggers go on from there."""
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    upgrade(url, "0003e")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO users (name, password_hash, is_admin, created_at, "
                                "bell_version) VALUES ('old', '!', 0, '2026-01-01', 0)"))
        for index, status in enumerate(["completed", "completed", "failed", "queued"]):
            connection.execute(text(
                "INSERT INTO tasks (id, owner_id, kind, description, status, params, created_at, "
                "attempt) VALUES (:id, 1, 'sleep', 'old', :status, '{}', '2026-01-01', 1)"),
                {"id": f"t{index}", "status": status})
    upgrade(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE tasks SET status = 'running' WHERE id = 't3'"))
        counts = dict(connection.execute(text(
            "SELECT status, count FROM task_counts WHERE owner_id = 1 AND count > 0")).all())
    engine.dispose()
    assert counts == {"completed": 2, "failed": 1, "running": 1}
