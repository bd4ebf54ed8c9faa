"""The administrator's overview (`/admin`) and `flask workers`: the consumers on every host,
the queue, everyone's running tasks, and the last 24 hours as charts drawn here as SVG."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import click
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    make_response,
    render_template,
    request,
)
from flask.cli import with_appcontext

from webapp.core.db import get_session
from webapp.core.models import Task, utcnow
from webapp.core.overview import FINAL, Hour, KindDuration, Overview, read_overview
from webapp.web.auth import login_required
from webapp.web.formatting import duration, iso_utc, utc_text
from webapp.web.polls import VERSION_HEADER, unchanged
from webapp.web.responses import is_htmx, wants_json

bp = Blueprint("admin", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.cli.add_command(workers_command)


@bp.get("/admin")
@login_required
def overview() -> Response:
    if not g.user.is_admin:
        abort(403, "Only administrators can see the overview.")
    seen = read_overview(get_session(), current_app.config["TASK_LEASE_SECONDS"])
    if wants_json():
        return jsonify(as_json(seen))
    body = render_template("admin/_body.html", overview=seen, hours=hour_chart(seen.hours),
                           kinds=duration_chart(seen.durations))
    # The version is the body itself: a poll whose page shows the same gets a 204.
    version = hashlib.sha256(body.encode()).hexdigest()[:16]
    if request.args.get("since") == version:
        response = unchanged()
    else:
        page = "admin/_overview.html" if is_htmx() else "admin/index.html"
        response = make_response(render_template(page, body=body, version=version))
        response.vary.update(("HX-Request", "Accept", "Cookie", "Authorization"))
    response.headers[VERSION_HEADER] = version
    return response


# -- the charts: geometry here, drawing in the template -----------------------

CHART_WIDTH = 480
CHART_HEIGHT = 160


@dataclass(frozen=True)
class Segment:
    status: str
    y: float
    height: float
    count: int


@dataclass(frozen=True)
class Bar:
    hour: Hour
    x: float
    width: float
    segments: list[Segment]
    # Every third hour is labelled under the axis, in UTC.
    label: str | None


@dataclass(frozen=True)
class HourChart:
    bars: list[Bar]
    top: int
    summary: str


def hour_chart(hours: list[Hour]) -> HourChart:
    """Stacked bars, one per hour, scaled to the busiest hour."""
    top = max([hour.total for hour in hours] + [1])
    step = CHART_WIDTH / len(hours)
    bars = []
    for index, hour in enumerate(hours):
        y = float(CHART_HEIGHT)
        segments = []
        for status in FINAL:
            count = hour.counts[status]
            height = CHART_HEIGHT * count / top
            y -= height
            if count:
                segments.append(Segment(status, round(y, 2), round(height, 2), count))
        bars.append(Bar(hour, round(index * step + 1, 2), round(step - 2, 2), segments,
                        f"{hour.start:%H}" if index % 3 == 0 else None))
    totals = {status: sum(hour.counts[status] for hour in hours) for status in FINAL}
    busiest = max(hours, key=lambda hour: hour.total)
    summary = (f"{sum(totals.values())} tasks finished in the last 24 hours: "
               + ", ".join(f"{count} {status}" for status, count in totals.items())
               + (f"; the busiest hour began at {busiest.start:%H:%M} UTC with {busiest.total}"
                  if busiest.total else ""))
    return HourChart(bars, top, summary)


@dataclass(frozen=True)
class KindBar:
    kind: KindDuration
    y: float
    width: float


@dataclass(frozen=True)
class DurationChart:
    bars: list[KindBar]
    height: float
    summary: str


ROW_HEIGHT = 28
LABEL_WIDTH = 130


def duration_chart(kinds: list[KindDuration]) -> DurationChart:
    """A horizontal bar per kind, its length the median run time, its value written out."""
    longest = max([kind.median_seconds for kind in kinds] + [0.001])
    room = CHART_WIDTH - LABEL_WIDTH - 120
    bars = [KindBar(kind, index * ROW_HEIGHT, max(1.0, room * kind.median_seconds / longest))
            for index, kind in enumerate(kinds)]
    summary = "; ".join(f"{kind.kind}: {duration(kind.median_seconds)} over {kind.runs} runs"
                        for kind in kinds) or "No task ran in the last 24 hours"
    return DurationChart(bars, max(1, len(kinds)) * ROW_HEIGHT, summary)


# -- JSON and the shell ------------------------------------------------------


def _task(task: Task | None) -> dict[str, Any] | None:
    if task is None:
        return None
    return {"id": task.id, "owner": task.owner.name, "kind": task.kind,
            "description": task.description, "created_at": iso_utc(task.created_at),
            "started_at": iso_utc(task.started_at), "progress": task.progress}


def as_json(seen: Overview) -> dict[str, Any]:
    return {
        "queue": {"queued": seen.queue.queued, "running": seen.queue.running,
                  "oldest_waiting": _task(seen.queue.oldest_waiting)},
        "consumers": [{"host": c.process.host, "pid": c.process.pid,
                       "workers": c.process.workers, "tasks_in_hand": c.process.tasks_in_hand,
                       "started_at": iso_utc(c.process.started_at),
                       "heartbeat_at": iso_utc(c.process.heartbeat_at), "gone": c.gone}
                      for c in seen.consumers],
        "running": [_task(task) for task in seen.running],
        "hours": [{"start": iso_utc(hour.start), **hour.counts} for hour in seen.hours],
        "durations": [{"kind": k.kind, "median_seconds": k.median_seconds, "runs": k.runs}
                      for k in seen.durations],
    }


def _ago(now: datetime, then: datetime) -> str:
    return f"{duration(max(0.0, (now - then).total_seconds()))} ago"


@click.command("workers")
@with_appcontext
def workers_command() -> None:
    """List the consumers on every host and the state of the queue."""
    with current_app.extensions["database"].session() as db:
        seen = read_overview(db, current_app.config["TASK_LEASE_SECONDS"])
        now = utcnow()
        alive = sum(not c.gone for c in seen.consumers)
        click.echo(f"consumers: {alive} alive, {len(seen.consumers) - alive} gone")
        rows = [("HOST", "PID", "STARTED", "IN HAND", "LAST HEARTBEAT", "STATE")]
        rows += [(c.process.host, str(c.process.pid), utc_text(c.process.started_at),
                  f"{c.process.tasks_in_hand} of {c.process.workers}",
                  _ago(now, c.process.heartbeat_at), "gone" if c.gone else "alive")
                 for c in seen.consumers]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            click.echo("  " + "  ".join(cell.ljust(width)
                                        for cell, width in zip(row, widths, strict=True)))
        oldest = seen.queue.oldest_waiting
        waiting = (f"; the oldest waits since {utc_text(oldest.created_at)} "
                   f"({_ago(now, oldest.created_at)}): {oldest.id} of {oldest.owner.name}"
                   if oldest else "")
        click.echo(f"queue: {seen.queue.queued} queued, {seen.queue.running} running{waiting}")
