"""The per-user disk quota (webapp.operations.quota): what a user's files take, and
extraction refusing an archive that would pass it, before writing and as it writes,
leaving the target as it was."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from tests.support.context import run
from tests.support.files import leftovers, read_tree, sparse_file, write_tree
from webapp.core.runtime import OperationError
from webapp.operations.quota import Quota, usage
from webapp.settings import ArchiveLimits, Settings

KIB = 1024


def test_usage_counts_every_file_once_and_links_as_nothing(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a": {"one": b"x" * 100, "link": ("link", "one")},
                          ".snapshots": {"b.tar": b"y" * 50}, "empty": {}})
    os.link(tmp_path / "a" / "one", tmp_path / "a" / "same")  # a merge's staged copy, say
    sparse_file(tmp_path / "disk.img", 1000)  # apparent size, holes and all
    assert usage(tmp_path) == 100 + 50 + 1000
    assert usage(tmp_path / "missing") == 0


def test_a_quota_refuses_before_and_stops_while_writing(tmp_path: Path) -> None:
    write_tree(tmp_path, {"mine.bin": b"m" * 600})
    quota = Quota(tmp_path, 1000)
    quota.check(400)
    with pytest.raises(OperationError, match="needs 401 bytes, and your files would then take "
                                             "more than your quota of 1000 bytes"):
        quota.check(401)
    quota.spend(400)
    with pytest.raises(OperationError, match="reached your quota of 1000 bytes"):
        quota.spend(1)
    unlimited = Quota(tmp_path, 0)
    unlimited.check(10 << 40)
    unlimited.spend(10 << 40)


def quota_root(tmp_path: Path, archive: str) -> Path:
    """A user with 6 KiB of files and an archive of two 2 KiB members."""
    write_tree(tmp_path, {"site": {"old.bin": b"o" * (6 * KIB)}})
    mode = "w:gz" if archive.endswith(".gz") else "w"
    with tarfile.open(tmp_path / archive, mode) as out:
        for name in ("one.bin", "two.bin"):
            info = tarfile.TarInfo(name)
            info.size = 2 * KIB
            out.addfile(info, io.BytesIO(name.encode() * (2 * KIB // 7 + 1)))
    return tmp_path


@pytest.mark.parametrize("archive", ["a.tar", "a.tar.gz"])
def test_extraction_past_the_quota_is_refused_and_leaves_nothing(
    tmp_path: Path, archive: str
) -> None:
    root = quota_root(tmp_path, archive)
    before = read_tree(root / "site")
    used = usage(root)
    # Room for the first member, not the second: an uncompressed tar is refused before
    # anything is written, a compressed one when the second member's header comes.
    limits = ArchiveLimits(user_quota_bytes=used + 3 * KIB)
    with pytest.raises(OperationError, match="your quota of"):
        run("extract_archive", root, {"archive_path": archive, "target": "site/new"},
            settings=limits)
    assert read_tree(root / "site") == before
    assert leftovers(root / "site") == []
    outcome, _ = run("extract_archive", root, {"archive_path": archive, "target": "site/new"},
                     settings=ArchiveLimits(user_quota_bytes=used + 4 * KIB))
    assert outcome.startswith("Extracted 2 files")


def test_the_quota_is_a_setting(tmp_path: Path) -> None:
    env = {"INSTANCE_PATH": str(tmp_path)}
    assert Settings.from_env(env).user_quota_bytes == 0  # no limit unless set
    assert Settings.from_env(env | {"USER_QUOTA_BYTES": "5000"}).user_quota_bytes == 5000
