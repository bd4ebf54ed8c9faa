"""Embed tokens have a key of their own (EMBED_SECRET_KEY), sign administrators in only
when allowed, and never reach a request log."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask

from webapp import create_app
from webapp.logs import redact, redact_request_logs
from webapp.settings import ConfigurationError, Settings
from webapp.web.embed import sign_token


def test_a_token_signed_with_the_session_key_signs_no_one_in(app: Flask, account) -> None:
    assert app.config["EMBED_SECRET_KEY"] != app.config["SECRET_KEY"]
    forged = sign_token(app.config["SECRET_KEY"], account.user.name)
    response = app.test_client().get(f"/embed?token={forged}")
    assert response.status_code == 403
    assert "not signed by the portal" in response.get_data(as_text=True)


def test_administrators_are_embedded_only_when_the_setting_allows(
        settings: Settings, make_account) -> None:
    admin = make_account(admin=True)
    for allowed, code in [(False, 403), (True, 303)]:
        app = create_app(replace(settings, embed_admins=allowed), TESTING=True)
        try:
            token = sign_token(app.config["EMBED_SECRET_KEY"], admin.user.name)
            response = app.test_client().get(f"/embed?token={token}")
        finally:
            app.extensions["database"].dispose()
        assert response.status_code == code
        if not allowed:
            assert "EMBED_ADMINS" in response.get_data(as_text=True)


def test_the_embed_key_is_generated_apart_from_the_session_key(tmp_path: Path) -> None:
    generated = Settings.from_env({"INSTANCE_PATH": str(tmp_path)})
    assert generated.embed_secret_key and generated.embed_secret_key != generated.secret_key
    again = Settings.from_env({"INSTANCE_PATH": str(tmp_path)})
    assert again.embed_secret_key == generated.embed_secret_key
    given = Settings.from_env({"INSTANCE_PATH": str(tmp_path), "EMBED_SECRET_KEY": "portal"})
    assert given.embed_secret_key == "portal"
    with pytest.raises(ConfigurationError, match="must differ from SECRET_KEY"):
        Settings.from_env({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "same",
                           "EMBED_SECRET_KEY": "same"})


def test_request_logs_redact_embed_tokens(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    assert redact('"GET /embed?token=abc.DEF-1_x&next=/ HTTP/1.1"') == \
        '"GET /embed?token=[redacted]&next=/ HTTP/1.1"'
    redact_request_logs()
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        logging.getLogger("werkzeug").info('%s - - "%s" %s', "127.0.0.1",
                                           "GET /embed?token=secret.value HTTP/1.1", "303")
    assert "secret.value" not in caplog.text and "token=[redacted]" in caplog.text
