"""Prometheus metrics: what each process counts, what the database knows at scrape time,
and the guarded scrape endpoint that web nodes and consumers both serve.

Counts of events (launches, endings, reaps, hand-backs, re-dispatches, requests) are kept
per process, where they happen; a web node's gunicorn workers share them through
prometheus_client's multiprocess directory (gunicorn.conf.py), and each consumer serves its
own (CONSUMER_METRICS_BIND), because consumers run on other hosts than the web nodes and a
multiprocess directory is memory-mapped files on one host. What the records know (queue
depth, active tasks, the oldest waiting task, the oldest heartbeat) is read from the
database when the web node is scraped, so every node answers the same and no process has
to keep it.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.exc import SQLAlchemyError

from webapp.core.db import Database
from webapp.core.models import Status, utcnow
from webapp.core.overview import consumers, queue_state

PREFIX = "background_tasks"

# From a second to a few hours: tasks are what takes longer than a request.
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)
# Requests are answered in milliseconds; a poll answered from memory in well under one.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

LAUNCHED = Counter(f"{PREFIX}_launched", "Tasks launched", ["kind"])
FINISHED = Counter(f"{PREFIX}_finished", "Tasks that reached a final status",
                   ["kind", "status"])
DURATION = Histogram(f"{PREFIX}_duration_seconds",
                     "Run time of finished attempts, from start to end", ["kind"],
                     buckets=DURATION_BUCKETS)
REDISPATCHED = Counter(f"{PREFIX}_redispatched",
                       "Queued tasks handed to the queue again by maintenance: never enqueued "
                       "(the enqueue failed) or their message lost", ["reason"])
REAPED = Counter(f"{PREFIX}_leases_reaped",
                 "Running tasks whose worker was lost (lease expired): re-queued or failed",
                 ["kind", "outcome"])
HANDED_BACK = Counter(f"{PREFIX}_handed_back",
                      "Running tasks a stopping consumer handed back to the queue", ["kind"])
REQUESTS = Histogram(f"{PREFIX}_http_request_duration_seconds",
                     "Web requests by endpoint, live polls (since=) apart from page views",
                     ["endpoint", "request", "status"], buckets=REQUEST_BUCKETS)


def launched(kind: str) -> None:
    LAUNCHED.labels(kind).inc()


def finished(kind: str, status: str, started_at: datetime | None) -> None:
    """A task reached a final status; an attempt that ran also gives its duration."""
    FINISHED.labels(kind, status).inc()
    if started_at is not None:
        DURATION.labels(kind).observe(max(0.0, (utcnow() - started_at).total_seconds()))


def reaped(kind: str, started_at: datetime | None, *, again: bool) -> None:
    REAPED.labels(kind, "requeued" if again else "failed").inc()
    if not again:
        finished(kind, Status.FAILED, started_at)


def handed_back(kind: str) -> None:
    HANDED_BACK.labels(kind).inc()


def redispatched(reason: str, count: int) -> None:
    if count:
        REDISPATCHED.labels(reason).inc(count)


class RecordGauges:
    """Gauges read from the records at scrape time: the same on every node, and cheap
    (the per-user counters of `task_counts`, and two index range heads)."""

    def __init__(self, database: Database, lease_seconds: float) -> None:
        self.database = database
        self.lease_seconds = lease_seconds

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(f"{PREFIX}_database_up",
                               "1 when this scrape could read the task records")
        try:
            gauges = list(self._read())
        except SQLAlchemyError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from gauges

    def _read(self) -> Iterable[Metric]:
        now = utcnow()
        with self.database.session() as db:
            state = queue_state(db)
            registered = consumers(db, self.lease_seconds)
        active = GaugeMetricFamily(f"{PREFIX}_active", "Tasks queued or running, by status",
                                   labels=["status"])
        active.add_metric([Status.QUEUED.value], state.queued)
        active.add_metric([Status.RUNNING.value], state.running)
        yield active
        yield GaugeMetricFamily(f"{PREFIX}_queue_depth", "Tasks waiting to run (queued)",
                                value=state.queued)
        waiting = state.oldest_waiting
        yield GaugeMetricFamily(f"{PREFIX}_oldest_waiting_seconds",
                                "How long the oldest queued task has waited (0: none)",
                                value=_age(now, waiting and waiting.created_at))
        alive = sum(not consumer.gone for consumer in registered)
        processes = GaugeMetricFamily(f"{PREFIX}_consumers",
                                      "Consumer processes registered: alive (beating), or "
                                      "gone (no beat for a lease)", labels=["state"])
        processes.add_metric(["alive"], alive)
        processes.add_metric(["gone"], len(registered) - alive)
        yield processes
        yield GaugeMetricFamily(f"{PREFIX}_heartbeat_age_seconds",
                                "Age of the oldest heartbeat of a running task (0: none); "
                                "past TASK_LEASE_SECONDS its worker is presumed lost",
                                value=_age(now, state.oldest_heartbeat))


def _age(now: datetime, then: datetime | None) -> float:
    return 0.0 if then is None else max(0.0, (now - then).total_seconds())


Network = IPv4Network | IPv6Network


def may_scrape(token: str | None, allow: tuple[Network, ...], authorization: str | None,
               address: str | None) -> bool | None:
    """None when metrics are not offered (no token, no addresses configured); else whether
    this request may read them: the operator's bearer token, or an allowed address."""
    if not token and not allow:
        return None
    if token and authorization:
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode()):
            return True
    if allow and address:
        try:
            client = ip_address(address)
        except ValueError:
            return False
        return any(client in network for network in allow)
    return False


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def scrape_app(token: str | None, allow: tuple[Network, ...],
               database: Database | None = None, lease_seconds: float = 60) -> WSGIApp:
    """The metrics endpoint as a plain WSGI app (no session, user or CSRF: a scraper is
    not a user): this process's metrics, those of its sibling processes where
    PROMETHEUS_MULTIPROC_DIR is set (gunicorn), and the records' gauges when given a
    database (whose consumers are gone after `lease_seconds` without a beat). The client's
    address is REMOTE_ADDR, so mount it inside ProxyFix."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    if database is not None:
        registry.register(RecordGauges(database, lease_seconds))
    metrics = make_wsgi_app(registry)

    def guard(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        verdict = may_scrape(token, allow, environ.get("HTTP_AUTHORIZATION"),
                             environ.get("REMOTE_ADDR"))
        if verdict:
            return metrics(environ, start_response)
        status, message = (("404 Not Found", "Not found.\n") if verdict is None else
                           ("403 Forbidden", "Metrics need the operator's token "
                            "(Authorization: Bearer METRICS_TOKEN) or an address in "
                            "METRICS_ALLOW.\n"))
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [message.encode()]

    return guard
