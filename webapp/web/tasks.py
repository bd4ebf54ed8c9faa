"""The tasks view, one task's details and its log, launching, running again and cancelling;
the `tasks` command."""

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
from sqlalchemy.orm import Session

from webapp.core import runtime, tasklog
from webapp.core.db import get_session
from webapp.core.kinds import InvalidParameters, Kind, all_kinds, get_kind, kind_named
from webapp.core.listing import (
    PAGE_SIZES,
    InvalidQuery,
    changed_since,
    count_tasks,
    find_task,
    find_tasks,
    is_task_id,
    list_tasks,
    mark_seen,
    mark_task_seen,
    newer_count,
    parse_page,
    parse_per_page,
    parse_statuses,
    remember_per_page,
    reruns_of,
    version_marker,
)
from webapp.core.models import MAX_TEXT, Status, Task, User
from webapp.core.search import InvalidSearch, parse_search
from webapp.core.userfiles import remove, save_upload
from webapp.web import limits, polls, sessions
from webapp.web.auth import find_user, login_required, user_named
from webapp.web.notifications import bell_refresh
from webapp.web.responses import (
    accepts_uploads,
    error_response,
    is_htmx,
    json_body,
    local_path,
    task_queue,
    user_files,
    wants_fragment,
    wants_json,
)
from webapp.web.rows import task_row
from webapp.web.spaces import form_options, spaces_page

bp = Blueprint("tasks", __name__)

# A live table's poll lists the ids of its rows here, so that only what changed is sent.
ROWS_HEADER = "X-Live-Rows"
# Past this a poll is answered with the whole table: a page has 25 rows, a live one a few
# more that left the filter.
MAX_SHOWN_ROWS = 200


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.cli.add_command(tasks_cli)
    app.jinja_env.globals["kind_named"] = kind_named
    app.jinja_env.globals["all_statuses"] = [status.value for status in Status]
    app.jinja_env.globals["max_text"] = MAX_TEXT
    app.jinja_env.globals["page_sizes"] = PAGE_SIZES
    app.jinja_env.globals["max_log_lines"] = tasklog.MAX_LINES
    app.jinja_env.globals["task_kinds"] = all_kinds


@bp.get("/")
def home() -> Response:
    return redirect(url_for("tasks.index"))


@bp.get("/tasks")
@polls.polled(lambda versions: versions.tasks, page=True)
@login_required
def index() -> Response:
    db = get_session()
    try:
        statuses = parse_statuses(request.args.getlist("status"))
        page = parse_page(request.args.get("page"))
        chosen_size = parse_per_page(request.args.get("per_page"))
        search = parse_search(request.args.get("q"), request.args.getlist("kind"),
                              request.args.get("from"), request.args.get("to"))
    except (InvalidQuery, InvalidSearch) as exc:
        abort(400, str(exc))
    filled = {key: [value for value in values if value] for key, values in request.args.lists()}
    if not (wants_json() or is_htmx()) and filled != request.args.to_dict(flat=False):
        # A form without JavaScript sends its empty fields too: the address bar gets the
        # URL a link would have, the one to share.
        return redirect(url_for("tasks.index", **{k: v for k, v in filled.items() if v}), 303)
    polls.remember(g.user)
    owner = _owner_filter()
    since = request.args.get("since")
    if since is not None and since == version_marker(db, owner if g.user.is_admin else g.user):
        return _live(polls.unchanged(), since)
    if chosen_size is not None:
        remember_per_page(db, g.user, chosen_size)
    default_size = current_app.config["TASKS_PER_PAGE"]
    per_page = g.user.per_page or default_size
    arguments = {"statuses": statuses, "page": page, "owner": owner, "per_page": per_page,
                 "per_page_in_url": per_page != default_size, "search": search}
    if wants_json():
        listing = list_tasks(db, g.user, **arguments)
        response = jsonify(listing.to_json())
    else:
        response = _live_update(db, arguments, since) or _tasks_page(db, arguments)
    response.vary.update(("HX-Request", "HX-History-Restore-Request", "Accept", ROWS_HEADER))
    return response


def _tasks_page(db: Session, arguments: dict[str, Any]) -> Response:
    """The tasks view, or its table for htmx. A live poll's table keeps the rows it showed
    that have since left the filter, marked, until the user navigates."""
    listing = list_tasks(db, g.user, **arguments)
    rows, left = listing.tasks, set()
    shown = _shown_rows()
    if shown and wants_fragment():
        on_page = {task.id for task in rows}
        gone = [t for t in find_tasks(db, g.user, [i for i in shown if i not in on_page])
                if not listing.shows(t)]
        left = {task.id for task in gone}
        rows = sorted([*rows, *gone], key=lambda t: (t.created_at, t.id), reverse=True)
    seen_now = mark_seen(db, g.user)
    fragment = wants_fragment()
    template = "tasks/_table.html" if fragment else "tasks/index.html"
    response = make_response(render_template(template, listing=listing, rows=rows, left=left))
    if fragment and seen_now:
        response.headers["HX-Trigger"] = bell_refresh(own_action=shown is None)
    if fragment and shown is None:
        # A form sends its empty fields too; the address bar gets the URL a link would
        # have, the one to share.
        canonical = url_for("tasks.index", **listing.query_args())
        if canonical != request.full_path.rstrip("?"):
            # As the element asked: typing a search replaces the address, a filter adds
            # to history (but not in a frame, where history is the portal's).
            typing = request.headers.get("HX-Trigger") == "search-q"
            replace = typing or sessions.is_embedded()
            response.headers["HX-Replace-Url" if replace else "HX-Push-Url"] = canonical
    return _live(response, listing.marker)


def _live_update(db: Session, arguments: dict[str, Any], since: str | None) -> Response | None:
    """A live poll of the table whose set of rows stays the same: only the rows that
    changed since its version, out of band, with the summary (and, past page 1, a count
    of newer tasks). None when the table must be sent whole: new rows to show on page 1,
    an administrator's view of everyone, or a poll that did not say what it shows."""
    shown, since_version = _shown_rows(), polls.parse_since(since)
    if shown is None or since_version is None or not wants_fragment():
        return None
    listing = list_tasks(db, g.user, **arguments, with_rows=False, changed_after=since_version)
    if listing.scope_id is None:
        return None
    if listing.page == 1 and set(listing.ids) - set(shown):
        return None
    # The page's changed rows came with its ids; rows shown that are no longer on it
    # (gone from the filter, or pushed to a later page) are looked up apart.
    on_page, showing = set(listing.ids), set(shown)
    elsewhere = [task_id for task_id in shown if task_id not in on_page]
    changed = [task for task in listing.tasks if task.id in showing]
    if elsewhere:
        changed = sorted([*changed, *changed_since(db, g.user, elsewhere, since_version)],
                         key=lambda task: (task.created_at, task.id), reverse=True)
    newer = 0
    if listing.page > 1 and shown:
        top = find_task(db, g.user, shown[0])
        newer = newer_count(db, listing, top) if top is not None else 0
    seen_now = mark_seen(db, g.user)
    left = {task.id for task in changed if not listing.shows(task)}
    response = make_response(render_template(
        "tasks/_live_update.html", listing=listing, changed=changed, left=left, newer=newer))
    # Nothing replaces the table itself: the rows and the summary go where they belong.
    response.headers["HX-Reswap"] = "none"
    if seen_now:
        response.headers["HX-Trigger"] = bell_refresh(own_action=False)
    return _live(response, listing.marker)


def _shown_rows() -> list[str] | None:
    """The ids of the rows a live table shows, as its poll lists them, or None."""
    value = request.headers.get(ROWS_HEADER)
    if value is None:
        return None
    return [part for part in value.split(",") if part][:MAX_SHOWN_ROWS]


def _live(response: Response, marker: str) -> Response:
    """Tell the page the version it now shows, for its next poll."""
    response.headers[polls.VERSION_HEADER] = marker
    return response


def _owner_filter() -> User | None:
    name = request.args.get("owner", "")
    if not name:
        return None
    if not g.user.is_admin:
        abort(403, "Only administrators can look at other users' tasks.")
    owner = find_user(get_session(), name)
    if owner is None:
        abort(400, f"There is no user named {name!r}.")
    return owner


def _visible_task(task_id: str) -> Task:
    task = find_task(get_session(), g.user, task_id)
    if task is None:
        abort(404, "There is no such task, or it is not yours.")
    return task


@bp.get("/tasks/<task_id>")
@polls.polled(lambda versions: versions.tasks, page=True)
@login_required
def detail(task_id: str) -> Response | str:
    polls.remember(g.user)
    task = _visible_task(task_id)
    # The page polls with the version it was read at; the task may not be the viewer's.
    marker = str(max(task.version, g.user.tasks_version if task.owner_id == g.user.id else 0))
    since = polls.parse_since(request.args.get("since"))
    if since is not None and task.version <= since:
        return _live(polls.unchanged(), marker)
    db = get_session()
    reruns = reruns_of(db, g.user, task)
    if wants_json():
        body = task.to_json() | {"details": task.details, "reruns": [t.id for t in reruns]}
        if g.user.is_admin:
            body |= {"owner": task.owner.name, "error_trace": task.error_trace}
        return jsonify(body)
    mark_task_seen(db, g.user, task)
    original = find_task(db, g.user, task.rerun_of) if task.rerun_of else None
    missing = (None if task.state.is_active
               else runtime.missing_inputs(user_files(), task.owner.name, task))
    template = "tasks/_detail.html" if wants_fragment() else "tasks/detail.html"
    page = render_template(template, task=task, marker=marker, original=original,
                           reruns=reruns, missing=missing, log=tasklog.read(db, task))
    return _live(make_response(page), marker)


@bp.get("/tasks/<task_id>/log")
@login_required
def task_log(task_id: str) -> Response | str:
    """The task's own log: JSON for scripts (`after=N`: only lines numbered above N, so a
    script follows it by sending the `last` it got), else the page; the task's page shows
    it live."""
    task = _visible_task(task_id)
    after = _log_after(request.args.get("after"))
    found = tasklog.read(get_session(), task, after)
    if wants_json():
        return jsonify({"id": task.id, "status": task.status} | found.to_json())
    template = "tasks/_log.html" if wants_fragment() else "tasks/log.html"
    return render_template(template, task=task, log=found)


def _log_after(value: str | None) -> int:
    if value is None or value == "":
        return 0
    if not value.isdigit() or len(value) > 9:
        abort(400, "after must be a line number: 0 or a positive whole number.")
    return int(value)


@bp.get("/tasks/new")
@login_required
def new() -> str:
    """The operations to choose from; with `kind`, the chosen one's form too."""
    name = request.args.get("kind")
    kind = None
    if name is not None:
        kind = kind_named(name)
        if kind is None or kind not in _offered_kinds():
            abort(404, "There is no such operation to launch from a form.")
    return _new_page(kind)


def _offered_kinds() -> list[Kind]:
    """What the forms offer: the diagnostic kinds only to administrators (scripts, the CLI
    and tests launch them all the same)."""
    return [kind for kind in all_kinds() if g.user.is_admin or not kind.for_admins]


def _new_page(kind: Kind | None, values: dict[str, Any] | None = None,
              refused: InvalidParameters | None = None, file_again: bool = False) -> str:
    """The page, or for htmx the part below its heading: the operations, the chosen one's
    form with what was typed, and each refused field's error next to it."""
    template = "tasks/_new_task.html" if wants_fragment() else "tasks/new.html"
    errors = refused.errors if refused is not None else {}
    # Said above the form when no field of a form on the page shows it.
    general = str(refused) if refused is not None and not (errors and kind) else None
    options = form_options([kind]) if kind is not None else {}
    return render_template(template, kinds=_offered_kinds(), kind=kind, values=values or {},
                           errors=errors, error=general, options=options,
                           file_again=file_again)


@bp.post("/tasks")
@login_required
@accepts_uploads
def create() -> Response | tuple[str, int]:
    limits.check_launch(get_session(), g.user)
    raw = _launch_fields()
    typed = dict(raw)
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
        chosen_file = any(upload.filename for upload in request.files.values())
        back = local_path(request.form.get("next"))
        if back == url_for("spaces.index"):
            # The spaces page's forms come back there, filled in, the errors marked.
            return spaces_page(typed, exc, chosen_file), 400
        if back:
            flash(str(exc), "error")
            return redirect(back, 303)
        kind = kind_named(str(raw.get("kind")))
        page = _new_page(kind if kind in _offered_kinds() else None, typed, exc, chosen_file)
        return page, 400
    return _launched(task)


def _launched(task: Task) -> Response:
    """303 to the new task's page; JSON 201 with the task."""
    location = url_for("tasks.detail", task_id=task.id)
    if wants_json():
        response = jsonify(task.to_json())
        response.status_code = 201
        response.headers["Location"] = location
    else:
        response = redirect(location, 303)
    response.headers["HX-Trigger"] = bell_refresh(own_action=True)
    return response


@bp.post("/tasks/<task_id>/rerun")
@login_required
def rerun(task_id: str) -> Response:
    task = _visible_task(task_id)
    if task.owner_id != g.user.id:
        abort(403, "Only its owner can run a task again.")
    limits.check_launch(get_session(), g.user)
    try:
        again = runtime.rerun(get_session(), task_queue(), user_files(), g.user, task)
    except runtime.CannotRerun as exc:
        return error_response(409, str(exc), title="It cannot run again")
    except InvalidParameters as exc:
        abort(400, str(exc))
    return _launched(again)


def _launch_fields() -> dict[str, Any]:
    if request.is_json:
        body = json_body()
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


@bp.get("/tasks/<task_id>/cancel")
@login_required
def confirm_cancel(task_id: str) -> tuple[str, int]:
    """The red cross without JavaScript asks first: a page with the button that cancels
    (409 once the task has finished, saying so)."""
    task = _visible_task(task_id)
    next_url = local_path(request.args.get("next")) or url_for("tasks.detail", task_id=task.id)
    page = render_template("tasks/cancel.html", task=task, next_url=next_url)
    return page, 200 if task.cancellable else 409


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
        response = make_response(task_row(task, local_path(request.form.get("next"))
                                          or url_for("tasks.index")))
        response.status_code = 409 if conflict else 200
    elif conflict:
        abort(409, str(conflict))
    else:
        back = local_path(request.form.get("next"))
        response = redirect(back or url_for("tasks.detail", task_id=task.id), 303)
    if not conflict:
        response.headers["HX-Trigger"] = bell_refresh(own_action=True)
    return response


# Ids in one batch cancel: a page holds at most 100 rows.
MAX_CANCEL_IDS = 1000


@bp.get("/tasks/cancel")
@login_required
def confirm_cancel_all() -> str:
    """"Cancel all my queued tasks" asks first, saying how many: a page, so it works
    without JavaScript and in a sandboxed iframe."""
    if request.args.get("all") != "queued":
        abort(400, "Say which tasks to cancel: all=queued.")
    queued = count_tasks(get_session(), g.user, (Status.QUEUED,))
    return render_template("tasks/cancel_all.html", queued=queued,
                           next_url=local_path(request.args.get("next")) or url_for("tasks.index"))


@bp.post("/tasks/cancel")
@login_required
def cancel_many() -> Response:
    """Cancel many in one request: the tasks named by `ids`, or `all=queued`."""
    db, queue = get_session(), task_queue()
    ids = _form_or_json_list("ids")
    if _form_or_json_value("all") == "queued":
        done = runtime.Cancelled(stopped=runtime.cancel_all_queued(db, queue, g.user))
    elif ids:
        if len(ids) > MAX_CANCEL_IDS or not all(map(is_task_id, ids)):
            abort(400, f"ids must be at most {MAX_CANCEL_IDS} task ids.")
        done = runtime.cancel_many(db, queue, g.user, ids)
    else:
        abort(400, "Say which tasks to cancel: ids=ID (repeated), or all=queued.")
    if wants_json():
        response = jsonify(done.to_json())
        response.status_code = 202
    elif is_htmx():
        response = make_response(render_template("tasks/_cancelled.html", done=done))
    else:
        flash(render_template("tasks/_cancelled.html", done=done, plain=True), "status")
        response = redirect(local_path(request.form.get("next")) or url_for("tasks.index"), 303)
    if done.stopped or done.flagged:
        response.headers["HX-Trigger"] = bell_refresh(own_action=True)
    return response


def _form_or_json_list(name: str) -> list[Any]:
    if request.is_json:
        body = json_body()
        value = body.get(name) if isinstance(body, dict) else None
        return value if isinstance(value, list) else [] if value is None else [value]
    return request.form.getlist(name)


def _form_or_json_value(name: str) -> Any:
    values = _form_or_json_list(name)
    return values[0] if values else None


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


@tasks_cli.command("log")
@click.argument("task_id")
@click.option("--after", default=0, type=click.IntRange(min=0),
              help="Only the lines numbered above this.")
def log_command(task_id: str, after: int) -> None:
    """Print a task's own log: number, time (UTC), level and text, one line each."""
    with current_app.extensions["database"].session() as db:
        task = db.get(Task, task_id)
        if task is None:
            raise click.ClickException(f"There is no task {task_id}.")
        found = tasklog.read(db, task, after)
    if found.dropped and after < found.dropped:
        click.echo(f"({found.dropped} earlier lines were dropped)")
    for one in found.lines:
        click.echo(f"{one.seq}\t{one.at:%Y-%m-%d %H:%M:%S}\t{one.level}\t{one.text}")
