"""`make run`: the web server and a Huey consumer side by side, supervised and stopped together.

Ctrl+C (or SIGTERM) stops both; if this process dies, the kernel stops them too.
The children run in sessions of their own, so the terminal's Ctrl+C reaches only this
process, which then sends each child exactly one stop signal: gunicorn's thread workers
can hang when a second quit signal lands while the first is being handled.

A consumer that dies is started again after a backoff, as a process manager would in
production; the tasks it was running are recovered by their lease (maintenance re-queues
or fails them once `TASK_LEASE_SECONDS` pass). The example portal is a nicety: when it
cannot run, the app goes on without it. The web server is the product: when it stops,
everything stops.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from webapp.settings import PROJECT_ROOT

BIN = Path(sys.executable).parent
PR_SET_PDEATHSIG = 1

# A consumer's restarts wait 1 s, then twice as long each time up to 30 s, so a consumer
# that cannot start (a database that is down) does not spin; one that ran a minute before
# dying starts again from 1 s.
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
STABLE_SECONDS = 60.0


def _die_with_parent() -> None:
    """Runs in each child before exec: no orphans, even if we are SIGKILLed."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: Ctrl+C still reaches the whole process group


# The signal that stops each child gracefully: gunicorn finishes its requests on SIGTERM;
# the consumer hands running tasks back on either.
STOP_SIGNAL = signal.SIGTERM


def commands(port: str) -> dict[str, list[str]]:
    return {
        # The production settings (gunicorn.conf.py), on loopback.
        "web": [
            str(BIN / "gunicorn"), "wsgi:app", "-c", str(PROJECT_ROOT / "gunicorn.conf.py"),
            "--bind", f"127.0.0.1:{port}",
        ],
        "consumer": [
            # SqliteHuey is polled: at most 0.5 s between polls of an idle queue, so new
            # work starts within a second. Redis blocks on the queue instead; there the
            # delays only space out retries while it is unreachable.
            str(BIN / "huey_consumer"), "huey_tasks.huey", "--workers", "4",
            "--worker-type", "thread", "--delay", "0.1", "--max-delay", "0.5",
        ],
        # The example portal (webapp/dev/portal.py) on another origin.
        "portal": [sys.executable, "-m", "webapp.dev.portal"],
    }


def address_in_use(host: str, port: int) -> bool:
    """Whether a server could not listen at host:port (as gunicorn binds it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def describe(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
        return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


class Supervisor:
    """Starts the children, watches each from a thread of its own, and decides what an
    exit means; the main thread alone starts and stops processes."""

    def __init__(self, argv: dict[str, list[str]]) -> None:
        self.argv = argv
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.started_at: dict[str, float] = {}
        self.exits: queue.Queue[tuple[str, subprocess.Popen[bytes]]] = queue.Queue()

    def start(self, name: str) -> None:
        process = subprocess.Popen(self.argv[name], preexec_fn=_die_with_parent,
                                   start_new_session=True)
        self.children[name] = process
        self.started_at[name] = time.monotonic()

        def watch() -> None:
            process.wait()
            self.exits.put((name, process))

        threading.Thread(target=watch, name=f"watch-{name}", daemon=True).start()

    def run(self) -> int:
        """Until the web server stops (1) or we are asked to stop (0)."""
        backoff = FIRST_BACKOFF_SECONDS
        restart_at: float | None = None
        try:
            while True:
                timeout = None if restart_at is None else max(0.0, restart_at - time.monotonic())
                try:
                    name, process = self.exits.get(timeout=timeout)
                except queue.Empty:
                    restart_at = None
                    self.start("consumer")
                    say(f"consumer started again (pid {self.children['consumer'].pid})")
                    continue
                status = describe(process.returncode)
                if name == "web":
                    say(f"the web server stopped ({status}); stopping the rest")
                    return 1
                if name == "portal":
                    say(f"the example portal stopped ({status}); the app goes on without it")
                    del self.children[name]
                    continue
                if time.monotonic() - self.started_at[name] >= STABLE_SECONDS:
                    backoff = FIRST_BACKOFF_SECONDS
                say(f"the consumer stopped ({status}); starting it again in {backoff:g} s "
                    "(the tasks it ran are recovered when their lease runs out)")
                del self.children[name]
                restart_at = time.monotonic() + backoff
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        except KeyboardInterrupt:
            return 0

    def stop(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(STOP_SIGNAL)
        try:
            for child in self.children.values():
                # The consumer may take SHUTDOWN_GRACE_SECONDS to hand running tasks back.
                child.wait(timeout=60)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            # A second Ctrl+C, or a child that would not stop: do not wait any longer.
            say("stopping now")
            for child in self.children.values():
                if child.poll() is None:
                    child.kill()
                child.wait()


def main() -> int:
    port = os.environ.get("PORT", "5000")
    if address_in_use("127.0.0.1", int(port)):
        say(f"port {port} is in use (another `make run`?): nothing started. "
            f"Stop the other server, or choose another port: PORT=8000 make run")
        return 1
    supervisor = Supervisor(commands(port))

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Installed explicitly: a shell that starts us in the background ignores SIGINT.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        supervisor.start("web")
        supervisor.start("consumer")
        # The portal only when the Makefile asks for it, and only where it can listen.
        portal_port = os.environ.get("PORTAL_PORT")
        if portal_port and address_in_use("127.0.0.1", int(portal_port)):
            say(f"the example portal's port {portal_port} is in use: going on without it "
                "(PORTAL_PORT=5002 make run moves it)")
        elif portal_port:
            supervisor.start("portal")
        print(f"  Serving http://127.0.0.1:{port}/tasks  "
              "(Ctrl+C stops the server and the consumer)", flush=True)
        status = supervisor.run()
    except KeyboardInterrupt:
        status = 0
    supervisor.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
