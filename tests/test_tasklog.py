"""A task's own log on the real database (both configurations): lines go in with the
next write the task makes, bounded and made safe; the state machine's events appear
with their times; `GET /tasks/<id>/log`, its access rules, the task's page and the
`tasks log` command."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import delete, func, insert, select

from tests.support.accounts import Account
from tests.support.queries import statements_of
from webapp.core import runtime, tasklog, transitions
from webapp.core.db import Database
from webapp.core.models import Status, Task, TaskLogLine, utcnow
from webapp.core.runtime import TaskContext
from webapp.core.tasklog import MAX_LINES


def lines_of(account: Account, task_id: str, after: int = 0) -> dict:
    response = account.api("GET", f"/tasks/{task_id}/log?after={after}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def texts(account: Account, task_id: str) -> list[str]:
    return [one["text"] for one in lines_of(account, task_id)["lines"]]


def context_of(app: Flask, task: Task, root: Path) -> TaskContext:
    return TaskContext(app.extensions["database"], task.id, {}, root=root, attempt=task.attempt)


def test_lines_wait_for_the_heartbeat_and_go_in_one_insert(
    app: Flask, account: Account, tmp_path: Path
) -> None:
    task = account.add_task(Status.RUNNING, attempt=1)
    context = context_of(app, task, tmp_path)
    _, logging_statements = statements_of(
        app, lambda: [context.log(f"Copied file {n}") for n in range(1, 6)])
    assert logging_statements == []
    assert texts(account, task.id) == []
    _, flushed = statements_of(app, context.heartbeat)
    assert texts(account, task.id) == [f"Copied file {n}" for n in range(1, 6)]
    inserts = [sql for sql in flushed if sql.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 1 and "task_log_lines" in inserts[0]
    assert [one["seq"] for one in lines_of(account, task.id)["lines"]] == [1, 2, 3, 4, 5]
    assert account.task(task.id).heartbeat_at > task.heartbeat_at


def test_the_rest_goes_in_with_the_finish(app: Flask, account: Account, tmp_path: Path) -> None:
    task = account.add_task(Status.RUNNING, attempt=1)
    context = context_of(app, task, tmp_path)
    context.log("Before the heartbeat")
    context.heartbeat()
    context.log("Skipped a pipe", tasklog.WARNING)
    with app.extensions["database"].session() as db:
        assert transitions.finish(db, task.id, 1, Status.COMPLETED, "Done",
                                  log=context.unwritten_log())
    body = lines_of(account, task.id)
    assert [(one["level"], one["text"]) for one in body["lines"]] == [
        ("info", "Before the heartbeat"), ("warning", "Skipped a pipe"),
        ("info", "Completed: Done")]
    assert body["dropped"] == 0 and body["last"] == 3 and body["status"] == "completed"


def test_the_log_keeps_the_latest_lines_and_says_how_many_were_dropped(
    app: Flask, account: Account, tmp_path: Path
) -> None:
    task = account.add_task(Status.RUNNING, attempt=1)
    context = context_of(app, task, tmp_path)
    for number in range(1, 1206):
        context.log(f"line {number}")
    context.heartbeat()
    body = lines_of(account, task.id)
    assert len(body["lines"]) == MAX_LINES and body["dropped"] == 205
    assert body["lines"][0] == body["lines"][0] | {"seq": 206, "text": "line 206"}
    for number in range(1206, 1209):
        context.log(f"line {number}")
    context.heartbeat()
    body = lines_of(account, task.id, after=1205)
    assert [one["text"] for one in body["lines"]] == ["line 1206", "line 1207", "line 1208"]
    assert body["dropped"] == 208 and body["last"] == 1208
    with app.extensions["database"].session() as db:
        kept = db.scalar(select(func.count()).where(TaskLogLine.task_id == task.id))
    assert kept == MAX_LINES
    page = account.client.get(f"/tasks/{task.id}", headers=account.bearer)
    assert "208 earlier lines dropped" in page.get_data(as_text=True)


def test_long_and_unsafe_text_is_stored_safely(
    app: Flask, account: Account, tmp_path: Path
) -> None:
    task = account.add_task(Status.RUNNING, attempt=1)
    context = context_of(app, task, tmp_path)
    name = b"r\xe9sum\xe9.pdf".decode("utf-8", "surrogateescape")
    context.log(f"Skipped {name}\x00 and a lone \ud800", tasklog.WARNING)
    context.log("y" * 5000)
    context.heartbeat()
    first, second = lines_of(account, task.id)["lines"]
    assert first["text"] == "Skipped r\ufffdsum\ufffd.pdf\ufffd and a lone \ufffd"
    assert second["text"] == "y" * 499 + "…"


def test_lines_survive_a_database_outage_and_the_heartbeat_survives_a_refused_line(
    app: Flask, account: Account, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    task = account.add_task(Status.RUNNING, attempt=1)
    context = context_of(app, task, tmp_path)
    context.database = Database(f"sqlite:///{tmp_path}/away/tasks.sqlite3")
    context.log("written while the database was away")
    context.heartbeat()
    context.database = app.extensions["database"]
    context.heartbeat()
    assert texts(account, task.id) == ["written while the database was away"]
    # A line the database refuses (its number taken behind the log's back) is dropped
    # with a warning; the heartbeat is still written.
    with app.extensions["database"].session() as db:
        db.execute(insert(TaskLogLine).values(task_id=task.id, seq=2, at=utcnow(),
                                              level="info", text="in the way"))
        db.commit()
    before = account.task(task.id).heartbeat_at
    context.log("refused")
    with caplog.at_level(logging.WARNING):
        context.heartbeat()
    assert account.task(task.id).heartbeat_at > before
    assert f"task {task.id} could not store 1 log lines" in caplog.text
    assert texts(account, task.id) == ["written while the database was away", "in the way"]


def test_lines_go_with_their_task(app: Flask, account: Account, tmp_path: Path) -> None:
    task = account.add_task(Status.RUNNING, attempt=1)
    context = context_of(app, task, tmp_path)
    context.log("soon gone")
    context.heartbeat()
    with app.extensions["database"].session() as db:
        db.execute(delete(Task).where(Task.id == task.id))
        db.commit()
        assert db.scalar(select(func.count()).where(TaskLogLine.task_id == task.id)) == 0


def test_claims_cancels_retries_hand_backs_and_reaps_are_logged(
    app: Flask, account: Account
) -> None:
    database, queue = app.extensions["database"], app.extensions["task_queue"]
    queued = account.add_task(Status.QUEUED)
    with database.session() as db:
        assert transitions.claim(db, queued.id)
        assert transitions.requeue(db, queued.id, 1, "Retrying in 1 s", outcome=(
            "Attempt 1 of 3 failed: Flaky. Retrying in 1 s."))
        transitions.claim(db, queued.id)
        assert transitions.requeue(db, queued.id, 2, "Handed back", handed_back=True)
        transitions.claim(db, queued.id)
        runtime.cancel(db, queue, db.get(Task, queued.id))
    body = lines_of(account, queued.id)
    said = [(one["level"], one["text"]) for one in body["lines"]]
    started = [text for _, text in said if text.startswith("Attempt ") and "started on" in text]
    assert [text.split(" started on ")[0] for text in started] == [
        "Attempt 1", "Attempt 2", "Attempt 3"]
    assert said[1] == ("warning", "Attempt 1 of 3 failed: Flaky. Retrying in 1 s.")
    assert said[3] == ("info", "Handed back")
    assert said[5] == ("info", transitions.FLAGGED_LINE)
    assert all(one["at"].endswith("Z") for one in body["lines"])

    never = account.add_task(Status.QUEUED)
    with database.session() as db:
        runtime.cancel(db, queue, db.get(Task, never.id))
    assert texts(account, never.id) == [transitions.STOPPED_LINE]

    many = [account.add_task(Status.QUEUED), account.add_task(Status.RUNNING, attempt=1)]
    with database.session() as db:
        runtime.cancel_many(db, queue, account.user, [t.id for t in many])
    assert texts(account, many[0].id) == [transitions.STOPPED_LINE]
    assert texts(account, many[1].id) == [transitions.FLAGGED_LINE]

    # Maintenance's reap of a lease that ran out: re-queued, or failed.
    stale = utcnow() - timedelta(minutes=5)
    again, failed = (account.add_task(Status.RUNNING, attempt=1, heartbeat_at=stale)
                     for _ in range(2))
    with database.session() as db:
        assert transitions.reap(db, again.id, 1, utcnow(), again=True)
        assert transitions.reap(db, failed.id, 1, utcnow(), again=False)
    assert [(one["level"], one["text"]) for one in lines_of(account, again.id)["lines"]] == [
        ("warning", f"Attempt 1: {transitions.LOST_OUTCOME}; it runs again")]
    assert [(one["level"], one["text"]) for one in lines_of(account, failed.id)["lines"]] == [
        ("warning", f"Attempt 1: {transitions.LOST_OUTCOME}")]


def test_the_log_is_the_owners_and_an_administrators(
    make_account, account: Account, tmp_path: Path, app: Flask
) -> None:
    task = account.add_task(Status.RUNNING, attempt=1)
    context = context_of(app, task, tmp_path)
    context.log("private")
    context.heartbeat()
    other, admin = make_account(), make_account(admin=True)
    assert other.api("GET", f"/tasks/{task.id}/log").status_code == 404
    assert texts(admin, task.id) == ["private"]
    assert app.test_client().get(f"/tasks/{task.id}/log",
                                 headers={"Accept": "application/json"}).status_code == 401
    for bad in ("abc", "-1", "1.5", "9" * 12):
        response = account.api("GET", f"/tasks/{task.id}/log?after={bad}")
        assert response.status_code == 400 and "after must be" in response.get_json()["error"]
    page = account.client.get(f"/tasks/{task.id}/log", headers=account.bearer)
    assert page.status_code == 200 and "private" in page.get_data(as_text=True)


def test_the_tasks_page_shows_its_log_and_a_live_poll_learns_it_grew(
    app: Flask, account: Account, tmp_path: Path
) -> None:
    task = account.add_task(Status.RUNNING, attempt=1)
    context = context_of(app, task, tmp_path)
    context.log("Copied 1,204 files to t2")
    context.log("Skipped pipe", tasklog.WARNING)
    context.heartbeat()
    page = account.client.get(f"/tasks/{task.id}", headers=account.bearer)
    html = page.get_data(as_text=True)
    assert "Copied 1,204 files to t2" in html and "Warning</td>" in html
    version = page.headers["X-Live-Version"]
    unchanged = account.client.get(f"/tasks/{task.id}?since={version}", headers=account.bearer)
    assert unchanged.status_code == 204
    context.log("Copied 7 files to t3")
    context.heartbeat()
    grown = account.client.get(f"/tasks/{task.id}?since={version}",
                               headers=account.bearer | {"HX-Request": "true"})
    assert grown.status_code == 200 and "Copied 7 files to t3" in grown.get_data(as_text=True)


def test_the_tasks_log_command(app: Flask, account: Account, tmp_path: Path) -> None:
    task = account.add_task(Status.RUNNING, attempt=1)
    context = context_of(app, task, tmp_path)
    context.log("one")
    context.log("two", tasklog.WARNING)
    context.heartbeat()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["tasks", "log", task.id])
    assert result.exit_code == 0, result.output
    rows = [row.split("\t") for row in result.output.splitlines()]
    assert [(r[0], r[2], r[3]) for r in rows] == [("1", "info", "one"), ("2", "warning", "two")]
    assert runner.invoke(args=["tasks", "log", task.id, "--after", "1"]).output.count("\n") == 1
    missing = runner.invoke(args=["tasks", "log", "nope"])
    assert missing.exit_code != 0 and "There is no task nope" in missing.output


@pytest.mark.usefixtures("consumer")
def test_a_retried_task_tells_its_story(account: Account) -> None:
    task_id = account.launch("sleep", seconds=0, steps=2, flaky=1)
    assert account.final(task_id)["status"] == "completed"
    said = [(one["level"], one["text"].split(" started on ")[0])
            for one in lines_of(account, task_id)["lines"]]
    assert said == [
        ("info", "Attempt 1"), ("info", "Step 1 of 2 done"), ("info", "Step 2 of 2 done"),
        ("warning", "Attempt 1 of 3 failed: Flaky on purpose (attempt 1). Retrying in 1 s."),
        ("info", "Attempt 2"), ("info", "Step 1 of 2 done"), ("info", "Step 2 of 2 done"),
        ("info", "Completed: Slept 0 s in 2 steps"),
    ]
