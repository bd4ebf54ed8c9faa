"""What the pages say in words: kinds, strategies and parameters by their labels, short
durations, and when a task started and was created."""

from __future__ import annotations

import re
from datetime import timedelta

from tests.support.accounts import Account
from webapp.core.models import Status, utcnow


def row_of(account: Account, task_id: str) -> str:
    page = account.client.get("/tasks", headers=account.bearer).get_data(as_text=True)
    found = re.search(rf'<tr id="task-{task_id}".*?</tr>', page, re.S)
    assert found, page
    return found.group(0)


def test_kinds_and_parameters_in_words_while_the_json_keeps_its_keys(account: Account) -> None:
    extract = account.add_task(Status.COMPLETED, kind="extract_archive", params={
        "archive_path": ".uploads/434105ee0e79/course.zip", "target": "site", "merge": False})
    distribute = account.add_task(Status.COMPLETED, kind="distribute", params={
        "source": "site/docs", "targets": ["a", "b"], "strategy": "ignore_existing"})
    row = row_of(account, extract.id)
    assert "Extract an archive" in row and "extract_archive" not in row.split('class="kind"')[1]
    page = account.client.get(f"/tasks/{extract.id}", headers=account.bearer).get_data(
        as_text=True)
    facts = page.split('class="params"')[1]
    assert "<dt>Archive path</dt><dd>course.zip (uploaded)</dd>" in facts
    assert "<dt>Merge into an existing folder</dt><dd>no</dd>" in facts
    assert ".uploads" not in facts
    page = account.client.get(f"/tasks/{distribute.id}", headers=account.bearer).get_data(
        as_text=True)
    facts = page.split('class="params"')[1]
    assert "<dt>Strategy</dt><dd>Keep existing files</dd>" in facts
    assert "<dt>Target spaces</dt><dd>a, b</dd>" in facts
    assert "<dt>Operation</dt><dd>Distribute to spaces</dd>" in page
    body = account.api("GET", f"/tasks/{extract.id}").get_json()
    assert body["kind"] == "extract_archive"


def test_a_short_duration_is_not_zero_seconds(account: Account) -> None:
    started = utcnow() - timedelta(minutes=1)
    quick = account.add_task(Status.COMPLETED, started_at=started,
                             finished_at=started + timedelta(milliseconds=40))
    row = row_of(account, quick.id)
    assert "took under a second" in row and "0.0 s" not in row


def test_start_time_is_when_it_started_and_when_it_was_created_if_earlier(
        account: Account) -> None:
    created = utcnow() - timedelta(hours=1)
    late = account.add_task(Status.COMPLETED, created_at=created,
                            started_at=created + timedelta(minutes=5),
                            finished_at=created + timedelta(minutes=6))
    cell = row_of(account, late.id).split('class="col-time"')[1]
    started = cell.index(f'datetime="{(created + timedelta(minutes=5)):%Y-%m-%dT%H:%M:%S}Z"')
    assert started < cell.index("created <time")
    never = account.add_task(Status.CANCELLED, started_at=None, heartbeat_at=None)
    cell = row_of(account, never.id).split('class="col-time"')[1]
    assert cell.count("<time") == 1 and "created <time" in cell and "never started" in cell
    prompt = account.add_task(Status.COMPLETED)
    assert "created" not in row_of(account, prompt.id).split('class="col-time"')[1]
