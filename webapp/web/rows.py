"""The rows of the tasks view as HTML, each rendered once per process and look.

A row is most of a table's rendering time, and a row changes only when what it shows of
its task does. So the HTML of the rows a process rendered last is kept and reused,
keyed by what the row shows (and the owner column, the left-the-filter mark, and for an
active row the address its cancel form returns to). What moves while a task runs, its
progress, its step message and the "running for" that moves with the clock alone, is
put in as the row is served, and so is the mark of a row a live poll sends out of band:
a running task's row is rendered once for all its progress reports, and the row a poll
updated is the row a table shows next.
"""

from __future__ import annotations

import operator
import threading
from collections import OrderedDict
from collections.abc import Container, Iterable

from flask import Flask, g, get_template_attribute, request, url_for
from markupsafe import Markup, escape

from webapp.core.listing import ListedTask
from webapp.core.models import TaskFacts
from webapp.core.runtime import duration_text

# About 1.3 KB a row: a few MB per web process.
MAX_KEPT = 5_000

_kept: OrderedDict[tuple[object, ...], Markup] = OrderedDict()
_lock = threading.Lock()

# What moves while a task runs (put in as its row is served), its version and count of
# log lines (which say only that something changed), and the owner's name (a column of
# an administrator's rows only).
_NOT_IN_KEY = {"progress", "progress_message", "version", "log_seq", "owner_name"}
# What a row shows of its task: the key of its kept HTML, with whether it has a progress.
_shown = operator.attrgetter(*[name for name in ListedTask._fields if name not in _NOT_IN_KEY])


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
    key: tuple[object, ...] = (_shown(task), task.progress is None, gone, shown_to)
    if shown_to[0]:
        key += (task.owner_name,)
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
    served = str(html).replace(_MOVING["out_of_band"], ' hx-swap-oob="morph"' if oob else "", 1)
    served = served.replace(_MOVING["message"], escape(task.progress_message or ""))
    if active and task.started_at is not None:
        served = served.replace(_MOVING["running_for"],
                                duration_text(task.duration_seconds or 0), 1)
        if task.progress is not None:
            # As Jinja would write them: the number as it is, the percent rounded.
            served = served.replace(_MOVING["progress"], str(task.progress), 1).replace(
                _MOVING["percent"], str(round(task.progress * 100)))
    return Markup(served)


def task_rows(tasks: Iterable[TaskFacts], next_url: str, gone: Container[str] = ()) -> Markup:
    """A table's rows of these tasks, those whose ids are in `gone` marked as having left
    the filter: one call from a template rather than one a row."""
    return Markup("".join([task_row(task, next_url, task.id in gone) for task in tasks]))


# What stands in a kept row for the attribute of a row sent out of band and for what
# moves while its task runs (no stored text holds a NUL).
_MOVING = {name: f"\x00{name}\x00" for name in
           ("out_of_band", "running_for", "progress", "percent", "message")}


def _render(task: TaskFacts, next_url: str, gone: bool) -> Markup:
    macro = get_template_attribute("tasks/_row.html", "task_row")
    return macro(task, next_url, gone, moving=_MOVING)
