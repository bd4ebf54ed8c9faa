"""What stays private: signed-in pages are never cached, the instance folder is the server
user's alone, and HTTPS is remembered once the app is served over it."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

from webapp import create_app
from webapp.migrate import upgrade
from webapp.settings import Settings


def test_signed_in_pages_are_never_stored_but_polls_revalidate(account) -> None:
    account.login()
    client = account.client
    for path in ("/tasks", "/tasks/new", "/spaces", "/tokens", "/notifications"):
        assert client.get(path).headers["Cache-Control"] == "no-store", path
    assert account.api("GET", "/tasks").headers["Cache-Control"] == "no-store"
    listing = client.get("/tasks", headers={"HX-Request": "true"})
    version = listing.headers["X-Live-Version"]
    poll = client.get(f"/tasks?since={version}", headers={"HX-Request": "true"})
    assert poll.status_code == 204 and poll.headers["Cache-Control"] == "private, no-cache"
    badge = client.get("/notifications/badge")
    assert badge.headers["Cache-Control"] == "private, no-cache" and badge.headers["ETag"]
    assert client.get(f"/notifications/badge?since={version}").headers[
        "Cache-Control"] == "private, no-cache"
    anonymous = account.app.test_client().get("/login")
    assert anonymous.headers["Cache-Control"] == "private, no-cache"


def test_the_instance_folder_is_the_server_users_alone(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    settings = Settings.from_env({"INSTANCE_PATH": str(instance)})
    upgrade(settings.database_url)
    app = create_app(settings, TESTING=True)
    try:
        app.test_client().get("/healthz")
    finally:
        app.extensions["database"].dispose()
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    for name in ("secret_key", "embed_secret_key", "tasks.sqlite3", "huey.sqlite3"):
        assert stat.S_IMODE((instance / name).stat().st_mode) == 0o600, name
    assert (instance / "tasks.sqlite3").stat().st_size > 0, "the empty file became a database"


def test_strict_transport_security_only_over_https(settings: Settings) -> None:
    for secure in (False, True):
        app = create_app(replace(settings, secure_cookies=secure), TESTING=True)
        try:
            headers = app.test_client().get("/login").headers
        finally:
            app.extensions["database"].dispose()
        assert ("Strict-Transport-Security" in headers) is secure
        if secure:
            assert headers["Strict-Transport-Security"] == "max-age=31536000"
