"""`make run`'s process pair: both start, both serve, and Ctrl+C leaves no orphans."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request

from tests.support.processes import alive, children_of, wait_for
from tests.support.services import free_port
from webapp.settings import PROJECT_ROOT


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def test_ctrl_c_stops_web_server_and_consumer(environment: dict[str, str], settings) -> None:
    port = free_port()
    runner = subprocess.Popen(
        [sys.executable, "-m", "webapp.dev.devserver"],
        cwd=PROJECT_ROOT,
        env={**environment, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: healthy(port), timeout=30, interval=0.2)
        children = children_of(runner.pid)
        assert len(children) == 2
        runner.send_signal(signal.SIGINT)
        assert runner.wait(timeout=30) == 0
        wait_for(lambda: not any(alive(pid) for pid in children), timeout=10)
    finally:
        if runner.poll() is None:
            runner.kill()
