"""The spaces page: a user's spaces and their states, and the forms that launch the
operations on them (they post to POST /tasks like any launch)."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, g, jsonify, render_template

from webapp.core.kinds import get_kind
from webapp.core.userfiles import list_spaces
from webapp.web.auth import login_required
from webapp.web.responses import user_files, wants_json

bp = Blueprint("spaces", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/spaces")
@login_required
def index() -> Response | str:
    spaces = list_spaces(user_files().root(g.user.name))
    if wants_json():
        return jsonify(spaces=[{"name": s.name, "state": s.state} for s in spaces])
    return render_template(
        "spaces/index.html",
        spaces=spaces,
        awake=[s.name for s in spaces if s.awake],
        extract=get_kind("extract_archive"),
        distribute=get_kind("distribute"),
    )
