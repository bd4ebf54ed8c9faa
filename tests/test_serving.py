"""Production serving: gunicorn runs the app from gunicorn.conf.py, and behind a reverse
proxy (PROXY_COUNT) the app sees the client's address, scheme, host and prefix."""

from __future__ import annotations

import http.client
import re
import runpy
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify, request

from tests.support.accounts import Account
from tests.support.processes import BIN, children_of, wait_for
from tests.support.services import free_port
from webapp import create_app
from webapp.settings import PROJECT_ROOT, ConfigurationError, Settings

PROXY = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
         "X-Forwarded-Host": "tasks.example.org", "X-Forwarded-Prefix": "/bt"}


class Server:
    """A gunicorn master on a spare port, as the README's deploy command starts it."""

    def __init__(self, environment: dict[str, str], folder: Path, proxy_count: int) -> None:
        self.port = free_port()
        self.access_log = folder / f"access-{proxy_count}.log"
        env = environment | {
            "WEB_BIND": f"127.0.0.1:{self.port}", "WEB_WORKERS": "2", "WEB_THREADS": "4",
            "ACCESS_LOG": str(self.access_log), "PROXY_COUNT": str(proxy_count),
        }
        self.output_path = folder / f"gunicorn-{proxy_count}.log"
        self.output = open(self.output_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(BIN / "gunicorn"), "wsgi:app", "-c", "gunicorn.conf.py"],
            cwd=PROJECT_ROOT, env=env, stdout=self.output, stderr=subprocess.STDOUT)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: str | None = None) -> tuple[int, http.client.HTTPMessage, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.headers, response.read().decode()
        finally:
            connection.close()

    def healthy(self) -> bool:
        try:
            return self.request("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        finally:
            self.output.close()


@pytest.fixture
def serve(environment: dict[str, str], settings: Settings,
          tmp_path: Path) -> Iterator[Callable[[int], Server]]:
    started: list[Server] = []

    def start(proxy_count: int) -> Server:
        server = Server(environment, tmp_path, proxy_count)
        started.append(server)
        if server.process.poll() is not None or not _wait_healthy(server):
            pytest.fail(f"gunicorn did not serve:\n{server.output_path.read_text()}")
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def _wait_healthy(server: Server) -> bool:
    try:
        wait_for(lambda: server.process.poll() is not None or server.healthy(),
                 timeout=30, interval=0.2)
    except AssertionError:
        return False
    return server.process.poll() is None


def sign_in(server: Server, account: Account, headers: dict[str, str]) -> tuple[int, str]:
    """Log in through the form as a browser would; returns the POST's status and body."""
    status, reply, page = server.request("GET", "/login", headers)
    assert status == 200, page
    cookie = reply["Set-Cookie"].split(";", 1)[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    form = f"name={account.user.name}&password={account.password}&csrf_token={token.group(1)}"
    status, _, body = server.request(
        "POST", "/login", headers | {"Cookie": cookie,
                                     "Content-Type": "application/x-www-form-urlencoded"},
        body=form)
    return status, body


def test_gunicorn_serves_the_app_from_its_config_file(serve, account: Account) -> None:
    server = serve(proxy_count=0)
    wait_for(lambda: len(children_of(server.process.pid)) == 2)  # WEB_WORKERS
    status, _, page = server.request("GET", "/login")
    assert status == 200 and 'action="/login"' in page
    # The proxy's headers are not trusted: gunicorn itself ignores X-Forwarded-Proto, so
    # the request stays plain HTTP, and CSRF does not ask the referrer to match an origin.
    status, body = sign_in(server, account, PROXY | {"Referer": "https://elsewhere.example/"})
    assert status == 303, body
    assert server.request("GET", "/embed?token=embed.token.secret")[0] == 403
    assert server.stop() == 0
    log = server.access_log.read_text()
    assert "embed.token.secret" not in log and "/embed?token=[redacted]" in log
    assert re.search(r'"GET /healthz HTTP/1.1" 200 \d+ .* \d+ms$', log, re.MULTILINE), log
    assert '"POST /login HTTP/1.1" 303' in log


def test_a_second_gunicorn_on_a_taken_port_says_so_and_stops(
    serve, environment: dict[str, str]
) -> None:
    """Each worker has a socket of its own (reuse_port), which would let a second server
    share the port with the first: it is refused before it starts any worker."""
    first = serve(proxy_count=0)
    second = subprocess.run(
        [str(BIN / "gunicorn"), "wsgi:app", "-c", "gunicorn.conf.py"], cwd=PROJECT_ROOT,
        env=environment | {"WEB_BIND": f"127.0.0.1:{first.port}"}, capture_output=True,
        text=True, timeout=60)
    assert second.returncode != 0
    assert f"127.0.0.1:{first.port} is in use" in second.stderr + second.stdout
    assert first.healthy()
    assert first.stop() == 0


class _Settings:
    """gunicorn's settings as the on_starting hook sees them: the addresses, and what the
    hook sets."""

    def __init__(self, address: list[Any]) -> None:
        self.address = address
        self.changed: dict[str, Any] = {}

    def set(self, name: str, value: Any) -> None:
        self.changed[name] = value


@pytest.mark.parametrize("address,handed_over,changed", [
    ([("127.0.0.1", 0)], None, {}),
    (["/run/tasks.sock"], None, {"reuse_port": False}),
    ([("127.0.0.1", 0), "/run/tasks.sock"], None, {"reuse_port": False}),
    ([("127.0.0.1", 0)], "LISTEN_FDS", {"reuse_port": False}),
    ([("127.0.0.1", 0)], "GUNICORN_FD", {"reuse_port": False}),
])
def test_each_worker_listens_on_its_own_socket_only_where_that_is_sound(
    address: list[Any], handed_over: str | None, changed: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A Unix socket is one path (a worker's own socket would take it from the others'),
    and sockets handed over by systemd or an upgrading master are the workers' to use."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in ("LISTEN_FDS", "GUNICORN_FD"):
        monkeypatch.delenv(name, raising=False)
    if handed_over:
        monkeypatch.setenv(handed_over, "3")
    config = runpy.run_path(str(PROJECT_ROOT / "gunicorn.conf.py"))
    assert config["reuse_port"] is True
    settings = _Settings(address)
    config["_listen_per_worker"](settings)
    assert settings.changed == changed


def test_gunicorn_behind_a_proxy_takes_its_forwarded_headers(serve, account: Account) -> None:
    server = serve(proxy_count=1)
    status, _, page = server.request("GET", "/login", PROXY)
    assert status == 200 and 'action="/bt/login"' in page  # X-Forwarded-Prefix
    # X-Forwarded-Proto and -Host make it an HTTPS request for tasks.example.org: a form
    # posted from another origin is refused, one from that origin is accepted.
    status, body = sign_in(server, account,
                           PROXY | {"Referer": f"https://127.0.0.1:{server.port}/login"})
    assert status == 400 and "CSRF check failed" in body, body
    status, body = sign_in(server, account,
                           PROXY | {"Referer": "https://tasks.example.org/bt/login"})
    assert status == 303, body
    assert server.stop() == 0


def seen_by(settings: Settings, proxy_count: int, headers: dict[str, str]) -> dict[str, str]:
    """What the app makes of a request's origin, given how many proxies it trusts."""
    app: Flask = create_app(replace(settings, proxy_count=proxy_count), TESTING=True)

    @app.get("/seen")
    def seen() -> object:
        return jsonify(address=request.remote_addr, scheme=request.scheme, host=request.host,
                       root=request.script_root)

    try:
        client = app.test_client()
        return client.get("/seen", headers=headers,
                          environ_base={"REMOTE_ADDR": "10.0.0.2"}).get_json()
    finally:
        app.extensions["database"].dispose()


def test_forwarded_headers_are_ignored_by_default(settings: Settings) -> None:
    assert seen_by(settings, 0, PROXY) == {"address": "10.0.0.2", "scheme": "http",
                                           "host": "localhost", "root": ""}


def test_one_proxy_is_trusted_for_the_last_hop_only(settings: Settings) -> None:
    # A client may send its own X-Forwarded-For; the proxy appends the address it saw.
    spoofed = PROXY | {"X-Forwarded-For": "198.51.100.66, 203.0.113.7",
                       "X-Forwarded-Host": "evil.example, tasks.example.org"}
    assert seen_by(settings, 1, spoofed) == {"address": "203.0.113.7", "scheme": "https",
                                             "host": "tasks.example.org", "root": "/bt"}


def test_two_proxies_are_trusted_for_two_hops(settings: Settings) -> None:
    chain = {"X-Forwarded-For": "198.51.100.66, 203.0.113.7, 10.0.0.1",
             "X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "tasks.example.org, lb"}
    assert seen_by(settings, 2, chain) == {"address": "203.0.113.7", "scheme": "https",
                                           "host": "tasks.example.org", "root": ""}


@pytest.mark.parametrize("value", ["-1", "two"])
def test_a_bad_proxy_count_is_refused(value: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="PROXY_COUNT"):
        Settings.from_env({"INSTANCE_PATH": str(tmp_path), "PROXY_COUNT": value})


@pytest.mark.parametrize("secure", [False, True])
def test_the_session_cookie_is_secure_when_served_over_https(settings: Settings,
                                                              secure: bool) -> None:
    app = create_app(replace(settings, secure_cookies=secure), TESTING=True)
    try:
        # The login form keeps its CSRF token in the session, so it sets the cookie.
        cookie = app.test_client().get("/login").headers["Set-Cookie"]
    finally:
        app.extensions["database"].dispose()
    assert cookie.startswith("session=")
    assert ("; Secure" in cookie) is secure


def test_a_bad_secure_cookies_value_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="SECURE_COOKIES must be true or false"):
        Settings.from_env({"INSTANCE_PATH": str(tmp_path), "SECURE_COOKIES": "maybe"})
