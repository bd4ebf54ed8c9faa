"""What the benchmarks share: private databases that never touch anyone else's, an
instance folder for them, and how figures are summarised (medians, p95, peak RSS)."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from huey.consumer_options import ConsumerConfig, OptionParserHandler  # noqa: E402

from tests.support.services import scratch_backends  # noqa: E402
from webapp.core.models import User  # noqa: E402
from webapp.dev.devserver import commands  # noqa: E402
from webapp.migrate import upgrade  # noqa: E402
from webapp.web import sessions  # noqa: E402

POSTGRES = os.environ.get("BENCH_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BIN = Path(sys.executable).parent
CONFIGURATIONS = {"sqlite": "SQLite + SqliteHuey", "redis": "PostgreSQL + Redis"}
# `make run`'s consumer (huey_consumer huey_tasks.huey --workers 4 ...), and its flags alone.
CONSUMER = commands("0")["consumer"]
FLAGS = CONSUMER[2:]


@contextlib.contextmanager
def private_database(backend: str, folder: Path) -> Iterator[str]:
    """A migrated, empty database of the benchmark's own: a fresh PostgreSQL database
    (dropped after) or a SQLite file in `folder`."""
    if backend == "sqlite":
        url = f"sqlite:///{folder / f'bench-{uuid.uuid4().hex[:8]}.sqlite3'}"
        upgrade(url)
        yield url
        return
    with scratch_backends("bench", POSTGRES, REDIS) as env:
        upgrade(env["DATABASE_URL"])
        yield env["DATABASE_URL"]


@contextlib.contextmanager
def configuration(backend: str, label: str) -> Iterator[dict[str, str]]:
    """The environment of a private instance: "sqlite" (a SQLite file and SqliteHuey) or
    "redis" (a database of its own on PostgreSQL, and Redis under a Huey name of its own;
    both gone after)."""
    with instance_folder() as folder:
        env = {**os.environ, "INSTANCE_PATH": str(folder)}
        if backend == "redis":
            with scratch_backends(f"bench_{label}", POSTGRES, REDIS) as backends:
                upgrade(backends["DATABASE_URL"])
                yield env | backends
        else:
            with private_database("sqlite", folder) as url:
                huey_url = f"sqlite:///{folder / 'huey.sqlite3'}"
                yield env | {"DATABASE_URL": url, "HUEY_URL": huey_url, "HUEY_NAME": "tasks"}


def consumer_options() -> dict[str, object]:
    """FLAGS as huey_consumer reads them, for a consumer a benchmark runs itself (a bare
    Huey's, which huey_tasks does not know)."""
    options, _ = OptionParserHandler().get_option_parser().parse_args(FLAGS)
    config = ConsumerConfig(**{k: v for k, v in vars(options).items() if v is not None})
    config.validate()
    return config.values


def start_process(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as output:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=output,
                                stderr=subprocess.STDOUT)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """As Ctrl+C would: a consumer hands its tasks back and exits."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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


def session_cookie(app: Any, user_id: int) -> str:
    """The session cookie the login form leaves for the user: signed, permanent, with the
    user's session version (a cookie of an older version is signed out)."""
    with app.extensions["database"].session() as db:
        user = db.get(User, user_id)
        assert user is not None
        version = user.session_version
    return app.session_interface.get_signing_serializer(app).dumps(
        {"_permanent": True, sessions.USER_ID: user_id, sessions.VERSION: version})
