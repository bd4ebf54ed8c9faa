"""The per-user disk quota (USER_QUOTA_BYTES): what one user's files may take in all, so
that one user cannot fill the disk every user's tasks write to.

An operation that writes makes a Quota once it holds its locks, checks what it is about to
write before writing (an archive's declared sizes), and counts what it writes as it goes;
either refuses with an OperationError, and the operation's staging is then removed, so
nothing of it stays.
"""

from __future__ import annotations

import os
from pathlib import Path

from webapp.core.runtime import OperationError
from webapp.operations.common import size_text


def usage(root: Path) -> int:
    """The bytes of every file under root (a user's folder: spaces, snapshots, uploads and
    staging alike), each hard-linked file once, links and folders as nothing. Apparent
    sizes, as `du --apparent-size` counts them: what a user can see and an archive declares."""
    total = 0
    seen: set[tuple[int, int]] = set()
    folders = [root]
    while folders:
        try:
            entries = list(os.scandir(folders.pop()))
        except FileNotFoundError:
            continue  # removed meanwhile (another task's staging)
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    found = entry.stat(follow_symlinks=False)
                    if found.st_nlink > 1:
                        if (found.st_dev, found.st_ino) in seen:
                            continue
                        seen.add((found.st_dev, found.st_ino))
                    total += found.st_size
            except FileNotFoundError:
                continue
    return total


class Quota:
    """What a user's task may still write: `limit` bytes for all their files (0: no limit),
    less what their folder holds when the task starts.

    Each task counts on its own: two tasks of one user running at once may together pass
    the limit by what they write meanwhile, never by more."""

    def __init__(self, root: Path, limit: int) -> None:
        self.limit = limit
        self.used = usage(root) if limit else 0

    def check(self, size: int) -> None:
        """Before writing `size` bytes: refused when they would not fit."""
        if self.limit and self.used + size > self.limit:
            raise OperationError(
                f"Refused: this needs {size_text(size)}, and your files would then take more "
                f"than your quota of {size_text(self.limit)} (they take {size_text(self.used)})")

    def spend(self, size: int) -> None:
        """`size` bytes were written: stops the task once the quota is passed."""
        self.used += size
        if self.limit and self.used > self.limit:
            raise OperationError(
                f"Stopped: your files reached your quota of {size_text(self.limit)}")
