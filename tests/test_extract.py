"""extract_archive on a real consumer: every format byte for byte, uploads, merge,
hostile archives refused, cancel leaving nothing behind, a killed worker too."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from flask import Flask

from tests.support.accounts import Account
from tests.support.files import (
    holding_lock,
    leftovers,
    make_archive,
    member,
    read_tree,
    sample_tree,
    sparse_tar,
    tar_of,
    write_tree,
)
from tests.support.processes import BIN, wait_for
from webapp.core import runtime
from webapp.core.queue import TaskQueue
from webapp.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.usefixtures("consumer")


@pytest.mark.parametrize("fmt", ["zip", "tar", "tar.gz", "tar.bz2", "tar.xz"])
def test_extracts_every_format_byte_for_byte(account: Account, tmp_path: Path, fmt: str) -> None:
    source = write_tree(tmp_path / "source", sample_tree())
    # The name says nothing: the format is told by the content.
    (account.root / "in").mkdir(parents=True)
    make_archive(source, account.root / "in" / "upload.bin", fmt)
    task_id = account.launch("extract_archive", archive_path="in/upload.bin", target="site")
    done = account.final(task_id)
    assert done["status"] == "completed", done
    assert done["progress"] == 1.0
    assert done["outcome"].startswith("Extracted 4 files")
    assert read_tree(account.root / "site") == sample_tree()
    assert leftovers(account.root) == []


def test_upload_by_multipart_post(account: Account, tmp_path: Path) -> None:
    source = write_tree(tmp_path / "source", sample_tree())
    archive = make_archive(source, tmp_path / "site.tgz", "tar.gz")
    response = account.api("POST", "/tasks", data={
        "kind": "extract_archive", "target": "site/v1",
        "archive": (io.BytesIO(archive.read_bytes()), "site.tgz"),
    })
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["description"] == "Extract site.tgz into site/v1"
    assert account.final(response.get_json()["id"])["status"] == "completed"
    assert read_tree(account.root / "site" / "v1") == sample_tree()
    # The upload was only there to be extracted.
    assert list((account.root / ".uploads").iterdir()) == []


def test_an_existing_target_needs_merge(account: Account, tmp_path: Path) -> None:
    before = {"readme.txt": b"old\n", "mine.txt": b"keep me\n"}
    write_tree(account.root / "site", before)
    original = account.root / "site" / "readme.txt"
    make_archive(write_tree(tmp_path / "s", sample_tree()), account.root / "a.zip", "zip")

    # Refused at launch, as the other path checks are; the run checks again (tests/unit).
    refused = account.api("POST", "/tasks", json={"kind": "extract_archive",
                                                   "archive_path": "a.zip", "target": "site"})
    assert refused.status_code == 400
    assert "site already exists; choose merge to extract into it" in refused.get_json()["error"]
    assert account.api("GET", "/tasks").get_json()["total"] == 0
    assert read_tree(account.root / "site") == before

    merged = account.final(account.launch("extract_archive", archive_path="a.zip",
                                          target="site", merge="true"))
    assert merged["status"] == "completed", merged
    assert read_tree(account.root / "site") == sample_tree() | {"mine.txt": b"keep me\n"}
    # The old file was replaced, not written into: anything sharing it is unchanged.
    assert original.read_bytes() == b"hello\n"
    assert leftovers(account.root) == []


HOSTILE = {
    "traversal": ([(member("../evil.txt"), b"x")], "would be written outside the target"),
    "absolute": ([(member("/tmp/evil.txt"), b"x")], "has an absolute name"),
    "escaping symlink": (
        [(member("ok.txt"), b"fine"), (member("out", tarfile.SYMTYPE, "../../.."), None)],
        "the link out points outside the target",
    ),
    "absolute symlink": ([(member("etc", tarfile.SYMTYPE, "/etc"), None)],
                         "the link etc points outside the target"),
    "escaping hard link": ([(member("pw", tarfile.LNKTYPE, "../../pw"), None)],
                           "would be written outside the target"),
    "links re-pointed later": (
        [(member("a", tarfile.DIRTYPE), None), (member("a/l", tarfile.SYMTYPE, "."), None),
         (member("b", tarfile.SYMTYPE, "a/l/.."), None),
         (member("a/l", tarfile.SYMTYPE, ".."), None)],
        "the link b points outside the target",
    ),
    "device file": ([(member("tty", tarfile.CHRTYPE), None)], "is a device file"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_tar_is_refused_and_leaves_nothing(account: Account, case: str) -> None:
    members, reason = HOSTILE[case]
    account.root.mkdir(parents=True)
    tar_of(account.root / "bad.tar", *members)
    done = account.final(account.launch("extract_archive", archive_path="bad.tar", target="site"))
    assert done["status"] == "failed"
    assert reason in done["outcome"]
    assert not (account.root / "site").exists()
    assert leftovers(account.root) == []
    assert not Path("/tmp/evil.txt").exists()


def test_zip_bomb_is_refused(account: Account) -> None:
    account.root.mkdir(parents=True)
    with zipfile.ZipFile(account.root / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("zeros", bytes(50 << 20))
    done = account.final(account.launch("extract_archive", archive_path="bomb.zip", target="b"))
    assert done["status"] == "failed"
    assert "zip bomb" in done["outcome"]
    assert not (account.root / "b").exists()


def test_truncated_and_non_archives_are_refused(account: Account, tmp_path: Path) -> None:
    whole = make_archive(write_tree(tmp_path / "s", sample_tree()), tmp_path / "t.tar", "tar")
    account.root.mkdir(parents=True)
    (account.root / "cut.tar").write_bytes(whole.read_bytes()[:200_000])
    (account.root / "notes.zip").write_bytes(b"just some text, not an archive\n" * 100)
    cut = account.final(account.launch("extract_archive", archive_path="cut.tar", target="c"))
    assert cut["status"] == "failed"
    assert "truncated" in cut["outcome"]
    text = account.final(account.launch("extract_archive", archive_path="notes.zip", target="n"))
    assert text["status"] == "failed"
    assert "is not a zip or tar archive" in text["outcome"]
    assert sorted(p.name for p in account.root.iterdir()) == [".locks", "cut.tar", "notes.zip"]


@pytest.mark.parametrize("params,message", [
    ({"archive_path": "../x.zip", "target": "s"}, "archive_path: '../x.zip' leads outside"),
    ({"archive_path": "/etc/passwd", "target": "s"}, "is an absolute path"),
    ({"archive_path": "missing.zip", "target": "s"}, "there is no file at missing.zip"),
    ({"archive_path": "a.zip", "target": "s/../../x"}, "target: 's/../../x' leads outside"),
    ({"archive_path": "a.zip", "target": "escape/x"}, "through a symbolic link"),
    ({"archive_path": "a.zip", "target": ".hidden"}, "is not a space name"),
    ({"archive_path": "a.zip", "target": "s", "merge": "maybe"}, "merge must be true or false"),
    ({"archive": "a.zip", "target": "s"}, "archive must be a file uploaded as multipart"),
    ({"target": "s"}, "upload a file as archive, or give archive_path"),
])
def test_bad_paths_are_refused_at_launch(account: Account, params: dict, message: str) -> None:
    write_tree(account.root, {"a.zip": b"PK", "escape": ("link", "/tmp")})
    response = account.api("POST", "/tasks", json={"kind": "extract_archive", **params})
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert account.api("GET", "/tasks").get_json()["total"] == 0


def test_cli_refuses_paths_outside_too(app: Flask, account: Account) -> None:
    result = app.test_cli_runner().invoke(args=[
        "tasks", "launch", "extract_archive", "--user", account.user.name,
        "archive_path=../../etc/passwd", "target=s"])
    assert result.exit_code != 0 and "leads outside your folder" in result.output


def test_large_member_is_cancelled(account: Account) -> None:
    """Stopping inside one member, within a chunk, is checked by the unit layer
    (tests/unit); how soon, by the benchmarks."""
    account.root.mkdir(parents=True)
    # 64 GiB of holes (no disk): far more than can be read before the cancel arrives, so
    # only a cancel inside the member ends it as cancelled.
    sparse_tar(account.root / "big.tar", "big.bin", 64 << 30, then={"after.txt": b"x"})
    task_id = account.launch("extract_archive", archive_path="big.tar", target="big")
    wait_for(lambda: (account.api("GET", f"/tasks/{task_id}").get_json()["progress"] or 0) > 0,
             timeout=15)
    running = account.api("GET", f"/tasks/{task_id}").get_json()
    assert running["progress_message"].startswith("Extracting big.bin (0 of 2 files, ")
    assert account.api("POST", f"/tasks/{task_id}/cancel").status_code == 202
    done = account.final(task_id)
    assert done["status"] == "cancelled"
    assert not (account.root / "big").exists()
    assert leftovers(account.root) == []


def test_names_that_are_not_utf8_are_extracted_and_reported_safely(account: Account) -> None:
    account.root.mkdir(parents=True)
    # Names made of the bytes \xff and \xfe, as a tar made on a Latin-1 system holds them.
    # The 2 GiB of holes take longer to read than a task's first half second, so progress
    # naming the member is written while the task runs.
    sparse_tar(account.root / "bytes.tar", "\udcff.bin", 2 << 30,
               then={"d\udcfe/notes.txt": b"notes\n"})
    done = account.final(account.launch("extract_archive", archive_path="bytes.tar",
                                        target="site"))
    assert done["status"] == "completed", done
    assert done["outcome"] == "Extracted 2 files (2.0 GiB) into site"
    # On disk the names are the archive's bytes, as GNU tar writes them.
    assert sorted(os.listdir(os.fsencode(account.root / "site"))) == [b"d\xfe", b"\xff.bin"]
    assert (account.root / "site" / "d\udcfe" / "notes.txt").read_bytes() == b"notes\n"


def test_cancel_while_waiting_for_the_space(account: Account, tmp_path: Path) -> None:
    make_archive(write_tree(tmp_path / "s", sample_tree()), tmp_path / "a.zip", "zip")
    account.root.mkdir(parents=True)
    (account.root / "a.zip").write_bytes((tmp_path / "a.zip").read_bytes())
    with holding_lock(account.root, "site"):
        task_id = account.launch("extract_archive", archive_path="a.zip", target="site")
        wait_for(lambda: "Waiting for another task on space site" in (
            account.api("GET", f"/tasks/{task_id}").get_json()["progress_message"] or ""))
        account.api("POST", f"/tasks/{task_id}/cancel")
        assert account.final(task_id)["status"] == "cancelled"
    assert not (account.root / "site").exists()


def test_killed_worker_leaves_the_target_untouched(
    app: Flask, account: Account, environment: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    """A consumer of our own, on a queue of its own, SIGKILLed in the middle of a merge."""
    before = {"keep.txt": b"keep\n", "big.bin": b"small before\n"}
    write_tree(account.root / "site", before)
    sparse_tar(account.root / "big.tar", "big.bin", 4 << 30)
    huey_url = f"sqlite:///{tmp_path / 'own-queue.sqlite3'}"
    own = subprocess.Popen(
        [str(BIN / "huey_consumer"), "huey_tasks.huey", "--workers", "1", "--worker-type",
         "thread", "--delay", "0.05", "--max-delay", "0.2"],
        cwd=PROJECT_ROOT, env=environment | {"HUEY_URL": huey_url},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        queue = TaskQueue(huey_url, settings.huey_name)
        with app.extensions["database"].session() as db:
            task = runtime.launch(db, queue, app.extensions["user_files"], account.user,
                                  "extract_archive",
                                  {"archive_path": "big.tar", "target": "site", "merge": True})
        wait_for(lambda: (account.task(task.id).progress or 0) > 0, timeout=15)
        os.kill(own.pid, signal.SIGKILL)
    finally:
        own.kill()
        own.wait()
    assert read_tree(account.root / "site") == before
    assert leftovers(account.root) != []  # the killed worker's staging
    # The next operation on the target clears what the killed worker left.
    tar_of(account.root / "small.tar", (member("new.txt"), b"new\n"))
    done = account.final(account.launch("extract_archive", archive_path="small.tar",
                                        target="site", merge=True))
    assert done["status"] == "completed", done
    assert read_tree(account.root / "site") == before | {"new.txt": b"new\n"}
    assert leftovers(account.root) == []


def test_more_than_the_size_limit_is_refused_before_writing(account: Account) -> None:
    account.root.mkdir(parents=True)
    sparse_tar(account.root / "huge.tar", "huge.bin", 101 << 30)  # a hole: no disk used
    done = account.final(account.launch("extract_archive", archive_path="huge.tar", target="h"))
    assert done["status"] == "failed"
    assert done["outcome"] == "Refused: the archive holds more than 100.0 GiB when extracted"
    assert not (account.root / "h").exists()
    assert leftovers(account.root) == []


def test_more_members_than_the_limit_are_refused(account: Account) -> None:
    account.root.mkdir(parents=True)
    with tarfile.open(account.root / "many.tar", "w") as archive:
        for number in range(100_001):  # EXTRACT_MAX_MEMBERS is 100000 by default
            archive.addfile(tarfile.TarInfo(f"f{number}"))
    done = account.final(account.launch("extract_archive", archive_path="many.tar", target="m"))
    assert done["status"] == "failed"
    assert done["outcome"] == "Refused: the archive has more than 100000 members"
    assert not (account.root / "m").exists()
    assert leftovers(account.root) == []
