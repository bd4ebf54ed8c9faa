"""Bell poll throughput: requests/s of an unchanged GET /notifications/badge against a
bare Flask endpoint returning a constant string, both under gunicorn with the project's
gunicorn.conf.py and the same settings, loaded by wrk with 200 connections.

    .venv/bin/python bench/bell_poll.py                  # PostgreSQL and SQLite
    .venv/bin/python bench/bell_poll.py --backends sqlite --seconds 5 --rounds 1

The unchanged poll is what every open tab sends every POLL_SECONDS: a session cookie,
`HX-Request`, and `since=` the user's current bell version, answered 204. The bare app
and the real one take turns (--rounds times each) on the same port settings; the
figures are medians. wrk runs on the same two cores as the server, so absolute numbers
are low; the ratio is the figure. Also prints the peak RSS of the web workers.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path

from common import (
    BIN,
    ROOT,
    instance_folder,
    median,
    peak_rss_mb,
    private_database,
    session_cookie,
)
from flask import Flask

from tests.support.services import free_port
from webapp import create_app
from webapp.core.models import Status, Task, utcnow
from webapp.settings import Settings
from webapp.web.auth import create_user

CONNECTIONS = 200
POLL_SECONDS = 30

BARE_APP = '''"""A bare Flask endpoint: the baseline of bench/bell_poll.py."""
from flask import Flask

app = Flask(__name__)


@app.get("/bare")
def bare() -> str:
    return "ok"
'''


def serve(app_path: str, env: dict[str, str], probe: str) -> subprocess.Popen[bytes]:
    """gunicorn with the project's config file, answering at `probe` before it returns."""
    log = open(Path(env["INSTANCE_PATH"]) / "gunicorn.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), app_path],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(probe, timeout=1):
                return process
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"gunicorn {app_path} did not start") from None
            time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> list[float]:
    """Stop gunicorn; the peak RSS of each of its workers, in MiB, first."""
    workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True,
                             text=True).stdout.split()
    peaks = [peak_rss_mb(int(pid)) for pid in workers]
    process.terminate()
    process.wait(timeout=30)
    return peaks


def wrk(url: str, seconds: int, headers: dict[str, str]) -> tuple[float, int, str]:
    """(requests/s, errors, wrk's report)."""
    argv = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, errors + (int(non2xx.group(1)) if non2xx else 0), out


def measure(backend: str, seconds: int, rounds: int) -> None:
    with instance_folder() as folder, private_database(backend, folder) as url:
        env = {**os.environ, "INSTANCE_PATH": str(folder), "DATABASE_URL": url,
               "HUEY_URL": f"sqlite:///{folder / 'huey.sqlite3'}",
               "SECRET_KEY": secrets.token_hex(16), "ACCESS_LOG": "/dev/null"}
        port = free_port()
        env["PORT"] = str(port)
        settings = Settings.from_env(env)
        app = create_app(settings)
        with app.extensions["database"].session() as db:
            user = create_user(db, "poller", secrets.token_hex(8))
            # Some history, so the poll is not answered from an empty table.
            db.add_all(Task(id=secrets.token_hex(16), owner_id=user.id, kind="sleep",
                            description="sleep", status=Status.RUNNING, params={},
                            created_at=utcnow()) for _ in range(3))
            db.commit()
            db.refresh(user)
            version = user.bell_version
        # As the login form leaves it: a permanent session, refreshed by every request.
        cookie = session_cookie(app, user.id)
        app.extensions["database"].dispose()
        (folder / "bare_app.py").write_text(BARE_APP)
        base = f"http://127.0.0.1:{port}"
        badge = f"{base}/notifications/badge?since={version}"
        headers = {"Cookie": f"session={cookie}", "HX-Request": "true"}
        check = urllib.request.Request(badge, headers=headers)
        rates: dict[str, list[float]] = {"bare": [], "badge": []}
        errors = {"bare": 0, "badge": 0}
        peaks: list[float] = []
        for _ in range(rounds):
            server = serve("bare_app:app", {**env, "PYTHONPATH": str(folder)}, f"{base}/bare")
            rate, failed, _ = wrk(f"{base}/bare", seconds, {})
            stop(server)
            rates["bare"].append(rate)
            errors["bare"] += failed
            server = serve("wsgi:app", env, f"{base}/healthz")
            with urllib.request.urlopen(check) as response:
                assert response.status == 204, response.status
            rate, failed, report = wrk(badge, seconds, headers)
            peaks += stop(server)
            rates["badge"].append(rate)
            errors["badge"] += failed
        bare, real = median(rates["bare"]), median(rates["badge"])
        print(f"\n== {backend}: {CONNECTIONS} connections, {seconds} s x {rounds} rounds, "
              f"gunicorn.conf.py ({os.cpu_count()} workers x 8 threads)")
        print(f"bare Flask endpoint: {bare:8.0f} req/s  (rounds: "
              f"{', '.join(f'{r:.0f}' for r in rates['bare'])}; errors {errors['bare']})")
        print(f"unchanged badge:     {real:8.0f} req/s  (rounds: "
              f"{', '.join(f'{r:.0f}' for r in rates['badge'])}; errors {errors['badge']})")
        print(f"ratio {real / bare:.2f} (target ≥ 0.6, 0 errors)")
        print(f"polling users one node carries at POLL_SECONDS={POLL_SECONDS}: "
              f"{real * POLL_SECONDS:,.0f} (wrk sharing its cores)")
        print(f"peak RSS of a web worker: {max(peaks):.0f} MiB")
        print("last badge run, wrk's latency distribution:")
        print("\n".join(line for line in report.splitlines() if "%" in line))


def profile(backend: str, polls: int = 2000) -> None:
    """Where an unchanged poll's time goes, in-process (no HTTP server, no wrk)."""
    with instance_folder() as folder, private_database(backend, folder) as url:
        settings = Settings.from_env({"INSTANCE_PATH": str(folder), "DATABASE_URL": url,
                                      "HUEY_URL": f"sqlite:///{folder / 'huey.sqlite3'}"})
        app = create_app(settings)
        with app.extensions["database"].session() as db:
            user = create_user(db, "poller", secrets.token_hex(8))
            user_id, version = user.id, user.bell_version
        client = app.test_client()
        client.set_cookie("session", session_cookie(app, user_id))
        bare = Flask("bare")
        bare.add_url_rule("/bare", "bare", lambda: "ok")
        url_of_poll = f"/notifications/badge?since={version}"
        headers = {"HX-Request": "true"}
        for label, each in (("bare", lambda: bare.test_client().get("/bare")),
                            ("poll", lambda: client.get(url_of_poll, headers=headers))):
            each()
            began = time.perf_counter()
            for _ in range(polls):
                each()
            print(f"{backend} in-process {label}: "
                  f"{(time.perf_counter() - began) / polls * 1000:.3f} ms per request")
        profiler = cProfile.Profile()
        profiler.runcall(lambda: [client.get(url_of_poll, headers=headers)
                                  for _ in range(polls)])
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(
            r"auth.py.*load_user|sessions.py.*(open|save)_session|orm/session.py.*\(get\)"
            r"|db.py.*_close_session|notifications.py|app.py.*(process_response|wsgi_app)")
        app.extensions["database"].dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true",
                        help="instead, profile unchanged polls in-process")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        if args.profile:
            profile(backend)
        else:
            measure(backend, args.seconds, args.rounds)


if __name__ == "__main__":
    main()
