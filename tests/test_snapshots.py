"""rest_space and wake_space on a real consumer: a round trip byte for byte, the states the
spaces page shows, a damaged snapshot, and the lock that keeps two tasks apart."""

from __future__ import annotations

import pytest

from tests.support.accounts import Account
from tests.support.files import (
    holding_lock,
    leftovers,
    read_tree,
    sample_tree,
    sparse_file,
    write_tree,
)
from tests.support.processes import wait_for
from webapp.core.userfiles import snapshot_of

pytestmark = pytest.mark.usefixtures("consumer")


def states(account: Account) -> dict[str, str]:
    body = account.api("GET", "/spaces").get_json()
    return {space["name"]: space["state"] for space in body["spaces"]}


def test_rest_and_wake_round_trip(account: Account) -> None:
    write_tree(account.root / "lab", sample_tree())
    (account.root / "lab" / "docs" / "deep" / "b.bin").chmod(0o755)
    rested = account.final(account.launch("rest_space", space="lab"))
    assert rested["status"] == "completed", rested
    assert rested["progress"] == 1.0
    assert rested["outcome"].startswith("Resting: lab is kept as a snapshot of")
    assert not (account.root / "lab").exists()
    assert states(account) == {"lab": "resting"}

    woken = account.final(account.launch("wake_space", space="lab"))
    assert woken["status"] == "completed", woken
    assert woken["progress"] == 1.0
    assert read_tree(account.root / "lab") == sample_tree()
    assert (account.root / "lab" / "docs" / "deep" / "b.bin").stat().st_mode & 0o111
    assert states(account) == {"lab": "awake"}
    assert not snapshot_of(account.root, "lab")[0].exists()

    again = account.final(account.launch("wake_space", space="lab"))
    assert again["status"] == "completed"
    assert again["outcome"] == "already awake"
    assert leftovers(account.root) == []


def test_a_damaged_snapshot_stays_resting(account: Account) -> None:
    write_tree(account.root / "lab", sample_tree())
    assert account.final(account.launch("rest_space", space="lab"))["status"] == "completed"
    snapshot = snapshot_of(account.root, "lab")[0]
    data = bytearray(snapshot.read_bytes())
    data[2000] ^= 0xFF
    snapshot.write_bytes(bytes(data))
    woken = account.final(account.launch("wake_space", space="lab"))
    assert woken["status"] == "failed"
    assert "damaged" in woken["outcome"]
    assert states(account) == {"lab": "resting"}
    assert snapshot.read_bytes() == bytes(data)
    assert leftovers(account.root) == []


def test_operations_on_one_space_wait_for_each_other(account: Account) -> None:
    write_tree(account.root / "lab", sample_tree())
    with holding_lock(account.root, "lab"):
        task_id = account.launch("rest_space", space="lab")
        wait_for(lambda: "Waiting for another task on space lab" in (
            account.api("GET", f"/tasks/{task_id}").get_json()["progress_message"] or ""))
        assert read_tree(account.root / "lab") == sample_tree()
    assert account.final(task_id)["status"] == "completed"
    assert states(account) == {"lab": "resting"}


@pytest.mark.parametrize("kind", ["rest_space", "wake_space"])
def test_cancel_leaves_the_space_as_it_was(account: Account, kind: str) -> None:
    write_tree(account.root / "lab", sample_tree())
    if kind == "wake_space":
        assert account.final(account.launch("rest_space", space="lab"))["status"] == "completed"
    before = states(account)
    with holding_lock(account.root, "lab"):
        task_id = account.launch(kind, space="lab")
        wait_for(lambda: account.api("GET", f"/tasks/{task_id}").get_json()["progress_message"])
        account.api("POST", f"/tasks/{task_id}/cancel")
        assert account.final(task_id)["status"] == "cancelled"
    assert states(account) == before
    if kind == "rest_space":
        assert read_tree(account.root / "lab") == sample_tree()
    assert leftovers(account.root) == []


def test_unknown_space_is_400(account: Account) -> None:
    response = account.api("POST", "/tasks", json={"kind": "wake_space", "space": "nowhere"})
    assert response.status_code == 400
    assert "there is no space named 'nowhere'" in response.get_json()["error"]


def test_cancel_while_archiving_keeps_the_space_awake(account: Account) -> None:
    write_tree(account.root / "lab", sample_tree())
    sparse_file(account.root / "lab" / "disk.img", 512 << 20)
    task_id = account.launch("rest_space", space="lab")
    wait_for(lambda: (account.api("GET", f"/tasks/{task_id}").get_json()["progress"] or 0) > 0,
             timeout=15, interval=0.02)
    account.api("POST", f"/tasks/{task_id}/cancel")
    assert account.final(task_id)["status"] == "cancelled"
    assert states(account) == {"lab": "awake"}
    assert {p.name for p in (account.root / "lab").iterdir()} == {*sample_tree(), "disk.img"}
    assert not snapshot_of(account.root, "lab")[0].exists()
    assert leftovers(account.root) == leftovers(account.root / ".snapshots") == []


def test_resting_twice_says_so(account: Account) -> None:
    write_tree(account.root / "lab", {"f": b"1"})
    assert account.final(account.launch("rest_space", space="lab"))["status"] == "completed"
    again = account.final(account.launch("rest_space", space="lab"))
    assert (again["status"], again["outcome"]) == ("completed", "already resting")
