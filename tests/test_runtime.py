"""The tracked-task runtime against a real consumer process: launch, run, fail, cancel."""

from __future__ import annotations

from datetime import timedelta

import pytest
from huey.constants import EmptyData

from tests.support.accounts import Account
from tests.support.processes import wait_for
from webapp.core import runtime
from webapp.core.models import Status, utcnow
from webapp.core.runtime import TaskContext

pytestmark = pytest.mark.usefixtures("consumer")


def launch(account: Account, **params: object) -> str:
    response = account.api("POST", "/tasks", json={"kind": "sleep", **params})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def status_of(account: Account, task_id: str) -> dict:
    return account.api("GET", f"/tasks/{task_id}").get_json()


def test_launch_runs_to_completion(account: Account) -> None:
    task_id = launch(account, seconds=0.6, steps=3)
    assert status_of(account, task_id)["status"] in ("queued", "running")
    done = wait_for(lambda: (t := status_of(account, task_id))["status"] == "completed" and t)
    assert done["outcome"] == "Slept 0.6 s in 3 steps"
    assert done["progress"] == 1.0
    assert done["started_at"] and done["finished_at"]
    assert done["duration_seconds"] >= 0.6


def test_progress_is_reported_while_running(account: Account) -> None:
    task_id = launch(account, seconds=3, steps=6)
    running = wait_for(lambda: (t := status_of(account, task_id))["progress"] and t)
    assert running["status"] == "running"
    assert 0 < running["progress"] < 1
    assert running["progress_message"].startswith("Step ")
    account.api("POST", f"/tasks/{task_id}/cancel")


def test_failure_shows_what_went_wrong(account: Account) -> None:
    task_id = launch(account, seconds=0, steps=1, fail="The archive is corrupt")
    failed = wait_for(lambda: (t := status_of(account, task_id))["status"] == "failed" and t)
    assert failed["outcome"] == "The archive is corrupt"
    assert failed["finished_at"]


def test_cancel_queued_task_never_runs(app, account: Account) -> None:
    queue = app.extensions["task_queue"]
    with app.extensions["database"].session() as db:
        task = runtime.launch(db, queue, app.extensions["user_files"], account.user, "sleep",
                              {"seconds": "0"}, delay=1.0)
    response = account.api("POST", f"/tasks/{task.id}/cancel")
    assert response.status_code == 202
    assert response.get_json()["status"] == "cancelled"
    assert response.get_json()["outcome"] == "Cancelled by user"
    # The delayed message comes due, and is dropped: the task never starts.
    wait_for(lambda: queue.huey.get_raw(f"r:{task.id}", peek=True) is EmptyData, timeout=10)
    record = account.task(task.id)
    assert record.status == Status.CANCELLED
    assert record.started_at is None


def test_cancel_running_task_stops_at_its_next_checkpoint(account: Account) -> None:
    """How soon it stops is measured by bench/latency.py (cancel -> cancelled)."""
    task_id = launch(account, seconds=60, steps=1200)  # a checkpoint every 50 ms
    wait_for(lambda: status_of(account, task_id)["status"] == "running")
    response = account.api("POST", f"/tasks/{task_id}/cancel")
    assert response.status_code == 202
    assert response.get_json()["cancel_requested"] is True
    final = account.final(task_id)
    assert final["status"] == "cancelled"
    assert final["outcome"] == "Cancelled by user"


def test_running_task_shows_cancelling_until_it_stops(account: Account) -> None:
    task_id = launch(account, seconds=60, steps=6)  # a checkpoint every 10 s
    wait_for(lambda: status_of(account, task_id)["status"] == "running")
    # Past its first checkpoint, which comes right after the claim: the next is 10 s on.
    interval = timedelta(seconds=TaskContext.CHECKPOINT_INTERVAL)
    wait_for(lambda: utcnow() - account.task(task_id).started_at > 2 * interval)
    assert account.api("POST", f"/tasks/{task_id}/cancel").status_code == 202
    row = account.client.get(f"/tasks/{task_id}", headers=account.bearer).get_data(as_text=True)
    assert "Cancelling…" in row
    # A second cancel is harmless.
    again = account.api("POST", f"/tasks/{task_id}/cancel")
    assert again.status_code == 202
    assert again.get_json()["status"] == "running"
    wait_for(lambda: status_of(account, task_id)["status"] == "cancelled", timeout=15)


def test_cancel_finished_task_is_409(account: Account) -> None:
    task_id = launch(account, seconds=0, steps=1)
    wait_for(lambda: status_of(account, task_id)["status"] == "completed")
    response = account.api("POST", f"/tasks/{task_id}/cancel")
    assert response.status_code == 409
    assert "already completed" in response.get_json()["error"]
    assert status_of(account, task_id)["status"] == "completed"


def test_cli_launch_is_run_by_the_consumer(app, account: Account) -> None:
    result = app.test_cli_runner().invoke(
        args=["tasks", "launch", "sleep", "--user", account.user.name, "seconds=0.2", "steps=2"]
    )
    assert result.exit_code == 0, result.output
    task_id = result.output.strip()
    wait_for(lambda: status_of(account, task_id)["status"] == "completed")
