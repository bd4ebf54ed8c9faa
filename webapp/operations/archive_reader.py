"""Reading a zip or tar (gz, bz2, xz) safely, and writing its members below a folder:
names that escape, links that point outside, device files, too much, a zip bomb are
refused before anything of theirs is written. Used by extract_archive and wake_space.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import lzma
import os
import queue
import stat
import struct
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from webapp.core import userfiles
from webapp.core.runtime import OperationError, TaskContext
from webapp.operations.common import Meter, size_text
from webapp.operations.quota import Quota
from webapp.settings import ArchiveLimits

# Below this many uncompressed bytes a high ratio is just a small, repetitive file.
RATIO_FLOOR = 4 << 20
# A zip keeps a link's target as the member's content: read it only if it is link-sized.
MAX_LINK = 4096
DAMAGED = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError,
           gzip.BadGzipFile)
# A tar's bytes are read, and decompressed, this many at a time: few enough calls that
# Python's cost per call vanishes, and a bound on the memory a bomb can take. AHEAD
# blocks at most wait, read ahead, for the members to be written.
BLOCK = 1 << 20
AHEAD = 4


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
            kind = _zip_type(info, name)
            if kind == "symlink":
                if info.file_size > MAX_LINK:
                    raise OperationError(f"Refused: the link {name} is too long")
                with self._open(info) as stream:
                    link = stream.read().decode("utf-8", "surrogateescape")
                yield Member(name, "symlink", link=link)
            elif kind == "dir":
                yield Member(name, "dir")
            else:
                opener = _bind(self._open, info)
                yield Member(name, "file", info.file_size, _zip_mode(info) & 0o777 or 0o644,
                             open=opener)

    def _open(self, info: zipfile.ZipInfo) -> IO[bytes]:
        try:
            return self.archive.open(info)
        except OSError as exc:
            # A damaged central directory can send the read before the file's start.
            if exc.errno != errno.EINVAL:
                raise
            raise zipfile.BadZipFile(f"{info.filename} is not where the archive says") from None

    def meter(self, context: TaskContext, start: float, span: float) -> Meter:
        """Progress of the whole: the central directory says what is written as files."""
        files = [info for info in self.infos if _zip_type(info, _zip_name(info)) == "file"]
        return Meter(context, len(files), sum(info.file_size for info in files), start, span)

    def close(self) -> None:
        self.archive.close()


def _zip_mode(info: zipfile.ZipInfo) -> int:
    """Only a Unix maker stores a mode, and Python's writestr one without a file type."""
    return info.external_attr >> 16 if info.create_system == UNIX else 0


def _zip_type(info: zipfile.ZipInfo, name: str) -> str:
    """As unzip does, only a link and a folder are told from the mode: anything else is
    written as a plain file, whatever its type bits say."""
    mode = _zip_mode(info)
    if stat.S_ISLNK(mode):
        return "symlink"
    return "dir" if stat.S_ISDIR(mode) or name.endswith("/") else "file"


def _decompressor(head: bytes) -> Any:
    """What decompresses a tar that begins with head, told as tarfile tells it (gz, bz2,
    xz or lzma); None for a tar that is not compressed."""
    if head.startswith(b"\x1f\x8b\x08"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if head.startswith(b"BZh91"):
        return bz2.BZ2Decompressor()
    if head.startswith((b"\x5d\x00\x00\x80", b"\xfd7zXZ")):
        return lzma.LZMADecompressor()
    return None


class _Stream:
    """A tar's bytes, decompressed if need be, read front to back BLOCK at a time, with the
    read, tell and forward seek that tarfile's random-access mode asks for. (tarfile's own
    stream mode reads 10 KiB at a time and copies what is left of its buffer on every
    read; the gzip module decompresses 8 KiB per call.) As tarfile's stream does, only the
    first compressed stream is read.

    The reading and decompressing run in a thread of their own, as `tar -z` runs gzip
    beside itself: reads and zlib, bz2 and lzma let go of the GIL, so they overlap the
    writing of the members. Call stop() before the raw file is read otherwise or closed.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.pending = raw.read(BLOCK)  # read, not yet decompressed
        self.taken = len(self.pending)
        self.made = 0  # decompressed, by the reader thread
        self.decompressor = _decompressor(self.pending)
        self.block, self.at, self.position = b"", 0, 0  # position: where block starts
        self.ended: bytes | BaseException | None = None  # what the reader's last word was
        self.blocks: queue.Queue[bytes | BaseException] = queue.Queue(AHEAD)
        self.stopping = threading.Event()
        self.reader = threading.Thread(target=self._read_ahead, name="tar reader", daemon=True)
        self.reader.start()

    def _read_ahead(self) -> None:
        try:
            while not self.stopping.is_set():
                block = self._next_block()
                self.made += len(block)
                self.blocks.put(block)
                if not block:
                    return
        except BaseException as exc:
            self.blocks.put(exc)  # raised again in the extraction's thread

    def stop(self) -> None:
        """The reader thread is gone once this returns."""
        self.stopping.set()
        while self.reader.is_alive():
            with contextlib.suppress(queue.Empty):
                self.blocks.get(timeout=0.01)  # frees a reader waiting to hand a block

    def _next_block(self) -> bytes:
        """The next bytes of the tar, b"" at its end (or where a compressed stream was
        cut short: tarfile tells what is missing)."""
        decompressor = self.decompressor
        if decompressor is None:
            block, self.pending = self.pending or self._take(), b""
            return block
        while not decompressor.eof:
            # zlib gives back what it did not take; bz2 and lzma keep it, and say whether
            # they need more.
            ended = False
            if not self.pending and getattr(decompressor, "needs_input", True):
                self.pending = self._take()
                ended = not self.pending
            try:
                block = decompressor.decompress(self.pending, BLOCK)
            except (zlib.error, lzma.LZMAError, OSError, EOFError) as exc:
                raise tarfile.ReadError(f"invalid compressed data ({exc})") from None
            self.pending = getattr(decompressor, "unconsumed_tail", b"")
            if block or ended:
                return block
        return b""

    def _take(self) -> bytes:
        data = self.raw.read(BLOCK)
        self.taken += len(data)
        return data

    def _advance(self) -> bool:
        self.position += len(self.block)
        self.block, self.at = b"", 0
        if self.ended is None:
            item = self.blocks.get()
            if isinstance(item, BaseException) or not item:
                self.ended = item
            else:
                self.block = item
        if isinstance(self.ended, BaseException):
            raise self.ended
        return bool(self.block)

    def read(self, size: int) -> bytes:
        end = self.at + size
        if end <= len(self.block):
            data = self.block[self.at:end]
            self.at = end
            return data
        parts = [self.block[self.at:]]
        missing = size - len(parts[0])
        while missing and self._advance():
            parts.append(self.block[:missing])
            self.at = len(parts[-1])
            missing -= self.at
        return b"".join(parts)

    def tell(self) -> int:
        return self.position + self.at

    def seek(self, position: int) -> None:
        """Forward only: a member's data or padding left unread is skipped."""
        skip = position - self.tell()
        if skip < 0:
            raise tarfile.ReadError("the archive was read backwards")  # tarfile never does
        while skip > len(self.block) - self.at:
            skip -= len(self.block) - self.at
            if not self._advance():
                return  # past the end: the next read says the data is missing
        self.at += skip

    def raw_position(self) -> float:
        """Where the position is in the compressed file, at the ratio so far: how far
        through the archive the reading is."""
        return self.tell() * self.taken / self.made if self.made else 0.0


# A tar header's fields (POSIX ustar, which GNU's shares): name, mode, uid, gid, size,
# mtime, checksum, type, link, magic and version, user, group, device, prefix.
USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")


class _Header(tarfile.TarInfo):
    """tarfile's member header, read in 4 µs rather than 11: tarfile parses a header field
    by field, a call or two each, and sums it twice for its checksum, which made a third
    of the time extracting small files took in the process (profiled). The plain case is
    read here in one unpack; anything else (a number in base 256, the checksum of a
    signed sum, an old GNU sparse member, a header that is not one) is left to tarfile,
    which reads it or says what is wrong as it always does. The result is tarfile's,
    field for field (a test compares the two on headers Hypothesis makes)."""

    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> tarfile.TarInfo:
        try:
            (name, mode, uid, gid, size, mtime, checksum, kind, link, _magic, user, group,
             major, minor, prefix) = USTAR.unpack(buf)
            stored = _octal(checksum)
            if kind == tarfile.GNUTYPE_SPARSE or stored != 256 + sum(buf) - sum(checksum):
                raise ValueError("not the plain case")
            header = cls()
            header.name = _text(name, encoding, errors)
            header.mode, header.uid, header.gid = _octal(mode), _octal(uid), _octal(gid)
            header.size, header.mtime = _octal(size), _octal(mtime)
            header.chksum, header.type = stored, kind
            header.linkname = _text(link, encoding, errors)
            header.uname = _text(user, encoding, errors)
            header.gname = _text(group, encoding, errors)
            header.devmajor, header.devminor = _octal(major), _octal(minor)
            first = _text(prefix, encoding, errors)
        except (ValueError, struct.error):
            return super().frombuf(buf, encoding, errors)
        # As tarfile: an old (V7) tar marks a folder by a name ending in a slash; a ustar
        # name longer than 100 bytes begins in the prefix.
        if kind == tarfile.AREGTYPE and header.name.endswith("/"):
            header.type = tarfile.DIRTYPE
        if header.type == tarfile.DIRTYPE:
            header.name = header.name.rstrip("/")
        if first and header.type not in tarfile.GNU_TYPES:
            header.name = f"{first}/{header.name}"
        return header


def _octal(field: bytes) -> int:
    """A number field in octal digits, up to its first NUL; a ValueError otherwise."""
    if field[0] in (0o200, 0o377):
        raise ValueError("a number in base 256")
    return int(field.partition(b"\0")[0].strip() or b"0", 8)


def _text(field: bytes, encoding: str, errors: str) -> str:
    return field.partition(b"\0")[0].decode(encoding, errors)


class _Data:
    """A regular member's bytes, read straight from the stream: tarfile's file object
    for a member costs more than writing a small file."""

    def __init__(self, stream: _Stream, offset: int, size: int) -> None:
        stream.seek(offset)
        self.stream, self.left = stream, size

    def read(self, size: int) -> bytes:
        size = min(size, self.left)
        data = self.stream.read(size)
        if len(data) < size:
            raise tarfile.ReadError("unexpected end of data")
        self.left -= size
        return data

    def __enter__(self) -> _Data:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Tar:
    """A tar, compressed or not, read as a stream: sizes are checked as headers arrive."""

    def __init__(self, path: Path, limits: ArchiveLimits) -> None:
        self.limits = limits
        self.raw = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.size = path.stat().st_size
        try:
            # What it holds, known before reading only for an uncompressed tar.
            self.totals, self.declared = _refuse_plain_tar(path, self.size, limits)
            self._open()
        except BaseException:
            self.raw.close()
            raise

    def _open(self) -> None:
        self.stream = _Stream(self.raw)
        try:
            self.archive = tarfile.open(  # noqa: SIM115
                fileobj=self.stream, mode="r:", tarinfo=_Header)
        except BaseException:
            self.stream.stop()
            raise

    def members(self) -> Iterator[Member]:
        total = dense = 0
        for count, info in enumerate(self.archive, start=1):
            total += info.size
            dense += _dense(info)
            _check_totals(count, total, self.size, self.limits, dense)
            if info.isreg():
                opener = _bind(self._data, info)
                yield Member(info.name, "file", info.size, info.mode, open=opener)
            elif info.isdir():
                yield Member(info.name, "dir")
            elif info.issym():
                yield Member(info.name, "symlink", link=info.linkname)
            elif info.islnk():
                yield Member(info.name, "hardlink", link=info.linkname)
            else:
                yield Member(info.name, "special")

    def _data(self, info: tarfile.TarInfo) -> IO[bytes] | _Data:
        # tarfile's own reader only for a sparse member: it knows where the holes go.
        if info.sparse:
            return self.archive.extractfile(info)
        return _Data(self.stream, info.offset_data, info.size)

    def meter(self, context: TaskContext, start: float, span: float) -> Meter:
        """Progress of the whole where the headers were read ahead; else of how far
        through the archive file the reading is (honest for compressed archives too)."""
        if self.totals is not None:
            return Meter(context, *self.totals, start, span)
        return Meter(context, None, None, start, span, how_far=self.fraction)

    def fraction(self) -> float:
        return self.stream.raw_position() / self.size if self.size else 1.0

    def close(self) -> None:
        self.stream.stop()
        self.archive.close()
        self.raw.close()


def _refuse_plain_tar(path: Path, archive_size: int,
                      limits: ArchiveLimits) -> tuple[tuple[int, int] | None, int]:
    """An uncompressed tar's headers are read by seeking past the data, so its totals are
    checked before anything is written, as a zip's are; returns the files and their bytes,
    and the bytes it declares in all. A compressed one would have to be decompressed
    twice: its totals are checked as the stream is read (None and 0 here)."""
    try:
        archive = tarfile.open(path, "r:", tarinfo=_Header)  # noqa: SIM115 - see below
    except tarfile.ReadError:
        return None, 0
    with archive:
        count = total = dense = files = size = 0
        try:
            while (info := archive.next()) is not None:
                count += 1
                total += info.size
                dense += _dense(info)
                _check_totals(count, total, archive_size, limits, dense)
                # A hard link counts as a file, as extraction counts it.
                files += info.isreg() or info.islnk()
                size += info.size if info.isreg() else 0
        except tarfile.TarError as exc:
            raise OperationError(f"The archive is damaged or truncated ({exc})") from None
    return (files, size), total


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


def _member_path(name: str) -> str | None:
    """A member's place below the target, as a/b/c; None for the archive's own root folder."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise OperationError(f"Refused: {name} has an absolute name")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise OperationError(f"Refused: {name} would be written outside the target ('..')")
    return "/".join(parts) or None


def _check_link(member: Member, rel: str) -> None:
    """A symbolic link must stay inside the target wherever it points."""
    lands = os.path.normpath(os.path.join(os.path.dirname(rel), member.link))
    if (not member.link or member.link.startswith("/") or lands == ".."
            or lands.startswith("../")):
        raise OperationError(f"Refused: the link {member.name} points outside the target")


class _Folders:
    """The folders members go in, each checked and made once, not once per member.

    A folder reached from the root through real folders only stays so for the whole
    extraction (no member may replace a folder), so its check holds from then on; one
    reached through a link is checked again each time. Files are made relative to their
    folder's descriptor, the last one kept open, rather than by their whole path.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.plain = {""}
        self.current, self.fd = "", -1

    def open(self, folder: str, name: str) -> int:
        """A descriptor of folder (a/b below the root), made if missing; refused if it
        leads outside the root. `name`: the member's, for the refusal."""
        if folder == self.current and self.fd >= 0:
            return self.fd
        path = self.root / folder
        if folder not in self.plain:
            real = _real(path)
            if not real.is_relative_to(self.root):
                raise OperationError(f"Refused: {name} would be written outside the target")
            path.mkdir(parents=True, exist_ok=True)
            if real == path:
                self.plain.add(folder)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if folder in self.plain:
            self.close()
            self.current, self.fd = folder, fd
        return fd

    def made(self, folder: str, parent: str) -> None:
        """A folder was made in parent: plain if parent is."""
        if parent in self.plain:
            self.plain.add(folder)

    def done(self, fd: int) -> None:
        """Through with a descriptor open gave: closed unless kept."""
        if fd != self.fd:
            os.close(fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.current, self.fd = "", -1


def extract_members(
    source: _Zip | _Tar, dest: Path, context: TaskContext, start: float = 0.0, span: float = 1.0,
    quota: Quota | None = None, doing: str = "Extracting",
) -> tuple[int, int]:
    """Write every member below dest; returns (files, bytes). Progress goes from start
    to start + span, so a longer task can make this one of its steps, each report saying
    `doing` and the member. A quota is checked against the archive's declared sizes before
    writing, and the bytes as they are written."""
    root = dest.resolve()
    quota = quota or Quota(root, 0)
    quota.check(source.declared)
    meter = source.meter(context, start, span)
    folders = _Folders(root)
    what = doing

    def step(count: int) -> None:
        quota.spend(count)
        meter.advance(what, size=count)

    try:
        for member in source.members():
            rel = _member_path(member.name)
            if rel is None:
                continue
            what = f"{doing} {rel}"
            if member.type == "special":
                raise OperationError(f"Refused: {member.name} is a device file, pipe or socket")
            if member.type == "file":
                quota.check(member.size)  # a compressed tar declares each size as it comes
            try:
                files = _place(member, root, rel, folders, step)
            except OSError as exc:
                raise _refusal(exc, member, root, rel) from None
            meter.advance(what, files=files)
    finally:
        folders.close()
    _check_links_stay_inside(root)
    meter.finish(what)
    return meter.files_done, meter.size_done


def _refusal(exc: OSError, member: Member, root: Path, rel: str) -> OSError | OperationError:
    """What a failure to write a member says: in words where the archive is at fault."""
    if exc.errno == errno.ENAMETOOLONG:
        return OperationError(
            f"Refused: {member.name} has a name longer than the file system allows")
    if exc.errno == errno.EISDIR:
        return OperationError(f"Refused: {rel} would be both a file and a folder")
    if exc.errno in (errno.EEXIST, errno.ENOTDIR, errno.ELOOP):
        return OperationError(_not_a_folder(root, PurePosixPath(rel)))
    return exc


def _place(member: Member, root: Path, rel: str, folders: _Folders,
           step: Callable[[int], None]) -> int:
    """Write one member at rel below root; 1 when it is a file (a hard link is one)."""
    parent, _, name = rel.rpartition("/")
    fd = folders.open(parent, member.name)
    try:
        if member.type == "file":
            assert member.open is not None
            with member.open() as stream:
                size = userfiles.write_file(stream, name, step, 0o644 | (member.mode & 0o111),
                                            dir_fd=fd)
            if size != member.size:
                raise OperationError(f"The archive is truncated: {member.name} is incomplete")
            return 1
        if member.type == "dir":
            try:
                os.mkdir(name, dir_fd=fd)
            except FileExistsError:
                if not (root / rel).is_dir():
                    raise OperationError(_not_a_folder(root, PurePosixPath(rel))) from None
            else:
                folders.made(rel, parent)
            return 0
    finally:
        folders.done(fd)
    return _place_link(member, root, rel)


def _place_link(member: Member, root: Path, rel: str) -> int:
    """A symbolic or hard link at rel, in its folder made and checked; 1 for a hard link."""
    path = root / rel
    if path.is_dir() and not path.is_symlink():
        raise OperationError(f"Refused: {rel} would be both a file and a folder")
    if member.type == "symlink":
        _check_link(member, rel)
        userfiles.remove(path)
        os.symlink(member.link, path)
        return 0
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
    earlier one goes through: check where every link leads once all are in place. (The
    listing's types tell the links: no call per file.)"""
    folders = [root]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_symlink():
                    path = Path(entry.path)
                    if not _real(path).is_relative_to(root):
                        raise OperationError(
                            f"Refused: the link {path.relative_to(root)} points outside "
                            "the target")
                elif entry.is_dir(follow_symlinks=False):
                    folders.append(Path(entry.path))
