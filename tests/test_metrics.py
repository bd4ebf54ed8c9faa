"""Prometheus metrics: who may scrape, the names and values after known work (launches,
endings, reaps, hand-backs, requests), the records' gauges, a consumer's own port, and
gunicorn's workers summed in one scrape."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.support.accounts import Account
from tests.support.processes import start_consumer, stop_consumer, wait_for
from tests.support.queues import fresh_account, private_queue
from tests.support.services import free_port
from tests.test_serving import Server
from webapp import create_app
from webapp.core import transitions
from webapp.core.models import Status, utcnow
from webapp.migrate import upgrade
from webapp.settings import Settings
from webapp.workers.maintenance import dispatch_lost
from webapp.workers.worker import Worker

TOKEN = "operator-secret"
LATER = timedelta(days=1)  # run_after: no consumer of the session dispatches these


def here(name: str, **labels: str) -> float:
    """A sample of this process's registry (0 before it was ever counted)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def metrics_app(settings: Settings) -> Callable[..., Flask]:
    made: list[Flask] = []

    def make(**overrides: object) -> Flask:
        app = create_app(settings, TESTING=True, **overrides)
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["database"].dispose()


def test_metrics_are_not_offered_until_configured(app: Flask) -> None:
    assert app.test_client().get("/metrics").status_code == 404


def test_the_operators_token_opens_metrics(metrics_app: Callable[..., Flask]) -> None:
    client = metrics_app(METRICS_TOKEN=TOKEN).test_client()
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    # A user's API token is not an operator's.
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert answer.content_type.startswith("text/plain")
    assert "background_tasks_queue_depth" in answer.get_data(as_text=True)


def test_allowed_addresses_count_after_the_trusted_proxies(
        metrics_app: Callable[..., Flask]) -> None:
    allow = (ip_network("10.0.0.0/8"),)
    behind_proxy = metrics_app(METRICS_ALLOW=allow, PROXY_COUNT=1).test_client()
    assert behind_proxy.get("/metrics", headers={"X-Forwarded-For": "10.1.2.3"}).status_code \
        == 200
    assert behind_proxy.get("/metrics", headers={"X-Forwarded-For": "192.0.2.1"}).status_code \
        == 403
    # Without a proxy to trust, a client cannot claim an allowed address.
    direct = metrics_app(METRICS_ALLOW=allow).test_client()
    assert direct.get("/metrics", headers={"X-Forwarded-For": "10.1.2.3"}).status_code == 403
    assert direct.get("/metrics", environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code == 200


def sleep_counters() -> dict[str, float]:
    """This process's counters of `sleep` tasks, by what they count."""
    return {
        "launched": here("background_tasks_launched_total", kind="sleep"),
        "completed": here("background_tasks_finished_total", kind="sleep", status="completed"),
        "failed": here("background_tasks_finished_total", kind="sleep", status="failed"),
        "cancelled": here("background_tasks_finished_total", kind="sleep", status="cancelled"),
        "durations": here("background_tasks_duration_seconds_count", kind="sleep"),
        "requeued": here("background_tasks_leases_reaped_total", kind="sleep",
                         outcome="requeued"),
        "lost": here("background_tasks_leases_reaped_total", kind="sleep", outcome="failed"),
        "handed_back": here("background_tasks_handed_back_total", kind="sleep"),
    }


def test_launches_endings_reaps_and_hand_backs_are_counted(
        app: Flask, account: Account, environment: dict[str, str]) -> None:
    before = sleep_counters()
    # Three launches, and a queued task cancelled.
    launched = [account.launch("sleep", seconds=0.01, steps=1) for _ in range(3)]
    waiting = account.add_task(Status.QUEUED, run_after=utcnow() + LATER)
    assert account.api("POST", f"/tasks/{waiting.id}/cancel").status_code == 202
    assert account.task(waiting.id).status == Status.CANCELLED
    # Two run here to the end, one of them failing.
    worker = Worker(app.extensions["database"], app.extensions["task_queue"],
                    app.extensions["user_files"], Settings.from_env(environment))
    done = account.add_task(Status.QUEUED, run_after=utcnow() + LATER,
                            params={"seconds": 0.01, "steps": 1, "fail": "", "flaky": 0})
    broken = account.add_task(Status.QUEUED, run_after=utcnow() + LATER,
                              params={"seconds": 0.01, "steps": 1, "fail": "boom", "flaky": 0})
    worker.execute(done.id)
    worker.execute(broken.id)
    assert account.task(done.id).status == Status.COMPLETED
    assert account.task(broken.id).status == Status.FAILED
    # Two lost their worker: one runs again, one has no attempts left (maintenance decides
    # which; here the two moves alone, so that no other test's stale record is reaped too).
    stale = utcnow() - timedelta(seconds=30)
    again = account.add_task(Status.RUNNING, attempt=1, heartbeat_at=stale)
    spent = account.add_task(Status.RUNNING, attempt=3, heartbeat_at=stale)
    cutoff = utcnow() - timedelta(seconds=10)
    with app.extensions["database"].session() as db:
        assert transitions.reap(db, again.id, 1, cutoff, again=True)
        assert transitions.reap(db, spent.id, 3, cutoff, again=False)
    assert account.task(again.id).status == Status.QUEUED
    assert account.task(spent.id).status == Status.FAILED
    # One handed back by a stopping consumer.
    running = account.add_task(Status.RUNNING, attempt=1)
    with app.extensions["database"].session() as db:
        assert transitions.requeue(db, running.id, 1, "stopping", handed_back=True)

    assert here("background_tasks_launched_total", kind="sleep") - before["launched"] == 3
    counted = {
        "completed": 1, "failed": 2, "cancelled": 1, "durations": 3,
        "requeued": 1, "lost": 1, "handed_back": 1,
    }
    now = sleep_counters()
    assert {name: now[name] for name in counted} == {
        name: before[name] + count for name, count in counted.items()}
    with app.extensions["database"].session() as db:
        for task_id in launched:  # unless a consumer of the session ran them
            transitions.cancel_queued(db, task_id, account.user.id)


def test_gauges_come_from_the_records(metrics_app: Callable[..., Flask],
                                      account: Account) -> None:
    client = metrics_app(METRICS_TOKEN=TOKEN).test_client()

    def scrape() -> dict:
        answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        return parse(answer.get_data(as_text=True))

    before = scrape()
    waiting = [account.add_task(Status.QUEUED, run_after=utcnow() + LATER,
                                created_at=utcnow() - timedelta(hours=2)) for _ in range(3)]
    account.add_task(Status.RUNNING, heartbeat_at=utcnow() - timedelta(seconds=30))
    after = scrape()
    assert value(after, "background_tasks_database_up") == 1
    assert value(after, "background_tasks_queue_depth") \
        - value(before, "background_tasks_queue_depth") == 3
    assert value(after, "background_tasks_active", status="queued") \
        - value(before, "background_tasks_active", status="queued") == 3
    assert value(after, "background_tasks_active", status="running") \
        - value(before, "background_tasks_active", status="running") == 1
    assert value(after, "background_tasks_oldest_waiting_seconds") >= 2 * 3600
    assert value(after, "background_tasks_heartbeat_age_seconds") >= 30
    with account.app.extensions["database"].session() as db:
        for task in waiting:
            transitions.cancel_queued(db, task.id, account.user.id)


def test_requests_are_timed_by_endpoint_polls_apart(app: Flask, account: Account) -> None:
    def count(request: str) -> float:
        return here("background_tasks_http_request_duration_seconds_count",
                    endpoint="tasks.index", request=request, status="200")

    pages, polls = count("page"), count("poll")
    version = account.api("GET", "/tasks").get_json()["version"]
    account.api("GET", "/tasks")
    # An unchanged poll is answered before the other hooks run: it still counts.
    assert account.api("GET", f"/tasks?since={version}").status_code == 204
    assert count("page") - pages == 2
    assert here("background_tasks_http_request_duration_seconds_count",
                endpoint="tasks.index", request="poll", status="204") >= 1
    assert count("poll") == polls


def scrape(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_a_consumer_serves_its_own_metrics(environment: dict[str, str], app: Flask) -> None:
    port = free_port()
    with private_queue(environment) as (env, own_app):
        consumer = start_consumer(env | {"CONSUMER_METRICS_BIND": f"127.0.0.1:{port}",
                                         "METRICS_TOKEN": TOKEN}, name="metrics-consumer")
        try:
            check_consumer_metrics(fresh_account(own_app), port)
        finally:
            stop_consumer(consumer)


def check_consumer_metrics(account: Account, port: int) -> None:
    """What a consumer counted of two tasks it ran, read from its own port."""
    ok = account.launch("sleep", seconds=0.05, steps=1)
    bad = account.launch("sleep", seconds=0.05, steps=1, fail="boom")
    assert account.final(ok)["status"] == "completed"
    assert account.final(bad)["status"] == "failed"
    url = f"http://127.0.0.1:{port}/metrics"
    assert scrape(url)[0] == 403
    status, text = scrape(url, TOKEN)
    assert status == 200
    samples = parse(text)
    assert value(samples, "background_tasks_finished_total",
                 kind="sleep", status="completed") == 1
    assert value(samples, "background_tasks_finished_total",
                 kind="sleep", status="failed") == 1
    assert value(samples, "background_tasks_duration_seconds_count", kind="sleep") == 2
    # The records' gauges are the web nodes' to give: not once per consumer.
    assert "background_tasks_queue_depth" not in text


def test_gunicorn_workers_are_summed_in_one_scrape(environment: dict[str, str],
                                                   settings: Settings, tmp_path: Path) -> None:
    server = Server(environment | {"METRICS_TOKEN": TOKEN}, tmp_path, 0)
    try:
        wait_for(server.healthy, timeout=30, interval=0.2)
        for _ in range(20):
            assert server.request("GET", "/login")[0] == 200
        status, _, text = server.request("GET", "/metrics",
                                         {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        # Every request, whichever of the two workers answered it, in one sum.
        assert value(parse(text), "background_tasks_http_request_duration_seconds_count",
                     endpoint="auth.login", request="page", status="200") == 20
    finally:
        server.stop()


def test_dispatches_repeated_are_counted_by_reason(tmp_path: Path) -> None:
    """On an instance of its own, so that no other test's launch is dispatched with these."""
    settings = Settings.from_env({"INSTANCE_PATH": str(tmp_path / "instance")})
    upgrade(settings.database_url)
    app = create_app(settings, TESTING=True)
    try:
        account = fresh_account(app)
        now = utcnow()
        for _ in range(2):  # their enqueue failed
            account.add_task(Status.QUEUED, dispatched_at=None)
        # Handed to the queue two leases ago, and not in it: its message was lost.
        account.add_task(Status.QUEUED, dispatched_at=now - timedelta(seconds=120))

        def counted() -> dict[str, float]:
            return {reason: here("background_tasks_redispatched_total", reason=reason)
                    for reason in ("never_enqueued", "message_lost")}

        before = counted()
        with app.extensions["database"].session() as db:
            assert dispatch_lost(db, app.extensions["task_queue"], lease_seconds=60) == 3
        after = counted()
        assert {reason: after[reason] - before[reason] for reason in after} == \
            {"never_enqueued": 2, "message_lost": 1}
    finally:
        app.extensions["database"].dispose()
