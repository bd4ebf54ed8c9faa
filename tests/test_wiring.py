"""How the processes are assembled: a web process holds no consumer code, webapp/ has
no import cycle and its groups import one way, and the app reads its configuration from
app.config alone."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

from werkzeug.middleware.proxy_fix import ProxyFix

from webapp import create_app
from webapp.settings import PROJECT_ROOT, Settings

CONSUMER_SIDE = ("webapp.workers.consumer", "webapp.workers.worker", "webapp.workers.maintenance")


def test_importing_wsgi_imports_no_worker_code(environment: dict[str, str]) -> None:
    listing = "import sys, json, wsgi; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", listing], cwd=PROJECT_ROOT, env=environment,
                            capture_output=True, text=True, check=True)
    modules = set(json.loads(result.stdout.splitlines()[-1]))
    assert "webapp.web.tasks" in modules  # the app was built
    assert modules.isdisjoint(CONSUMER_SIDE), sorted(modules & set(CONSUMER_SIDE))


def test_the_consumer_entry_wires_the_worker(environment: dict[str, str]) -> None:
    check = ("import huey_tasks; queue = huey_tasks.consumer.queue; "
             "assert queue.executor == huey_tasks.consumer.worker.execute; "
             "assert huey_tasks.huey.create_consumer().worker is huey_tasks.consumer.worker")
    subprocess.run([sys.executable, "-c", check], cwd=PROJECT_ROOT, env=environment, check=True)


def webapp_imports() -> dict[str, set[str]]:
    """Each module of webapp/ and the webapp modules it imports when it runs (imports
    for type checkers only, and the factory's imports inside create_app, left out)."""
    found: dict[str, set[str]] = {}
    for path in (PROJECT_ROOT / "webapp").rglob("*.py"):
        if "migrations" in path.parts:
            continue
        name = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
        tree = ast.parse(path.read_text())
        typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and getattr(block.test, "id", "") == "TYPE_CHECKING"
                       for node in ast.walk(block)}
        imported: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        found[name.removesuffix(".__init__")] = imported
    return {name: {m for m in imported if m in found and m not in (name, "webapp")}
            for name, imported in found.items()}


def test_no_import_cycle_in_webapp() -> None:
    graph = webapp_imports()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        for child in graph[name]:
            assert child not in path, " -> ".join([*path[path.index(child):], child])
            if child not in done:
                visit(child, [*path, child])
        done.add(name)

    for name in graph:
        visit(name, [name])


# Which group of webapp/ may import which: the web side and the workers both stand on the
# core and never on each other; the operations stand on the core alone.
MAY_IMPORT = {
    "core": {"core"},
    "operations": {"core", "operations"},
    "web": {"core", "web"},
    "workers": {"core", "workers", "operations"},
    "dev": {"core", "web", "dev"},
}


def test_every_arrow_between_groups_points_one_way() -> None:
    for name, imported in webapp_imports().items():
        group = name.split(".")[1] if name.count(".") else None
        if group not in MAY_IMPORT:
            continue  # the factory, settings and migrations assemble or serve everyone
        for other in imported:
            other_group = other.split(".")[1] if other.count(".") else None
            assert other_group in MAY_IMPORT[group] or other_group not in MAY_IMPORT, (
                f"{name} imports {other}")


def test_overrides_reach_what_the_app_reads(settings: Settings, tmp_path: Path) -> None:
    app = create_app(settings, TESTING=True, FRAME_ANCESTORS="https://portal.example",
                     DATA_ROOT=tmp_path, HUEY_NAME="overridden", PROXY_COUNT=1)
    try:
        csp = app.test_client().get("/healthz").headers["Content-Security-Policy"]
        assert "frame-ancestors https://portal.example" in csp
        assert app.extensions["user_files"].data_root == tmp_path
        assert app.extensions["task_queue"].huey.name == "overridden"
        assert isinstance(app.wsgi_app, ProxyFix)
    finally:
        app.extensions["database"].dispose()


def test_the_apps_log_lines_say_when_how_bad_which_thread_and_logger(
    environment: dict[str, str]
) -> None:
    # A consumer, configured in huey_consumer's order: its "huey" logger, then the consumer.
    consumer = ("import logging, huey_tasks; from huey.consumer_options import ConsumerConfig; "
                "ConsumerConfig(workers=1).setup_logger(logging.getLogger('huey')); "
                "huey_tasks.huey.create_consumer(); "
                "logging.getLogger('webapp.workers.maintenance').info('dispatched 1')")
    web = "import logging, wsgi; logging.getLogger('webapp.web.health').warning('queue away')"
    for script, line in ((consumer, "INFO:webapp.workers.maintenance:MainThread:dispatched 1"),
                         (web, "WARNING:webapp.web.health:MainThread:queue away")):
        result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT,
                                env=environment, capture_output=True, text=True, check=True)
        assert re.search(r"^\[\d{4}-\d\d-\d\d [\d:,]+\] " + re.escape(line) + "$",
                         result.stderr, re.M), result.stderr
