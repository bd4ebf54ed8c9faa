"""The `demo` seeding on a real consumer: real spaces and files, real operations, and rows
that say what the operations did (a failure that really failed, a task run later)."""

from __future__ import annotations

import pytest

from tests.support.accounts import Account, seed_demo
from webapp.dev.demo import course_files

pytestmark = pytest.mark.usefixtures("consumer")


def test_demo_runs_the_real_operations_on_real_spaces(account: Account) -> None:
    ids = seed_demo(account, later=1)
    final = {task_id: account.final(task_id) for task_id in ids}
    kinds = [final[task_id]["kind"] for task_id in ids]
    assert kinds == ["extract_archive", "distribute", "rest_space", "extract_archive",
                     "rest_space", "wake_space", "distribute"]
    statuses = [final[task_id]["status"] for task_id in ids]
    assert statuses == ["completed", "completed", "completed", "failed", "completed",
                        "completed", "cancelled"]
    extracted, distributed, rested, damaged, *_ = (final[task_id] for task_id in ids)
    assert extracted["outcome"].startswith("Extracted 8 files")
    course = course_files("Physics 102: Waves and optics")
    for name, text in course.items():
        assert (account.root / "physics-102" / name).read_text() == text
    syllabus = (account.root / "physics-101" / "syllabus.html").read_text()
    for space in ("chemistry-201", "biology-110"):
        assert (account.root / space / "syllabus.html").read_text() == syllabus
    assert distributed["outcome"].startswith("Distributed physics-101/syllabus.html")
    assert rested["outcome"].startswith("Resting: history-2024")
    assert "damaged" in damaged["outcome"] or "truncated" in damaged["outcome"], damaged
    assert not (account.root / "physics-101" / "week-5").exists()
    spaces = account.api("GET", "/spaces").get_json()["spaces"]
    assert {"name": "history-2024", "state": "resting"} in spaces
    assert {s["name"] for s in spaces} >= {"physics-101", "physics-102", "chemistry-201",
                                           "biology-110", "archive-2023"}


def test_a_task_launched_for_later_says_when_it_runs(account: Account) -> None:
    ids = seed_demo(account, later=3600)
    scheduled = ids[5]
    assert account.api("GET", f"/tasks/{scheduled}").get_json()["status"] == "queued"
    account.login()
    row = account.client.get("/tasks").get_data(as_text=True)
    assert "runs at <time" in row
    page = account.client.get(f"/tasks/{scheduled}").get_data(as_text=True)
    assert "Runs at" in page and "waiting for a worker" not in page.lower()
    account.api("POST", f"/tasks/{scheduled}/cancel")
