"""`make run`'s supervisor: both start and serve, Ctrl+C leaves no orphans, a killed
consumer comes back (and its task with the lease), a busy portal port is skipped, a
busy web port is refused before anything starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.accounts import Account
from tests.support.processes import alive, children_of, wait_for
from tests.support.services import free_port
from webapp import create_app
from webapp.migrate import upgrade
from webapp.settings import PROJECT_ROOT, Settings
from webapp.web.auth import create_token, create_user


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except FileNotFoundError:
        return ""


def consumer_of(runner: subprocess.Popen[bytes]) -> int | None:
    return next((pid for pid in children_of(runner.pid)
                 if "huey_consumer" in command_line(pid) and alive(pid)), None)


def start_runner(environment: dict[str, str], port: int, log: Path,
                 **extra: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "webapp.dev.devserver"],
            cwd=PROJECT_ROOT,
            # gunicorn's metrics folder beside the log: a test that kills it leaves no folder.
            env={**environment, "PORT": str(port),
                 "PROMETHEUS_MULTIPROC_DIR": str(log.parent / "metrics"), **extra},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def stop_runner(runner: subprocess.Popen[bytes]) -> int:
    if runner.poll() is None:
        runner.send_signal(signal.SIGINT)
    try:
        return runner.wait(timeout=60)
    except subprocess.TimeoutExpired:
        runner.kill()
        raise


@pytest.fixture
def listening() -> Iterator[int]:
    """A loopback port something else already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def own_instance(tmp_path: Path, environment: dict[str, str]) -> dict[str, str]:
    """`make run`'s embedded layout on an instance of its own, so no consumer of the test
    session's takes (or repairs) this test's tasks, and a short lease."""
    ignored = ("DATABASE_URL", "HUEY_URL", "HUEY_NAME", "PORTAL_PORT")
    env = {key: value for key, value in environment.items() if key not in ignored}
    return env | {"INSTANCE_PATH": str(tmp_path / "instance"),
                  "TASK_LEASE_SECONDS": "2", "MAINTENANCE_SECONDS": "1"}


def test_ctrl_c_stops_web_server_and_consumer(environment: dict[str, str], tmp_path: Path,
                                              settings) -> None:
    port = free_port()
    runner = start_runner(environment, port, tmp_path / "run.log")
    try:
        wait_for(lambda: healthy(port), timeout=30, interval=0.2)
        children = children_of(runner.pid)
        assert len(children) == 2
        assert stop_runner(runner) == 0
        wait_for(lambda: not any(alive(pid) for pid in children), timeout=10)
    finally:
        if runner.poll() is None:
            runner.kill()


def test_a_killed_consumer_is_started_again_and_its_task_recovered(
        own_instance: dict[str, str], tmp_path: Path) -> None:
    settings = Settings.from_env(own_instance)
    upgrade(settings.database_url)
    app = create_app(settings, TESTING=True)
    with app.extensions["database"].session() as db:
        user = create_user(db, f"user-{uuid.uuid4().hex[:10]}", "secret-password")
        account = Account(app, user, "secret-password", create_token(db, user))
    port = free_port()
    log = tmp_path / "run.log"
    runner = start_runner(own_instance, port, log)
    try:
        wait_for(lambda: healthy(port), timeout=30, interval=0.2)
        first = wait_for(lambda: consumer_of(runner), timeout=30)
        task_id = account.launch("sleep", seconds=60, steps=120)
        wait_for(lambda: account.api("GET", f"/tasks/{task_id}").get_json()["status"]
                 == "running", timeout=30)

        os.kill(first, signal.SIGKILL)
        second = wait_for(lambda: (pid := consumer_of(runner)) != first and pid, timeout=30)
        assert "the consumer stopped (killed by SIGKILL); starting it again in 1 s" \
            in log.read_text()
        # sleep is safe to retry: the lease runs out, maintenance of the new consumer
        # re-queues it, and the new consumer runs it as a second attempt.
        def state() -> tuple[str, int]:
            body = account.api("GET", f"/tasks/{task_id}").get_json()
            return body["status"], body["attempt"]

        wait_for(lambda: state() == ("running", 2), timeout=60, interval=0.2)
        assert healthy(port)
        assert stop_runner(runner) == 0
        assert not alive(second)
    finally:
        if runner.poll() is None:
            runner.kill()
        app.extensions["database"].dispose()


def test_a_web_port_in_use_is_refused_before_anything_starts(
        environment: dict[str, str], listening: int, tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    runner = start_runner(environment, listening, log)
    assert runner.wait(timeout=30) == 1
    assert f"port {listening} is in use" in log.read_text()
    assert "Serving" not in log.read_text()


def test_a_portal_that_cannot_listen_is_skipped(environment: dict[str, str], listening: int,
                                                tmp_path: Path, settings) -> None:
    port = free_port()
    log = tmp_path / "run.log"
    runner = start_runner(environment, port, log, PORTAL_PORT=str(listening))
    try:
        wait_for(lambda: healthy(port), timeout=30, interval=0.2)
        assert f"the example portal's port {listening} is in use" in log.read_text()
        assert len(children_of(runner.pid)) == 2
        assert runner.poll() is None
        assert stop_runner(runner) == 0
    finally:
        if runner.poll() is None:
            runner.kill()


def test_when_the_web_server_dies_everything_stops(environment: dict[str, str],
                                                   tmp_path: Path, settings) -> None:
    port = free_port()
    log = tmp_path / "run.log"
    runner = start_runner(environment, port, log)
    try:
        wait_for(lambda: healthy(port), timeout=30, interval=0.2)
        children = children_of(runner.pid)
        web = next(pid for pid in children if "gunicorn" in command_line(pid))
        os.kill(web, signal.SIGKILL)
        assert runner.wait(timeout=60) == 1
        assert "the web server stopped (killed by SIGKILL)" in log.read_text()
        wait_for(lambda: not any(alive(pid) for pid in children), timeout=10)
    finally:
        if runner.poll() is None:
            runner.kill()
