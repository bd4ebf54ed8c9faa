"""distribute: copy a file or folder of one space to the same path in other spaces.

Each target is staged beside it and swapped in whole, so every target ends fully updated
or untouched. The staging folder takes what need not change from the target by hard
link (a file whose size and modification time match the source's, and what the strategy
keeps), and only what changed is copied from the source. Staging goes folder by folder
with the source's, the target's and staging's folder open: each call names a file
relative to them, as cp does, and each target folder is listed once.

The old tree the swap displaces is kept as the target's spare (userfiles.spare_of), less
what changed, so its files are the target's by hard link. The next redistribution stages
in the spare: a file it already links from the target stays, and only what differs is
written, so a run after a small change costs what changed, not a link per file. What
the spare holds is never trusted, only compared with the target, entry by entry. What
changed is taken out of the spare, and a new target gets its spare, once the task has
completed (_tend_spares): the result need not wait for a cache.
"""

from __future__ import annotations

import filecmp
import os
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from webapp.core import userfiles
from webapp.core.kinds import Field, InvalidParameters, task_kind
from webapp.core.runtime import (
    OperationError,
    TaskCancelled,
    TaskContext,
    WorkerStopping,
    describe_failure,
)
from webapp.core.userfiles import opened_folder
from webapp.operations.common import Meter, copy_file, locked, plural
from webapp.operations.quota import Quota

STRATEGIES = ("overwrite", "ignore_existing", "mirror", "skip")
# The strategies in words, for the forms, descriptions and outcomes people read.
STRATEGY_WORDS = {
    "overwrite": "replace existing files",
    "ignore_existing": "keep existing files",
    "mirror": "make an exact copy",
    "skip": "do nothing",
}
HERE = "."
# A file changed this recently may share its modification time with other content
# written in the same tick of the file system's clock (a few ms): compare its bytes, as
# git does with its "racily clean" entries. Older matches are trusted, as rsync does.
RACY_NS = 2_000_000_000
# Files staged, or unchanged files compared, between two reports and checkpoints: a few
# ms. Copies are reported sooner once they add up to BATCH_BYTES, and each copy checks
# for cancel itself (after every MiB).
BATCH = 500
BATCH_BYTES = 1 << 20


@dataclass
class Tally:
    created: int = 0
    replaced: int = 0
    preserved: int = 0
    removed: int = 0
    unchanged: int = 0
    # Symbolic links left out of the target because they would lead outside its space.
    left_out: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (f"created {self.created}, replaced {self.replaced}, "
                f"preserved {self.preserved}, removed {self.removed}, "
                f"unchanged {self.unchanged}")
        if self.left_out:
            text += (f"; left out {plural(len(self.left_out), 'symbolic link')} leading "
                     f"outside the space: {', '.join(self.left_out)}")
        return text

    @property
    def changed(self) -> bool:
        return bool(self.created or self.replaced or self.removed or self.left_out)


class Item(NamedTuple):
    """One thing under the source: a file, a folder or a symbolic link, as lstat saw it.
    Paths are plain strings and an item a tuple: a distribution makes one per source
    entry and handles it once per target, and pathlib's parsing or a dataclass's
    __init__ would cost more than the system calls."""

    path: str  # relative to the source, '/'-separated; "." for the source itself
    name: str  # in its folder: what the calls relative to that folder take
    type: str
    size: int = 0
    mtime_ns: int = 0
    mode: int = 0


@dataclass(frozen=True)
class Folder:
    """A folder under the source (or the source itself) and what it holds, by name."""

    item: Item
    entries: list[Item]


@dataclass(frozen=True)
class Dirs:
    """One folder open on each side, for calls relative to it: the source's, the
    target's (None where the target has no real folder there) and staging's (None
    while only comparing)."""

    source: int
    old: int | None
    work: int | None


@dataclass
class Target:
    """One target while it is staged: the target's path (None when it has nothing
    there), its staged copy's, and what was found."""

    old: str | None
    work: str
    label: str
    tally: Tally = field(default_factory=Tally)
    # Staged symbolic links, and kept folders that may hold some: checked once all is
    # staged, since a link may lead through another one staged after it.
    links: list[str] = field(default_factory=list)
    started: bool = False  # whether progress told of this target yet
    reflink: bool = True  # until its file system says it offers none
    # Whether work is the target's spare, holding what an earlier run staged.
    reused: bool = False
    # Paths where the target's old entry is not in the staged tree (replaced, removed):
    # what the spare lets go of once the old tree becomes it.
    displaced: list[str] = field(default_factory=list)


# An Item's type, from its lstat's file type.
KINDS = {stat.S_IFLNK: "symlink", stat.S_IFDIR: "dir", stat.S_IFREG: "file"}


def _inventory(source: Path) -> tuple[Item, list[Folder]]:
    """The source, and each folder under it with what it holds (none for a file),
    folders before what they hold, one stat per entry relative to its open folder."""
    top = _item(HERE, source.name, os.lstat(source))
    if top.type != "dir":
        return top, []
    folders: list[Folder] = []
    pending = [top]
    with opened_folder(str(source)) as opened:
        while pending:
            folder = pending.pop()
            with opened_folder(folder.path, opened) as here:
                with os.scandir(here) as listing:
                    found = sorted(listing, key=lambda entry: entry.name)
                entries = []
                for entry in found:
                    rel = entry.name if folder.path == HERE else f"{folder.path}/{entry.name}"
                    item = _item(rel, entry.name, entry.stat(follow_symlinks=False))
                    entries.append(item)
                    if item.type == "dir":
                        pending.append(item)
            folders.append(Folder(folder, entries))
    return top, folders


def _item(rel: str, name: str, info: os.stat_result) -> Item:
    kind = KINDS.get(stat.S_IFMT(info.st_mode))
    if kind is None:
        raise OperationError(f"{name} is neither a file nor a folder; it cannot be copied")
    return Item(rel, name, kind, info.st_size if kind == "file" else 0, info.st_mtime_ns,
                stat.S_IMODE(info.st_mode))


def _join(base: str, rel: str) -> str:
    return base if rel == HERE else f"{base}/{rel}"


def _listing(folder: int | None) -> dict[str, os.DirEntry[str]]:
    """What an open folder holds, by name; its entries stat relative to it."""
    if folder is None:
        return {}
    with os.scandir(folder) as entries:
        return {entry.name: entry for entry in entries}


def _count_files(path: str) -> int:
    """What removing path removes, counted as files (a link counts as one)."""
    if not os.path.isdir(path) or os.path.islink(path):
        return 1
    return sum(len(files) + sum(1 for d in dirs if os.path.islink(os.path.join(top, d)))
               for top, dirs, files in os.walk(path))


class _Stager:
    """Builds one target's staged copy; progress across all targets."""

    def __init__(self, context: TaskContext, source: Path, strategy: str,
                 top: Item, folders: list[Folder], targets: int, quota: Quota) -> None:
        self.context, self.source, self.strategy = context, str(source), strategy
        self.quota = quota
        self.top, self.folders = top, folders
        files = [item for folder in folders for item in folder.entries
                 if item.type != "dir"] if folders else [top]
        self.files, self.size = len(files), sum(item.size for item in files)
        self.meter = Meter(context, targets * self.files, targets * self.size)

    def up_to_date(self, old: str | None, space: str, label: str) -> Tally | None:
        """The target's tally when it already is what the strategy would make it, found
        by one stat per entry and nothing written, as rsync does; None as soon as
        something differs."""
        if old is None:
            return None
        tally = Tally()
        if not self.folders:  # the source is a file
            with self._parents(old, None) as dirs:
                if not self._kept(self.top, os.lstat(old), dirs, os.path.basename(old), old,
                                  space, tally):
                    return None
        elif not _is_folder(old):
            return None
        else:
            with opened_folder(self.source) as source, opened_folder(old) as target:
                for folder in self.folders:
                    if not self._folder_kept(folder, source, target, old, space, tally):
                        return None
        self.meter.advance(f"{label}: up to date", files=self.files, size=self.size, new=True)
        return tally

    def _folder_kept(self, folder: Folder, source: int | None, target: int | None,
                     old: str, space: str, tally: Tally) -> bool:
        """Whether the target's folder already is what the strategy makes of it (its
        subfolders are looked at as folders of their own)."""
        rel = folder.item.path
        with opened_folder(rel, source) as here, opened_folder(rel, target) as there:
            assert here is not None
            dirs = Dirs(here, there, None)
            listing = _listing(there)
            settled = _settled()
            for number, item in enumerate(folder.entries):
                if number % BATCH == 0:
                    self.context.checkpoint()
                entry = listing.pop(item.name, None)
                if entry is None:
                    return False
                previous = entry.stat(follow_symlinks=False)
                if _settled_and_same(item, previous, settled):
                    tally.unchanged += 1
                elif item.type == "dir":
                    if not stat.S_ISDIR(previous.st_mode):
                        return False
                elif not self._kept(item, previous, dirs, item.name, old, space, tally):
                    return False
        return not (listing and self.strategy == "mirror")

    def _kept(self, item: Item, previous: os.stat_result, dirs: Dirs, name: str, old: str,
              space: str, tally: Tally) -> bool:
        """Whether the target's file or link `name` (previous: its lstat) stays as it
        is; counted in tally if so."""
        if self._same(item, previous, dirs, name, old):
            if item.type == "symlink" and not _leads_inside(_join(old, item.path), [space]):
                return False
            tally.unchanged += 1
        elif self.strategy == "ignore_existing":
            tally.preserved += 1
        else:
            return False
        return True

    def stage(self, target: Target) -> None:
        """Make target.work (in staging) what the target becomes."""
        old, work = target.old, target.work
        if old is None:
            # A new copy takes the source's size; an update links what is unchanged,
            # which takes nothing, so only what it copies is counted, as it is written.
            self.quota.check(self.size)
        if not self.folders:  # the source is a file
            os.makedirs(os.path.dirname(work), exist_ok=True)
            with self._parents(old, work) as dirs:
                self._file(self.top, None if old is None else os.lstat(old), dirs,
                           (os.path.basename(old or work), os.path.basename(work)), target)
            self._advance(target, self.top, 1, self.top.size)
            return
        old_folder = old if old is not None and _is_folder(old) else None
        if old is not None and old_folder is None and self.strategy == "mirror":
            target.tally.removed += 1
        if target.reused:
            os.chmod(work, 0o700)  # folders get their source's permissions at the end
        else:
            os.makedirs(work, mode=0o700)
        # The folders the target really has where the source has one: only below them
        # is the target looked at, never through a link, which would lead outside it.
        present = {HERE} if old_folder is not None else set()
        with opened_folder(self.source) as source, opened_folder(old_folder) as before, \
                opened_folder(work) as staged:
            for folder in self.folders:
                rel = folder.item.path
                with opened_folder(rel, source) as here, \
                        opened_folder(rel if rel in present else None, before) as there, \
                        opened_folder(rel, staged) as into:
                    assert here is not None and into is not None
                    self._stage_folder(folder, Dirs(here, there, into), present, target)
            # Folders get their source's permissions and times once all is written,
            # each before the one holding it: one without write or search permission
            # must not stop what is done below it.
            for folder in reversed(self.folders):
                times = (folder.item.mtime_ns, folder.item.mtime_ns)
                os.chmod(folder.item.path, folder.item.mode, dir_fd=staged)
                os.utime(folder.item.path, ns=times, dir_fd=staged, follow_symlinks=False)

    def _stage_folder(self, folder: Folder, dirs: Dirs, present: set[str],
                      target: Target) -> None:
        """Fill one staged folder (its subfolders made empty, filled on their turn).

        Files are reported in batches (BATCH, BATCH_BYTES): a report a file took 4 of
        the 27 Python calls that making a small file took. A file the target has
        unchanged, the bulk of a redistribution, is linked at once: per file one
        fstatat, one linkat and the comparison between them. Taken through _file, _same
        and _keep, as other entries are, it cost as much time again as the two calls. In
        a reused spare such a file is mostly linked already: then nothing is written for
        it."""
        assert dirs.work is not None
        listing = _listing(dirs.old)
        # What a reused spare has here, by name: each entry is kept where it is what the
        # staged folder needs, else removed, and what is left over goes at the end.
        held = _listing(dirs.work) if target.reused else {}
        work = dirs.work
        settled = _settled()
        done, size, last = 0, 0, folder.item  # files staged since the last report
        for item in folder.entries:
            entry = listing.pop(item.name, None)
            previous = None if entry is None else entry.stat(follow_symlinks=False)
            have = held.pop(item.name, None) if held else None
            if previous is not None and _settled_and_same(item, previous, settled):
                _link_kept(have, previous, (item.name, item.name), dirs)
                target.tally.unchanged += 1
            elif item.type == "dir":
                if have is not None and have.is_dir(follow_symlinks=False):
                    os.chmod(item.name, 0o700, dir_fd=work)
                else:
                    _clear(have, work)
                    os.mkdir(item.name, 0o700, dir_fd=work)
                if previous is not None and stat.S_ISDIR(previous.st_mode):
                    present.add(item.path)
                elif previous is not None:
                    target.displaced.append(item.path)
                    if self.strategy == "mirror":
                        target.tally.removed += 1
                continue
            else:
                self._file(item, previous, dirs, (item.name, item.name), target, have)
            done, size, last = done + 1, size + item.size, item
            if done == BATCH or size >= BATCH_BYTES:
                self._advance(target, last, done, size)
                done = size = 0
        if done:
            self._advance(target, last, done, size)
        # What the target's folder holds and the source's does not: kept, or removed
        # by mirror.
        for name in sorted(listing):
            self.context.checkpoint()
            rel = name if folder.item.path == HERE else f"{folder.item.path}/{name}"
            have = held.pop(name, None) if held else None
            if self.strategy == "mirror":
                target.tally.removed += _count_files(_join(str(target.old), rel))
                target.displaced.append(rel)
                _clear(have, work)
            else:
                self._keep(listing[name].stat(follow_symlinks=False), dirs, (name, name),
                           rel, target, have)
        for have in held.values():
            _clear(have, work)

    @contextmanager
    def _parents(self, old: str | None, work: str | None) -> Iterator[Dirs]:
        """The folders holding a source that is a file, its target and its staged copy."""
        with opened_folder(os.path.dirname(self.source)) as source, \
                opened_folder(old and os.path.dirname(old)) as before, \
                opened_folder(work and os.path.dirname(work)) as staged:
            assert source is not None
            yield Dirs(source, before, staged)

    def _advance(self, target: Target, last: Item, files: int, size: int) -> None:
        """Count files done, last the last of them: a report and a checkpoint."""
        self.meter.advance(f"{target.label}: {last.path}", files=files, size=size,
                           new=not target.started)
        target.started = True

    def _file(self, item: Item, previous: os.stat_result | None, dirs: Dirs,
              names: tuple[str, str], target: Target, have: os.DirEntry[str] | None = None
              ) -> None:
        """Put the source's file or link in staging: linked from the target when it is
        unchanged there (or kept by the strategy), else copied. names: its name in the
        target's folder and in staging's; previous: the target's lstat of it, if any;
        have: what a reused spare holds under that name."""
        tally, old = target.tally, str(target.old)
        if previous is None:
            tally.created += 1
        elif self._same(item, previous, dirs, names[0], old):
            tally.unchanged += 1
            self._keep(previous, dirs, names, item.path, target, have)
            return
        elif self.strategy == "ignore_existing":
            tally.preserved += 1
            self._keep(previous, dirs, names, item.path, target, have)
            return
        else:
            tally.replaced += 1
            target.displaced.append(item.path)
            if self.strategy == "mirror" and stat.S_ISDIR(previous.st_mode):
                tally.removed += _count_files(_join(old, item.path))
        _clear(have, dirs.work)
        if item.type == "symlink":
            os.symlink(os.readlink(item.name, dir_fd=dirs.source), names[1], dir_fd=dirs.work)
            target.links.append(_join(target.work, item.path))
        else:
            target.reflink = copy_file(item.name, names[1], self._step, source_dir=dirs.source,
                                       dest_dir=dirs.work, reflink=target.reflink)

    def _keep(self, previous: os.stat_result, dirs: Dirs, names: tuple[str, str], rel: str,
              target: Target, have: os.DirEntry[str] | None = None) -> None:
        """Take what the target has into staging unchanged: by hard link (a folder, by
        a copy of hard links), unless a reused spare has that link already (have; a
        folder it has is put right)."""
        if stat.S_ISDIR(previous.st_mode):
            userfiles.clone_tree(Path(_join(str(target.old), rel)),
                                 Path(_join(target.work, rel)), self.context.checkpoint)
        else:
            _link_kept(have, previous, names, dirs)
        if not stat.S_ISREG(previous.st_mode):
            target.links.append(_join(target.work, rel))

    def _same(self, item: Item, previous: os.stat_result, dirs: Dirs, name: str,
              old: str) -> bool:
        """Whether the target's `name` (previous: its lstat) is the source's item."""
        if item.type == "symlink":
            return (stat.S_ISLNK(previous.st_mode) and os.readlink(name, dir_fd=dirs.old)
                    == os.readlink(item.name, dir_fd=dirs.source))
        if not _looks_same(item, previous):
            return False
        racy = time.time_ns() - item.mtime_ns < RACY_NS
        return not racy or filecmp.cmp(_join(self.source, item.path), _join(old, item.path),
                                       shallow=False)

    def _step(self, count: int) -> None:
        self.quota.spend(count)
        self.context.checkpoint()


def _settled() -> int:
    """A time before which a file cannot be racily clean (RACY_NS): a file changed later
    is compared by _same, byte by byte where it looks the same."""
    return time.time_ns() - RACY_NS


def _settled_and_same(item: Item, previous: os.stat_result, settled: int) -> bool:
    """Whether the target's entry (previous: its lstat) is the source's file, changed
    before `settled` (taken once per folder), by size, time and permissions: the bulk of
    a redistribution, decided with no call of its own."""
    return item.type == "file" and item.mtime_ns <= settled and _looks_same(item, previous)


def _looks_same(item: Item, previous: os.stat_result) -> bool:
    """Whether the target's entry (previous: its lstat) is a regular file with the source
    file's size, modification time and permissions."""
    return (previous.st_mtime_ns == item.mtime_ns and previous.st_size == item.size
            and previous.st_mode == stat.S_IFREG | item.mode)


def _link_kept(have: os.DirEntry[str] | None, previous: os.stat_result,
               names: tuple[str, str], dirs: Dirs) -> None:
    """Hard-link the target's file or link `names[0]` (previous: its lstat) into staging
    as `names[1]`, unless a reused spare's entry there (have) is that link already: seen
    by the inode number its folder's listing gives, with no call of its own."""
    if have is not None and have.inode() == previous.st_ino:
        return
    assert dirs.work is not None
    _clear(have, dirs.work)
    os.link(names[0], names[1], src_dir_fd=dirs.old, dst_dir_fd=dirs.work,
            follow_symlinks=False)


def _clear(have: os.DirEntry[str] | None, folder: int) -> None:
    """Remove a spare's entry that the staged folder does not take as it is."""
    if have is not None:
        userfiles.remove_entry(folder, have.name)


def _is_folder(path: str | Path) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def _leave_out_escaping_links(staging: Path, top: Path, space: Path, target: Target) -> None:
    """Every symbolic link in the staged copy must lead somewhere in the target's space
    from where it will be: a link that is fine in the source can lead elsewhere at its
    new place (another depth, or through another link). Such a link is left out, and
    the outcome names it: the rest of the content is still the user's to have, and one
    link must not fail a distribution to many spaces. Staging is swapped in at top
    (both real paths); the outcome names links by their path in the space."""
    # Staging becomes the target at the swap: what lies in it lies in the space.
    inside = [str(space)] + ([str(staging)] if _is_folder(staging) else [])
    tally = target.tally

    def check(link: str) -> None:
        if not _leads_inside(link, inside):
            os.unlink(link)
            where = PurePosixPath(top.relative_to(space), os.path.relpath(link, staging))
            tally.left_out.append(str(where))

    pending = []
    for path in target.links:
        if _is_folder(path):
            pending.append(path)
        elif os.path.islink(path):
            check(path)
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_symlink():
                    check(entry.path)
                elif entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
    tally.left_out.sort()


def _leads_inside(link: str, tops: list[str]) -> bool:
    """Whether the link, from where it is, leads to one of tops (real paths) or below."""
    real = os.path.realpath(link)
    return any(real == top or real.startswith(top + os.sep) for top in tops)


def _describe(params: dict[str, Any]) -> str:
    targets = params["targets"]
    return (f"Distribute {params['source']} to {', '.join(targets)} "
            f"({STRATEGY_WORDS[params['strategy']]})")


def _check(params: dict[str, Any], root: Path) -> None:
    space = PurePosixPath(params["source"]).parts[0]
    if space in params["targets"]:
        raise InvalidParameters(f"targets: {space} is the source's own space", "targets",
                                f"{space} holds the source: it cannot receive it too.")


@task_kind(
    "distribute",
    title="Distribute to spaces",
    summary="Copy a file or folder of one space into any number of other spaces.",
    describe=_describe,
    check=_check,
    settings=lambda settings: settings.user_quota_bytes,
    # Every result is staged and swapped in whole, so a run cut short may simply run again.
    max_attempts=3,
    retry_safe=True,
    fields=(
        Field("source", label="Source", required=True, path=userfiles.item_path,
              help="A file or folder: <space>/<path>."),
        Field("targets", label="Target spaces", required=True, many=True,
              path=userfiles.existing_space,
              help="Each receives the source at the same path."),
        Field("strategy", label="Strategy", default="overwrite", choices=STRATEGIES,
              choice_labels=tuple((name, words.capitalize())
                                  for name, words in STRATEGY_WORDS.items()),
              help="An exact copy also removes what the source does not have."),
    ),
)
def distribute(params: dict[str, Any], context: TaskContext) -> str:
    root, strategy, targets = context.root, params["strategy"], params["targets"]
    if strategy == "skip":
        return f"Skipped: nothing was copied to {plural(len(targets), 'space')}"
    source = userfiles.resolve(root, userfiles.relative(params["source"]))
    source_space = userfiles.space_of(root, source)
    # The path where the source really is, not as typed: a source reached through a
    # link (`s1/l/x`, l -> a/b/c/d) lands at `a/b/c/d/x`, where its own relative links
    # lead where they led in the source space.
    inner = PurePosixPath(*source.relative_to(root.resolve()).parts[1:])
    done: list[str] = []
    lines: list[str] = []
    with locked(context, exclusive=targets, shared=[source_space]):
        for target in targets:
            if not (root / target).is_dir():
                raise OperationError(f"The space {target} is resting or gone; wake it first")
        if not os.path.lexists(source):
            raise OperationError(f"There is nothing at {params['source']}")
        top, folders = _inventory(source)
        stager = _Stager(context, source, strategy, top, folders, len(targets),
                         Quota(root, context.settings or 0))
        upkeep = SpareUpkeep()
        try:
            for number, target in enumerate(targets, 1):
                label = target if len(targets) == 1 else f"{target} ({number} of {len(targets)})"
                tally = _distribute_to(root, target, inner, stager, label, upkeep)
                done.append(target)
                lines.append(f"{target}: {tally}")
                context.log(f"Copied {params['source']} to {target}: {tally}")
                context.details = "\n".join(lines)
        except TaskCancelled:
            raise TaskCancelled(f"Cancelled by user; {_which(done, targets)}") from None
        except Exception as exc:
            raise OperationError(f"{describe_failure(exc)}; {_which(done, targets)}") from exc
    if upkeep.new or upkeep.stale:
        context.afterwards(lambda: _tend_spares(root, upkeep, context.stopping))
    return f"Distributed {params['source']} ({STRATEGY_WORDS[strategy]}): " + "; ".join(lines)


def _distribute_to(root: Path, target: str, inner: PurePosixPath, stager: _Stager,
                   label: str, upkeep: SpareUpkeep) -> Tally:
    dest = userfiles.resolve(root, PurePosixPath(target) / inner)
    if userfiles.space_of(root, dest) != target:
        raise OperationError(f"{target}/{inner} leads out of the space {target}")
    top = userfiles.first_missing(dest)
    userfiles.clean_leftovers(top)
    space = (root / target).resolve()
    old = str(dest) if os.path.lexists(dest) else None
    tally = stager.up_to_date(old, str(space), label)
    if tally is not None:
        return tally
    staging = userfiles.beside(top, "staging")
    trash = userfiles.trash_beside(root)
    spare = userfiles.spare_of(root, dest)
    # Only a folder replacing a folder has a spare: a file is staged in one copy anyway.
    folders = bool(stager.folders) and old is not None and _is_folder(old)
    work = Target(old, str(staging / dest.relative_to(top)), label,
                  reused=folders and userfiles.take_spare(spare, staging))

    def dispose(displaced: Path) -> None:
        """The old content becomes the spare, or goes to the trash, in one rename:
        removing it name by name would cost as much as staging did (maintenance
        empties the trash)."""
        if folders:
            kept = userfiles.keep_spare(displaced, spare, trash)
            if kept and spare is not None and work.displaced:
                upkeep.stale.append(StaleSpare(target, spare, os.lstat(spare).st_ino,
                                               work.displaced))
            return
        userfiles.discard(displaced, trash)
        if spare is not None and os.path.lexists(spare):  # a spare of what is gone
            userfiles.discard(spare, trash)

    try:
        stager.stage(work)
        _leave_out_escaping_links(staging, top, space, work)
        stager.context.checkpoint()
        # Nothing to swap when all that differed was a link left out.
        if (old is None or work.tally.changed) and os.path.lexists(staging):
            userfiles.swap_in(staging, top, dispose)
            if spare is not None and old is None and stager.folders:  # a new folder
                upkeep.new.append(NewSpare(target, dest, spare))
        elif work.reused:
            userfiles.keep_spare(staging, spare, trash)
    finally:
        userfiles.remove(staging)
    return work.tally


class NewSpare(NamedTuple):
    """A folder a distribution made where its target had none, and where its spare goes."""

    space: str
    folder: Path
    spare: Path


class StaleSpare(NamedTuple):
    """A tree a swap displaced, kept as its target's spare, and the paths in it of what
    the target replaced or removed: bytes of the spare's own, to let go of."""

    space: str
    spare: Path
    inode: int  # the spare folder's when kept: a later distribution's spare is another
    paths: list[str]


@dataclass
class SpareUpkeep:
    """What a distribution leaves to do to its targets' spares once its task has
    completed (TaskContext.afterwards): a spare is a cache its result does not wait for."""

    new: list[NewSpare] = field(default_factory=list)
    stale: list[StaleSpare] = field(default_factory=list)


def _tend_spares(root: Path, upkeep: SpareUpkeep, stopping: threading.Event) -> None:
    """Each under its space's lock: take out of each kept spare what its target replaced
    or removed, then clone each new folder into its spare by hard links, so that its first
    redistribution, too, costs what changed. Neither is the task's to wait for: a removal
    a changed file, and a link a file of a new folder. Whatever is not done (the consumer
    stopped, the folder went, a later distribution came first) costs the next
    redistribution a removal or a link per file, no more: it compares a spare with its
    target, entry by entry, and never trusts it."""

    def go_on() -> None:
        if stopping.is_set():
            raise WorkerStopping()

    trash = userfiles.trash_beside(root)
    for stale in upkeep.stale:
        with userfiles.space_locks(root, exclusive=[stale.space], wait=lambda _: go_on()):
            try:
                if os.lstat(stale.spare).st_ino != stale.inode:
                    continue
            except FileNotFoundError:
                continue
            for rel in stale.paths:
                go_on()
                userfiles.remove(stale.spare / rel)
    for new in upkeep.new:
        with userfiles.space_locks(root, exclusive=[new.space], wait=lambda _: go_on()):
            if not _is_folder(new.folder) or os.path.lexists(new.spare):
                continue
            fresh = userfiles.beside(new.folder, "spare")  # a leftover clean_leftovers knows
            try:
                userfiles.clone_tree(new.folder, fresh, go_on)
                userfiles.keep_spare(fresh, new.spare, trash)
            finally:
                userfiles.remove(fresh)


def _which(done: list[str], targets: list[str]) -> str:
    untouched = [t for t in targets if t not in done]
    return (f"updated: {', '.join(done) or 'none'}; "
            f"untouched: {', '.join(untouched) or 'none'}")
