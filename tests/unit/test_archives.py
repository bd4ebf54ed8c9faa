"""Archives as everyday tools write them, extracted as GNU tar and unzip extract them, and
what a user's archive must never do: end in "unexpected error". Called directly with a
test context (tests/support/context.py); where `zip`, `unzip` or GNU `tar` are installed,
their own archives and their own results are compared too."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.context import run
from tests.support.files import member, read_tree, tar_of, write_tree
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


def test_zip_names_in_a_unicode_path_field_are_taken(tmp_path: Path) -> None:
    # WinZip and Info-ZIP on a Latin-1 system store the local name and, beside it, its UTF-8
    # form with the local name's CRC-32; a field for another name is ignored.
    def entry(local: str, utf8: str, crc_of: bytes) -> zipfile.ZipInfo:
        info = made_on(local, 3, 0o100644)
        field = b"\x01" + zlib.crc32(crc_of).to_bytes(4, "little") + utf8.encode()
        info.extra = struct.pack("<HH", 0x7075, len(field)) + field
        return info

    made = zip_of(tmp_path / "x.zip", (entry("cafX.txt", "caf\u00e9.txt", b"caf\xe9.txt"), b"1"),
                  (entry("staleX.txt", "other.txt", b"renamed.txt"), b"2"))
    made.write_bytes(made.read_bytes().replace(b"cafX", b"caf\xe9").replace(b"staleX", b"stale!"))
    extract(tmp_path, "x.zip")
    assert read_tree(tmp_path / "out") == {"caf\u00e9.txt": b"1", "stale!.txt": b"2"}
    if shutil.which("unzip"):
        subprocess.run(["unzip", "-q", str(made), "-d", str(tmp_path / "theirs")], check=True)
        assert read_tree(tmp_path / "theirs") == read_tree(tmp_path / "out")

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




def gzip_header_cut_short(folder: Path) -> bytes:
    return b"\x1f\x8b\x08\x04"  # a gzip header announcing an extra field, then the end


def zip_with_an_offset_before_its_start(folder: Path) -> bytes:
    data = zip_of(folder / "z.zip", ("a.txt", b"a")).read_bytes()
    # The end record's offset of the central directory (at 16 in it) made larger than the
    # file: zipfile takes the difference for bytes prepended, and seeks before the start.
    end = data.index(b"PK\x05\x06")
    return data[:end + 16] + (1 << 20).to_bytes(4, "little") + data[end + 20:]


@pytest.mark.parametrize(("make", "message"), [
    (gzip_header_cut_short, "is not a zip or tar archive"),
    (zip_with_an_offset_before_its_start, "damaged or truncated"),
])
def test_damage_that_python_reads_badly_is_refused_in_words(tmp_path: Path, make,
                                                            message: str) -> None:
    (tmp_path / "upload").write_bytes(make(tmp_path))
    with pytest.raises(OperationError, match=message):
        extract(tmp_path, "upload")
    assert not (tmp_path / "out").exists()

# -- the corpus: archives as real tools write them, all extracted -------------------------


def tool(name: str) -> str:
    """A reference tool's path; without it the test skips, except under CI=true (`make
    test` installs zip and unzip; GNU tar comes with the system)."""
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs `{name}` for the archive corpus: run `make test`")
        pytest.skip(f"no `{name}` here: `make browser` (or `make test`) installs zip and unzip")
    return found


LONG = "folder-with-a-long-name-" + "d" * 40
TREE: dict[str, Any] = {
    "readme.txt": b"hello\n",
    "empty": {},
    "cafe\u0301.txt": b"a name in NFD, as macOS writes it\n",
    LONG: {"and-a-file-whose-whole-path-is-over-100-bytes-" + "f" * 30 + ".txt": b"long\n"},
    "bin": {"run.sh": b"#!/bin/sh\necho hi\n"},
    "latest": ("link", "readme.txt"),
}
# What a tool that follows links (zip without -y, zipfile.write) stores for `latest`.
FOLLOWED = TREE | {"latest": b"hello\n"}


class Unseekable:
    """A pipe, as far as zipfile can tell: it then writes data descriptors."""

    def __init__(self, out: Any) -> None:
        self.out = out

    def write(self, data: bytes) -> int:
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


def with_source(build: Callable[[Path, Path], None]) -> Callable[[Path], Path]:
    """An archive made by `build(source folder, archive)` from TREE."""

    def make(folder: Path) -> Path:
        source = write_tree(folder / "source", TREE)
        (source / "bin" / "run.sh").chmod(0o755)
        build(source, folder / "archive")
        return folder / "archive"

    return make


def run_tool(*command: str, cwd: Path) -> None:
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)


def by_zip(*flags: str) -> Callable[[Path], Path]:
    def build(source: Path, archive: Path) -> None:
        # zip adds ".zip" to a name without one.
        run_tool(tool("zip"), "-q", "-r", *flags, f"{archive}.zip", ".", cwd=source)
        Path(f"{archive}.zip").rename(archive)

    return with_source(build)


def zip_to_stdout(source: Path, archive: Path) -> None:
    with open(archive, "wb") as out:
        subprocess.run([tool("zip"), "-q", "-r", "-y", "-", "."], cwd=source, stdout=out,
                       check=True)


def by_gnu_tar(*flags: str) -> Callable[[Path], Path]:
    return with_source(lambda source, archive: run_tool(
        tool("tar"), *flags, "-cf", str(archive), ".", cwd=source))


def zipfile_write(source: Path, archive: Path) -> None:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(source.rglob("*")):
            out.write(path, path.relative_to(source).as_posix())


def zipfile_writestr(folder: Path) -> Path:
    """Names and bytes only, as a program that makes zips in memory does."""
    with zipfile.ZipFile(folder / "archive", "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in flat(FOLLOWED):
            out.writestr(name, data)
    return folder / "archive"


def zip_stream(folder: Path) -> Path:
    with open(folder / "archive", "wb") as raw, zipfile.ZipFile(Unseekable(raw), "w") as out:
        for name, data in flat(FOLLOWED):
            out.writestr(name, data)
    return folder / "archive"


def zip64(folder: Path) -> Path:
    with zipfile.ZipFile(folder / "archive", "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in flat(FOLLOWED):
            with out.open(name, "w", force_zip64=True) as one:
                one.write(data)
    return folder / "archive"


def macos(folder: Path) -> Path:
    """Finder's "Compress": AppleDouble `._` files under __MACOSX/, plain files to unzip."""
    double = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(16)
    with zipfile.ZipFile(folder / "archive", "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr(made_on("site/", 3, 0o040755), b"")
        out.writestr(made_on("site/index.html", 3, 0o100644), b"<h1>hi</h1>")
        out.writestr(made_on("__MACOSX/site/._index.html", 3, 0o100644), double)
        out.writestr(made_on("site/.DS_Store", 3, 0o100644), b"\x00\x00\x00\x01Bud1")
    return folder / "archive"


MACOS_TREE = {"site": {"index.html": b"<h1>hi</h1>", ".DS_Store": b"\x00\x00\x00\x01Bud1"},
              "__MACOSX": {"site": {"._index.html": b"\x00\x05\x16\x07\x00\x02\x00\x00"
                                                     b"Mac OS X        " + bytes(16)}}}


def tarfile_of(form: int) -> Callable[[Path], Path]:
    def build(source: Path, archive: Path) -> None:
        with tarfile.open(archive, "w:gz", format=form) as out:
            for path in sorted(source.rglob("*")):
                out.add(path, path.relative_to(source).as_posix(), recursive=False)

    return with_source(build)


def sparse_by_gnu_tar(folder: Path) -> Path:
    """A sparse member, as `tar -S` stores a disk image: 64 MiB, three bytes of data."""
    source = folder / "source"
    source.mkdir()
    with open(source / "disk.img", "wb") as image:
        image.seek(64 << 20)
        image.write(b"end")
    run_tool(tool("tar"), "-S", "--format=gnu", "-cf", str(folder / "archive"), ".", cwd=source)
    return folder / "archive"


def flat(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, bytes]]:
    """A tree as zip entries: folders end in '/'."""
    entries: list[tuple[str, bytes]] = []
    for name, value in tree.items():
        if isinstance(value, dict):
            entries += [(f"{prefix}{name}/", b""), *flat(value, f"{prefix}{name}/")]
        else:
            entries.append((f"{prefix}{name}", value))
    return entries


CORPUS: dict[str, tuple[Callable[[Path], Path], dict[str, Any] | None, str | None]] = {
    # name: (make the archive in a folder, the tree expected, the reference tool)
    "Info-ZIP zip": (by_zip(), FOLLOWED, "unzip"),
    "Info-ZIP zip -y (links)": (by_zip("-y"), TREE, "unzip"),
    "Info-ZIP zip -fz (zip64)": (by_zip("-y", "-fz"), TREE, "unzip"),
    "Info-ZIP zip to a pipe (data descriptors)": (with_source(zip_to_stdout), TREE, "unzip"),
    "zipfile.write": (with_source(zipfile_write), FOLLOWED, "unzip"),
    "zipfile.writestr": (zipfile_writestr, FOLLOWED, "unzip"),
    "zipfile to a stream (data descriptors)": (zip_stream, FOLLOWED, "unzip"),
    "zipfile zip64": (zip64, FOLLOWED, "unzip"),
    "macOS Finder": (macos, MACOS_TREE, "unzip"),
    "tarfile GNU, long names": (tarfile_of(tarfile.GNU_FORMAT), TREE, "tar"),
    "tarfile pax, long names": (tarfile_of(tarfile.PAX_FORMAT), TREE, "tar"),
    "GNU tar": (by_gnu_tar("--format=gnu"), TREE, "tar"),
    "GNU tar pax": (by_gnu_tar("--format=pax"), TREE, "tar"),
    "GNU tar -S (sparse)": (sparse_by_gnu_tar, None, "tar"),
}


@pytest.mark.parametrize("case", list(CORPUS))
def test_the_corpus_extracts_as_the_tools_do(tmp_path: Path, case: str) -> None:
    make, expected, reference = CORPUS[case]
    archive = make(tmp_path)
    root = tmp_path / "user"
    root.mkdir()
    archive.rename(root / "upload")
    assert extract(root, "upload").startswith("Extracted ")
    ours = read_tree(root / "out")
    if expected is not None:
        assert ours == expected
    if reference is not None and shutil.which(reference):
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        command = ([reference, "-q", str(root / "upload"), "-d", str(theirs)]
                   if reference == "unzip" else [reference, "-xf", str(root / "upload"),
                                                 "-C", str(theirs)])
        subprocess.run(command, check=True, capture_output=True)
        assert ours == read_tree(theirs)
