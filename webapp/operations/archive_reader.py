"""Reading a zip or tar (gz, bz2, xz) safely, and writing its members below a folder:
names that escape, links that point outside, device files, too much, a zip bomb are
refused before anything of theirs is written. Used by extract_archive and wake_space.
"""

from __future__ import annotations

import gzip
import lzma
import os
import stat
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


class _Zip:
    """A zip's members; its central directory gives every size before anything is read."""

    def __init__(self, path: Path, limits: ArchiveLimits) -> None:
        self.archive = zipfile.ZipFile(path)
        self.infos = self.archive.infolist()
        self.total = sum(info.file_size for info in self.infos)
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
            if info.flag_bits & 0x1:
                raise OperationError(f"Refused: {info.filename} is encrypted")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                if info.file_size > MAX_LINK:
                    raise OperationError(f"Refused: the link {info.filename} is too long")
                link = self.archive.read(info).decode("utf-8", "surrogateescape")
                yield Member(info.filename, "symlink", link=link)
            # Zips written without a file type (Python's writestr, DOS tools) hold plain files.
            elif stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                yield Member(info.filename, "special")
            elif info.is_dir():
                yield Member(info.filename, "dir")
            else:
                opener = _bind(self.archive.open, info)
                yield Member(info.filename, "file", info.file_size, mode or 0o644, open=opener)

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
            _refuse_plain_tar(path, self.size, limits)
            self.archive = tarfile.open(fileobj=self.raw, mode="r|*")  # noqa: SIM115
        except BaseException:
            self.raw.close()
            raise

    def members(self) -> Iterator[Member]:
        total = 0
        for count, info in enumerate(self.archive, start=1):
            total += info.size
            _check_totals(count, total, self.size, self.limits)
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


def _refuse_plain_tar(path: Path, archive_size: int, limits: ArchiveLimits) -> None:
    """An uncompressed tar's headers are read by seeking past the data, so its totals are
    checked before anything is written, as a zip's are. A compressed one would have to be
    decompressed twice: its totals are checked as the stream is read."""
    try:
        archive = tarfile.open(path, "r:")  # noqa: SIM115 - closed by the with below
    except tarfile.ReadError:
        return
    with archive:
        count = total = 0
        try:
            while (info := archive.next()) is not None:
                count += 1
                total += info.size
                _check_totals(count, total, archive_size, limits)
        except tarfile.TarError as exc:
            raise OperationError(f"The archive is damaged or truncated ({exc})") from None


def _bind(function: Callable[[Any], Any], argument: Any) -> Callable[[], Any]:
    return lambda: function(argument)


def _check_totals(count: int, total: int, archive_size: int, limits: ArchiveLimits) -> None:
    if count > limits.max_members:
        raise OperationError(f"Refused: the archive has more than {limits.max_members} members")
    if total > limits.max_bytes:
        raise OperationError(
            f"Refused: the archive holds more than {size_text(limits.max_bytes)} when extracted"
        )
    if total > RATIO_FLOOR and total > limits.max_ratio * max(archive_size, 1):
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
    except tarfile.ReadError:
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
    if not path.resolve().is_relative_to(root):
        raise OperationError(f"Refused: {name} would be written outside the target")


def extract_members(
    source: _Zip | _Tar, dest: Path, context: TaskContext, start: float = 0.0, span: float = 1.0
) -> tuple[int, int]:
    """Write every member below dest; returns (files, bytes). Progress goes from start
    to start + span, so a longer task can make this one of its steps."""
    root = dest.resolve()
    files = written = 0
    current = ""

    def report() -> None:
        context.progress(start + span * source.fraction(written), f"Extracting {current}")

    def step(count: int) -> None:
        nonlocal written
        written += count
        context.checkpoint()
        report()

    for member in source.members():
        context.checkpoint()
        rel = _member_path(member.name)
        if rel is None:
            continue
        current = rel.as_posix()
        path = root / rel
        if member.type == "special":
            raise OperationError(f"Refused: {member.name} is a device file, pipe or socket")
        _inside(root, path.parent, member.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        if member.type == "dir":
            if os.path.lexists(path) and not path.is_dir():
                raise OperationError(f"{member.name} is both a file and a folder in the archive")
            path.mkdir(exist_ok=True)
        elif path.is_dir() and not path.is_symlink():
            raise OperationError(f"{member.name} would replace a folder of the same name")
        elif member.type == "symlink":
            _check_link(member, rel)
            userfiles.remove(path)
            os.symlink(member.link, path)
        elif member.type == "hardlink":
            original = _member_path(member.link)
            if original is None or not (root / original).resolve().is_relative_to(root):
                raise OperationError(f"Refused: the link {member.name} points outside the target")
            if not (root / original).is_file():
                raise OperationError(f"{member.name} links to {member.link}, which is not a file")
            userfiles.remove(path)
            os.link(root / original, path, follow_symlinks=False)
            files += 1
        else:
            assert member.open is not None
            with member.open() as stream:
                size = userfiles.write_file(stream, path, step, 0o644 | (member.mode & 0o111))
            if size != member.size:
                raise OperationError(f"The archive is truncated: {member.name} is incomplete")
            files += 1
        report()
    _check_links_stay_inside(root)
    return files, written


def _check_links_stay_inside(root: Path) -> None:
    """Each link was checked when written, but a later member may replace a link that an
    earlier one goes through: check where every link leads once all are in place."""
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(top, name)
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                raise OperationError(
                    f"Refused: the link {path.relative_to(root)} points outside the target"
                )
