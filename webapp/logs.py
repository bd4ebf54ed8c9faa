"""The app's log lines: a format that says when, how bad, which thread and which logger,
in web processes and in consumers alike; with LOG_FORMAT=json one JSON object per line,
carrying what is known of the line's request or task (request id, user, task id, kind,
attempt), so a log store can gather every line of one request or one task; and request
logs that never hold an embed token.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar

from gunicorn.glogging import Logger as GunicornLogger

P = ParamSpec("P")
T = TypeVar("T")

FORMAT = "[%(asctime)s] %(levelname)s:%(name)s:%(threadName)s:%(message)s"
APP = "webapp"

# What the current thread is doing (a request, a task): fields every JSON line carries.
# A context variable, so each web thread and each consumer worker has its own.
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "log_context", default=MappingProxyType({}))

# A request id from a proxy is kept only if it looks like one: it is written into every
# line, and a client must not be able to forge lines or make them huge.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def request_id(offered: str | None) -> str:
    """The proxy's X-Request-Id when it is a plain token, else a new one."""
    if offered and _REQUEST_ID.fullmatch(offered):
        return offered
    return secrets.token_hex(16)


def bind(**fields: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Add fields until `unbind` of this token or of an earlier one (for a request, whose
    start and end are two hooks), or until the end of `in_own_context`."""
    return _context.set(_context.get() | fields)


def unbind(token: contextvars.Token[Mapping[str, Any]]) -> None:
    _context.reset(token)


def in_own_context(function: Callable[P, T]) -> Callable[P, T]:
    """`function`, run each time in a copy of the caller's context: what it binds (a
    worker's task) is gone when it returns, and its thread's next run starts clean."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return contextvars.copy_context().run(function, *args, **kwargs)

    return run


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, thread, message, the
    thread's context, a record's own `fields`, and the traceback if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "message": record.getMessage(),
        }
        entry |= _context.get()
        entry |= getattr(record, "fields", {})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(FORMAT)


def log_like(source: logging.Logger, log_format: str = "text") -> None:
    """The app's loggers (webapp.*) write through `source`'s handlers at its level: in a
    consumer, the handler and level huey_consumer gave its own "huey" logger. With JSON,
    those handlers (Huey's own lines too) write JSON."""
    app = logging.getLogger(APP)
    for handler in source.handlers:
        if log_format == "json":
            handler.setFormatter(JsonFormatter())
        if handler not in app.handlers:
            app.addHandler(handler)
    app.setLevel(source.level)


def log_to_stderr(level: int = logging.INFO, log_format: str = "text") -> None:
    """A web process: the app's loggers write to stderr in FORMAT (or JSON), once per
    process (gunicorn configures only its own loggers)."""
    app = logging.getLogger(APP)
    if not app.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(formatter(log_format))
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


class JsonGunicornLogger(AccessLogger):
    """gunicorn's own lines and its access log as JSON (gunicorn.conf.py picks it with
    LOG_FORMAT=json). An access line carries the request id the app's lines of that
    request carry (the app leaves it in the WSGI environ)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in [*self.error_log.handlers, *self.access_log.handlers]:
            handler.setFormatter(JsonFormatter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any],
               request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        fields = {
            "request_id": environ.get("request_id")
            or request_id(environ.get("HTTP_X_REQUEST_ID")),
            "remote": atoms["h"], "method": atoms["m"], "path": atoms["U"],
            "query": atoms["q"], "status": int(atoms["s"]), "bytes": atoms["B"],
            "duration_ms": atoms["M"], "referer": atoms["f"], "user_agent": atoms["a"],
        }
        if user := environ.get("request_user"):
            fields["user"] = user
        self.access_log.info("%s %s %s", atoms["m"], atoms["U"], atoms["s"],
                             extra={"fields": fields})
