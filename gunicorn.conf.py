"""gunicorn's settings for a web node: `gunicorn wsgi:app -c gunicorn.conf.py`.

Read from the environment, so the same file serves `make run` and every host.
"""

import os


def _count(name: str, default: int) -> int:
    raw = os.environ.get(name)
    value = int(raw) if raw else default
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
    return value


bind = os.environ.get("WEB_BIND") or f"127.0.0.1:{os.environ.get('PORT') or '5000'}"
# Requests mostly wait on the database: a process per core, threads for the waiting.
workers = _count("WEB_WORKERS", os.cpu_count() or 1)
worker_class = "gthread"
threads = _count("WEB_THREADS", 8)
# No request does long work (that is what tasks are for): a worker silent this long is hung.
timeout = _count("WEB_TIMEOUT", 30)
graceful_timeout = timeout
# Polls from a reverse proxy reuse their connections.
keepalive = 5

accesslog = os.environ.get("ACCESS_LOG") or "-"
# The usual combined format plus the time taken, in milliseconds.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'
errorlog = "-"
# The same, with embed tokens (token=...) redacted: a log line must not sign anyone in.
logger_class = "webapp.logs.AccessLogger"

# Forwarded headers are ProxyFix's job alone (PROXY_COUNT), so one setting decides trust.
secure_scheme_headers: dict[str, str] = {}
forwarded_allow_ips = ""

# The heartbeat file on a memory file system: a slow disk must not look like a hung worker.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# Several servers may share a host (tests, `make run`, benchmarks): no shared control socket.
control_socket_disable = True
