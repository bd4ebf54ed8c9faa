"""The bell: its counters, polled cheaply, and its dropdown of recent tasks."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, g, make_response, render_template, request

from webapp.auth import login_required
from webapp.db import get_session
from webapp.listing import bell_counts, recent_tasks

bp = Blueprint("notifications", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.context_processor
    def _bell() -> dict[str, object]:
        # Called by the layout only, so fragments and JSON never pay for the counts.
        return {"bell_counts": lambda: bell_counts(get_session(), g.user)}


@bp.get("/notifications/badge")
@login_required
def badge() -> Response:
    """Answer an unchanged poll from the user's bell version alone, without rendering.

    The user was loaded by primary key to authenticate the request; its bell version
    is all an unchanged poll reads, so it costs that one indexed query and no template.
    """
    version = str(g.user.bell_version)
    etag = f"bell-{g.user.id}-{version}"
    if request.args.get("since") == version:
        # 204: htmx leaves the badge as it is.
        response = make_response("", 204)
    elif request.if_none_match.contains_weak(etag):
        response = make_response("", 304)
    else:
        counts = bell_counts(get_session(), g.user)
        response = make_response(render_template("notifications/_badge.html", counts=counts))
    response.set_etag(etag, weak=True)
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
