"""The tasks view at scale: server time of GET /tasks for a user with a long history,
against a bare Flask endpoint timed the same way, at 10,000 and at 1,000,000 tasks.

    .venv/bin/python bench/tasks_view.py                       # PostgreSQL and SQLite
    .venv/bin/python bench/tasks_view.py --backends sqlite --sizes 10000

Tasks are spread over 1,000 users; one user ("heavy") owns a tenth of them (100,000 of
a million). For that user: the full page and the htmx fragment, no filter and each
status filter, page 1 and page 500 (or the last page, where there is no page 500).
Also an administrator's view of everyone's tasks, and searches (`q=`, `kind=`, `from=`,
`to=`) of the heavy user's tasks: a common word, a rare one, a prefix, a word with a
status filter, with a kind and a time range, and the last page a search shows. Each
case runs --runs times after a
warm-up; medians and p95 in milliseconds, and each median divided by the bare
endpoint's. Server time is the WSGI call in-process (Flask's test client), so the
network and the client are not in it.

PostgreSQL runs on a database of its own (bench_<random>), dropped after; the seed is
a COPY with the triggers off and the counters rebuilt once from the result, then a
VACUUM ANALYZE, as autovacuum would have done to an old history. SQLite is seeded
with executemany through the triggers.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from common import instance_folder, median, p95, private_database, session_cookie
from flask import Flask
from sqlalchemy import create_engine, func, insert, select, text

from webapp import create_app
from webapp.core.listing import _matching, _page_keys
from webapp.core.models import Status, Task, User
from webapp.core.search import parse_search
from webapp.settings import Settings

USERS = 1_000
HEAVY_SHARE = 10  # one task in ten is the heavy user's
# Enough of each status that even at 10,000 tasks every filter fills a page (25 rows).
STATUS_WEIGHTS = [("completed", 64), ("failed", 15), ("cancelled", 12), ("queued", 3),
                  ("running", 6)]
FILTERS = ["", "queued", "running", "completed", "failed", "cancelled"]
DEEP_PAGE = 500
SEARCH_TARGET_MS = 50
CHUNK = 50_000
# A password hash no one can log in with: the benchmark signs in through the session.
NO_PASSWORD = "!"


def statuses(count: int, rng: random.Random) -> list[str]:
    names = [name for name, _ in STATUS_WEIGHTS]
    weights = [weight for _, weight in STATUS_WEIGHTS]
    return rng.choices(names, weights, k=count)


def made_up_words(count: int) -> list[str]:
    """Distinct pronounceable words ("kolumi"), the same ones on every run."""
    rng, words = random.Random(0), dict[str, None]()
    while len(words) < count:
        words["".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou")
                      for _ in range(rng.randint(2, 4)))] = None
    return list(words)


# Descriptions are made of words drawn by Zipf's law (the n-th most used word is used 1/n
# as often as the first), as the names in real descriptions are, in each kind's sentence.
VOCABULARY = made_up_words(5_000)
ZIPF = list(itertools.accumulate(1 / rank for rank in range(1, len(VOCABULARY) + 1)))
KINDS = {"extract_archive": (30, "Extract {}-{}.tar.gz into {}"),
         "distribute": (30, "Distribute {}/{} to {} and {}"),
         "sleep": (20, "Sleep for a while"),
         "rest_space": (10, "Put {} to rest"),
         "wake_space": (10, "Wake {}")}


def kind_and_description(rng: random.Random) -> tuple[str, str]:
    kind = rng.choices(list(KINDS), [weight for weight, _ in KINDS.values()])[0]
    sentence = KINDS[kind][1]
    words = rng.choices(VOCABULARY, cum_weights=ZIPF, k=sentence.count("{}"))
    if kind == "extract_archive":
        words[1] = str(rng.randint(1, 99))
    return kind, sentence.format(*words)


def task_rows(size: int, heavy_id: int, user_ids: list[int]) -> Iterator[list[tuple[Any, ...]]]:
    """The history, oldest first, in chunks:
    (id, owner, status, created, started, finished, kind, description)."""
    rng = random.Random(size)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    step = timedelta(days=365) / size
    others = [uid for uid in user_ids if uid != heavy_id]
    for first in range(0, size, CHUNK):
        chunk = []
        count = min(CHUNK, size - first)
        for offset, status in enumerate(statuses(count, rng)):
            index = first + offset
            owner = heavy_id if index % HEAVY_SHARE == 0 else others[index % len(others)]
            created = start + step * index
            started = None if status == "queued" else created + timedelta(seconds=1)
            finished = created + timedelta(seconds=5) if status not in (
                "queued", "running") else None
            chunk.append((uuid.uuid4().hex, owner, status, created, started, finished,
                          *kind_and_description(rng)))
        yield chunk


OUTCOMES = {"completed": "Done", "failed": "It broke", "cancelled": "Cancelled by user"}


def seed(url: str, size: int) -> int:
    """Users and tasks; returns the heavy user's id."""
    engine = create_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(insert(User), [
            {"name": "heavy" if n == 0 else f"user{n}", "password_hash": NO_PASSWORD,
             "is_admin": False, "created_at": now, "bell_version": 0} for n in range(USERS)
        ] + [{"name": "admin", "password_hash": NO_PASSWORD, "is_admin": True,
              "created_at": now, "bell_version": 0}])
        users = dict(connection.execute(text("SELECT name, id FROM users")).all())
    heavy = users["heavy"]
    user_ids = [uid for name, uid in users.items() if name != "admin"]
    if engine.dialect.name == "postgresql":
        _copy(engine, size, heavy, user_ids)
    else:
        with engine.begin() as connection:
            for chunk in task_rows(size, heavy, user_ids):
                connection.execute(insert(Task), [_record(*row) for row in chunk])
    engine.dispose()
    return heavy


def _record(task_id: str, owner: int, status: str, created: datetime,
            started: datetime | None, finished: datetime | None, kind: str,
            description: str) -> dict[str, Any]:
    return {"id": task_id, "owner_id": owner, "kind": kind,
            "description": description, "status": status,
            "params": {"seconds": 1.0, "steps": 1, "fail": ""}, "created_at": created,
            "started_at": started, "finished_at": finished,
            "heartbeat_at": finished or started, "outcome": OUTCOMES.get(status),
            "progress": 1.0 if status == "completed" else None, "attempt": 1,
            "dispatched_at": created}


def _copy(engine: Any, size: int, heavy: int, user_ids: list[int]) -> None:
    columns = ["id", "owner_id", "kind", "description", "status", "params", "created_at",
               "started_at", "finished_at", "heartbeat_at", "outcome", "progress", "attempt",
               "dispatched_at"]
    params = json.dumps({"seconds": 1.0, "steps": 1, "fail": ""})

    def naive(moment: datetime | None) -> datetime | None:
        return None if moment is None else moment.replace(tzinfo=None)

    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            # Triggers off for the load (this session only); the counters are rebuilt after.
            cursor.execute("SET session_replication_role = replica")
            with cursor.copy(f"COPY tasks ({', '.join(columns)}) FROM STDIN") as copy:
                for chunk in task_rows(size, heavy, user_ids):
                    for (task_id, owner, status, created, started, finished, kind,
                         description) in chunk:
                        copy.write_row((
                            task_id, owner, kind, description, status,
                            params, naive(created), naive(started), naive(finished),
                            naive(finished or started), OUTCOMES.get(status),
                            1.0 if status == "completed" else None, 1, naive(created)))
            cursor.execute("SET session_replication_role = DEFAULT")
            cursor.execute("DELETE FROM task_counts")
            cursor.execute("INSERT INTO task_counts (owner_id, status, count) "
                           "SELECT owner_id, status, COUNT(*) FROM tasks GROUP BY 1, 2")
        raw.commit()
        raw.driver_connection.autocommit = True
        with raw.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    finally:
        raw.close()


def once(client: Any, url: str, headers: dict[str, str]) -> float:
    begin = time.perf_counter()
    response = client.get(url, headers=headers)
    elapsed = (time.perf_counter() - begin) * 1000
    assert response.status_code == 200, (url, response.status_code)
    return elapsed


def signed_in(app: Flask, user_id: int) -> Any:
    """A client with the session the login form leaves."""
    client = app.test_client()
    client.set_cookie("session", session_cookie(app, user_id))
    return client


def bare_app() -> Flask:
    bare = Flask("bare")
    bare.add_url_rule("/bare", "bare", lambda: "ok")
    return bare


def cases(url: str, folder: Path) -> tuple[Flask, int, list[dict[str, Any]]]:
    """The app on one seeded database, and what to ask of it: (who, filter, page, mode)."""
    settings = Settings.from_env({"INSTANCE_PATH": str(folder), "DATABASE_URL": url,
                                  "HUEY_URL": f"sqlite:///{folder / 'huey.sqlite3'}"})
    app = create_app(settings)
    with app.extensions["database"].engine.connect() as connection:
        ids = dict(connection.execute(text(
            "SELECT name, id FROM users WHERE name IN ('heavy', 'admin')")).all())
        counts = connection.execute(text(
            "SELECT owner_id, status, count FROM task_counts")).all()
    per_page = settings.tasks_per_page

    def deep(owner: int | None, status: str) -> int:
        total = sum(n for o, s, n in counts
                    if (owner is None or o == owner) and (not status or s == status))
        return min(DEEP_PAGE, max(1, -(-total // per_page)))

    heavy, admin = signed_in(app, ids["heavy"]), signed_in(app, ids["admin"])
    fragment = {"HX-Request": "true"}
    chosen = []
    for status in FILTERS:
        for page in (1, deep(ids["heavy"], status)):
            for mode, headers in (("page", {}), ("fragment", fragment)):
                chosen.append({"who": "heavy", "status": status or "all", "page": page,
                               "mode": mode, "client": heavy, "headers": headers,
                               "url": _url(status, page), "search": ""})
    for status in ("", "failed"):
        for page in (1, deep(None, status)):
            chosen.append({"who": "admin", "status": status or "all", "page": page,
                           "mode": "fragment", "client": admin, "headers": fragment,
                           "url": _url(status, page), "search": ""})
    for search, status, page in SEARCHES:
        for mode, headers in (("page", {}), ("fragment", fragment)):
            chosen.append({"who": "heavy", "status": status or "all", "page": page,
                           "mode": mode, "client": heavy, "headers": headers,
                           "url": _url(status, page, search), "search": search})
    return app, ids["heavy"], chosen


# (search, status, page). Words by how often they occur: "extract" begins 30 % of the
# descriptions; VOCABULARY[3] is the 4th most used name, VOCABULARY[-1] the least used.
SEARCHES = [
    ("q=extract", "", 1),
    (f"q={VOCABULARY[-1]}", "", 1),
    (f"q={VOCABULARY[3][:3]}", "", 1),
    ("q=extract", "failed", 1),
    (f"q={VOCABULARY[3]}&kind=distribute&from=2025-03-01&to=2025-06-30", "", 1),
    ("kind=wake_space&from=2025-03-01&to=2025-06-30", "", 1),
    ("q=extract", "", 40),
]


def _url(status: str, page: int, search: str = "") -> str:
    query = "&".join(filter(None, [status and f"status={status}", search,
                                   page > 1 and f"page={page}"]))
    return f"/tasks?{query}"


def matches(app: Flask, heavy_id: int, chosen: list[dict[str, Any]]) -> dict[str, str]:
    """How many of the heavy user's tasks each search finds, all of them counted (the
    view counts only as far as its pages need)."""
    found = {}
    with app.extensions["database"].session() as db:
        dialect = db.get_bind().dialect.name
        for case in chosen:
            if case["search"] and case["search"] not in found:
                args = parse_qs(case["search"])
                search = parse_search(args.get("q", [""])[0], args.get("kind", []),
                                      args.get("from", [""])[0], args.get("to", [""])[0])
                statuses = (Status(case["status"]),) if case["status"] != "all" else ()
                query = _matching(heavy_id, statuses, search.conditions(dialect, heavy_id))
                count = db.scalar(select(func.count()).select_from(query.subquery()))
                found[case["search"]] = f"{count:,}"
    return found


def measure(urls: dict[int, str], folder: Path, runs: int) -> dict[int, dict[str, Any]]:
    """Every case at every size and the bare endpoint, interleaved run by run, so the
    noise of a shared machine falls on all of them alike."""
    setups = {size: cases(url, folder / str(size)) for size, url in urls.items()}
    bare = bare_app().test_client()
    times: dict[int, list[list[float]]] = {
        size: [[] for _ in chosen] for size, (_, _, chosen) in setups.items()}
    baseline: list[float] = []
    for run in range(runs + 3):
        baseline.append(once(bare, "/bare", {}))
        for size, (_, _, chosen) in setups.items():
            for index, case in enumerate(chosen):
                elapsed = once(case["client"], case["url"], case["headers"])
                if run >= 3:  # the first runs warm the caches
                    times[size][index].append(elapsed)
    results: dict[int, dict[str, Any]] = {}
    for size, (app, heavy_id, chosen) in setups.items():
        results[size] = {"baseline_ms": median(baseline[3:]), "cases": [
            {key: case[key] for key in ("who", "status", "page", "mode", "search")}
            | {"median": median(t), "p95": p95(t)}
            for case, t in zip(chosen, times[size], strict=True)],
            "matches": matches(app, heavy_id, chosen)}
        engine = app.extensions["database"].engine
        if engine.dialect.name == "postgresql":
            results[size]["plans"] = explain(app, heavy_id, app.config["TASKS_PER_PAGE"])
        app.extensions["database"].dispose()
    return results


def explain(app: Flask, heavy_id: int, per_page: int) -> list[str]:
    """The plans of the deep page's key scans: what makes page 500 cheap, or not."""
    plans = []
    with app.app_context(), app.extensions["database"].session() as db:
        heavy = db.get(User, heavy_id)
        offset = (DEEP_PAGE - 1) * per_page
        for chosen in ((), (Status.COMPLETED,), (Status.FAILED, Status.CANCELLED)):
            keys = select(_page_keys(heavy.id, chosen, offset, per_page))
            sql = str(keys.compile(db.get_bind(), compile_kwargs={"literal_binds": True}))
            lines = db.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}")).scalars()
            plans.append(f"-- page {DEEP_PAGE}, statuses {[s.value for s in chosen]}\n"
                         + "\n".join(lines))
    return plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    for backend in args.backends.split(","):
        with contextlib.ExitStack() as stack:
            folder = stack.enter_context(instance_folder())
            urls = {}
            for size in sizes:
                (folder / str(size)).mkdir()
                urls[size] = stack.enter_context(private_database(backend, folder / str(size)))
                began = time.monotonic()
                seed(urls[size], size)
                print(f"{backend}: seeded {size:,} tasks in {time.monotonic() - began:.0f} s",
                      flush=True)
            report(backend, measure(urls, folder, args.runs))


def report(backend: str, by_size: dict[int, dict[str, Any]]) -> None:
    sizes = sorted(by_size)
    small, large = sizes[0], sizes[-1]
    print(f"\n== {backend}: GET /tasks server time, ms (bare Flask endpoint: "
          + ", ".join(f"{by_size[s]['baseline_ms']:.3f} at {s:,}" for s in sizes) + ")")
    print(f"{'who':6} {'status':10} {'page':>9} {'mode':9}"
          + "".join(f" {f'median@{s:,}':>17} {f'p95@{s:,}':>14}" for s in sizes)
          + f" {'growth':>7} {'÷bare':>7}  search (matches at " + ", ".join(
              f"{s:,}" for s in sizes) + ")")
    worst_median = worst_p95 = worst_growth = worst_search = 0.0
    for index, case in enumerate(by_size[large]["cases"]):
        row = [by_size[s]["cases"][index] for s in sizes]
        pages = "/".join(str(r["page"]) for r in row)
        growth = row[-1]["median"] / row[0]["median"]
        ratio = row[-1]["median"] / by_size[large]["baseline_ms"]
        found = ", ".join(by_size[s]["matches"].get(case["search"], "") for s in sizes)
        print(f"{case['who']:6} {case['status']:10} {pages:>9} {case['mode']:9}"
              + "".join(f" {r['median']:17.2f} {r['p95']:14.2f}" for r in row)
              + f" {growth:7.2f} {ratio:7.0f}"
              + (f"  {case['search']} ({found})" if case["search"] else ""))
        if case["search"]:
            worst_search = max(worst_search, row[-1]["median"])
            continue
        worst_median = max(worst_median, row[-1]["median"])
        worst_p95 = max(worst_p95, row[-1]["p95"])
        worst_growth = max(worst_growth, growth)
    for plan in by_size[large].get("plans", []):
        print(plan)
    print(f"worst at {large:,}: median {worst_median:.2f} ms (target ≤ 20 on PostgreSQL), "
          f"p95 {worst_p95:.2f} ms (target ≤ 40); worst growth {small:,} → {large:,}: "
          f"{worst_growth:.2f}x (target ≤ 2); worst search median {worst_search:.2f} ms "
          f"(target ≤ {SEARCH_TARGET_MS})", flush=True)


if __name__ == "__main__":
    main()
