"""The Flask application factory: configuration, extensions, blueprints, commands.

The app's one source of configuration is app.config: Settings (from the environment)
are copied into it once, `create_app(**overrides)` then overrides any key, and every
part of the app, its extensions included, is built from and reads app.config only.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from webapp.settings import PROJECT_ROOT, Settings


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(
        __name__,
        instance_path=str(settings.instance_path),
        template_folder=str(PROJECT_ROOT / "templates"),
    )
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        EMBED_SECRET_KEY=settings.embed_secret_key,
        EMBED_ADMINS=settings.embed_admins,
        DATABASE_URL=settings.database_url,
        HUEY_URL=settings.huey_url,
        HUEY_NAME=settings.huey_name,
        QUEUE_TIMEOUTS=settings.queue_timeouts,
        DATA_ROOT=settings.data_root,
        FRAME_ANCESTORS=settings.frame_ancestors,
        PROXY_COUNT=settings.proxy_count,
        POLL_SECONDS=settings.poll_seconds,
        TASKS_PER_PAGE=settings.tasks_per_page,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(days=14),
        # Checked by our own hook, so that bearer requests can skip it.
        WTF_CSRF_CHECK_DEFAULT=False,
        # A tab left open all day must still be able to cancel a task.
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=1024 * 1024,
        UPLOAD_MAX_BYTES=settings.upload_max_bytes,
        USER_LIMITS=settings.user_limits,
        TASK_LEASE_SECONDS=settings.task_lease_seconds,
        METRICS_TOKEN=settings.metrics_token,
        METRICS_ALLOW=settings.metrics_allow,
    )
    app.config.update(overrides)

    # Registers every kind: the forms, launches and views read the registry.
    import webapp.operations  # noqa: F401
    from webapp.core import db
    from webapp.core.queue import TaskQueue
    from webapp.core.userfiles import UserFiles

    db.init_app(app)
    app.extensions["task_queue"] = TaskQueue(app.config["HUEY_URL"], app.config["HUEY_NAME"],
                                             timeouts=app.config["QUEUE_TIMEOUTS"],
                                             dequeues=False)
    app.extensions["user_files"] = UserFiles(Path(app.config["DATA_ROOT"]))
    from webapp.web import (
        admin,
        auth,
        embed,
        formatting,
        health,
        metrics,
        notifications,
        openapi,
        polls,
        request_ids,
        responses,
        rows,
        sessions,
        spaces,
        tasks,
        tokens,
    )

    responses.init_app(app)
    polls.init_app(app)
    formatting.init_app(app)
    auth.init_app(app)
    sessions.init_app(app)
    embed.init_app(app)
    tasks.init_app(app)
    tokens.init_app(app)
    rows.init_app(app)
    spaces.init_app(app)
    notifications.init_app(app)
    health.init_app(app)
    openapi.init_app(app)
    admin.init_app(app)
    request_ids.init_app(app)
    metrics.init_app(app)
    if hops := app.config["PROXY_COUNT"]:
        # Outermost, so every part (/metrics's address check too) sees the client: trust
        # exactly as many X-Forwarded-* hops as there are proxies; a client's own values
        # further left are ignored.
        app.wsgi_app = ProxyFix(
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )

    from webapp import logs, migrate
    from webapp.dev import demo

    logs.log_to_stderr(log_format=settings.log_format)
    logs.redact_request_logs()

    migrate.init_app(app)
    demo.init_app(app)
    return app
