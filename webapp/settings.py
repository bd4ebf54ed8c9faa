"""Configuration from the environment, read the same way by web nodes and consumers."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigurationError(ValueError):
    """An environment variable holds a value the product cannot run with."""


@dataclass(frozen=True)
class ArchiveLimits:
    """What extract_archive refuses: more bytes or members than this, a zip bomb, or more
    than the user's quota."""

    max_bytes: int = 100 << 30
    max_members: int = 100_000
    # Uncompressed bytes per archive byte; only checked past a few MiB, where bombs live.
    max_ratio: int = 200
    # What all of one user's files may take (webapp.operations.quota); 0: no limit.
    user_quota_bytes: int = 0


@dataclass(frozen=True)
class QueueTimeouts:
    """How long the queue's connections wait, in seconds: short, so that a paused or
    unreachable Redis costs a launch a second, not the client's default of minutes."""

    # Connecting, and each command (a consumer's blocking read adds its own wait).
    command: float = 1.0
    # /healthz: well under a load balancer's check timeout.
    health: float = 0.25


@dataclass(frozen=True)
class UserLimits:
    """What one user, or one client address, may do (webapp.web.limits)."""

    # Wrong passwords for one account, and from one client address, per window.
    login_failures_per_account: int = 10
    login_failures_per_address: int = 100
    login_window_seconds: int = 900
    # Launches over HTTP (the CLI is the operators' and bypasses them).
    max_active_tasks_per_user: int = 50
    launches_per_minute: int = 60


@dataclass(frozen=True)
class Settings:
    instance_path: Path
    database_url: str
    huey_url: str
    secret_key: str
    poll_seconds: int
    frame_ancestors: str
    data_root: Path
    tasks_per_page: int = 25
    # A running task whose heartbeat is older than this is presumed lost with its worker.
    task_lease_seconds: int = 60
    # How often a consumer looks for lost launches, expired leases and old tasks.
    maintenance_seconds: int = 15
    # How long a stopping consumer lets running tasks reach a checkpoint.
    shutdown_grace_seconds: int = 30
    # Finished tasks older than this are purged.
    retention_days: int = 90
    archive_limits: ArchiveLimits = ArchiveLimits()
    queue_timeouts: QueueTimeouts = QueueTimeouts()
    user_limits: UserLimits = UserLimits()
    upload_max_bytes: int = 1 << 30
    # Keeps deployments (or test runs) that share one Redis apart: every key carries it.
    huey_name: str = "tasks"
    # How many reverse proxies in front of the web nodes set X-Forwarded-*; 0 trusts none.
    proxy_count: int = 0
    # Served over HTTPS: the session cookie is marked Secure (embedded sessions always are).
    secure_cookies: bool = False
    # Signs embed tokens, and nothing else: the portal holds it, never SECRET_KEY.
    embed_secret_key: str = ""
    # Administrators may be signed in through /embed.
    embed_admins: bool = False
    # Who may read /metrics: a bearer token, and client addresses (after PROXY_COUNT hops).
    metrics_token: str | None = None
    metrics_allow: tuple[IPv4Network | IPv6Network, ...] = ()
    # host:port where a consumer serves its own metrics; None: it serves none.
    consumer_metrics_bind: str | None = None
    # "text" (the FORMAT of webapp/logs.py) or "json": one object per line.
    log_format: str = "text"

    @property
    def user_quota_bytes(self) -> int:
        """What all of one user's files may take (0: no limit), for every operation that
        writes them; extraction reads it from its limits."""
        return self.archive_limits.user_quota_bytes

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        instance = Path(env.get("INSTANCE_PATH") or PROJECT_ROOT / "instance").resolve()
        # The instance holds the secrets and the databases: the server's user's alone.
        instance.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(
            instance_path=instance,
            database_url=env.get("DATABASE_URL") or _private_sqlite(instance / "tasks.sqlite3"),
            huey_url=env.get("HUEY_URL") or _private_sqlite(instance / "huey.sqlite3"),
            secret_key=env.get("SECRET_KEY") or _instance_secret(instance),
            poll_seconds=_positive_int(env, "POLL_SECONDS", 30),
            frame_ancestors=env.get("FRAME_ANCESTORS") or "'self'",
            data_root=Path(env.get("DATA_ROOT") or instance / "data").resolve(),
            tasks_per_page=_positive_int(env, "TASKS_PER_PAGE", 25),
            task_lease_seconds=_positive_int(env, "TASK_LEASE_SECONDS", 60),
            maintenance_seconds=_positive_int(env, "MAINTENANCE_SECONDS", 15),
            shutdown_grace_seconds=_positive_int(env, "SHUTDOWN_GRACE_SECONDS", 30),
            retention_days=_positive_int(env, "RETENTION_DAYS", 90),
            archive_limits=ArchiveLimits(
                max_bytes=_positive_int(env, "EXTRACT_MAX_BYTES", ArchiveLimits.max_bytes),
                max_members=_positive_int(env, "EXTRACT_MAX_MEMBERS", ArchiveLimits.max_members),
                max_ratio=_positive_int(env, "EXTRACT_MAX_RATIO", ArchiveLimits.max_ratio),
                user_quota_bytes=_whole_number(env, "USER_QUOTA_BYTES", 0),
            ),
            queue_timeouts=QueueTimeouts(
                command=_positive_number(env, "QUEUE_TIMEOUT_SECONDS", QueueTimeouts.command),
                health=_positive_number(env, "QUEUE_HEALTH_TIMEOUT_SECONDS",
                                        QueueTimeouts.health),
            ),
            user_limits=UserLimits(
                login_failures_per_account=_positive_int(
                    env, "LOGIN_FAILURES_PER_ACCOUNT", UserLimits.login_failures_per_account),
                login_failures_per_address=_positive_int(
                    env, "LOGIN_FAILURES_PER_ADDRESS", UserLimits.login_failures_per_address),
                login_window_seconds=_positive_int(
                    env, "LOGIN_WINDOW_SECONDS", UserLimits.login_window_seconds),
                max_active_tasks_per_user=_positive_int(
                    env, "MAX_ACTIVE_TASKS_PER_USER", UserLimits.max_active_tasks_per_user),
                launches_per_minute=_positive_int(
                    env, "LAUNCHES_PER_MINUTE", UserLimits.launches_per_minute),
            ),
            upload_max_bytes=_positive_int(env, "UPLOAD_MAX_BYTES", 1 << 30),
            huey_name=env.get("HUEY_NAME") or "tasks",
            proxy_count=_whole_number(env, "PROXY_COUNT", 0),
            secure_cookies=_flag(env, "SECURE_COOKIES", False),
            embed_secret_key=_embed_secret(env, instance),
            embed_admins=_flag(env, "EMBED_ADMINS", False),
            metrics_token=env.get("METRICS_TOKEN") or None,
            metrics_allow=_networks(env, "METRICS_ALLOW"),
            consumer_metrics_bind=_host_port(env, "CONSUMER_METRICS_BIND"),
            log_format=_choice(env, "LOG_FORMAT", ("text", "json")),
        )


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    return _whole_number(env, name, default, minimum=1)


def _positive_number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not value > 0:
        raise ConfigurationError(f"{name} must be more than 0, not {raw}")
    return value


def _whole_number(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, not {value}")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of the words (the first by default)."""
    raw = (env.get(name) or choices[0]).strip().lower()
    if raw not in choices:
        raise ConfigurationError(f"{name} must be {' or '.join(choices)}, not {raw!r}")
    return raw


def _networks(env: Mapping[str, str], name: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """Addresses or CIDR blocks, separated by spaces or commas."""
    words = (env.get(name) or "").replace(",", " ").split()
    try:
        return tuple(ip_network(word, strict=False) for word in words)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must list addresses or CIDR blocks ({exc})") from None


def _host_port(env: Mapping[str, str], name: str) -> str | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    port = raw.rpartition(":")[2]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"{name} must be HOST:PORT (0.0.0.0:9101), not {raw!r}")
    return raw


def parse_bool(text: str) -> bool:
    """The words for true and false, in settings and in task parameters alike;
    ValueError for any other word."""
    word = text.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValueError(word)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        return parse_bool(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be true or false, not {raw.lower()!r}") from None


def _private_sqlite(path: Path) -> str:
    """The URL of a SQLite database in the instance folder, its file made first readable by
    the owner alone (SQLite gives its journal and WAL files the same mode; an empty file is
    an empty database)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return f"sqlite:///{path}"


def _embed_secret(env: Mapping[str, str], instance: Path) -> str:
    key = env.get("EMBED_SECRET_KEY") or _instance_secret(instance, "embed_secret_key")
    if key == (env.get("SECRET_KEY") or _instance_secret(instance)):
        raise ConfigurationError("EMBED_SECRET_KEY must differ from SECRET_KEY: the portal "
                                 "holds it, and SECRET_KEY signs every session")
    return key


def _instance_secret(instance: Path, name: str = "secret_key") -> str:
    """Generate the secret once; every process on this machine then reads the same one."""
    path = instance / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_hex(32))
    return path.read_text().strip()
