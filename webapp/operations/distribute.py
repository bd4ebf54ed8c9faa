"""distribute: copy a file or folder of one space to the same path in other spaces.

Each target is staged beside it and swapped in whole, so every target ends fully updated
or untouched. The staging folder takes what need not change from the target by hard
link (a file whose size and modification time match the source's, and what the strategy
keeps), and only what changed is copied from the source.
"""

from __future__ import annotations

import filecmp
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from webapp.core import userfiles
from webapp.core.kinds import Field, InvalidParameters, task_kind
from webapp.core.runtime import OperationError, TaskCancelled, TaskContext, describe_failure
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


@dataclass(frozen=True)
class Item:
    """One thing under the source: a file, a folder or a symbolic link, as lstat saw it.
    Paths are plain strings: a distribution handles each of them once per target, and
    pathlib's parsing would cost more than the system calls."""

    path: str  # relative to the source, '/'-separated; "." for a source that is a file
    parent: str  # the folder holding it, relative to the source; "." at the top
    type: str
    size: int = 0
    mtime_ns: int = 0
    mode: int = 0


def _inventory(source: Path) -> tuple[list[Item], dict[str, set[str]]]:
    """Everything under source, folders before what they hold, one stat per entry; and
    the names in each folder."""
    top = _item(str(source), HERE, HERE, os.lstat(source))
    if top.type != "dir":
        return [top], {}
    items: list[Item] = []
    names: dict[str, set[str]] = {HERE: set()}
    pending = [(str(source), HERE)]
    while pending:
        folder, rel = pending.pop()
        with os.scandir(folder) as entries:
            found = sorted(entries, key=lambda entry: entry.name)
        for entry in found:
            path = entry.name if rel == HERE else f"{rel}/{entry.name}"
            item = _item(entry.path, path, rel, entry.stat(follow_symlinks=False))
            items.append(item)
            names[rel].add(entry.name)
            if item.type == "dir":
                names[item.path] = set()
                pending.append((entry.path, item.path))
    return items, names


def _item(path: str, rel: str, parent: str, info: os.stat_result) -> Item:
    kind = {stat.S_IFLNK: "symlink", stat.S_IFDIR: "dir", stat.S_IFREG: "file"}.get(
        stat.S_IFMT(info.st_mode))
    if kind is None:
        name = os.path.basename(path)
        raise OperationError(f"{name} is neither a file nor a folder; it cannot be copied")
    return Item(rel, parent, kind, info.st_size if kind == "file" else 0, info.st_mtime_ns,
                stat.S_IMODE(info.st_mode))


def _join(base: str, rel: str) -> str:
    return base if rel == HERE else f"{base}/{rel}"


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _count_files(path: str) -> int:
    """What removing path removes, counted as files (a link counts as one)."""
    if not os.path.isdir(path) or os.path.islink(path):
        return 1
    return sum(len(files) + sum(1 for d in dirs if os.path.islink(os.path.join(top, d)))
               for top, dirs, files in os.walk(path))


def _keep(previous: str, place: str, context: TaskContext) -> None:
    """Take what the target has at previous into staging unchanged: by hard link."""
    if os.path.isdir(previous) and not os.path.islink(previous):
        userfiles.clone_tree(Path(previous), Path(place), context.checkpoint)
    else:
        os.link(previous, place, follow_symlinks=False)


class _Stager:
    """Builds one target's staged copy; progress across all targets."""

    def __init__(self, context: TaskContext, source: Path, strategy: str,
                 items: list[Item], names: dict[str, set[str]], targets: int,
                 quota: Quota) -> None:
        self.context, self.source, self.strategy = context, str(source), strategy
        self.quota = quota
        self.items, self.names = items, names
        files = [item for item in items if item.type != "dir"]
        self.files, self.size = len(files), sum(item.size for item in files)
        self.meter = Meter(context, targets * self.files, targets * self.size)

    def up_to_date(self, old: str | None, space: str, label: str) -> Tally | None:
        """The target's tally when it already is what the strategy would make it, found
        by one lstat per entry and nothing written, as rsync does; None as soon as
        something differs."""
        if old is None:
            return None
        tally = Tally()
        folders = {HERE} if _is_folder(old) else set()
        if self.names and not folders:
            return None
        for item in self.items:
            self.context.checkpoint()
            previous = _previous(old, item, folders)
            if previous is None:
                return None
            here = _join(old, item.path)
            if item.type == "dir":
                if not stat.S_ISDIR(previous.st_mode):
                    return None
                folders.add(item.path)
            elif self._same(item, previous, here):
                if item.type == "symlink" and not _leads_inside(here, [space]):
                    return None
                tally.unchanged += 1
            elif self.strategy == "ignore_existing":
                tally.preserved += 1
            else:
                return None
        if self.strategy == "mirror" and any(self._extra_names(_join(old, rel), rel)
                                             for rel in folders):
            return None
        self.meter.advance(f"{label}: up to date", files=self.files, size=self.size, new=True)
        return tally

    def stage(self, old: str | None, work: str, label: str) -> Tally:
        """Make work (in staging) what the target at old becomes; old is None when the
        target has nothing there."""
        if old is None:
            # A new copy takes the source's size; an update links what is unchanged,
            # which takes nothing, so only what it copies is counted, as it is written.
            self.quota.check(self.size)
        tally = Tally()
        folders = {HERE} if old is not None and _is_folder(old) else set()
        if self.names:  # the source is a folder
            if old is not None and not folders and self.strategy == "mirror":
                tally.removed += 1
            os.makedirs(work)
        else:
            os.makedirs(os.path.dirname(work), exist_ok=True)
        first = True
        for item in self.items:
            place = _join(work, item.path)
            previous = _previous(old, item, folders)
            if item.type == "dir":
                os.mkdir(place)
                if previous is not None and stat.S_ISDIR(previous.st_mode):
                    folders.add(item.path)
                elif previous is not None and self.strategy == "mirror":
                    tally.removed += 1
                continue
            self._file(item, previous, _join(old, item.path) if old else place, place, tally)
            self.meter.advance(f"{label}: {item.path}", files=1, size=item.size, new=first)
            first = False
        if old is not None:
            for rel in sorted(folders):
                self._extras(_join(old, rel), _join(work, rel), rel, tally)
        for item in reversed(self.items):
            if item.type == "dir":
                _set_times(_join(work, item.path), item)
        if self.names:
            _set_times(work, _item(self.source, HERE, HERE, os.lstat(self.source)))
        return tally

    def _file(self, item: Item, previous: os.stat_result | None, old: str,
              place: str, tally: Tally) -> None:
        """Put the source's file or link at place: linked from old when it is unchanged
        there (or kept by the strategy), else copied; previous is old's lstat, if any."""
        if previous is None:
            tally.created += 1
        elif self._same(item, previous, old):
            tally.unchanged += 1
            os.link(old, place, follow_symlinks=False)
            return
        elif self.strategy == "ignore_existing":
            tally.preserved += 1
            _keep(old, place, self.context)
            return
        else:
            tally.replaced += 1
            if self.strategy == "mirror" and stat.S_ISDIR(previous.st_mode):
                tally.removed += _count_files(old)
        origin = _join(self.source, item.path)
        if item.type == "symlink":
            os.symlink(os.readlink(origin), place)
        else:
            copy_file(origin, place, self._step)

    def _same(self, item: Item, previous: os.stat_result, old: str) -> bool:
        origin = _join(self.source, item.path)
        if item.type == "symlink":
            return stat.S_ISLNK(previous.st_mode) and os.readlink(old) == os.readlink(origin)
        if not (stat.S_ISREG(previous.st_mode) and previous.st_size == item.size
                and previous.st_mtime_ns == item.mtime_ns
                and stat.S_IMODE(previous.st_mode) == item.mode):
            return False
        racy = time.time_ns() - item.mtime_ns < RACY_NS
        return not racy or filecmp.cmp(origin, old, shallow=False)

    def _extras(self, old: str, work: str, rel: str, tally: Tally) -> None:
        """What the target's folder holds and the source's does not: kept, or removed
        by mirror."""
        for name in self._extra_names(old, rel):
            self.context.checkpoint()
            if self.strategy == "mirror":
                tally.removed += _count_files(f"{old}/{name}")
            else:
                _keep(f"{old}/{name}", f"{work}/{name}", self.context)

    def _extra_names(self, old: str, rel: str) -> list[str]:
        wanted = self.names.get(rel, set())
        with os.scandir(old) as entries:
            return sorted(entry.name for entry in entries if entry.name not in wanted)

    def _step(self, count: int) -> None:
        self.quota.spend(count)
        self.context.checkpoint()


def _previous(old: str | None, item: Item, folders: set[str]) -> os.stat_result | None:
    """What the target has at the item's place, looked up only below its real folders:
    never through a link, which would lead outside the target."""
    if old is None or (item.path != HERE and item.parent not in folders):
        return None
    return _lstat(_join(old, item.path))


def _is_folder(path: str | Path) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def _set_times(path: str, item: Item) -> None:
    """Folders get their source's permissions and times once all they hold is written."""
    os.chmod(path, item.mode)
    os.utime(path, ns=(item.mtime_ns, item.mtime_ns))


def _leave_out_escaping_links(staging: Path, top: Path, space: Path, tally: Tally) -> None:
    """Every symbolic link in the staged copy must lead somewhere in the target's space
    from where it will be: a link that is fine in the source can lead elsewhere at its
    new place (another depth, or through another link). Such a link is left out, and
    the outcome names it: the rest of the content is still the user's to have, and one
    link must not fail a distribution to many spaces. Staging is swapped in at top
    (both real paths); the outcome names links by their path in the space."""
    # Staging becomes the target at the swap: what lies in it lies in the space.
    inside = [str(space)] + ([str(staging)] if _is_folder(staging) else [])

    def check(link: str) -> None:
        if not _leads_inside(link, inside):
            os.unlink(link)
            where = PurePosixPath(top.relative_to(space), os.path.relpath(link, staging))
            tally.left_out.append(str(where))

    if staging.is_symlink():
        check(str(staging))
    pending = [staging] if _is_folder(staging) else []
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_symlink():
                    check(entry.path)
                elif entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
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
        items, names = _inventory(source)
        stager = _Stager(context, source, strategy, items, names, len(targets),
                         Quota(root, context.settings or 0))
        try:
            for number, target in enumerate(targets, 1):
                label = target if len(targets) == 1 else f"{target} ({number} of {len(targets)})"
                tally = _distribute_to(root, target, inner, stager, label)
                done.append(target)
                lines.append(f"{target}: {tally}")
                context.log(f"Copied {params['source']} to {target}: {tally}")
                context.details = "\n".join(lines)
        except TaskCancelled:
            raise TaskCancelled(f"Cancelled by user; {_which(done, targets)}") from None
        except Exception as exc:
            raise OperationError(f"{describe_failure(exc)}; {_which(done, targets)}") from exc
    return f"Distributed {params['source']} ({STRATEGY_WORDS[strategy]}): " + "; ".join(lines)


def _distribute_to(root: Path, target: str, inner: PurePosixPath, stager: _Stager,
                   label: str) -> Tally:
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
    try:
        tally = stager.stage(old, str(staging / dest.relative_to(top)), label)
        _leave_out_escaping_links(staging, top, space, tally)
        stager.context.checkpoint()
        # Nothing to swap when all that differed was a link left out.
        if tally.changed and os.path.lexists(staging):
            userfiles.swap_in(staging, top)
    finally:
        userfiles.remove(staging)
    return tally


def _which(done: list[str], targets: list[str]) -> str:
    untouched = [t for t in targets if t not in done]
    return (f"updated: {', '.join(done) or 'none'}; "
            f"untouched: {', '.join(untouched) or 'none'}")
