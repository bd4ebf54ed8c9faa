"""The app's log lines: a format that says when, how bad, which thread and which logger,
in web processes and in consumers alike."""

from __future__ import annotations

import logging

FORMAT = "[%(asctime)s] %(levelname)s:%(name)s:%(threadName)s:%(message)s"
APP = "webapp"


def log_like(source: logging.Logger) -> None:
    """The app's loggers (webapp.*) write through `source`'s handlers at its level: in a
    consumer, the handler and level huey_consumer gave its own "huey" logger."""
    app = logging.getLogger(APP)
    for handler in source.handlers:
        if handler not in app.handlers:
            app.addHandler(handler)
    app.setLevel(source.level)


def log_to_stderr(level: int = logging.INFO) -> None:
    """A web process: the app's loggers write to stderr in FORMAT, once per process
    (gunicorn configures only its own loggers)."""
    app = logging.getLogger(APP)
    if not app.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        app.addHandler(handler)
        app.setLevel(level)
