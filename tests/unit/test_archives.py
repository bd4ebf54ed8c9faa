"""Archives as everyday tools write them, extracted as GNU tar and unzip extract them, and
what a user's archive must never do: end in "unexpected error". Called directly with a
test context (tests/support/context.py); where `zip`, `unzip` or GNU `tar` are installed,
their own archives and their own results are compared too."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.context import run
from tests.support.files import member, read_tree, tar_of
from webapp.core.runtime import OperationError
from webapp.settings import ArchiveLimits

LIMITS = ArchiveLimits()


def extract(root: Path, archive: str, target: str = "out") -> str:
    outcome, _ = run("extract_archive", root, {"archive_path": archive, "target": target},
                     settings=LIMITS)
    return outcome


def zip_of(dest: Path, *entries: tuple[zipfile.ZipInfo | str, bytes]) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return dest


def made_on(name: str, system: int, mode: int = 0, *, attr: int = 0) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = system
    info.external_attr = (mode << 16) | attr
    return info


# -- what everyday tools write, refused or broken before --------------------------------


def test_zip_from_writestr_with_permissions_but_no_file_type(tmp_path: Path) -> None:
    # zipfile.writestr(name, data) stores 0o600 and no type: a plain file to unzip.
    zip_of(tmp_path / "w.zip", ("notes.txt", b"notes"), ("bin/run.sh", b"#!/bin/sh\n"),
           (made_on("tool", 3, 0o755), b"x"))
    assert extract(tmp_path, "w.zip").startswith("Extracted 3 files")
    assert read_tree(tmp_path / "out") == {"notes.txt": b"notes", "tool": b"x",
                                           "bin": {"run.sh": b"#!/bin/sh\n"}}
    assert (tmp_path / "out" / "tool").stat().st_mode & 0o111


def test_zip_type_bits_count_only_from_a_unix_maker(tmp_path: Path) -> None:
    # A DOS maker's high attribute bits are no Unix mode: a "link" there is a file.
    zip_of(tmp_path / "d.zip", (made_on("link", 0, 0o120777), b"target"),
           (made_on("fifo", 3, 0o010644), b"data"))
    extract(tmp_path, "d.zip")
    assert read_tree(tmp_path / "out") == {"link": b"target", "fifo": b"data"}


def test_zip_made_on_dos_uses_backslashes(tmp_path: Path) -> None:
    zip_of(tmp_path / "dos.zip", (made_on("docs\\", 0, attr=0x10), b""),
           (made_on("docs\\guide\\a.txt", 0, attr=0x20), b"a"),
           (made_on("b\\c.txt", 3, 0o100644), b"a Unix name holding a backslash"))
    extract(tmp_path, "dos.zip")
    assert read_tree(tmp_path / "out") == {"docs": {"guide": {"a.txt": b"a"}},
                                           "b\\c.txt": b"a Unix name holding a backslash"}
    zip_of(tmp_path / "up.zip", (made_on("..\\up.txt", 0), b"x"))
    with pytest.raises(OperationError, match="outside the target"):
        extract(tmp_path, "up.zip", "up")


def test_zip_names_from_a_unix_maker_are_its_bytes(tmp_path: Path) -> None:
    # Info-ZIP on Linux stores UTF-8 names without the UTF-8 flag: unzip writes the bytes.
    plain = zip_of(tmp_path / "u.zip", (made_on("cafXX.txt", 3, 0o100644), b"x"))
    plain.write_bytes(plain.read_bytes().replace(b"cafXX", "caf\u00e9".encode()))
    extract(tmp_path, "u.zip")
    assert read_tree(tmp_path / "out") == {"caf\u00e9.txt": b"x"}


def test_zip_marked_utf8_with_a_name_that_is_not(tmp_path: Path) -> None:
    good = zip_of(tmp_path / "bad.zip", ("caf\u00e9.txt", b"x")).read_bytes()
    # The same length in bytes: \xc3\xa9 (UTF-8 for é) becomes \xff\xfe.
    (tmp_path / "bad.zip").write_bytes(good.replace("caf\u00e9".encode(), b"caf\xff\xfe"))
    with pytest.raises(OperationError, match="marked as UTF-8 but is not valid UTF-8"):
        extract(tmp_path, "bad.zip")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("members", "message"), [
    ([(member("x"), b"file"), (member("x/y"), b"in it")], "x would be both a file and a folder"),
    ([(member("x"), b"file"), (member("x/y/z"), b"deep")], "x would be both a file and a folder"),
    ([(member("x"), b"file"), (member("x", tarfile.DIRTYPE), None)],
     "x would be both a file and a folder"),
    ([(member("x", tarfile.DIRTYPE), None), (member("x/a"), b"a"), (member("x"), b"file")],
     "x would be both a file and a folder"),
    ([(member("l", tarfile.SYMTYPE, "gone"), None), (member("l/y"), b"y")],
     "l/y would go through the link l, which leads to no folder"),
])
def test_a_name_both_file_and_folder_is_refused_in_words(
    tmp_path: Path, members: list[Any], message: str
) -> None:
    tar_of(tmp_path / "clash.tar", *members)
    with pytest.raises(OperationError, match=message):
        extract(tmp_path, "clash.tar")
    assert not (tmp_path / "out").exists()

