"""Signing in inside an iframe: the embed token, the cookie it becomes, the embedded layout."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request
from dataclasses import replace
from html import unescape as html_unescape

import itsdangerous
from click.testing import Result
from flask import Flask

from tests.support.accounts import Account
from tests.support.processes import wait_for
from tests.support.services import free_port
from webapp import create_app
from webapp.settings import PROJECT_ROOT, Settings
from webapp.web.embed import SALT, sign_token
from webapp.web.headers import frame_ancestors


def secret(app: Flask) -> str:
    return app.config["EMBED_SECRET_KEY"]


def test_a_token_signs_in_once_and_leaves_the_url(account: Account) -> None:
    app, client = account.app, account.client
    token = sign_token(secret(app), account.user.name)
    response = client.get(f"/embed?token={token}")
    assert response.status_code == 303
    assert response.headers["Location"] == "/tasks"
    cookie = response.headers["Set-Cookie"]
    for attribute in ("Secure", "SameSite=None", "Partitioned", "HttpOnly"):
        assert attribute in cookie
    page = client.get("/tasks").get_data(as_text=True)
    assert 'class="topbar topbar-embedded"' in page
    assert 'id="bell-button"' in page
    assert "Sign out" not in page and "brand-mark" not in page
    again = app.test_client().get(f"/embed?token={token}")
    assert again.status_code == 401
    assert "already been used" in again.get_data(as_text=True)


def test_refused_tokens_say_why(account: Account) -> None:
    app = account.app
    client = app.test_client()
    expired = sign_token(secret(app), account.user.name, seconds=-5)
    forged = sign_token("not the shared secret", account.user.name)
    nobody = sign_token(secret(app), "no-such-user")
    shapeless = itsdangerous.URLSafeSerializer(secret(app), salt=SALT).dumps(["x"])
    for token, code, words in [
        (expired, 401, "has expired"),
        (forged, 403, "not signed by the portal"),
        (nobody, 403, "does not know"),
        (shapeless, 403, "lacks the user"),
        ("", 401, "needs a token"),
        ("garbage", 403, "not signed by the portal"),
    ]:
        response = client.get("/embed", query_string={"token": token})
        assert response.status_code == code, token
        assert words in response.get_data(as_text=True)
        assert "This sign-in link cannot be used" in response.get_data(as_text=True)
        assert "Partitioned" not in response.headers.get("Set-Cookie", "")
    assert client.get("/tasks").status_code == 302


def test_an_ordinary_session_keeps_its_lax_cookie(account: Account) -> None:
    account.login()
    cookie = account.client.get_cookie("session")
    assert cookie is not None and not cookie.secure and cookie.same_site == "Lax"
    page = account.client.get("/tasks").get_data(as_text=True)
    assert "Sign out" in page and "topbar-embedded" not in page


def test_pages_push_history_but_replace_it_when_embedded(account: Account) -> None:
    for _ in range(3):
        account.add_task()
    account.app.config["TASKS_PER_PAGE"] = 2
    try:
        account.login()
        top = account.client.get("/tasks").get_data(as_text=True)
        account.client.get(f"/embed?token={sign_token(secret(account.app), account.user.name)}")
        framed = account.client.get("/tasks").get_data(as_text=True)
    finally:
        account.app.config["TASKS_PER_PAGE"] = 25
    # Outside the frame every page and filter pushes; only typing a search replaces the
    # address (one entry per search, not one per letter).
    replacing = re.findall(r"<(?:input|a|form)\b[^>]*hx-replace-url", top)
    assert 'hx-push-url="true"' in top and len(replacing) == 1 and 'name="q"' in replacing[0]
    assert 'hx-replace-url="true"' in framed and "hx-push-url" not in framed


def test_embed_url_command(app: Flask, account: Account) -> None:
    runner = app.test_cli_runner()
    result: Result = runner.invoke(args=["embed-url", account.user.name, "--url",
                                         "http://example.test:8000/"])
    assert result.exit_code == 0, result.output
    url = result.output.strip()
    assert url.startswith("http://example.test:8000/embed?token=")
    token = url.split("token=", 1)[1]
    assert app.test_client().get(f"/embed?token={token}").status_code == 303
    missing = runner.invoke(args=["embed-url", "no-such-user"])
    assert missing.exit_code != 0 and "no user named" in missing.output


def test_frame_ancestors_setting_becomes_the_csp(settings: Settings) -> None:
    assert frame_ancestors("'self'") == "'self'"
    assert frame_ancestors(" ") == "'self'"
    listed = replace(settings, frame_ancestors="https://portal.example, https://b.example")
    app = create_app(listed, TESTING=True)
    try:
        csp = app.test_client().get("/login").headers["Content-Security-Policy"]
    finally:
        app.extensions["database"].dispose()
    assert csp.endswith("frame-ancestors https://portal.example https://b.example")


def test_every_response_carries_the_security_headers(account: Account) -> None:
    client = account.app.test_client()
    responses = [
        client.get("/tasks", headers=account.bearer),
        client.get("/tasks", headers={**account.bearer, "HX-Request": "true"}),
        client.get("/tasks", headers={**account.bearer, "Accept": "application/json"}),
        client.get("/tasks/nope", headers=account.bearer),
        client.get("/login"),
        client.get("/embed?token=forged"),
        client.get("/static/app.js"),
    ]
    for response in responses:
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "unsafe" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"]
        assert "X-Frame-Options" not in response.headers


def test_example_portal_signs_a_fresh_link_per_page_and_stops_on_ctrl_c(
        environment: dict[str, str], account: Account) -> None:
    port = free_port()
    env = {**environment, "PORTAL_PORT": str(port), "APP_URL": "http://app.example:8000",
           "PORTAL_USER": account.user.name}
    # As `make run` in a background shell starts it: with SIGINT ignored.
    portal = subprocess.Popen(
        [sys.executable, "-m", "webapp.dev.portal"], cwd=PROJECT_ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        def page() -> str | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                    return response.read().decode()
            except OSError:
                return None

        first, second = wait_for(page, timeout=30, interval=0.1), page()
        links = [re.search(r'src="http://app\.example:8000(/embed\?token=[^"]+)"', html)
                 for html in (first, second or "")]
        assert links[0] and links[1] and links[0].group(1) != links[1].group(1)
        client = account.app.test_client()
        assert client.get(html_unescape(links[0].group(1))).status_code == 303
        portal.send_signal(signal.SIGINT)
        assert portal.wait(timeout=10) == 0
    finally:
        if portal.poll() is None:
            portal.kill()
            portal.wait()
