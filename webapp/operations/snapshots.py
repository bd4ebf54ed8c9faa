"""rest_space and wake_space: a resting space is a snapshot tar with its SHA-256 under
`<root>/.snapshots/`; an awake space is a folder. Either step switches at one rename."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path
from typing import IO, Any

from webapp.core import userfiles
from webapp.core.kinds import Field, task_kind
from webapp.core.runtime import OperationError, TaskContext
from webapp.core.tasklog import WARNING
from webapp.operations.archive_reader import extract_members, open_archive
from webapp.operations.common import locked, plural, size_text
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


class _Reporting:
    """A read-only file that lets the task check for cancel and report after each read."""

    def __init__(self, stream: IO[bytes], step: Any) -> None:
        self.stream = stream
        self.step = step

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.step(len(data))
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
        entries = sorted(folder.rglob("*"))
        total = max(1, sum(p.stat().st_size for p in entries if p.is_file() and not p.is_symlink()))
        done = 0

        def step(count: int) -> None:
            nonlocal done
            done += count
            context.checkpoint()
            context.progress(0.95 * done / total, f"Archiving {current}")

        snapshot.parent.mkdir(exist_ok=True)
        staging = userfiles.beside(snapshot, "staging")
        try:
            with open(staging, "xb") as out:
                hashing = _Hashing(out)
                with tarfile.open(fileobj=hashing, mode="w|", copybufsize=userfiles.CHUNK) as tar:
                    for path in entries:
                        current = str(path.relative_to(folder))
                        info = tar.gettarinfo(path, current)
                        if not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
                            context.log(f"Skipped {current}: a socket, pipe or device file "
                                        "cannot be kept in a snapshot", WARNING)
                            continue
                        if info.isreg():
                            with open(path, "rb") as stream:
                                tar.addfile(info, _Reporting(stream, step))
                        else:
                            tar.addfile(info)
                        context.checkpoint()
            context.checkpoint()
            context.progress(0.95, "Putting the space to rest")
            checksum_staging = userfiles.beside(checksum, "staging")
            checksum_staging.write_text(f"{hashing.sha.hexdigest()}  {snapshot.name}\n")
            os.replace(staging, snapshot)
            os.replace(checksum_staging, checksum)
            context.log(f"Wrote the snapshot of {space} ({size_text(snapshot.stat().st_size)}) "
                        "and its checksum")
            # The space is resting from this rename on.
            trash = userfiles.beside(folder, "trash")
            os.rename(folder, trash)
            userfiles.remove(trash)
        finally:
            userfiles.remove(staging)
    return f"Resting: {space} is kept as a snapshot of {size_text(snapshot.stat().st_size)}"


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
        _verify(snapshot, checksum, context)
        context.log(f"The snapshot of {space} matches its checksum")
        staging = userfiles.beside(folder, "staging")
        try:
            staging.mkdir()
            source = open_archive(snapshot, SNAPSHOT_LIMITS)
            try:
                files, size = extract_members(source, staging, context, start=0.3, span=0.65)
            finally:
                source.close()
            context.log(f"Restored {plural(files, 'file')} ({size_text(size)})")
            context.checkpoint()
            context.progress(0.95, "Marking the space awake")
            # The space is awake from this rename on; the snapshot is then spent.
            os.rename(staging, folder)
        finally:
            userfiles.remove(staging)
        snapshot.unlink()
        checksum.unlink()
    return f"Awake: {space} was restored from its snapshot"


def _verify(snapshot: Path, checksum: Path, context: TaskContext) -> None:
    """Step one: the snapshot must be exactly what rest_space wrote."""
    expected = checksum.read_text().split()[0]
    sha = hashlib.sha256()
    size = max(1, snapshot.stat().st_size)
    with open(snapshot, "rb") as stream:
        while chunk := stream.read(userfiles.CHUNK):
            sha.update(chunk)
            context.checkpoint()
            context.progress(0.3 * stream.tell() / size, "Verifying the snapshot")
    if sha.hexdigest() != expected:
        raise OperationError(
            f"The snapshot of {snapshot.stem} is damaged (its checksum does not match); "
            "it was left as it is"
        )
