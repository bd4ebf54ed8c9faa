"""PostgreSQL and Redis of one's own: a scratch database and Huey name on the machine's
shared servers (for a scale-out test run or a benchmark), or private servers on spare
ports in a temporary folder (for tests that stop and start them)."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from webapp.core.queue import create_huey

# The shared servers a scale-out run uses, unless the environment names others.
SHARED_POSTGRES = os.environ.get("TEST_POSTGRES_URL",
                                 "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SHARED_REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def printable(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def unreachable(postgres: str = SHARED_POSTGRES, redis_url: str = SHARED_REDIS) -> str | None:
    """Why PostgreSQL or Redis cannot be used, or None when both answer."""
    try:
        engine = create_engine(postgres, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL at {printable(postgres)} cannot be reached ({type(exc).__name__})"
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except Exception as exc:
        return f"Redis at {redis_url} cannot be reached ({type(exc).__name__})"
    return None


@contextmanager
def scratch_backends(prefix: str, postgres: str = SHARED_POSTGRES,
                     redis_url: str = SHARED_REDIS) -> Iterator[dict[str, str]]:
    """A fresh database on the shared PostgreSQL and a Huey name of its own on the shared
    Redis, as the environment variables that select them; both are gone afterwards.

    Only this run's keys are removed: other runs and programs may share the server.
    """
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    database_url = make_url(postgres).set(database=name).render_as_string(hide_password=False)
    try:
        yield {"DATABASE_URL": database_url, "HUEY_URL": redis_url, "HUEY_NAME": name}
    finally:
        create_huey(redis_url, name).flush()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


# The kernel may hand a just-closed port out again at once; two servers of one test run
# given the same port would answer for each other (CI saw the portal "start" on the app's).
_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, never the same twice in this process."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def _wait_for_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def require(binary: str | None, what: str) -> str:
    """The binary, or a skip (a failure under CI, where nothing may skip)."""
    if binary:
        return binary
    message = f"{what} is not installed; this test needs a private server"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class PrivateRedis:
    def __init__(self, folder: Path) -> None:
        self.binary = require(shutil.which("redis-server"), "redis-server")
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_port(self.port)

    def pause(self) -> None:
        """Frozen: connections are accepted by the kernel but nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Gone, and with it every message it held: nothing is persisted."""
        if self.process and self.process.poll() is None:
            self.resume()
            self.process.kill()
            self.process.wait()


class PrivatePostgres:
    """A cluster made with initdb, run as the postgres user (PostgreSQL refuses root)."""

    def __init__(self, folder: Path) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        self.bin = Path(require(found[-1] if found else shutil.which("pg_ctl"), "pg_ctl")).parent
        self.folder = folder
        self.data = folder / "pgdata"
        self.port = free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(folder, "postgres")
            folder.parent.chmod(0o755)
        subprocess.run([*self.as_postgres, str(self.bin / "initdb"), "-D", str(self.data),
                        "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run([*self.as_postgres, str(self.bin / "pg_ctl"), "-D", str(self.data),
                        "-o", options, "-l", str(self.folder / "pg.log"), "-w", "start"],
                       check=True, capture_output=True)

    def stop(self, mode: str = "fast") -> None:
        """`fast` disconnects clients and shuts down cleanly; `immediate` is a crash (the
        next start recovers from the write-ahead log)."""
        subprocess.run([*self.as_postgres, str(self.bin / "pg_ctl"), "-D", str(self.data),
                        "-m", mode, "-w", "stop"], capture_output=True)
