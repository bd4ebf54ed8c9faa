"""gunicorn's settings for a web node: `gunicorn wsgi:app -c gunicorn.conf.py`.

Read from the environment, so the same file serves `make run` and every host.
"""

import os
import shutil
import tempfile


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
# Each worker listens on a socket of its own (SO_REUSEPORT), and the kernel spreads new
# connections evenly over them. On one shared socket whichever worker woke first took
# them, and a connection stays with its worker: one of two workers could hold 9 in 10 of
# them, bound by one core, while the other idled. on_starting keeps a taken port refused,
# and turns this off where it would not be sound.
reuse_port = True

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

# Metrics of every worker process, summed at scrape time (prometheus_client's multiprocess
# mode: each worker writes its counters to memory-mapped files in this folder). Set before
# the workers import the app; a folder of this server's own unless the environment names
# one, emptied at start so a restart does not count old processes twice.
_own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
        prefix="gunicorn-metrics-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)


def on_starting(server):
    _listen_per_worker(server.cfg)
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.remove(os.path.join(folder, name))


def _listen_per_worker(cfg):
    """Keep reuse_port only for TCP addresses gunicorn binds itself: a Unix socket is one
    path, which each worker's socket would take from the one before, and sockets handed
    over by systemd or by an upgrading master would be left unused by the workers."""
    handed_over = os.environ.get("LISTEN_FDS") or os.environ.get("GUNICORN_FD")
    if handed_over or not all(isinstance(address, tuple) for address in cfg.address):
        cfg.set("reuse_port", False)
        return
    _refuse_taken_addresses(cfg.address)


def _refuse_taken_addresses(addresses):
    """Stop, saying so, where something listens already: with reuse_port a second server
    on the same port (of the same user) would share its connections without a word."""
    from webapp.dev.devserver import address_in_use

    for host, port, *_ in addresses:
        if address_in_use(host, port):
            raise SystemExit(f"{host}:{port} is in use: stop the other server, or choose "
                             "another address (WEB_BIND, or PORT)")


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


# LOG_FORMAT=json: gunicorn's own lines and its access log as JSON objects, the access line
# with the request id the app's lines of the request carry (webapp/logs.py).
if (os.environ.get("LOG_FORMAT") or "").strip().lower() == "json":
    logger_class = "webapp.logs.JsonGunicornLogger"
