"""Structured logs (LOG_FORMAT=json): one JSON object per line, with the request id an
access line and the app's lines of one request share, and the task, kind, user and
attempt on a consumer's lines about a task."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask

from tests.support.accounts import Account
from tests.support.processes import start_consumer, stop_consumer, wait_for
from tests.support.queues import fresh_account, private_queue
from tests.support.services import free_port
from tests.test_serving import Server
from webapp import create_app
from webapp.logs import APP, JsonFormatter, bind, in_own_context, request_id, unbind
from webapp.settings import ConfigurationError, Settings


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The app's lines as JSON, as a web process with LOG_FORMAT=json writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(APP)
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


def test_a_line_is_one_object_with_its_context(captured: io.StringIO) -> None:
    log = logging.getLogger(f"{APP}.probe")
    token = bind(request_id="r-1", user="alice")
    try:
        log.warning("two\nlines and a \"quote\"")
        try:
            raise ValueError("broken")
        except ValueError:
            log.exception("it broke")
    finally:
        unbind(token)
    log.warning("outside")
    first, second, third = json_lines(captured.getvalue())
    assert first["message"] == "two\nlines and a \"quote\""
    assert (first["level"], first["logger"], first["request_id"], first["user"]) == \
        ("WARNING", f"{APP}.probe", "r-1", "alice")
    assert first["time"].endswith("Z") and first["thread"]
    assert "ValueError: broken" in second["exception"]
    assert "request_id" not in third


def test_a_run_in_its_own_context_leaves_nothing_behind(captured: io.StringIO) -> None:
    def run() -> None:
        bind(task_id="t-1")
        logging.getLogger(f"{APP}.probe").warning("inside")

    in_own_context(run)()
    logging.getLogger(f"{APP}.probe").warning("after")
    inside, after = json_lines(captured.getvalue())
    assert inside["task_id"] == "t-1" and "task_id" not in after


def test_a_request_id_from_a_proxy_is_kept_only_when_plain() -> None:
    assert request_id("abc-123.x") == "abc-123.x"
    for hostile in ("", "two words", "x" * 200, "line\nbreak", '{"json": 1}', None):
        made = request_id(hostile)
        assert made != hostile and len(made) == 32


def test_log_format_is_checked() -> None:
    assert Settings.from_env({"LOG_FORMAT": "JSON"}).log_format == "json"
    assert Settings.from_env({}).log_format == "text"
    with pytest.raises(ConfigurationError, match="LOG_FORMAT must be text or json"):
        Settings.from_env({"LOG_FORMAT": "xml"})


@pytest.fixture
def queue_away(settings: Settings) -> Iterator[Flask]:
    """An app whose queue cannot be reached: a launch logs a warning from its request."""
    app = create_app(replace(settings, huey_url=f"redis://127.0.0.1:{free_port()}/0"),
                     TESTING=True)
    yield app
    app.extensions["database"].dispose()


def test_a_requests_lines_carry_its_id_and_user(queue_away: Flask, captured: io.StringIO,
                                                 account: Account) -> None:
    client = queue_away.test_client()
    headers = {**account.bearer, "Accept": "application/json"}
    given = client.post("/tasks", json={"kind": "sleep", "seconds": 0.01, "steps": 1},
                        headers=headers | {"X-Request-Id": "proxy-7"})
    assert given.status_code == 201 and given.headers["X-Request-Id"] == "proxy-7"
    made = client.get("/tasks", headers=headers)
    assert len(made.headers["X-Request-Id"]) == 32
    line = next(entry for entry in json_lines(captured.getvalue())
                if entry["message"].startswith("could not enqueue task"))
    assert (line["request_id"], line["user"]) == ("proxy-7", account.user.name)


def test_gunicorn_writes_json_with_the_request_id_shared(
        environment: dict[str, str], settings: Settings, tmp_path: Path,
        account: Account) -> None:
    env = environment | {"LOG_FORMAT": "json",
                         "HUEY_URL": f"redis://127.0.0.1:{free_port()}/0"}
    server = Server(env, tmp_path, 0)
    try:
        wait_for(lambda: _answers(server), timeout=30, interval=0.2)
        status, answer, _ = server.request(
            "POST", "/tasks", {**account.bearer, "Accept": "application/json",
                               "Content-Type": "application/json", "X-Request-Id": "req-42"},
            json.dumps({"kind": "sleep", "seconds": 0.01, "steps": 1}))
        assert status == 201 and answer["X-Request-Id"] == "req-42"
    finally:
        server.stop()
    access = json_lines(server.access_log.read_text())
    line = next(entry for entry in access if entry.get("request_id") == "req-42")
    assert (line["method"], line["path"], line["status"], line["user"]) == \
        ("POST", "/tasks", 201, account.user.name)
    assert isinstance(line["duration_ms"], int)
    # Every line the server wrote is JSON: gunicorn's own and the app's.
    output = json_lines(server.output_path.read_text())
    app_line = next(entry for entry in output
                    if entry["message"].startswith("could not enqueue task"))
    assert app_line["request_id"] == "req-42" and app_line["user"] == account.user.name
    assert any(entry["logger"] == "gunicorn.error" for entry in output)


def _answers(server: Server) -> bool:
    try:
        return server.request("GET", "/login")[0] == 200
    except OSError:
        return False


def test_a_consumers_lines_name_the_task(environment: dict[str, str]) -> None:
    with private_queue(environment | {"LOG_FORMAT": "json"}) as (env, app):
        consumer = start_consumer(env, name="json-consumer")
        try:
            account = fresh_account(app)
            task_id = account.launch("sleep", seconds=0.01, steps=1, fail="boom")
            assert account.final(task_id)["status"] == "failed"
        finally:
            stop_consumer(consumer)
    lines = json_lines((Path(env["INSTANCE_PATH"]) / "json-consumer.log").read_text())
    failed = next(line for line in lines if line["message"] == f"task {task_id} (sleep) failed")
    assert (failed["task_id"], failed["kind"], failed["attempt"], failed["user"]) == \
        (task_id, "sleep", 1, account.user.name)
    assert "boom" in failed["exception"]
    # Huey's own lines are JSON too, and none of them carries a task it is not about.
    assert any(line["logger"].startswith("huey") for line in lines)
    assert all(line.get("task_id") in (None, task_id) for line in lines)
