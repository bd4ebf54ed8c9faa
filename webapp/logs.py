"""The app's log lines: a format that says when, how bad, which thread and which logger,
in web processes and in consumers alike; and request logs that never hold an embed token."""

from __future__ import annotations

import logging
import re
from typing import Any

from gunicorn.glogging import Logger as GunicornLogger

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


# An embed token in a URL signs someone in: whoever reads the log must not be able to.
_TOKEN = re.compile(r"(token=)[^&\s\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    return _TOKEN.sub(r"\1[redacted]", text)


class AccessLogger(GunicornLogger):
    """gunicorn's access log (gunicorn.conf.py's logger_class), with tokens redacted from
    the request line, the query string and the referrer."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "q", "f"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms


class _RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True


def redact_request_logs() -> None:
    """Werkzeug's development server (`flask run`) logs each request line: redact it."""
    werkzeug = logging.getLogger("werkzeug")
    if not any(isinstance(f, _RedactTokens) for f in werkzeug.filters):
        werkzeug.addFilter(_RedactTokens())
