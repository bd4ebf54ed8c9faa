"""How the processes are assembled: a web process holds no consumer code."""

from __future__ import annotations

import json
import subprocess
import sys

from webapp.settings import PROJECT_ROOT

CONSUMER_SIDE = ("webapp.consumer", "webapp.worker", "webapp.maintenance")


def test_importing_wsgi_imports_no_worker_code(environment: dict[str, str]) -> None:
    listing = "import sys, json, wsgi; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", listing], cwd=PROJECT_ROOT, env=environment,
                            capture_output=True, text=True, check=True)
    modules = set(json.loads(result.stdout.splitlines()[-1]))
    assert "webapp.tasks" in modules  # the app was built
    assert modules.isdisjoint(CONSUMER_SIDE), sorted(modules & set(CONSUMER_SIDE))


def test_the_consumer_entry_wires_the_worker(environment: dict[str, str]) -> None:
    check = ("import huey_tasks; queue = huey_tasks.consumer.queue; "
             "assert queue.executor == huey_tasks.consumer.worker.execute; "
             "assert huey_tasks.huey.create_consumer().worker is huey_tasks.consumer.worker")
    subprocess.run([sys.executable, "-c", check], cwd=PROJECT_ROOT, env=environment, check=True)
