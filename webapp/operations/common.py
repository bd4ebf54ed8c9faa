"""What the file operations share: taking their spaces' locks as a task, copying a file
the way the kernel does it fastest, progress in words people read, and sizes in words."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from webapp.core.runtime import TaskContext, duration_text
from webapp.core.userfiles import CHUNK, space_locks

# ioctl(dest, FICLONE, source): the file shares the source's blocks (btrfs, XFS, bcachefs).
FICLONE = 0x40049409
# What a kernel or file system answers for a copy method it does not offer: try the next.
UNSUPPORTED = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTTY,
               errno.EBADF, errno.ETXTBSY}


@contextmanager
def locked(
    context: TaskContext, *, exclusive: Iterable[str] = (), shared: Iterable[str] = ()
) -> Iterator[None]:
    """Hold the spaces' locks; while another task holds one, say so and stay cancellable."""

    def wait(name: str) -> None:
        context.checkpoint()
        context.progress(None, f"Waiting for another task on space {name} to finish")

    with space_locks(context.root, exclusive=exclusive, shared=shared, wait=wait):
        yield


def copy_file(source: str | Path, dest: str | Path, step: Callable[[int], None], *,
              source_dir: int | None = None, dest_dir: int | None = None,
              reflink: bool = True) -> bool:
    """Copy the regular file source to a new file dest (which must not exist), keeping
    its permissions and times, so that the next distribution sees it as unchanged.
    Paths may be relative to open folders (source_dir, dest_dir), as cp opens them.

    A reflink where the file system offers one; else the kernel copies (copy_file_range,
    then sendfile, then read and write), the data regions only for a sparse file, so
    holes stay holes. `step(n)` runs after every MiB: where a task checks for cancel.
    Returns whether a reflink is still worth trying: False once the file system said it
    offers none, which a caller copying many files passes back as `reflink` (asking for
    each file costs a failed call and a Python exception).
    """
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=source_dir)
    try:
        info = os.fstat(src)
        dst = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                      0o600, dir_fd=dest_dir)
        try:
            if info.st_size:
                if reflink:
                    reflink = _reflink(src, dst)
                if not reflink:
                    _copy_data(src, dst, info, step)
            os.fchmod(dst, stat.S_IMODE(info.st_mode))
            os.utime(dst, ns=(info.st_atime_ns, info.st_mtime_ns))
        finally:
            os.close(dst)
    finally:
        os.close(src)
    return reflink


def _reflink(src: int, dst: int) -> bool:
    try:
        fcntl.ioctl(dst, FICLONE, src)
    except OSError as exc:
        if exc.errno in UNSUPPORTED:
            return False
        raise
    return True


def _copy_data(src: int, dst: int, info: os.stat_result, step: Callable[[int], None]) -> None:
    """The bytes of src into the new, empty dst: a file with no holes in one run (most
    files: asked nothing more), else each run of data, so that holes stay holes."""
    if info.st_blocks * 512 >= info.st_size:
        _copy_range(src, dst, 0, info.st_size, step)
        return
    end = 0
    for start, end in _data_regions(src, info):
        _copy_range(src, dst, start, end, step)
    if end < info.st_size:  # a hole at the end: no data gives the size
        os.ftruncate(dst, info.st_size)


def _data_regions(fd: int, info: os.stat_result) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of data in a file with holes."""
    position = 0
    while position < info.st_size:
        try:
            start = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return  # only a hole is left
            if exc.errno in UNSUPPORTED:
                yield position, info.st_size
                return
            raise
        end = min(os.lseek(fd, start, os.SEEK_HOLE), info.st_size)
        yield start, end
        position = end


def _copy_range(src: int, dst: int, start: int, end: int, step: Callable[[int], None]) -> None:
    """Copy [start, end) by the first of COPIES the kernel and file system offer."""
    method, position = 0, start
    while position < end:
        try:
            count = COPIES[method](src, dst, position, min(CHUNK, end - position))
        except OSError as exc:
            if exc.errno not in UNSUPPORTED or method == len(COPIES) - 1:
                raise
            method += 1
            continue
        if count == 0:
            return  # the file was cut shorter while it was copied
        position += count
        step(count)


def _by_copy_file_range(src: int, dst: int, offset: int, count: int) -> int:
    return os.copy_file_range(src, dst, count, offset, offset)


def _by_sendfile(src: int, dst: int, offset: int, count: int) -> int:
    os.lseek(dst, offset, os.SEEK_SET)
    return os.sendfile(dst, src, offset, count)


def _by_read_write(src: int, dst: int, offset: int, count: int) -> int:
    data = os.pread(src, count, offset)
    written = 0
    while written < len(data):
        written += os.pwrite(dst, data[written:], offset + written)
    return len(data)


# The ways to copy a range of bytes, the fastest first.
COPIES = (_by_copy_file_range, _by_sendfile, _by_read_write)


class Meter:
    """Files and bytes done of a total, known ahead or not, with the throughput and the
    time left.

    Time left follows the fraction of the work done. With totals, a file costs as much as
    FILE_COST bytes on top of its size: with many small files the count of files, not
    their bytes, is what takes the time. Without (a compressed tar tells what it holds
    only as it is read), the fraction is `how_far()`, how much of the input was read.
    Reports are made at most every REPORT_EVERY seconds (the text costs more than copying
    a small file), at a new part and at the end.
    """

    FILE_COST = 32 * 1024
    REPORT_EVERY = 0.05

    def __init__(self, context: TaskContext, files: int | None, size: int | None,
                 start: float = 0.0, span: float = 1.0, *,
                 how_far: Callable[[], float] | None = None) -> None:
        self.context = context
        self.files, self.size = files, size
        self.how_far = how_far
        self.files_done = self.size_done = 0
        self.start, self.span = start, span
        self.began = time.monotonic()
        self.reported = -self.REPORT_EVERY

    @property
    def fraction(self) -> float:
        if self.files is None or self.size is None:
            assert self.how_far is not None, "without totals, how far the input was read"
            return min(1.0, self.how_far())
        work = self.files * self.FILE_COST + self.size
        done = self.files_done * self.FILE_COST + self.size_done
        return min(1.0, done / work) if work else 1.0

    def advance(self, what: str, *, files: int = 0, size: int = 0, new: bool = False) -> None:
        """Count what was done, check for cancel, and report `what` with the figures;
        `new` when what is done begins a new part (a target), always told."""
        self.files_done += files
        self.size_done += size
        self.context.checkpoint()
        now = time.monotonic()
        if (new or now - self.reported >= self.REPORT_EVERY
                or (self.files_done, self.size_done) == (self.files, self.size)):
            self.reported = now
            self.context.progress(self.start + self.span * self.fraction, f"{what} ({self})")

    def finish(self, what: str) -> None:
        """All is done: the totals are what was done (known only now without totals
        ahead), told at the end of the span unless the last report did."""
        if (self.files, self.size) != (self.files_done, self.size_done):
            self.files, self.size = self.files_done, self.size_done
            self.context.progress(self.start + self.span, f"{what} ({self})")

    def __str__(self) -> str:
        if self.files is None or self.size is None:
            text = (f"{plural(self.files_done, 'file', ',')}, "
                    f"{size_text(self.size_done)} so far")
        else:
            text = (f"{self.files_done:,} of {plural(self.files, 'file', ',')}, "
                    f"{size_text(self.size_done)} of {size_text(self.size)}")
        elapsed = time.monotonic() - self.began
        fraction = self.fraction
        if elapsed >= 1 and 0 < fraction < 1:
            left = elapsed * (1 - fraction) / fraction
            text += f", {size_text(self.size_done / elapsed)}/s, about {duration_text(left)} left"
        return text


def size_text(size: float) -> str:
    units = ("bytes", "KiB", "MiB", "GiB", "TiB")
    index = 0
    while size >= 1024 and index < len(units) - 1:
        size /= 1024
        index += 1
    return f"{size:.0f} bytes" if index == 0 else f"{size:.1f} {units[index]}"


def plural(count: int, noun: str, separator: str = "") -> str:
    return f"{count:{separator}} {noun}{'' if count == 1 else 's'}"
