"""The spaces page: a user's spaces and their states, and the forms that launch the
operations on them (they post to POST /tasks like any launch)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, render_template

from webapp.core import userfiles
from webapp.core.kinds import InvalidParameters, Kind, get_kind
from webapp.core.userfiles import list_spaces, paths_in_spaces
from webapp.web.auth import login_required
from webapp.web.responses import user_files, wants_json

bp = Blueprint("spaces", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.get("/spaces")
@login_required
def index() -> Response | str:
    if wants_json():
        spaces = list_spaces(user_files().root(g.user.name))
        return jsonify(spaces=[{"name": s.name, "state": s.state} for s in spaces])
    return spaces_page()


def spaces_page(values: dict[str, Any] | None = None, refused: InvalidParameters | None = None,
                file_again: bool = False) -> str:
    """The page; after a launch from one of its forms was refused, with what was typed
    and each field's error next to it (a refusal no form shows is said above them)."""
    spaces = list_spaces(user_files().root(g.user.name))
    extract, distribute = get_kind("extract_archive"), get_kind("distribute")
    values = values or {}
    shown = values.get("kind") in (extract.name, distribute.name)
    errors = refused.errors if refused is not None else {}
    error = str(refused) if refused is not None and not (shown and errors) else None
    return render_template("spaces/index.html", spaces=spaces, extract=extract,
                           distribute=distribute, options=form_options([extract, distribute]),
                           values=values, errors=errors, error=error, file_again=file_again)


def form_options(kinds: Iterable[Kind]) -> dict[str, list[str]]:
    """What the fields of these kinds offer to choose from, by field name: the user's
    spaces for a space, their files and folders for a path, so nothing need be typed."""
    root = user_files().root(g.user.name)
    spaces = list_spaces(root)
    awake = [space.name for space in spaces if space.awake]
    options: dict[str, list[str]] = {}
    for kind in kinds:
        for one in kind.fields:
            if one.path is userfiles.existing_space:
                options[one.name] = awake if one.many else [space.name for space in spaces]
            elif one.path is userfiles.item_path:
                options[one.name] = paths_in_spaces(root, awake)
            elif one.path is userfiles.folder_path:
                options[one.name] = awake + paths_in_spaces(root, awake, folders_only=True)
    return options
