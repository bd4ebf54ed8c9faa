"""The live tasks view: what one open view costs, side by side with a bare Flask endpoint,
on SQLite and on PostgreSQL + Redis.

    .venv/bin/python bench/live_view.py                     # both, the full run
    .venv/bin/python bench/live_view.py --backends sqlite --rounds 1 --seconds 5 \\
        --browser-seconds 20 --tasks 2000 --runs 10         # a quick look
    .venv/bin/python bench/live_view.py --backends postgresql --only inprocess --profile

Four figures, each the median of --rounds runs (in-process: of --runs requests):

1. browser: requests one open tasks view sends per minute, with 10 and with 25 running
   rows on screen. Debian's Chromium (Playwright) against the app under gunicorn
   (gunicorn.conf.py, POLL_SECONDS=30), signed in by a session cookie; the tasks are
   records written straight to the database (no consumer: nothing finishes, so every
   poll is unchanged). Counted over --browser-seconds after the page settled, split into
   live polls (`since=` on /tasks), the bell's (/notifications/badge) and anything else.
   Target: one live poll per 2 s (~30/min) plus the bell's 2/min.
2. unchanged: requests/s of an unchanged live poll (session cookie, `HX-Request`,
   `since=` the current marker, `X-Live-Rows` of a 25-row page; 204) ÷ a bare Flask
   endpoint's, both under gunicorn with the project's gunicorn.conf.py, wrk with
   200 connections. Target ≥ 0.6 on PostgreSQL, 0 errors.
3. inprocess: server time (Flask's test client, as bench/tasks_view.py) for a user with
   --tasks tasks (seeded as bench/tasks_view.py does, the user owning a tenth of all):
   the full 25-row table fragment (`GET /tasks`, `HX-Request`), a changed live poll
   (one row's progress changed by a direct UPDATE before each), an unchanged one, and
   the bare endpoint. Target ≤ 4 ms median for the fragment and the changed poll.
4. capacity: how many users with an open tasks view and 5 running tasks each one web
   node (this machine: 2 cores, shared with wrk and the database) carries. --users users,
   each 5 running + 20 finished tasks; a thread writes the progress of every running
   task every 2 s (as workers do), so each user's view changes every interval: each live
   poll is a changed one that carries the 5 moving rows. wrk sends each user's minute
   in proportion: 30 changed live polls and 60/POLL_SECONDS unchanged bell polls.
   Users per node = the mix's requests/s x 60 / the requests one user sends a minute.

wrk runs on the same cores as the server (and on PostgreSQL the database too), so
absolute numbers are low and noisy; the ratios side by side are the figures. Traffic
goes to 127.0.0.1 only; every database is private (bench_<random> on PostgreSQL, with
its own Huey name on Redis; a SQLite file in a temporary folder) and removed after, and
every server and browser this script starts is stopped. Needs `wrk` (Debian's package)
and /usr/bin/chromium for the browser part.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import logging
import os
import pstats
import re
import secrets
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from bell_poll import BARE_APP, serve, stop
from common import (
    configuration,
    instance_folder,
    median,
    p95,
    private_database,
    session_cookie,
)
from sqlalchemy import create_engine, event, text, update
from tasks_view import HEAVY_SHARE, bare_app, seed, signed_in

from tests.support.services import free_port
from webapp import create_app
from webapp.core.models import Status, Task, utcnow
from webapp.settings import Settings
from webapp.web.auth import create_user

CONNECTIONS = 200
POLL_SECONDS = 30
FAST_SECONDS = 2
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking"]
# A user of the capacity mix: this many running tasks (moving) and finished ones.
MOVING, FINISHED = 5, 20
ROW = re.compile(r'<tr id="task-([0-9a-f]+)"')
# Each wrk thread cycles through every user's requests: per user a changed live poll
# LIVE_PER_MINUTE times for every BELL_PER_MINUTE bell polls.
LIVE_PER_MINUTE = 60 // FAST_SECONDS
BELL_PER_MINUTE = 60 // POLL_SECONDS

MIX_LUA = """-- bench/live_view.py: each user's minute, in proportion
local users = {%(users)s}
local live_n, bell_n = %(live)d, %(bell)d
local reqs = {}
local counter = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  for i, u in ipairs(users) do
    local headers = {["Cookie"] = "session=" .. u[1], ["HX-Request"] = "true"}
    local live = {["Cookie"] = headers["Cookie"], ["HX-Request"] = "true",
                  ["X-Live-Rows"] = u[3]}
    reqs[i] = {wrk.format("GET", u[2], live), wrk.format("GET", u[4], headers)}
  end
  -- The threads start at different users.
  counter = (tid or 1) * 7919
end

function request()
  counter = counter + 1
  local n = #users
  local user = counter %% n + 1
  local slot = math.floor(counter / n) %% (live_n + bell_n)
  -- The bell's polls spread over the cycle.
  local kind = 1
  if bell_n > 0 and slot %% math.floor((live_n + bell_n) / bell_n) == 0 then kind = 2 end
  return reqs[user][kind]
end
"""


# --- the users and their tasks -------------------------------------------------------------

def running_task(owner: int, index: int, *, status: Status = Status.RUNNING) -> Task:
    """A long-running task as a worker leaves it (records only: no consumer runs)."""
    now = utcnow()
    created = now - timedelta(seconds=60 + index)
    values: dict[str, Any] = {
        "id": secrets.token_hex(16), "owner_id": owner, "kind": "sleep",
        "description": f"Long sleep {index}", "status": status,
        "params": {"seconds": 3600.0, "steps": 100, "fail": "", "flaky": 0},
        "created_at": created, "started_at": created + timedelta(seconds=1),
        "heartbeat_at": now}
    if status == Status.RUNNING:
        values |= {"progress": 0.1, "progress_message": "Step 10 of 100"}
    else:
        values |= {"finished_at": created + timedelta(seconds=5), "outcome": "Done",
                   "progress": 1.0}
    return Task(**values)


def make_user(app: Any, name: str, running: int, finished: int = 0) -> int:
    """A user with `running` running tasks (the newest) and `finished` completed ones."""
    with app.extensions["database"].session() as db:
        user = create_user(db, name, secrets.token_hex(8))
        db.add_all([running_task(user.id, i) for i in range(running)]
                   + [running_task(user.id, running + i, status=Status.COMPLETED)
                      for i in range(finished)])
        db.commit()
        return user.id


def view_of(app: Any, user_id: int) -> tuple[str, list[str]]:
    """(marker, the row ids) of the user's table as the page shows it."""
    client = signed_in(app, user_id)
    response = client.get("/tasks", headers={"HX-Request": "true"})
    assert response.status_code == 200, response.status_code
    return response.headers["X-Live-Version"], ROW.findall(response.get_data(as_text=True))


def view_in(connection: Any, user_id: int) -> tuple[str, list[str]]:
    """(marker, the row ids) of page 1 of the user's tasks view, read from the database."""
    marker = connection.execute(text("SELECT tasks_version FROM users WHERE id = :u"),
                                {"u": user_id}).scalar_one()
    rows = connection.execute(text(
        "SELECT id FROM tasks WHERE owner_id = :u ORDER BY created_at DESC, id DESC LIMIT 25"),
        {"u": user_id}).scalars().all()
    return str(marker), list(rows)


def get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers), response.read().decode()


# --- wrk -----------------------------------------------------------------------------------

def wrk(url: str, seconds: int, headers: dict[str, str] | None = None,
        script: Path | None = None) -> dict[str, float]:
    """requests/s, socket errors and non-2xx answers of one wrk run."""
    argv = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    if script is not None:
        argv += ["-s", str(script)]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    # The line of the latency distribution, not a "+/- Stdev" figure that ends in 50%.
    p50 = re.search(r"^\s*50%\s+(\S+)", out, re.MULTILINE)
    return {"rate": rate, "errors": errors, "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "p50": p50.group(1) if p50 else "?"}  # type: ignore[dict-item]


def mix_script(folder: Path, users: list[dict[str, str]]) -> Path:
    entries = ",\n".join(
        "{" + ", ".join(f'"{u[key]}"' for key in ("cookie", "live", "rows", "bell")) + "}"
        for u in users)
    path = folder / "mix.lua"
    path.write_text(MIX_LUA % {"users": entries, "live": LIVE_PER_MINUTE,
                               "bell": BELL_PER_MINUTE})
    return path


@contextlib.contextmanager
def moving_progress(url: str, owners: list[int], every: float = FAST_SECONDS) -> Iterator[
        dict[str, int]]:
    """A thread that, like the workers of every user's running tasks, writes new progress
    every `every` seconds until the block ends."""
    engine = create_engine(url)
    done = threading.Event()
    ticks = {"ticks": 0, "late": 0}

    def run() -> None:
        step = 0
        while not done.is_set():
            began = time.monotonic()
            step += 1
            with engine.begin() as connection:
                connection.execute(
                    update(Task).where(Task.owner_id.in_(owners), Task.status == Status.RUNNING)
                    .values(progress=(step % 100) / 100, progress_message=f"Step {step}"))
            ticks["ticks"] += 1
            spent = time.monotonic() - began
            ticks["late"] += spent > every
            done.wait(max(0.0, every - spent))

    thread = threading.Thread(target=run, name="progress", daemon=True)
    thread.start()
    try:
        yield ticks
    finally:
        done.set()
        thread.join(timeout=30)
        engine.dispose()


# --- 1. the browser ------------------------------------------------------------------------

def browser_counts(base: str, cookies: dict[int, str], seconds: float,
                   settle: float = 3.0) -> dict[int, dict[str, int]]:
    """Open a tasks view per entry (rows on screen → session cookie) at once, each in a
    context of its own; the requests each sends over `seconds` after it settled."""
    from playwright.sync_api import sync_playwright

    counts: dict[int, dict[str, int]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pages = {}
            for rows, cookie in cookies.items():
                context = browser.new_context()
                context.add_cookies([{"name": "session", "value": cookie, "url": base}])
                page = context.new_page()
                response = page.goto(f"{base}/tasks")
                if page.locator("#tasks-table[data-live]").count() == 0:
                    raise RuntimeError(f"no live table at {page.url} "
                                       f"({response and response.status}): "
                                       f"{page.content()[:300]}")
                shown = page.locator("#tasks-table tr[data-task-id]").count()
                assert shown == rows, (rows, shown, page.url)
                assert page.evaluate("document.visibilityState") == "visible"
                pages[rows] = page
            first = next(iter(pages.values()))
            first.wait_for_timeout(settle * 1000)
            seen: dict[int, list[str]] = {rows: [] for rows in pages}
            for rows, page in pages.items():
                page.on("request", lambda request, rows=rows: seen[rows].append(request.url))
            # Playwright delivers the pages' events while it waits.
            first.wait_for_timeout(seconds * 1000)
            for rows, urls in seen.items():
                live = sum(1 for u in urls if "/tasks" in u and "since=" in u)
                bell = sum(1 for u in urls if "/notifications/badge" in u)
                counts[rows] = {"live": live, "bell": bell, "other": len(urls) - live - bell}
        finally:
            browser.close()
    return counts


# --- 1, 2, 4 under gunicorn ----------------------------------------------------------------

def measure_served(backend: str, args: argparse.Namespace) -> None:
    config = "redis" if backend == "postgresql" else "sqlite"
    with configuration(config, "live") as env:
        folder = Path(env["INSTANCE_PATH"])
        port = free_port()
        env |= {"SECRET_KEY": secrets.token_hex(16), "ACCESS_LOG": "/dev/null",
                "PORT": str(port), "POLL_SECONDS": str(POLL_SECONDS)}
        app = create_app(Settings.from_env(env))
        base = f"http://127.0.0.1:{port}"
        parts = set(args.only)

        # The users: two browser views, one unchanged poller, the mix. What their pages
        # show is read from the database, so that no process here listens to it.
        viewers = {rows: make_user(app, f"view{rows}", rows) for rows in (10, 25)}
        poller = make_user(app, "poller", 25)
        mix_ids = [make_user(app, f"mix{n}", MOVING, FINISHED) for n in range(args.users)]
        engine = create_engine(env["DATABASE_URL"])
        with engine.begin() as connection:
            # As a first look at the view leaves them: nothing finished is new any more.
            connection.execute(text("UPDATE users SET tasks_seen_at = :now"), {"now": utcnow()})
            poll_marker, poll_rows = view_in(connection, poller)
            mix_users = []
            for uid in mix_ids:
                since, rows = view_in(connection, uid)
                assert len(rows) == MOVING + FINISHED
                mix_users.append({"id": uid, "rows": ",".join(rows), "since": since})
            # Every running task moves once: from here on a poll `since` the marker read
            # before carries the 5 moving rows, however often they move again.
            connection.execute(update(Task).where(Task.owner_id.in_(mix_ids),
                                                  Task.status == Status.RUNNING)
                               .values(progress=0.2, progress_message="Step 20 of 100"))
            bells = dict(connection.execute(text("SELECT id, bell_version FROM users")).all())
        engine.dispose()
        for user in mix_users:
            uid = user["id"]
            user |= {"cookie": session_cookie(app, uid), "live": f"/tasks?since={user['since']}",
                     "bell": f"/notifications/badge?since={bells[uid]}"}
        script = mix_script(folder, mix_users)
        unchanged_url = f"{base}/tasks?since={poll_marker}"
        unchanged_headers = {"Cookie": f"session={session_cookie(app, poller)}",
                             "HX-Request": "true", "X-Live-Rows": ",".join(poll_rows)}
        cookies = {rows: session_cookie(app, uid) for rows, uid in viewers.items()}
        app.extensions["database"].dispose()
        (folder / "bare_app.py").write_text(BARE_APP)

        results: dict[str, list[dict[str, float]]] = {"bare": [], "unchanged": [], "mix": []}
        browser: dict[int, list[dict[str, int]]] = {10: [], 25: []}
        ticks: list[dict[str, int]] = []
        for round_ in range(args.rounds):
            if parts & {"unchanged", "capacity"}:
                server = serve("bare_app:app", {**env, "PYTHONPATH": str(folder)},
                               f"{base}/bare")
                try:
                    results["bare"].append(wrk(f"{base}/bare", args.seconds))
                finally:
                    stop(server)
            server = serve("wsgi:app", env, f"{base}/healthz")
            try:
                if "browser" in parts:
                    try:
                        counted = browser_counts(base, cookies, args.browser_seconds)
                    except Exception as exc:  # a page that did not load: say so, go on
                        print(f"  {backend}: browser round failed: {exc!r:.300}", flush=True)
                        counted = {}
                    for rows, count in counted.items():
                        browser[rows].append(count)
                if "unchanged" in parts:
                    status, headers, _ = get(unchanged_url, unchanged_headers)
                    assert status == 204, status
                    results["unchanged"].append(wrk(unchanged_url, args.seconds,
                                                    unchanged_headers))
                if "capacity" in parts:
                    first = mix_users[0]
                    status, headers, body = get(f"{base}{first['live']}", {
                        "Cookie": f"session={first['cookie']}", "HX-Request": "true",
                        "X-Live-Rows": first["rows"]})
                    assert status == 200 and headers.get("HX-Reswap") == "none", status
                    assert len(ROW.findall(body)) == MOVING, body[:500]
                    status, _, _ = get(f"{base}{first['bell']}", {
                        "Cookie": f"session={first['cookie']}", "HX-Request": "true"})
                    assert status == 204, status
                    with moving_progress(env["DATABASE_URL"], mix_ids) as tick:
                        results["mix"].append(wrk(base, args.seconds, script=script))
                    ticks.append(tick)
            except Exception:
                # What the server said, before its folder goes.
                log = (folder / "gunicorn.log").read_text(errors="replace")
                print(f"  {backend}: gunicorn's log, last lines:\n{log[-4000:]}", flush=True)
                raise
            finally:
                stop(server)
            print(f"  {backend}: round {round_ + 1} of {args.rounds} done", flush=True)
        report_served(backend, args, results, browser, ticks)


def report_served(backend: str, args: argparse.Namespace,
                  results: dict[str, list[dict[str, float]]],
                  browser: dict[int, list[dict[str, int]]],
                  ticks: list[dict[str, int]]) -> None:
    def rates(kind: str) -> str:
        return ", ".join(f"{r['rate']:.0f}" for r in results[kind])

    def faults(kind: str) -> str:
        return (f"socket errors {sum(r['errors'] for r in results[kind]):.0f}, "
                f"non-2xx {sum(r['non2xx'] for r in results[kind]):.0f}")

    print(f"\n== {backend}: gunicorn.conf.py ({os.cpu_count()} workers x 8 threads), "
          f"POLL_SECONDS={POLL_SECONDS}, {args.rounds} rounds")
    if browser[10]:
        scale = 60 / args.browser_seconds
        print(f"-- 1. one open tasks view in Chromium, requests per minute "
              f"(counted over {args.browser_seconds:g} s, x{scale:g}; median of rounds)")
        for rows, runs in browser.items():
            live = median([r["live"] for r in runs]) * scale
            bell = median([r["bell"] for r in runs]) * scale
            other = median([r["other"] for r in runs]) * scale
            each = "; ".join("{live}/{bell}/{other}".format(**r) for r in runs)
            print(f"{rows:3} running rows: live polls {live:5.1f}/min, bell {bell:4.1f}/min, "
                  f"other {other:4.1f}/min, total {live + bell + other:5.1f}/min  (rounds, "
                  f"live/bell/other: {each})")
        print(f"   target: {60 / FAST_SECONDS:.0f} live polls/min (one per {FAST_SECONDS} s) "
              f"+ the bell's {60 / POLL_SECONDS:.0f}/min, whatever the number of rows")
    bare = median([r["rate"] for r in results["bare"]]) if results["bare"] else float("nan")
    if results["bare"]:
        print(f"-- 2. wrk -c{CONNECTIONS}, {args.seconds} s a run")
        print(f"bare Flask endpoint:  {bare:8.0f} req/s  (rounds: {rates('bare')}; "
              f"{faults('bare')})")
    if results["unchanged"]:
        real = median([r["rate"] for r in results["unchanged"]])
        print(f"unchanged live poll:  {real:8.0f} req/s  (rounds: {rates('unchanged')}; "
              f"{faults('unchanged')}; last p50 {results['unchanged'][-1]['p50']})")
        print(f"ratio {real / bare:.2f} (target ≥ 0.6 on PostgreSQL, 0 errors)")
    if results["mix"]:
        mix = median([r["rate"] for r in results["mix"]])
        per_minute = LIVE_PER_MINUTE + BELL_PER_MINUTE
        late = sum(t["late"] for t in ticks)
        print(f"-- 4. the mix of {args.users} users (5 moving + 20 finished tasks each): "
              f"{mix:8.0f} req/s  (rounds: {rates('mix')}; {faults('mix')}; "
              f"last p50 {results['mix'][-1]['p50']}); ÷ bare {mix / bare:.2f}")
        print(f"   progress writer: {sum(t['ticks'] for t in ticks)} rounds of updates "
              f"({args.users * MOVING} tasks each), {late} late")
        print(f"   users per node: {mix:.0f} req/s x 60 / {per_minute} requests a user-minute "
              f"= {mix * 60 / per_minute:,.0f}")
        print(f"   assumptions: each user has one tasks view open on page 1 (25 rows, 5 of "
              f"them running) and the tab visible; every running task reports progress at "
              f"least every {FAST_SECONDS} s, so every live poll ({LIVE_PER_MINUTE}/min) is a "
              f"changed one carrying the 5 rows out of band; the bell polls "
              f"{BELL_PER_MINUTE}/min, unchanged; no navigation, launches or finishes; "
              f"wrk, the progress writer and the database share the node's "
              f"{os.cpu_count()} cores (a dedicated web node would carry more)")


# --- 3. in-process server time -------------------------------------------------------------

def measure_inprocess(backend: str, args: argparse.Namespace) -> None:
    with instance_folder() as folder, private_database(backend, folder) as url:
        began = time.monotonic()
        heavy = seed(url, args.tasks * HEAVY_SHARE)
        print(f"  {backend}: seeded {args.tasks * HEAVY_SHARE:,} tasks "
              f"({args.tasks:,} the user's) in {time.monotonic() - began:.0f} s", flush=True)
        settings = Settings.from_env({"INSTANCE_PATH": str(folder), "DATABASE_URL": url,
                                      "HUEY_URL": f"sqlite:///{folder / 'huey.sqlite3'}"})
        app = create_app(settings)
        engine = app.extensions["database"].engine
        client = signed_in(app, heavy)
        fragment = {"HX-Request": "true"}
        marker, rows = view_of(app, heavy)
        assert len(rows) == settings.tasks_per_page, len(rows)
        with engine.connect() as connection:
            running = connection.execute(text(
                "SELECT id FROM tasks WHERE owner_id = :o AND status = 'running'"
            ), {"o": heavy}).scalars().all()
        # The rows that move: page 1's running ones first, as a worker's would.
        moving = sorted(rows, key=lambda r: r not in set(running))[:MOVING]
        live_headers = fragment | {"X-Live-Rows": ",".join(rows)}
        versions = app.extensions.get("known_users")
        bare = bare_app().test_client()
        labels = {"bare": "bare Flask endpoint",
                  "fragment": "GET /tasks, 25-row table fragment",
                  "fragment_txn": "the same in a transaction (0.5.0's reads)",
                  "changed": "changed live poll (1 row out of band)",
                  "changed5": f"changed live poll ({MOVING} rows out of band)",
                  "unchanged": "unchanged live poll (204)"}
        times: dict[str, list[float]] = {label: [] for label in labels}
        statements: dict[str, int] = {}
        state = {"marker": marker, "step": 0}
        sent = [0]

        def _count(*_args: Any) -> None:
            sent[0] += 1

        for each in app.extensions["database"].engines:
            event.listen(each, "before_cursor_execute", _count)

        def timed(label: str, call: Any, expect: int) -> Any:
            sent[0] = 0
            begin = time.perf_counter()
            response = call()
            times[label].append((time.perf_counter() - begin) * 1000)
            statements[label] = sent[0]
            assert response.status_code == expect, (label, response.status_code)
            return response

        def change(ids: list[str]) -> None:
            """Progress moves on these rows, as workers' reports would, outside the timing;
            on PostgreSQL until this process has heard of it (else the poll is a 204)."""
            state["step"] += 1
            with engine.begin() as connection:
                connection.execute(update(Task).where(Task.id.in_(ids)).values(
                    progress=(state["step"] % 100) / 100))
            if versions is None:
                return
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                known = versions.get(heavy)
                if known is not None and str(known.tasks) != state["marker"]:
                    return
                time.sleep(0.002)

        def in_a_transaction(call: Any) -> Any:
            """A request as 0.5.0 read PostgreSQL: BEGIN ... ROLLBACK around its queries."""
            database = app.extensions["database"]
            autocommit, database.autocommit_engine = database.autocommit_engine, None
            try:
                return call()
            finally:
                database.autocommit_engine = autocommit

        def live_poll() -> Any:
            return client.get(f"/tasks?since={state['marker']}", headers=live_headers)

        def changed(label: str, ids: list[str]) -> None:
            change(ids)
            response = timed(label, live_poll, 200)
            assert response.headers.get("HX-Reswap") == "none"
            assert set(ROW.findall(response.get_data(as_text=True))) == set(ids)
            state["marker"] = response.headers["X-Live-Version"]

        for run in range(args.runs + 3):
            timed("bare", lambda: bare.get("/bare"), 200)
            timed("fragment", lambda: client.get("/tasks", headers=fragment), 200)
            timed("fragment_txn", lambda: in_a_transaction(
                lambda: client.get("/tasks", headers=fragment)), 200)
            changed("changed", moving[:1])
            changed("changed5", moving)
            timed("unchanged", live_poll, 204)
            if run < 3:  # warm-up
                for values in times.values():
                    values.clear()
        bare_ms = median(times["bare"])
        print(f"\n== {backend}: server time in-process, ms, {args.tasks:,} tasks for the "
              f"user, median (p95) of {args.runs}")
        for label, what in labels.items():
            m = median(times[label])
            print(f"{what:40} {m:7.2f} ({p95(times[label]):6.2f})  ÷bare {m / bare_ms:6.1f}"
                  f"  {statements.get(label, 0)} statements")
        print("target: fragment and changed poll ≤ 4 ms median")
        if args.profile:
            for label, ids in (("fragment", None), ("changed poll, 1 row", moving[:1])):
                profiler = cProfile.Profile()
                for _ in range(100):
                    if ids is None:
                        profiler.runcall(client.get, "/tasks", headers=fragment)
                        continue
                    change(ids)
                    response = profiler.runcall(live_poll)
                    state["marker"] = response.headers["X-Live-Version"]
                print(f"-- profile of 100 x {label}, cumulative")
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
        # The process's listener would go on asking for the database dropped next.
        logging.getLogger("webapp.web.known_users").setLevel(logging.CRITICAL)
        app.extensions["database"].dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"],
                        choices=["sqlite", "postgresql"])
    parser.add_argument("--only", nargs="+",
                        default=["browser", "unchanged", "inprocess", "capacity"],
                        choices=["browser", "unchanged", "inprocess", "capacity"])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each served figure")
    parser.add_argument("--seconds", type=int, default=10, help="length of a wrk run")
    parser.add_argument("--browser-seconds", type=float, default=30,
                        help="how long the browser's requests are counted")
    parser.add_argument("--users", type=int, default=200, help="users of the capacity mix")
    parser.add_argument("--tasks", type=int, default=100_000,
                        help="the in-process user's tasks (a tenth of all seeded)")
    parser.add_argument("--runs", type=int, default=40, help="in-process requests of each")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the fragment and a changed poll in-process")
    args = parser.parse_args()
    for backend in args.backends:
        if set(args.only) - {"inprocess"}:
            measure_served(backend, args)
        if "inprocess" in args.only:
            measure_inprocess(backend, args)


if __name__ == "__main__":
    main()
