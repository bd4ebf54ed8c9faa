"""The administrator's overview and `flask workers`: who may see it, what it shows after
known work, its live version, and consumers registering, beating, leaving and gone."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from sqlalchemy import delete, select, update

from tests.support.accounts import Account
from tests.support.processes import start_consumer, stop_consumer, wait_for
from webapp import create_app
from webapp.core import transitions
from webapp.core.models import ConsumerProcess, Status, Task, utcnow
from webapp.settings import Settings
from webapp.workers.registry import GONE_KEPT, Registration


def overview(admin: Account) -> dict:
    response = admin.api("GET", "/admin")
    assert response.status_code == 200
    return response.get_json()


def test_only_administrators_see_the_overview(app: Flask,
                                              make_account: Callable[..., Account]) -> None:
    anonymous = app.test_client().get("/admin")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert app.test_client().get("/admin", headers={"Accept": "application/json"}) \
        .status_code == 401
    assert make_account().api("GET", "/admin").status_code == 403
    page = make_account(admin=True).login().client.get("/admin")
    assert page.status_code == 200
    assert "<h1>Overview</h1>" in page.get_data(as_text=True)


def test_the_overview_after_known_work(make_account: Callable[..., Account]) -> None:
    admin, alice = make_account(admin=True), make_account()
    now = utcnow()
    hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    hour_of = lambda body: next(h for h in body["hours"]  # noqa: E731
                                if h["start"] == hour.isoformat().replace("+00:00", "Z"))
    before = hour_of(overview(admin))
    kind = f"probe-{uuid.uuid4().hex[:8]}"
    # Three of a kind of its own, finished five hours ago, ran for 10, 20 and 60 s.
    finished = hour + timedelta(minutes=30)
    for status, seconds in ((Status.COMPLETED, 10), (Status.COMPLETED, 20),
                            (Status.FAILED, 60)):
        alice.add_task(status, kind=kind, finished_at=finished,
                       started_at=finished - timedelta(seconds=seconds),
                       created_at=finished - timedelta(seconds=seconds + 1))
    alice.add_task(Status.CANCELLED, kind=kind, finished_at=finished, started_at=None,
                   created_at=finished - timedelta(seconds=1))
    # Alice's task running longest of all, and the task waiting longest.
    running = alice.add_task(Status.RUNNING, description="alice's long run",
                             started_at=now - timedelta(days=300),
                             heartbeat_at=now,
                             created_at=now - timedelta(days=300))
    waiting = alice.add_task(Status.QUEUED, description="alice's long wait",
                             created_at=now - timedelta(days=400),
                             run_after=now + timedelta(days=1))

    body = overview(admin)
    after = hour_of(body)
    assert {status: after[status] - before[status]
            for status in ("completed", "failed", "cancelled")} == \
        {"completed": 2, "failed": 1, "cancelled": 1}
    # The cancelled one never ran: the median is of the three that did.
    assert {"kind": kind, "median_seconds": 20.0, "runs": 3} in body["durations"]
    assert body["running"][0]["id"] == running.id
    assert body["running"][0]["owner"] == alice.user.name
    assert body["queue"]["oldest_waiting"]["id"] == waiting.id
    assert body["queue"]["queued"] >= 1 and body["queue"]["running"] >= 1

    page = admin.login().client.get("/admin").get_data(as_text=True)
    assert f'href="/tasks/{running.id}"' in page
    assert "alice&#39;s long wait" in page
    # The charts: described for assistive technology, with their data as tables.
    assert '<title id="hours-title">' in page and '<desc id="kinds-desc">' in page
    assert f'<th scope="row">{kind}</th><td>20 s</td><td>3</td>' in page
    with alice.app.extensions["database"].session() as db:
        transitions.cancel_queued(db, waiting.id, alice.user.id)


def test_an_unchanged_overview_is_a_204(make_account: Callable[..., Account]) -> None:
    admin = make_account(admin=True)

    def unchanged() -> bool:
        version = admin.api("GET", "/admin", headers={"Accept": "text/html"}) \
            .headers["X-Live-Version"]
        return admin.api("GET", f"/admin?since={version}",
                         headers={"Accept": "text/html"}).status_code == 204

    wait_for(unchanged, timeout=30)
    fragment = admin.api("GET", "/admin", headers={"Accept": "text/html", "HX-Request": "true"})
    assert fragment.get_data(as_text=True).lstrip().startswith("<div id=\"overview\"")


def test_a_consumer_registers_beats_and_leaves(app: Flask, environment: dict[str, str],
                                               make_account: Callable[..., Account]) -> None:
    admin = make_account(admin=True)
    # Records other tests wrote as queued (the suite shares its database) would be this
    # consumer's to run: not due for a day, no consumer dispatches them.
    with app.extensions["database"].session() as db:
        db.execute(update(Task).where(Task.status == Status.QUEUED)
                   .values(run_after=utcnow() + timedelta(days=1)))
        db.commit()
    consumer = start_consumer(environment, name="registry-consumer", workers=3)
    try:
        mine = wait_for(lambda: next((c for c in overview(admin)["consumers"]
                                      if c["pid"] == consumer.pid), None), timeout=30)
        assert mine["workers"] == 3 and not mine["gone"]
        # It beats: its heartbeat moves on.
        wait_for(lambda: any(c["pid"] == consumer.pid
                             and c["heartbeat_at"] > mine["heartbeat_at"]
                             for c in overview(admin)["consumers"]), timeout=60)

        def listed() -> str | None:
            result = app.test_cli_runner().invoke(args=["workers"])
            assert result.exit_code == 0, result.output
            line = next(line for line in result.output.splitlines()
                        if f" {consumer.pid} " in line)
            # A message already on its way when the records were put off may still come.
            return line if "0 of 3" in line else None

        assert wait_for(listed, timeout=30).rstrip().endswith("alive")
    finally:
        stop_consumer(consumer)
    # A consumer that stops removes itself.
    assert all(c["pid"] != consumer.pid for c in overview(admin)["consumers"])


def test_a_silent_consumer_is_gone_then_dropped(app: Flask, settings: Settings,
                                                make_account: Callable[..., Account]) -> None:
    admin = make_account(admin=True)
    database = app.extensions["database"]
    now = utcnow()
    with database.session() as db:
        for name, age in (("quiet", timedelta(minutes=5)), ("long-gone", GONE_KEPT * 2)):
            db.add(ConsumerProcess(id=f"{name}-{uuid.uuid4().hex[:8]}", host=f"{name}.example",
                                   pid=4242, workers=4, tasks_in_hand=1,
                                   started_at=now - age, heartbeat_at=now - age))
        db.commit()
    shown = {c["host"]: c["gone"] for c in overview(admin)["consumers"]}
    assert shown["quiet.example"] is True
    scraper = create_app(settings, TESTING=True, METRICS_TOKEN="t")
    scraped = scraper.test_client().get(
        "/metrics", headers={"Authorization": "Bearer t"}).get_data(as_text=True)
    scraper.extensions["database"].dispose()
    gone = sum(shown.values())
    assert f'background_tasks_consumers{{state="gone"}} {gone:.1f}' in scraped
    assert f'background_tasks_consumers{{state="alive"}} {len(shown) - gone:.1f}' in scraped
    result = app.test_cli_runner().invoke(args=["workers"])
    assert "quiet.example" in result.output
    assert next(line for line in result.output.splitlines()
                if "quiet.example" in line).rstrip().endswith("gone")

    # Any consumer's beat drops those gone for longer than GONE_KEPT.
    registration = Registration(database, lease_seconds=60, workers=2, in_hand=lambda: 0)
    registration.beat()
    with database.session() as db:
        hosts = set(db.scalars(select(ConsumerProcess.host)))
        assert "long-gone.example" not in hosts and "quiet.example" in hosts
        assert db.get(ConsumerProcess, registration.id) is not None
    registration.stop()
    with database.session() as db:
        assert db.get(ConsumerProcess, registration.id) is None
        db.execute(delete(ConsumerProcess).where(ConsumerProcess.host == "quiet.example"))
        db.commit()
