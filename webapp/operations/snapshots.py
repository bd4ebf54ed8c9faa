"""rest_space and wake_space: a resting space is a snapshot tar with its SHA-256 under
`<root>/.snapshots/`; an awake space is a folder. Either step switches at one rename."""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from contextlib import closing
from pathlib import Path
from typing import IO, Any

from webapp.core import userfiles
from webapp.core.kinds import Field, task_kind
from webapp.core.runtime import OperationError, TaskContext
from webapp.core.tasklog import WARNING
from webapp.operations.archive_reader import DAMAGED, _Tar, extract_members
from webapp.operations.common import Meter, locked, plural, size_text
from webapp.settings import ArchiveLimits

# Our own snapshots, checksum verified: the limits on uploads do not apply to them.
SNAPSHOT_LIMITS = ArchiveLimits(max_bytes=1 << 62, max_members=1 << 62, max_ratio=1 << 62)
SPACE_FIELD = Field("space", label="Space", required=True, path=userfiles.existing_space,
                    help="The name of one of your spaces.")


class _Hashing:
    """A write-only file that hashes what passes through it."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return self.out.write(data)

    def tell(self) -> int:
        return self.out.tell()


class _Reporting:
    """A read-only file that lets the task check for cancel and report after each read."""

    def __init__(self, stream: IO[bytes], meter: Meter, name: str) -> None:
        self.stream, self.meter, self.name = stream, meter, name

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.meter.advance(f"Archiving {self.name}", size=len(data))
        return data


@task_kind(
    "rest_space",
    title="Put a space to rest",
    summary="Keep a space as a compact snapshot until it is needed again.",
    describe=lambda params: f"Put {params['space']} to rest",
    # Every result is staged and swapped in whole, so a run cut short may simply run again.
    max_attempts=3,
    retry_safe=True,
    fields=(SPACE_FIELD,),
)
def rest_space(params: dict[str, Any], context: TaskContext) -> str:
    root, space = context.root, params["space"]
    folder = root / space
    snapshot, checksum = userfiles.snapshot_of(root, space)
    with locked(context, exclusive=[space]):
        for path in (folder, snapshot, checksum):
            userfiles.clean_leftovers(path)
        if not folder.is_dir():
            if snapshot.exists():
                return "already resting"
            raise OperationError(f"There is no space named {space}")
        entries, skipped = _entries(folder)
        for name in skipped:
            context.log(f"Skipped {name}: a socket, pipe or device file cannot be kept in a "
                        "snapshot", WARNING)
        files = [info for _, info in entries if info.isreg()]
        meter = Meter(context, len(files), sum(info.size for info in files), span=0.99)
        snapshot.parent.mkdir(exist_ok=True)
        staging = userfiles.beside(snapshot, "staging")
        try:
            with open(staging, "xb") as out:
                hashing = _Hashing(out)
                # Not the stream mode "w|": it re-slices its buffer for every 10 KiB
                # block, which costs quadratic time per large write.
                with tarfile.open(fileobj=hashing, mode="w:", copybufsize=userfiles.CHUNK) as tar:
                    for path, info in entries:
                        if not info.isreg():
                            tar.addfile(info)
                            continue
                        with open(path, "rb") as stream:
                            tar.addfile(info, _Reporting(stream, meter, info.name))
                        meter.advance(f"Archiving {info.name}", files=1)
            context.checkpoint()
            context.progress(0.99, "Putting the space to rest")
            checksum_staging = userfiles.beside(checksum, "staging")
            checksum_staging.write_text(f"{hashing.sha.hexdigest()}  {snapshot.name}\n")
            os.replace(staging, snapshot)
            os.replace(checksum_staging, checksum)
            context.log(f"Wrote the snapshot of {space} ({size_text(snapshot.stat().st_size)}) "
                        "and its checksum")
            # The space is resting from this rename on. Its files go whole to the trash,
            # which a consumer's maintenance empties, as a distribution's old trees do:
            # removed name by name here, they cost the task nearly as much again as
            # writing the snapshot.
            userfiles.discard(folder, userfiles.trash_beside(root))
            userfiles.drop_spares(root, space)
        finally:
            userfiles.remove(staging)
    return f"Resting: {space} is kept as a snapshot of {size_text(snapshot.stat().st_size)}"


def _entries(folder: Path) -> tuple[list[tuple[Path, tarfile.TarInfo]], list[str]]:
    """Everything in the space as tar headers, in name order, from one lstat per entry
    (tarfile's own gettarinfo also asks for the owner's names, twice per file), and the
    names left out. A second name of a file already seen is a hard link; sockets, pipes
    and devices cannot be kept."""
    found: list[tuple[Path, tarfile.TarInfo]] = []
    skipped: list[str] = []
    seen: dict[tuple[int, int], str] = {}
    pending = [(folder, "")]
    while pending:
        here, prefix = pending.pop()
        with os.scandir(here) as scan:
            listed = sorted(scan, key=lambda entry: entry.name)
        for entry in listed:
            st = entry.stat(follow_symlinks=False)
            info = tarfile.TarInfo(prefix + entry.name)
            # Whole seconds, as tar keeps them: a fraction would cost a pax header per entry.
            info.mode, info.mtime = stat.S_IMODE(st.st_mode), int(st.st_mtime)
            info.uid, info.gid = st.st_uid, st.st_gid
            if stat.S_ISREG(st.st_mode):
                first = seen.setdefault((st.st_dev, st.st_ino), info.name)
                if first != info.name:
                    info.type, info.linkname = tarfile.LNKTYPE, first
                else:
                    info.size = st.st_size
            elif stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                pending.append((Path(entry.path), info.name + "/"))
            elif stat.S_ISLNK(st.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(entry.path)
            else:
                skipped.append(info.name)
                continue
            found.append((Path(entry.path), info))
    return found, skipped


class _HashingReader:
    """A read-only file that hashes what is read through it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.sha.update(data)
        return data

    def rest(self) -> str:
        """Read what the tar reader left (its end blocks, or all after a failure); the
        hash of the whole file."""
        while self.read(userfiles.CHUNK):
            pass
        return self.sha.hexdigest()


class _Snapshot(_Tar):
    """A snapshot read in one pass that also hashes it: its checksum is known once the
    members are written, before the space is switched. Being our own, it skips the
    header pass that an uploaded tar's limits need."""

    def __init__(self, path: Path) -> None:
        self.limits = SNAPSHOT_LIMITS
        self.size = path.stat().st_size
        # Without the header pass nothing is known ahead: sizes come member by member,
        # and progress follows how far through the snapshot the reading is.
        self.totals, self.declared = None, 0
        self.raw = _HashingReader(open(path, "rb"))  # noqa: SIM115 - closed by close()
        try:
            self._open()
        except BaseException:
            self.raw.stream.close()
            raise

    def rest(self) -> str:
        """The hash of the whole snapshot: what the reading left is read once it stopped."""
        self.stream.stop()
        return self.raw.rest()

    def close(self) -> None:
        self.stream.stop()
        self.archive.close()
        self.raw.stream.close()


@task_kind(
    "wake_space",
    title="Wake a resting space",
    summary="Restore a resting space from its snapshot.",
    describe=lambda params: f"Wake {params['space']}",
    # Every result is staged and swapped in whole, so a run cut short may simply run again.
    max_attempts=3,
    retry_safe=True,
    fields=(SPACE_FIELD,),
)
def wake_space(params: dict[str, Any], context: TaskContext) -> str:
    root, space = context.root, params["space"]
    folder = root / space
    snapshot, checksum = userfiles.snapshot_of(root, space)
    with locked(context, exclusive=[space]):
        userfiles.clean_leftovers(folder)
        if folder.is_dir():
            return "already awake"
        if not snapshot.is_file() or not checksum.is_file():
            raise OperationError(f"There is no snapshot of the space {space}")
        expected = checksum.read_text().split()[0]
        staging = userfiles.beside(folder, "staging")
        try:
            staging.mkdir()
            files, size = _restore(snapshot, expected, staging, context)
            context.log(f"Restored {plural(files, 'file')} ({size_text(size)}); the snapshot "
                        "matches its checksum")
            context.checkpoint()
            context.progress(0.99, "Marking the space awake")
            # The space is awake from this rename on; the snapshot is then spent.
            os.rename(staging, folder)
        finally:
            userfiles.remove(staging)
        snapshot.unlink()
        checksum.unlink()
    return f"Awake: {space} was restored from its snapshot"


def _restore(snapshot: Path, expected: str, staging: Path,
             context: TaskContext) -> tuple[int, int]:
    """Write the snapshot's members into staging, hashing it on the way; then it must be
    exactly what rest_space wrote, or the task fails and staging is thrown away. A
    failure to read it is told as damage when the checksum says so. Returns the files
    and bytes written."""
    try:
        source = _Snapshot(snapshot)
    except DAMAGED:
        with open(snapshot, "rb") as stream:
            _check(snapshot, hashlib.file_digest(stream, "sha256").hexdigest(), expected)
        raise
    with closing(source):
        try:
            written = extract_members(source, staging, context, start=0.0, span=0.99,
                                      doing="Restoring")
        except (OperationError, *DAMAGED):
            _check(snapshot, source.rest(), expected)
            raise
        _check(snapshot, source.rest(), expected)
        return written


def _check(snapshot: Path, digest: str, expected: str) -> None:
    if digest != expected:
        raise OperationError(
            f"The snapshot of {snapshot.stem} is damaged (its checksum does not match); "
            "it was left as it is"
        )
