"""The rows of the tasks view as HTML, each rendered once per process and version.

A row is most of a table's rendering time, and a row changes only when its task does:
the task's version (bumped by the database on every visible change) says when it last
did. So the HTML of the rows a process rendered last is kept and reused, keyed by the
task's version and what else the row shows (the owner column, the left-the-filter mark,
and for an active row the address its cancel form returns to). The one part of a row
that moves with the clock alone, a running task's "running for", is put in as the row
is served, and so is the mark of a row a live poll sends out of band: the row a poll
updated is the row a table shows next.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Container, Iterable

from flask import Flask, g, get_template_attribute, request, url_for
from markupsafe import Markup

from webapp.core.models import TaskFacts
from webapp.core.runtime import duration_text

# About 1.3 KB a row: a few MB per web process.
MAX_KEPT = 5_000

_kept: OrderedDict[tuple[object, ...], Markup] = OrderedDict()
_lock = threading.Lock()


# Stands for a task's id in a URL made once per request (ids are letters and digits).
_ID = "TASKID"


def init_app(app: Flask) -> None:
    app.add_template_global(task_row)
    app.add_template_global(task_rows)
    app.add_template_global(task_url)
    app.add_template_global(at_page)


def task_url(endpoint: str, task_id: str) -> str:
    """url_for(endpoint, task_id=...) for a task's page or action, routed once per request
    and endpoint: a table's rows ask for dozens, and routing each cost more than a row."""
    made: dict[str, str] = g.setdefault("task_urls", {})
    pattern = made.get(endpoint)
    if pattern is None:
        pattern = made[endpoint] = url_for(endpoint, task_id=_ID)
    return pattern.replace(_ID, task_id)


def at_page(first_page_url: str, number: int) -> str:
    """The URL of page `number` of a listing, from the URL of its first page: what
    url_for would make of Listing.query_args(page=number), whose last argument is the
    page, with one routing for a pager's links rather than one per link."""
    if number == 1:
        return first_page_url
    return f"{first_page_url}{'&' if '?' in first_page_url else '?'}page={number}"


def task_row(task: TaskFacts, next_url: str, gone: bool = False, oob: bool = False) -> Markup:
    """The row of templates/tasks/_row.html; `next_url` is where a cancel without
    JavaScript returns, `gone` marks a row kept although it left the filter, `oob` one
    sent out of band by a live poll."""
    # What else a row shows, looked up once per request rather than per row.
    shown_to = g.get("rows_shown_to")
    if shown_to is None:
        shown_to = g.rows_shown_to = (g.user.is_admin, request.script_root)
    key: tuple[object, ...] = (task.id, task.version, gone, shown_to)
    active = task.state.is_active
    if active:
        # Its cancel form returns to next_url; a task launched for later says when it
        # runs until that time comes.
        key += (next_url, task.scheduled_at is None)
    with _lock:
        html = _kept.get(key)
        if html is not None:
            _kept.move_to_end(key)
    if html is None:
        html = _render(task, next_url, gone)
        with _lock:
            _kept[key] = html
            if len(_kept) > MAX_KEPT:
                _kept.popitem(last=False)
    # One kept row serves a live poll's update (out of band) and a table's row alike.
    served = str(html).replace(_OUT_OF_BAND, ' hx-swap-oob="morph"' if oob else "", 1)
    if active and task.started_at is not None:
        served = served.replace(_RUNNING_FOR, duration_text(task.duration_seconds or 0), 1)
    return Markup(served)


def task_rows(tasks: Iterable[TaskFacts], next_url: str, gone: Container[str] = ()) -> Markup:
    """A table's rows of these tasks, those whose ids are in `gone` marked as having left
    the filter: one call from a template rather than one a row."""
    return Markup("".join([task_row(task, next_url, task.id in gone) for task in tasks]))


# Stand for a running task's duration and for the attribute of a row sent out of band in
# a kept row (no stored text holds a NUL).
_RUNNING_FOR = "\x00running-for\x00"
_OUT_OF_BAND = "\x00out-of-band\x00"


def _render(task: TaskFacts, next_url: str, gone: bool) -> Markup:
    macro = get_template_attribute("tasks/_row.html", "task_row")
    return macro(task, next_url, gone, out_of_band=_OUT_OF_BAND, running_for=_RUNNING_FOR)
