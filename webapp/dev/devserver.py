"""`make run`: the web server and a Huey consumer side by side, stopped together.

Ctrl+C (or SIGTERM) stops both; if this process dies, the kernel stops them too.
The children run in sessions of their own, so the terminal's Ctrl+C reaches only this
process, which then sends each child exactly one stop signal: gunicorn's thread workers
can hang when a second quit signal lands while the first is being handled.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

from webapp.settings import PROJECT_ROOT

BIN = Path(sys.executable).parent
PR_SET_PDEATHSIG = 1


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
    }


def main() -> int:
    port = os.environ.get("PORT", "5000")
    children = {
        name: subprocess.Popen(argv, preexec_fn=_die_with_parent, start_new_session=True)
        for name, argv in commands(port).items()
    }
    # The example portal (webapp/dev/portal.py) on another origin, when the Makefile asks for it.
    if os.environ.get("PORTAL_PORT"):
        children["portal"] = subprocess.Popen(
            [sys.executable, "-m", "webapp.dev.portal"], preexec_fn=_die_with_parent,
            start_new_session=True,
        )

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Installed explicitly: a shell that starts us in the background ignores SIGINT.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"  Serving http://127.0.0.1:{port}/tasks  (Ctrl+C stops the server and the consumer)")
    # If either stops on its own, stop the other: half a product is no product.
    with contextlib.suppress(KeyboardInterrupt):
        os.wait()
    for child in children.values():
        if child.poll() is None:
            child.send_signal(STOP_SIGNAL)
    try:
        for child in children.values():
            # The consumer may take SHUTDOWN_GRACE_SECONDS to hand running tasks back.
            child.wait(timeout=60)
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        # A second Ctrl+C, or a child that would not stop: do not wait any longer.
        print("  stopping now", file=sys.stderr)
        for child in children.values():
            if child.poll() is None:
                child.kill()
            child.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
