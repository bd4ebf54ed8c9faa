"""What the benchmarks share: private databases that never touch anyone else's, an
instance folder for them, and how figures are summarised (medians, p95, peak RSS)."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from webapp.migrate import upgrade  # noqa: E402
from webapp.queue import create_huey  # noqa: E402

POSTGRES = os.environ.get("BENCH_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BIN = Path(sys.executable).parent
CONFIGURATIONS = {"sqlite": "SQLite + SqliteHuey", "redis": "PostgreSQL + Redis"}


@contextlib.contextmanager
def private_database(backend: str, folder: Path) -> Iterator[str]:
    """A migrated, empty database of the benchmark's own: a fresh PostgreSQL database
    (dropped after) or a SQLite file in `folder`."""
    if backend == "sqlite":
        url = f"sqlite:///{folder / f'bench-{uuid.uuid4().hex[:8]}.sqlite3'}"
        upgrade(url)
        yield url
        return
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextlib.contextmanager
def configuration(backend: str, label: str) -> Iterator[dict[str, str]]:
    """The environment of a private instance: "sqlite" (a SQLite file and SqliteHuey) or
    "redis" (a database of its own on PostgreSQL, and Redis under a Huey name of its own,
    flushed after)."""
    kind = "sqlite" if backend == "sqlite" else "postgresql"
    with instance_folder() as folder, private_database(kind, folder) as database_url:
        env = {**os.environ, "INSTANCE_PATH": str(folder), "DATABASE_URL": database_url}
        if backend == "redis":
            env |= {"HUEY_URL": REDIS, "HUEY_NAME": f"bench_{label}_{uuid.uuid4().hex[:8]}"}
        else:
            env |= {"HUEY_URL": f"sqlite:///{folder / 'huey.sqlite3'}", "HUEY_NAME": "tasks"}
        try:
            yield env
        finally:
            if backend == "redis":
                create_huey(REDIS, env["HUEY_NAME"]).flush()


@contextlib.contextmanager
def instance_folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        yield Path(folder)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
