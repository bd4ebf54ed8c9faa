"""The tasks view, one task's details, launching and cancelling; the `tasks` command."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.cli import AppGroup
from sqlalchemy import select

from webapp import runtime
from webapp.auth import login_required, user_named
from webapp.db import get_session
from webapp.kinds import InvalidParameters, all_kinds, get_kind, kind_named
from webapp.listing import (
    InvalidQuery,
    find_task,
    list_tasks,
    mark_seen,
    parse_page,
    parse_statuses,
)
from webapp.models import Task, User
from webapp.userfiles import remove, save_upload
from webapp.web import (
    accepts_uploads,
    is_htmx,
    local_path,
    task_queue,
    user_files,
    wants_fragment,
    wants_json,
)

bp = Blueprint("tasks", __name__)

# Tells the bell (and anything else listening) to refresh at once.
TASKS_CHANGED = "tasks-changed"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.cli.add_command(tasks_cli)
    app.jinja_env.globals["kind_named"] = kind_named


@bp.get("/")
def home() -> Response:
    return redirect(url_for("tasks.index"))


@bp.get("/tasks")
@login_required
def index() -> Response:
    db = get_session()
    try:
        statuses = parse_statuses(request.args.getlist("status"))
        page = parse_page(request.args.get("page"))
    except InvalidQuery as exc:
        abort(400, str(exc))
    listing = list_tasks(
        db,
        g.user,
        statuses=statuses,
        page=page,
        per_page=current_app.config["TASKS_PER_PAGE"],
        owner=_owner_filter(),
    )
    if wants_json():
        response = jsonify(listing.to_json())
    else:
        seen_now = mark_seen(db, g.user)
        fragment = wants_fragment()
        template = "tasks/_table.html" if fragment else "tasks/index.html"
        response = make_response(render_template(template, listing=listing))
        if fragment and seen_now:
            response.headers["HX-Trigger"] = TASKS_CHANGED
    response.vary.update(("HX-Request", "HX-History-Restore-Request", "Accept"))
    return response


def _owner_filter() -> User | None:
    name = request.args.get("owner", "")
    if not name:
        return None
    if not g.user.is_admin:
        abort(403, "Only administrators can look at other users' tasks.")
    owner = get_session().scalar(select(User).where(User.name == name))
    if owner is None:
        abort(400, f"There is no user named {name!r}.")
    return owner


def _visible_task(task_id: str) -> Task:
    task = find_task(get_session(), g.user, task_id)
    if task is None:
        abort(404, "There is no such task, or it is not yours.")
    return task


@bp.get("/tasks/<task_id>")
@login_required
def detail(task_id: str) -> Response | str:
    task = _visible_task(task_id)
    if wants_json():
        body = task.to_json() | {"details": task.details}
        if g.user.is_admin:
            body |= {"owner": task.owner.name, "error_trace": task.error_trace}
        return jsonify(body)
    if wants_fragment():
        if request.headers.get("HX-Target") == f"task-{task.id}":
            return render_template("tasks/_row.html", task=task)
        return render_template("tasks/_detail.html", task=task)
    return render_template("tasks/detail.html", task=task)


@bp.get("/tasks/new")
@login_required
def new() -> str:
    return render_template("tasks/new.html", kinds=all_kinds(), values={}, error=None)


@bp.post("/tasks")
@login_required
@accepts_uploads
def create() -> Response | tuple[str, int]:
    raw = _launch_fields()
    saved: list[Path] = []
    try:
        saved = _save_uploads(raw)
        task = runtime.launch(get_session(), task_queue(), user_files(), g.user, raw.get("kind"),
                              raw)
    except InvalidParameters as exc:
        for path in saved:
            remove(path)
        if wants_json():
            abort(400, str(exc))
        back = local_path(request.form.get("next"))
        if back:
            # A form on another page (the spaces page): back there, with the reason.
            flash(str(exc), "error")
            return redirect(back, 303)
        page = render_template("tasks/new.html", kinds=all_kinds(), values=raw, error=str(exc))
        return page, 400
    location = url_for("tasks.detail", task_id=task.id)
    if wants_json():
        response = jsonify(task.to_json())
        response.status_code = 201
        response.headers["Location"] = location
    else:
        response = redirect(location, 303)
    response.headers["HX-Trigger"] = TASKS_CHANGED
    return response


def _launch_fields() -> dict[str, Any]:
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            abort(400, "The body must be a JSON object: {\"kind\": ..., and the kind's fields}.")
        return body
    return _fields(request.form.lists())


def _save_uploads(raw: dict[str, Any]) -> list[Path]:
    """Keep each uploaded file in the user's folder and give its path as the field it fills.

    Returns the folders made, for removal if the launch is refused.
    """
    files = [(key, upload) for key, upload in request.files.items(multi=True) if upload.filename]
    if not files:
        return []
    kind = get_kind(raw.get("kind"))
    saved: list[Path] = []
    root = user_files().root(g.user.name)
    try:
        for key, upload in files:
            field = next((f for f in kind.fields if f.upload == key), None)
            if field is None:
                raise InvalidParameters(f"{kind.name} takes no uploaded file {key!r}")
            if raw.get(field.name):
                raise InvalidParameters(f"give either {key} or {field.name}, not both")
            relative, folder = save_upload(root, upload.filename or "", upload.save)
            saved.append(folder)
            raw[field.name] = relative
    except InvalidParameters:
        for path in saved:
            remove(path)
        raise
    return saved


def _fields(pairs: Iterable[tuple[str, list[str]]]) -> dict[str, Any]:
    """A field given once is a value; a repeated one is a list."""
    return {key: values[0] if len(values) == 1 else values for key, values in pairs}


@bp.post("/tasks/<task_id>/cancel")
@login_required
def cancel(task_id: str) -> Response:
    task = _visible_task(task_id)
    conflict: runtime.AlreadyFinished | None = None
    try:
        runtime.cancel(get_session(), task_queue(), task)
    except runtime.AlreadyFinished as exc:
        conflict = exc
    if wants_json():
        if conflict:
            abort(409, str(conflict))
        response = jsonify(task.to_json())
        response.status_code = 202
    elif is_htmx():
        # The row, even on a conflict: it shows the final status the user raced against.
        response = make_response(render_template("tasks/_row.html", task=task))
        response.status_code = 409 if conflict else 200
    elif conflict:
        abort(409, str(conflict))
    else:
        back = local_path(request.form.get("next"))
        response = redirect(back or url_for("tasks.detail", task_id=task.id), 303)
    if not conflict:
        response.headers["HX-Trigger"] = TASKS_CHANGED
    return response


# -- command ----------------------------------------------------------------


@click.group("tasks", cls=AppGroup, help="Launch and inspect background tasks.")
def tasks_cli() -> None:
    pass


@tasks_cli.command("launch", context_settings={"ignore_unknown_options": True})
@click.argument("kind")
@click.option("--user", "user_name", required=True, help="The user who owns the task.")
@click.argument("params", nargs=-1)
def launch_command(kind: str, user_name: str, params: tuple[str, ...]) -> None:
    """Launch KIND for a user with key=value parameters; prints the new task's id."""
    given: dict[str, list[str]] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="PARAMS")
        given.setdefault(key, []).append(value)
    raw = _fields(given.items())
    app = current_app
    with app.extensions["database"].session() as db:
        user = user_named(db, user_name)
        try:
            task = runtime.launch(db, task_queue(), user_files(), user, kind, raw)
        except InvalidParameters as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(task.id)

