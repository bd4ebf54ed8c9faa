"""The bell: its counters, polled cheaply, and its dropdown of recent tasks."""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    make_response,
    render_template,
    request,
    session,
)

from webapp import bell_versions
from webapp.auth import login_required
from webapp.db import get_session
from webapp.listing import bell_counts, recent_tasks

bp = Blueprint("notifications", __name__)

# Sent by the page when the bell refreshes after the user's own action: the answer must
# read the database, not what this process was last told.
FRESH_HEADER = "X-Bell-Fresh"
# The poll itself: answered early here, and never extending the session (webapp.embed).
BADGE_ENDPOINT = "notifications.badge"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    versions = bell_versions.for_database(app.config["DATABASE_URL"])
    app.extensions["bell_versions"] = versions
    if versions is not None:
        # First of all: loading the user is the very read an unchanged poll can skip.
        app.before_request_funcs.setdefault(None, []).insert(0, _answer_unchanged_poll)

    @app.context_processor
    def _bell() -> dict[str, object]:
        # Called by the layout only, so fragments and JSON never pay for the counts.
        return {"bell_counts": lambda: bell_counts(get_session(), g.user)}


def _answer_unchanged_poll() -> Response | None:
    """A signed-in browser's poll whose `since` is the version PostgreSQL last announced
    for its user: 204 before the user is loaded, so without the database."""
    if request.endpoint != BADGE_ENDPOINT:
        return None
    versions = current_app.extensions["bell_versions"]
    # Taken before the user is loaded, so the badge view may remember what it reads.
    g.bell_epoch = versions.epoch()
    user_id, since = session.get("user_id"), request.args.get("since")
    if (user_id is None or since is None or FRESH_HEADER in request.headers
            or "Authorization" in request.headers):
        return None
    version = versions.get(user_id)
    if version is None or str(version) != since:
        return None
    return _badge_headers(make_response("", 204), user_id, version)


@bp.get("/notifications/badge")
@login_required
def badge() -> Response:
    """Answer an unchanged poll from the user's bell version alone, without rendering.

    The user was loaded by primary key to authenticate the request; its bell version
    is all an unchanged poll reads, so it costs that one indexed query and no template
    (on PostgreSQL, usually not even that: see _answer_unchanged_poll).
    """
    user, version = g.user, g.user.bell_version
    versions = current_app.extensions["bell_versions"]
    if versions is not None:
        versions.remember(user.id, version, g.get("bell_epoch"))
    if request.args.get("since") == str(version):
        # 204: htmx leaves the badge as it is.
        response = make_response("", 204)
    elif request.if_none_match.contains_weak(f"bell-{user.id}-{version}"):
        response = make_response("", 304)
    else:
        counts = bell_counts(get_session(), user)
        response = make_response(render_template("notifications/_badge.html", counts=counts))
    return _badge_headers(response, user.id, version)


def _badge_headers(response: Response, user_id: int, version: int) -> Response:
    response.set_etag(f"bell-{user_id}-{version}", weak=True)
    response.headers["Cache-Control"] = "private, no-cache"
    # A fragment for htmx, another user's badge for another cookie or token: never mixed up.
    response.vary.update(("HX-Request", "Cookie", "Authorization"))
    return response


@bp.get("/notifications")
@login_required
def menu() -> str:
    db = get_session()
    return render_template(
        "notifications/_menu.html",
        tasks=recent_tasks(db, g.user),
        counts=bell_counts(db, g.user),
    )
