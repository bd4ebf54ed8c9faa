"""The bell: its counters, polled cheaply, and its dropdown of recent tasks."""

from __future__ import annotations

import json

from flask import (
    Blueprint,
    Flask,
    Response,
    g,
    make_response,
    render_template,
    request,
)

from webapp.core.db import get_session
from webapp.core.listing import bell_counts, is_unseen, mark_seen, recent_tasks
from webapp.web import polls
from webapp.web.auth import login_required

bp = Blueprint("notifications", __name__)

# The page's event for "the user's tasks changed": the bell refreshes at once.
TASKS_CHANGED = "tasks-changed"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.context_processor
    def _bell() -> dict[str, object]:
        # Called by the layout only, so fragments and JSON never pay for the counts.
        return {"bell_counts": lambda: bell_counts(get_session(), g.user)}


@bp.get("/notifications/badge")
@polls.polled(lambda versions: versions.bell)
@login_required
def badge() -> Response:
    """Answer an unchanged poll from the user's bell version alone, without rendering.

    The user was loaded by primary key to authenticate the request; its bell version
    is all an unchanged poll reads, so it costs that one indexed query and no template
    (on PostgreSQL, usually not even that: see _answer_unchanged_poll).
    """
    user, version = g.user, g.user.bell_version
    polls.remember(user)
    if request.args.get("since") == str(version):
        response = polls.unchanged()
    elif request.if_none_match.contains_weak(f"bell-{user.id}-{version}"):
        response = make_response("", 304)
    else:
        counts = bell_counts(get_session(), user)
        response = make_response(render_template("notifications/_counts.html", counts=counts))
    response.headers[polls.VERSION_HEADER] = str(version)
    return _badge_headers(response, user.id, version)


def _badge_headers(response: Response, user_id: int, version: int) -> Response:
    response.set_etag(f"bell-{user_id}-{version}", weak=True)
    response.headers["Cache-Control"] = "private, no-cache"
    # A fragment for htmx, another user's badge for another cookie or token: never mixed up.
    response.vary.update(("HX-Request", "Cookie", "Authorization"))
    return response


@bp.get("/notifications")
@login_required
def menu() -> Response:
    db, user = get_session(), g.user
    tasks = recent_tasks(db, user)
    counts = bell_counts(db, user)
    # What was new when the menu opened, by the rule of the badge's "unseen" count.
    new_ids = {task.id for task in tasks if is_unseen(user, task)}
    page = render_template("notifications/_menu.html", tasks=tasks, counts=counts,
                           new_ids=new_ids)
    response = make_response(page)
    # The open menu is the user looking: nothing is new any more, and the badge says so.
    if mark_seen(db, user):
        response.headers["HX-Trigger"] = bell_refresh(own_action=False)
    return response


def bell_refresh(*, own_action: bool) -> str:
    """HX-Trigger that makes the bell fetch fresh counts. A refresh that follows the
    user's own launch or cancel also keeps the live view fast for a while (live.js);
    others (something was seen) say so, so the page does not take them for one."""
    return TASKS_CHANGED if own_action else json.dumps({TASKS_CHANGED: {"live": True}})
