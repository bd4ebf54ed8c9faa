"""Properties of extraction over archives Hypothesis makes and mutates: whatever a user
uploads, nothing is written outside the target, the task never ends in "unexpected
error", and the target is whole or absent.

Bounded and reproducible: a fixed number of examples per property, derandomized, no
example database (CI runs exactly what a developer runs).
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.context import run
from tests.support.files import leftovers, make_archive, sample_tree, write_tree
from webapp.core.runtime import OperationError
from webapp.core.userfiles import LOCKS
from webapp.operations.archive_reader import _Header
from webapp.settings import ArchiveLimits

BOUNDED = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow])
LIMITS = ArchiveLimits(max_bytes=1 << 20, max_members=50)

# Parts of names an archive may hold: ordinary, hostile, undecodable, too long.
PARTS = st.sampled_from(["a", "b", "c", "..", ".", "", "\udcff", "caf\u00e9", "a\\b", "..\\x",
                         "C:", " ", "x" * 300, "~", "-", ".a"])
NAMES = st.builds(
    lambda lead, parts, trail: lead + "/".join(parts) + trail,
    st.sampled_from(["", "", "", "/", "./", "\\"]),
    st.lists(PARTS, min_size=1, max_size=5),
    st.sampled_from(["", "", "/"]),
)
TAR_TYPES = st.sampled_from([tarfile.REGTYPE, tarfile.REGTYPE, tarfile.DIRTYPE,
                             tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE])
TAR_MEMBERS = st.lists(st.tuples(NAMES, TAR_TYPES, NAMES, st.binary(max_size=64)),
                       min_size=1, max_size=8)
# A zip stores names as UTF-8 or cp437: no surrogates. Modes with and without a type.
ZIP_MODES = st.sampled_from([0, 0o600, 0o100644, 0o100755, 0o040755, 0o120777, 0o010644,
                             0o020644, 0o170777])
# Extra fields: none, any bytes, or a Unicode Path field (0x7075) of any content.
EXTRAS = st.one_of(st.just(b""), st.binary(max_size=24), st.binary(max_size=20).map(
    lambda field: (0x7075).to_bytes(2, "little") + len(field).to_bytes(2, "little") + field))
ZIP_MEMBERS = st.lists(
    st.tuples(NAMES.filter(lambda name: "\udcff" not in name), st.sampled_from([0, 3, 11]),
              ZIP_MODES, st.binary(max_size=64), EXTRAS),
    min_size=1, max_size=8)


@contextmanager
def jail() -> Iterator[Path]:
    """A user's root with neighbours a hostile archive might reach for: a secret beside
    the root, another user's folder, and a space of the user's own beside the target."""
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        write_tree(base, {"secret.txt": b"secret", "bob": {"bspace": {"b.txt": b"bob's"}},
                          "alice": {"site": {"keep.txt": b"keep"}}})
        yield base


def everything(base: Path) -> dict[str, Any]:
    """Every path under base with what it is: a link's target, a file's bytes, a folder
    (the spaces' lock files, which any operation makes, left out)."""
    found: dict[str, Any] = {}
    for top, dirs, files in os.walk(base):
        for name in dirs + files:
            path = Path(top, name)
            key = str(path.relative_to(base))
            if key.startswith(f"alice/{LOCKS}"):
                continue
            if path.is_symlink():
                found[key] = ("link", os.readlink(path))
            elif path.is_dir():
                found[key] = "folder"
            else:
                found[key] = path.read_bytes()
    return found


def check_extraction(make: Callable[[Path], None], merge: bool = False) -> None:
    """Extract the archive `make` writes to the root's `upload` (merged into a folder that
    has files, or into a new one); check the three rules."""
    with jail() as base:
        root = base / "alice"
        make(root / "upload")
        if merge:
            write_tree(root / "site" / "out", {"a": b"before", "c": {"d.txt": b"before"}})
        before = everything(base)
        try:
            run("extract_archive", root,
                {"archive_path": "upload", "target": "site/out", "merge": merge},
                settings=LIMITS)
        except OperationError:
            # Refused: nothing of it anywhere.
            assert everything(base) == before
            return
        target = (root / "site" / "out").resolve()
        after = everything(base)
        assert outside_target(after) == outside_target(before)
        assert leftovers(root / "site") == []
        # Whole: every link in it leads inside it (or round in a loop, which leads nowhere).
        for key in after:
            path = base / key
            if key.startswith("alice/site/out/") and path.is_symlink():
                assert Path(os.path.realpath(path)).is_relative_to(target), key


def outside_target(found: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in found.items() if not key.startswith("alice/site/out")}


def write_tar(dest: Path, members: list[tuple[str, bytes, str, bytes]]) -> None:
    with tarfile.open(dest, "w", format=tarfile.GNU_FORMAT, errors="surrogateescape") as out:
        for name, type_, link, data in members:
            info = tarfile.TarInfo(name)
            info.type = type_
            info.linkname = link
            info.size = len(data) if type_ == tarfile.REGTYPE else 0
            out.addfile(info, io.BytesIO(data) if type_ == tarfile.REGTYPE else None)


@BOUNDED
@given(TAR_MEMBERS, st.booleans())
def test_any_tar_of_any_names_is_extracted_or_refused_in_words(members, merge: bool) -> None:
    check_extraction(lambda dest: write_tar(dest, members), merge)


@pytest.mark.filterwarnings("ignore:Duplicate name")  # a name twice is a case to try
@BOUNDED
@given(ZIP_MEMBERS)
def test_any_zip_of_any_names_and_modes_is_extracted_or_refused_in_words(members) -> None:
    def make(dest: Path) -> None:
        with zipfile.ZipFile(dest, "w") as out:
            for name, system, mode, data, extra in members:
                info = zipfile.ZipInfo(name)
                info.create_system = system
                info.external_attr = mode << 16
                info.extra = extra
                out.writestr(info, data)

    check_extraction(make)


def valid_archive(fmt: str) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        source = write_tree(Path(folder) / "source", sample_tree())
        return make_archive(source, Path(folder) / "archive", fmt).read_bytes()


VALID = {fmt: valid_archive(fmt) for fmt in ("zip", "tar", "tar.gz")}
MUTATIONS = st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert"]),
                               st.floats(0, 1), st.integers(0, 255)),
                     min_size=1, max_size=4)


def mutate(data: bytes, mutations: list[tuple[str, float, int]]) -> bytes:
    for action, where, byte in mutations:
        at = int(where * (len(data) - 1))
        if action == "flip":
            data = data[:at] + bytes([data[at] ^ (byte or 1)]) + data[at + 1:]
        elif action == "cut":
            data = data[:at]
        else:
            data = data[:at] + bytes([byte]) + data[at:]
        if not data:
            break
    return data


@BOUNDED
@given(st.sampled_from(sorted(VALID)), MUTATIONS)
def test_a_damaged_archive_is_extracted_or_refused_in_words(fmt: str, mutations) -> None:
    check_extraction(lambda dest: dest.write_bytes(mutate(VALID[fmt], mutations)))


# What a header is made of: tarfile's own in each format, of names and numbers that
# take every path (a ustar prefix, a GNU base-256 number), then bytes set anywhere to
# values its fields trip on; the checksum made right, signed or left as it falls.
HEADER_INFOS = st.builds(
    lambda name, link, number, kind, fmt: (name, link, number, kind, fmt),
    st.lists(st.sampled_from(["a", "é", "\udcff", ".", "", " ", "b" * 40, "c" * 99]),
             max_size=6).map("/".join),
    st.text(st.sampled_from("ab/é.\udcff "), max_size=30),
    st.sampled_from([0, 7, 0o777, 4096, 8 ** 11 - 1, 8 ** 11, 1 << 40, -1]),
    st.sampled_from([tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                     tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.GNUTYPE_SPARSE]),
    st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT]),
)
HEADER_BYTES = st.lists(st.tuples(
    st.one_of(st.integers(0, 511), st.integers(100, 155), st.integers(257, 344)),
    st.sampled_from(b"\x00 \t\x0b\x1c+-_/078a\x80\xc3\xff")), max_size=4)


def header(info: tuple[str, str, int, bytes, int], changes: list[tuple[int, int]],
           checksum: str) -> bytes | None:
    name, link, number, kind, fmt = info
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, link
    member.uname, member.gname = link, link[::-1]
    member.size = member.mtime = member.uid = number
    try:
        block = bytearray(member.tobuf(fmt, "utf-8", "surrogateescape")[:512])
    except ValueError:  # a name or number this format cannot hold
        return None
    for at, value in changes:
        block[at] = value
    if checksum != "as it falls":
        signed = checksum == "signed"
        total = 256 + sum((b - 256 if signed and b > 127 else b)
                          for at, b in enumerate(block) if not 148 <= at < 156)
        block[148:156] = b"%06o\0 " % (total & 0o777777)
    return bytes(block)


def read_header(reader: type[tarfile.TarInfo], block: bytes) -> dict[str, Any] | str:
    """Every field a header sets, or the name of what reading it raised."""
    try:
        found = reader.frombuf(block, "utf-8", "surrogateescape")
    except Exception as exc:  # which one is what is compared
        return type(exc).__name__
    return {slot: getattr(found, slot, None) for slot in tarfile.TarInfo.__slots__}


@settings(BOUNDED, max_examples=2000)  # a thousandth of a second each
@given(HEADER_INFOS, HEADER_BYTES, st.sampled_from(["right", "signed", "as it falls"]))
def test_the_fast_header_reader_reads_every_header_as_tarfile_does(info, changes,
                                                                  checksum: str) -> None:
    block = header(info, changes, checksum)
    if block is not None:
        assert read_header(_Header, block) == read_header(tarfile.TarInfo, block)
