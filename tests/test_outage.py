"""The scale-out configuration through outages: Redis and PostgreSQL stopped mid-run and
started again lose no task and strand none (private servers, so the shared ones stay up)."""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from tests.support.accounts import Account
from tests.support.processes import start_consumer, stop_consumer, wait_for
from tests.support.services import PrivatePostgres, PrivateRedis
from webapp import create_app
from webapp.core.models import ACTIVE_STATUSES, Status, Task
from webapp.migrate import upgrade
from webapp.settings import Settings
from webapp.web.auth import create_token, create_user

LEASE, PERIOD = 2, 1


@pytest.fixture
def servers() -> Iterator[tuple[PrivatePostgres, PrivateRedis]]:
    # Under /tmp rather than pytest's folder: the postgres user must be able to reach it.
    folder = Path(tempfile.mkdtemp(prefix="outage-", dir="/tmp"))
    (folder / "pg").mkdir()
    (folder / "redis").mkdir()
    postgres = PrivatePostgres(folder / "pg")
    redis = PrivateRedis(folder / "redis")
    postgres.start()
    redis.start()
    yield postgres, redis
    redis.stop()
    postgres.stop()


def test_outages_lose_and_strand_nothing(servers, tmp_path: Path) -> None:
    postgres, redis = servers
    env = {**os.environ, "INSTANCE_PATH": str(tmp_path), "DATABASE_URL": postgres.url,
           "HUEY_URL": redis.url, "TASK_LEASE_SECONDS": str(LEASE),
           "MAINTENANCE_SECONDS": str(PERIOD), "SHUTDOWN_GRACE_SECONDS": "2"}
    settings = Settings.from_env(env)
    upgrade(settings.database_url)
    app = create_app(settings, TESTING=True)
    with app.extensions["database"].session() as db:
        user = create_user(db, f"o-{uuid.uuid4().hex[:6]}", "pw")
        account = Account(app, user, "pw", create_token(db, user))
    consumers = [start_consumer(env, name=f"outage-{n}", workers=2) for n in range(2)]
    launched: list[str] = []

    def launch(count: int) -> None:
        for n in range(count):
            response = account.api("POST", "/tasks", json={
                "kind": "sleep", "seconds": 0.2 + (n % 5) * 0.2, "steps": 4})
            assert response.status_code == 201
            launched.append(response.get_json()["id"])

    try:
        launch(20)
        # Redis goes away with every message it held; launches meanwhile still succeed.
        redis.stop()
        launch(5)
        assert app.test_client().get("/healthz").get_json()["queue"] == "unreachable"
        redis.start()
        # PostgreSQL goes away: pages answer 503 with a clear message, nothing crashes.
        postgres.stop()
        outage = account.api("GET", "/tasks")
        assert outage.status_code == 503
        assert "cannot be reached" in outage.get_json()["error"]
        health = app.test_client().get("/healthz")
        assert health.status_code == 503 and health.get_json()["database"] == "unreachable"
        postgres.start()
        launch(5)

        def settled() -> bool:
            with app.extensions["database"].session() as db:
                return not db.query(Task).filter(Task.status.in_(ACTIVE_STATUSES)).count()

        wait_for(settled, timeout=90, interval=0.5)
        with app.extensions["database"].session() as db:
            tasks = {t.id: t for t in db.query(Task).filter(Task.id.in_(launched))}
        assert len(tasks) == len(launched) == 30  # none lost
        assert all(t.status == Status.COMPLETED for t in tasks.values()), [
            (t.status, t.outcome) for t in tasks.values() if t.status != Status.COMPLETED]
        assert all(t.outcome.startswith("Slept ") for t in tasks.values())
    finally:
        for process in consumers:
            stop_consumer(process)
        app.extensions["database"].dispose()


def test_a_paused_queue_answers_at_once(app: Flask, account: Account, tmp_path: Path) -> None:
    # A Redis of its own, frozen: it accepts connections and never answers, which only
    # the queue's own timeouts can tell from a slow answer.
    redis = PrivateRedis(tmp_path)
    redis.start()
    paused = create_app(Settings.from_env({**os.environ, "INSTANCE_PATH": str(tmp_path)}),
                        TESTING=True, DATABASE_URL=app.config["DATABASE_URL"],
                        HUEY_URL=redis.url, HUEY_NAME=f"paused-{uuid.uuid4().hex[:6]}")
    try:
        redis.pause()
        health = paused.test_client().get("/healthz")
        assert health.status_code == 503 and health.get_json()["queue"] == "unreachable"
        launch = paused.test_client().post(
            "/tasks", json={"kind": "sleep", "seconds": 0, "steps": 1},
            headers={**account.bearer, "Accept": "application/json"})
        # Kept: the record is queued, and the dispatcher sends it once the queue is back.
        assert launch.status_code == 201
        assert account.task(launch.get_json()["id"]).dispatched_at is None
        account.api("POST", f"/tasks/{launch.get_json()['id']}/cancel")
    finally:
        redis.stop()
        paused.extensions["database"].dispose()


def test_a_queue_outage_is_told_once_per_step(app: Flask, account: Account,
                                              environment: dict[str, str],
                                              tmp_path: Path) -> None:
    redis = PrivateRedis(tmp_path)
    redis.start()
    env = {**environment, "INSTANCE_PATH": str(tmp_path), "HUEY_URL": redis.url,
           "HUEY_NAME": f"away-{uuid.uuid4().hex[:6]}", "DATABASE_URL": app.config["DATABASE_URL"]}
    launcher = create_app(Settings.from_env(env), TESTING=True)
    consumer = start_consumer(env, name="away", workers=2)
    log = tmp_path / "away.log"
    try:
        task_id = launcher.test_client().post(
            "/tasks", json={"kind": "sleep", "seconds": 2, "steps": 4},
            headers={**account.bearer, "Accept": "application/json"}).get_json()["id"]
        wait_for(lambda: account.task(task_id).status == Status.RUNNING, timeout=30)
        redis.stop()  # under the running task: it ends while the queue is away
        wait_for(lambda: account.task(task_id).status == Status.COMPLETED, timeout=30)
        wait_for(lambda: "again in 4.0 s" in log.read_text(), timeout=60)
        redis.start()
        wait_for(lambda: "the queue is reachable again" in log.read_text(), timeout=60)
    finally:
        stop_consumer(consumer)
        redis.stop()
        launcher.extensions["database"].dispose()
    text = log.read_text()
    assert "Traceback" not in text and "Unhandled error" not in text, text
    # One line per thread per back-off step, each step longer than the one before.
    pauses: dict[str, list[float]] = {}
    for thread, pause in re.findall(r":([\w-]+):the queue is unreachable .*again in ([\d.]+) s",
                                    text):
        pauses.setdefault(thread, []).append(float(pause))
    assert pauses, text
    for steps in pauses.values():
        assert steps[0] == 0.5 and steps == sorted(steps), text
