"""Processes the tests start: a real consumer, waiting for a condition, and the
children a process started (a server's workers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from webapp.settings import PROJECT_ROOT

BIN = Path(sys.executable).parent


# How long a condition may take unless a test says otherwise: a bound for a failure, not a
# measure of speed. The suite's one consumer serves every test, on a machine others share.
WAIT_SECONDS = 30.0


def wait_for(predicate: Callable[[], Any], timeout: float = WAIT_SECONDS,
             interval: float = 0.05, explain: Callable[[], str] | None = None) -> Any:
    """predicate()'s first true value; a failure once timeout has passed, saying what
    explain() finds then (the state a rare failure needs to be understood)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            found = f"; {explain()}" if explain else ""
            raise AssertionError(f"not true within {timeout} s{found}")
        time.sleep(interval)


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a process's log, for a failure's message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no {path.name})"


def start_consumer(environment: dict[str, str], name: str = "consumer",
                   workers: int = 4) -> subprocess.Popen[bytes]:
    """A real `huey_consumer` process on the environment's instance."""
    log_path = Path(environment["INSTANCE_PATH"]) / f"{name}.log"
    with open(log_path, "ab") as log:
        # Consumers of one name share a log: read only what this one writes.
        offset = log.tell()
        process = subprocess.Popen(
            [str(BIN / "huey_consumer"), "huey_tasks.huey", "--workers", str(workers),
             "--worker-type", "thread", "--delay", "0.05", "--max-delay", "0.2"],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def started() -> bool:
        with open(log_path, "rb") as log:
            log.seek(offset)
            return f"PID {process.pid}".encode() in log.read()

    wait_for(lambda: process.poll() is not None or started(), timeout=60)
    if process.poll() is not None:
        pytest.fail(f"the consumer did not start:\n{log_path.read_text()}")
    return process


def stop_consumer(process: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def children_of(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    with open(path) as file:
        return [int(child) for child in file.read().split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as file:
        return file.read().split()[2] != "Z"
