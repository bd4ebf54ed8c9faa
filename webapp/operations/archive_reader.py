"""Reading a zip or tar (gz, bz2, xz) safely, and writing its members below a folder:
names that escape, links that point outside, device files, too much, a zip bomb are
refused before anything of theirs is written. Used by extract_archive and wake_space.
"""

from __future__ import annotations

import errno
import gzip
import lzma
import os
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from webapp.core import userfiles
from webapp.core.runtime import OperationError, TaskContext
from webapp.operations.common import size_text
from webapp.operations.quota import Quota
from webapp.settings import ArchiveLimits

# Below this many uncompressed bytes a high ratio is just a small, repetitive file.
RATIO_FLOOR = 4 << 20
# A zip keeps a link's target as the member's content: read it only if it is link-sized.
MAX_LINK = 4096
DAMAGED = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError,
           gzip.BadGzipFile)


@dataclass
class Member:
    name: str
    type: str  # file, dir, symlink, hardlink or special
    size: int = 0
    mode: int = 0o644
    link: str = ""
    open: Callable[[], IO[bytes]] | None = None


# Who made a zip entry (APPNOTE 4.4.2): Unix, or a system of DOS paths (MS-DOS and FAT,
# OS/2 HPFS, NTFS, VFAT), whose backslashes separate folders.
UNIX = 3
DOS_PATHS = frozenset({0, 6, 11, 14})
UTF8_NAME = 0x800
# Info-ZIP's Unicode Path extra field (APPNOTE 4.6.9): a UTF-8 name beside a legacy one.
UNICODE_PATH = 0x7075


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The entry's name as unzip writes it. A name not marked UTF-8 is the UTF-8 one of its
    Unicode Path field if it has one for this very name; else, from a Unix maker, the bytes
    it had on disk (zipfile read them as cp437); from DOS, cp437 indeed."""
    name = info.filename
    if not info.flag_bits & UTF8_NAME:
        raw = name.encode("cp437")
        name = _unicode_path(info.extra, raw) or (
            raw.decode("utf-8", "surrogateescape") if info.create_system == UNIX else name)
    if info.create_system in DOS_PATHS:
        name = name.replace("\\", "/")
    return name


def _unicode_path(extra: bytes, raw: bytes) -> str | None:
    """The UTF-8 name of a Unicode Path field whose CRC-32 is the stored name's (one written
    for another name, before a rename, say, does not count), as unzip takes it."""
    while len(extra) >= 4:
        kind, size = struct.unpack("<HH", extra[:4])
        field, extra = extra[4:4 + size], extra[4 + size:]
        if (kind == UNICODE_PATH and len(field) > 5 and field[0] == 1
                and int.from_bytes(field[1:5], "little") == zlib.crc32(raw)):
            try:
                return field[5:].decode("utf-8")
            except UnicodeDecodeError:
                return None
    return None


class _Zip:
    """A zip's members; its central directory gives every size before anything is read."""

    def __init__(self, path: Path, limits: ArchiveLimits) -> None:
        try:
            self.archive = zipfile.ZipFile(path)
        except UnicodeDecodeError:
            raise OperationError(
                "The archive is damaged: a member's name is marked as UTF-8 but is not "
                "valid UTF-8") from None
        self.infos = self.archive.infolist()
        self.total = self.declared = sum(info.file_size for info in self.infos)
        try:
            self._refuse(path.stat().st_size, limits)
        except BaseException:
            self.archive.close()
            raise

    def _refuse(self, archive_size: int, limits: ArchiveLimits) -> None:
        _check_totals(len(self.infos), self.total, archive_size, limits)
        for info in self.infos:
            ratio = info.file_size // max(info.compress_size, 1)
            if info.file_size > RATIO_FLOOR and ratio > limits.max_ratio:
                raise OperationError(
                    f"Refused: {info.filename} expands {ratio} times (more than "
                    f"{limits.max_ratio}): this looks like a zip bomb"
                )

    def members(self) -> Iterator[Member]:
        for info in self.infos:
            name = _zip_name(info)
            if info.flag_bits & 0x1:
                raise OperationError(f"Refused: {name} is encrypted")
            # Only a Unix maker stores a mode, and Python's writestr one without a file
            # type. As unzip does, only a link and a folder are told from it: anything
            # else is written as a plain file, whatever its type bits say.
            mode = info.external_attr >> 16 if info.create_system == UNIX else 0
            if stat.S_ISLNK(mode):
                if info.file_size > MAX_LINK:
                    raise OperationError(f"Refused: the link {name} is too long")
                with self._open(info) as stream:
                    link = stream.read().decode("utf-8", "surrogateescape")
                yield Member(name, "symlink", link=link)
            elif stat.S_ISDIR(mode) or name.endswith("/"):
                yield Member(name, "dir")
            else:
                opener = _bind(self._open, info)
                yield Member(name, "file", info.file_size, mode & 0o777 or 0o644, open=opener)

    def _open(self, info: zipfile.ZipInfo) -> IO[bytes]:
        try:
            return self.archive.open(info)
        except OSError as exc:
            # A damaged central directory can send the read before the file's start.
            if exc.errno != errno.EINVAL:
                raise
            raise zipfile.BadZipFile(f"{info.filename} is not where the archive says") from None

    def fraction(self, written: int) -> float:
        return written / self.total if self.total else 1.0

    def close(self) -> None:
        self.archive.close()


class _Tar:
    """A tar, compressed or not, read as a stream: sizes are checked as headers arrive."""

    def __init__(self, path: Path, limits: ArchiveLimits) -> None:
        self.limits = limits
        self.raw = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.size = path.stat().st_size
        try:
            # What it holds in all, known before reading only for an uncompressed tar.
            self.declared = _refuse_plain_tar(path, self.size, limits)
            self.archive = tarfile.open(fileobj=self.raw, mode="r|*")  # noqa: SIM115
        except BaseException:
            self.raw.close()
            raise

    def members(self) -> Iterator[Member]:
        total = dense = 0
        for count, info in enumerate(self.archive, start=1):
            total += info.size
            dense += _dense(info)
            _check_totals(count, total, self.size, self.limits, dense)
            if info.isreg():
                opener = _bind(self.archive.extractfile, info)
                yield Member(info.name, "file", info.size, info.mode, open=opener)
            elif info.isdir():
                yield Member(info.name, "dir")
            elif info.issym():
                yield Member(info.name, "symlink", link=info.linkname)
            elif info.islnk():
                yield Member(info.name, "hardlink", link=info.linkname)
            else:
                yield Member(info.name, "special")

    def fraction(self, written: int) -> float:
        # How far through the archive file: honest for compressed archives too.
        return self.raw.tell() / self.size if self.size else 1.0

    def close(self) -> None:
        self.archive.close()
        self.raw.close()


def _refuse_plain_tar(path: Path, archive_size: int, limits: ArchiveLimits) -> int:
    """An uncompressed tar's headers are read by seeking past the data, so its totals are
    checked before anything is written, as a zip's are; returns the bytes it holds. A
    compressed one would have to be decompressed twice: its totals are checked as the
    stream is read (0 here)."""
    try:
        archive = tarfile.open(path, "r:")  # noqa: SIM115 - closed by the with below
    except tarfile.ReadError:
        return 0
    with archive:
        count = total = dense = 0
        try:
            while (info := archive.next()) is not None:
                count += 1
                total += info.size
                dense += _dense(info)
                _check_totals(count, total, archive_size, limits, dense)
        except tarfile.TarError as exc:
            raise OperationError(f"The archive is damaged or truncated ({exc})") from None
    return total


def _bind(function: Callable[[Any], Any], argument: Any) -> Callable[[], Any]:
    return lambda: function(argument)


def _dense(info: tarfile.TarInfo) -> int:
    """A sparse member's bytes that are not holes: what it really expands to, holes
    being written as holes."""
    return sum(length for _, length in info.sparse) if info.sparse else info.size


def _check_totals(count: int, total: int, archive_size: int, limits: ArchiveLimits,
                  dense: int | None = None) -> None:
    """`dense`: the bytes that are not holes of sparse members, if fewer than `total`."""
    dense = total if dense is None else dense
    if count > limits.max_members:
        raise OperationError(f"Refused: the archive has more than {limits.max_members} members")
    if total > limits.max_bytes:
        raise OperationError(
            f"Refused: the archive holds more than {size_text(limits.max_bytes)} when extracted"
        )
    if dense > RATIO_FLOOR and dense > limits.max_ratio * max(archive_size, 1):
        raise OperationError(
            f"Refused: the archive expands more than {limits.max_ratio} times its size: "
            "this looks like a zip bomb"
        )


def open_archive(path: Path, limits: ArchiveLimits) -> _Zip | _Tar:
    """The format is told by the content, never by the name."""
    if zipfile.is_zipfile(path):
        return _Zip(path, limits)
    try:
        return _Tar(path, limits)
    # tarfile's gzip reader meets a header cut short with a TypeError (ord of b"").
    except (tarfile.ReadError, TypeError):
        raise OperationError(
            f"{path.name} is not a zip or tar archive (tar.gz, tar.bz2, tar.xz), or it is damaged"
        ) from None


def _member_path(name: str) -> PurePosixPath | None:
    """A member's place below the target; None for the archive's own root folder."""
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("\\") or (len(name) > 1 and name[1] == ":"):
        raise OperationError(f"Refused: {name} has an absolute name")
    if ".." in path.parts:
        raise OperationError(f"Refused: {name} would be written outside the target ('..')")
    return path if path.parts else None


def _check_link(member: Member, rel: PurePosixPath) -> None:
    """A symbolic link must stay inside the target wherever it points."""
    lands = os.path.normpath(rel.parent / member.link)
    if (not member.link or PurePosixPath(member.link).is_absolute() or lands == ".."
            or lands.startswith("../")):
        raise OperationError(f"Refused: the link {member.name} points outside the target")


def _inside(root: Path, path: Path, name: str) -> None:
    if not _real(path).is_relative_to(root):
        raise OperationError(f"Refused: {name} would be written outside the target")


def extract_members(
    source: _Zip | _Tar, dest: Path, context: TaskContext, start: float = 0.0, span: float = 1.0,
    quota: Quota | None = None,
) -> tuple[int, int]:
    """Write every member below dest; returns (files, bytes). Progress goes from start
    to start + span, so a longer task can make this one of its steps. A quota is checked
    against the archive's declared sizes before writing, and the bytes as they are written."""
    root = dest.resolve()
    quota = quota or Quota(root, 0)
    quota.check(source.declared)
    files = written = 0
    current = ""

    def report() -> None:
        context.progress(start + span * source.fraction(written), f"Extracting {current}")

    def step(count: int) -> None:
        nonlocal written
        written += count
        quota.spend(count)
        context.checkpoint()
        report()

    for member in source.members():
        context.checkpoint()
        rel = _member_path(member.name)
        if rel is None:
            continue
        current = rel.as_posix()
        if member.type == "special":
            raise OperationError(f"Refused: {member.name} is a device file, pipe or socket")
        if member.type == "file":
            quota.check(member.size)  # a compressed tar declares each size as it comes
        try:
            files += _place(member, root, rel, step)
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise OperationError(
                    f"Refused: {member.name} has a name longer than the file system allows"
                ) from None
            if exc.errno in (errno.EEXIST, errno.ENOTDIR, errno.ELOOP):
                raise OperationError(_not_a_folder(root, rel)) from None
            raise
        report()
    _check_links_stay_inside(root)
    return files, written


def _place(member: Member, root: Path, rel: PurePosixPath, step: Callable[[int], None]) -> int:
    """Write one member at rel below root; 1 when it is a file (a hard link is one)."""
    path = root / rel
    _inside(root, path.parent, member.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if member.type == "dir":
        if os.path.lexists(path) and not path.is_dir():
            raise OperationError(_not_a_folder(root, rel))
        path.mkdir(exist_ok=True)
        return 0
    if path.is_dir() and not path.is_symlink():
        raise OperationError(f"Refused: {rel} would be both a file and a folder")
    if member.type == "symlink":
        _check_link(member, rel)
        userfiles.remove(path)
        os.symlink(member.link, path)
        return 0
    if member.type == "hardlink":
        original = _member_path(member.link)
        if original is None or not _real(root / original).is_relative_to(root):
            raise OperationError(f"Refused: the link {member.name} points outside the target")
        if not (root / original).is_file():
            raise OperationError(f"{member.name} links to {member.link}, which is not a file")
        if os.path.lexists(path) and os.path.samestat(
                os.lstat(path), os.stat(root / original, follow_symlinks=False)):
            return 1  # linked to itself, under this name or another: already in place
        userfiles.remove(path)
        os.link(root / original, path, follow_symlinks=False)
        return 1
    assert member.open is not None
    with member.open() as stream:
        size = userfiles.write_file(stream, path, step, 0o644 | (member.mode & 0o111))
    if size != member.size:
        raise OperationError(f"The archive is truncated: {member.name} is incomplete")
    return 1


def _real(path: Path) -> Path:
    """Where path leads. A loop of links is left as it is (it leads nowhere), where
    Path.resolve would raise."""
    return Path(os.path.realpath(path))


def _not_a_folder(root: Path, rel: PurePosixPath) -> str:
    """Why rel cannot be a folder or go in one: the first part of it that is something else
    (GNU tar refuses such a member too: "Cannot open: Not a directory")."""
    for depth in range(1, len(rel.parts) + 1):
        part = PurePosixPath(*rel.parts[:depth])
        if (root / part).is_symlink() and not (root / part).is_dir():
            return f"Refused: {rel} would go through the link {part}, which leads to no folder"
        if not (root / part).is_dir():
            return f"Refused: {part} would be both a file and a folder"
    return f"Refused: {rel} cannot be made a folder"


def _check_links_stay_inside(root: Path) -> None:
    """Each link was checked when written, but a later member may replace a link that an
    earlier one goes through: check where every link leads once all are in place."""
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(top, name)
            if path.is_symlink() and not _real(path).is_relative_to(root):
                raise OperationError(
                    f"Refused: the link {path.relative_to(root)} points outside the target"
                )
