"""Users' files under DATA_ROOT: path checks, spaces and their states, a lock per space,
the stage-then-swap that makes every result either complete or absent, and the spares a
redistribution stages in to write only what changed. No Flask."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import itertools
import os
import re
import stat
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO
from urllib.parse import quote

# Folders in a user's root that are not spaces: dot-names are never space names.
SNAPSHOTS = ".snapshots"
UPLOADS = ".uploads"
LOCKS = ".locks"
# Each distribution target's spare (`.spares/<space>/<path>`): see spare_of.
SPARES = ".spares"
# The instance's trash, beside the users' folders in DATA_ROOT: no user's folder can have
# this name, since user_root writes a '%' only as the start of a %XX escape.
TRASH = ".trash%"
SPACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}\Z")
# What a killed worker leaves beside a target: `.<name>.<what>-<tag>`. (`trash` is made
# no more, since rest_space discards a space whole, but one an earlier version left in
# an instance's folders is still garbage.)
LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?P<what>staging|old|trash|spare)-[0-9a-f]{12}\Z")
CHUNK = 1 << 20
# A folder opened for calls relative to it, never through a symbolic link.
FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
ZEROS = bytes(CHUNK)


class PathError(ValueError):
    """A path a user gave that does not name something inside their own folder."""


@dataclass(frozen=True)
class UserFiles:
    """DATA_ROOT, the one way to users' files: built once from the configuration by the
    app and by the consumer, and handed to whatever reads or writes them."""

    data_root: Path

    def root(self, user_name: str) -> Path:
        """The user's own folder (webapp.core.userfiles.user_root)."""
        return user_root(self.data_root, user_name)

    @property
    def trash(self) -> Path:
        """Where discard puts what is to be removed (webapp.core.userfiles.trash_beside)."""
        return self.data_root / TRASH

    def upload_folders(self) -> list[Path]:
        """Every `<DATA_ROOT>/<user>/.uploads/<tag>` folder, whoever it belongs to."""
        return [p for p in self.data_root.glob(f"*/{UPLOADS}/*")
                if p.is_dir() and not p.is_symlink()]


# -- paths ------------------------------------------------------------------


def user_root(data_root: Path, user_name: str) -> Path:
    """`<DATA_ROOT>/<user>`. A name that is not a plain folder name (holding '/' or '%',
    or '.' / '..') is percent-encoded: every user gets a folder of their own, inside."""
    folder = user_name
    if user_name in (".", "..") or any(c in user_name for c in "/%\0"):
        folder = quote(user_name, safe="").replace(".", "%2E")
    return data_root / folder


def relative(raw: str) -> PurePosixPath:
    """The lexical check: relative, no '..', nothing empty."""
    if "\0" in raw:
        raise PathError("a path cannot contain a NUL character")
    path = PurePosixPath(raw.strip())
    if path.is_absolute():
        raise PathError(f"{raw!r} is an absolute path; give a path relative to your folder")
    if ".." in path.parts:
        raise PathError(f"{raw!r} leads outside your folder ('..' is not allowed)")
    if not path.parts:
        raise PathError("the path is empty")
    return path


def resolve(root: Path, rel: PurePosixPath) -> Path:
    """The real location of rel under root, refusing symbolic links that lead outside it."""
    real_root = root.resolve()
    real = (real_root / rel).resolve()
    if not real.is_relative_to(real_root) or real == real_root:
        raise PathError(f"{rel} leads outside your folder through a symbolic link")
    return real


def space_of(root: Path, real: Path) -> str:
    """The space (first folder under the root) that a resolved path lies in."""
    name = real.relative_to(root.resolve()).parts[0]
    check_space_name(name)
    return name


def check_space_name(name: str) -> str:
    if not SPACE_NAME.match(name):
        raise PathError(
            f"{name!r} is not a space name: use letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


# Field checkers: (the owner's root, the raw text) -> the normalised text to store.


def space_name(root: Path, raw: str) -> str:
    name = check_space_name(raw.strip())
    resolve(root, PurePosixPath(name))
    return name


def existing_space(root: Path, raw: str) -> str:
    """A space the user has, awake or resting."""
    name = space_name(root, raw)
    if not (root / name).is_dir() and not snapshot_of(root, name)[0].exists():
        raise PathError(f"there is no space named {name!r}")
    return name


def folder_path(root: Path, raw: str) -> str:
    """A space, or a folder inside one; it need not exist yet."""
    rel = relative(raw)
    space_of(root, resolve(root, rel))
    check_space_name(rel.parts[0])
    return str(rel)


def item_path(root: Path, raw: str) -> str:
    """An existing file or folder inside a space: `<space>/<path>`."""
    rel = relative(raw)
    check_space_name(rel.parts[0])
    if len(rel.parts) < 2:
        raise PathError(f"{raw!r} is a whole space; give <space>/<path> inside it")
    real = resolve(root, rel)
    space_of(root, real)
    if not real.exists():
        raise PathError(f"there is nothing at {rel}")
    return str(rel)


def file_path(root: Path, raw: str) -> str:
    """An existing regular file anywhere in the user's folder."""
    rel = relative(raw)
    if not resolve(root, rel).is_file():
        raise PathError(f"there is no file at {rel}")
    return str(rel)


def save_upload(root: Path, filename: str, save: Callable[[Path], Any]) -> tuple[str, Path]:
    """Keep an uploaded file as `.uploads/<tag>/<name>`: returns that path relative to root
    (what a path field takes) and the folder made for it."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePosixPath(filename.replace("\\", "/")).name)
    folder = root / UPLOADS / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True)
    save(folder / (name.lstrip(".") or "archive"))
    stored = next(folder.iterdir())
    return str(stored.relative_to(root)), folder


# -- spaces -----------------------------------------------------------------


@dataclass(frozen=True)
class Space:
    name: str
    awake: bool

    @property
    def state(self) -> str:
        return "awake" if self.awake else "resting"


def snapshot_of(root: Path, name: str) -> tuple[Path, Path]:
    """Where a resting space is kept: the tar and its SHA-256."""
    folder = root / SNAPSHOTS
    return folder / f"{name}.tar", folder / f"{name}.tar.sha256"


def list_spaces(root: Path) -> list[Space]:
    """Awake spaces are folders; resting ones are snapshots without a folder."""
    found: dict[str, Space] = {}
    if root.is_dir():
        for entry in root.iterdir():
            if SPACE_NAME.match(entry.name) and entry.is_dir() and not entry.is_symlink():
                found[entry.name] = Space(entry.name, awake=True)
    snapshots = root / SNAPSHOTS
    if snapshots.is_dir():
        for entry in snapshots.glob("*.tar"):
            name = entry.name.removesuffix(".tar")
            if SPACE_NAME.match(name) and name not in found:
                found[name] = Space(name, awake=False)
    return sorted(found.values(), key=lambda space: space.name.lower())


def paths_in_spaces(root: Path, spaces: list[str], *, folders_only: bool = False,
                    depth: int = 2, limit: int = 500) -> list[str]:
    """`<space>/<path>` of what the awake spaces hold, down to `depth` levels and at most
    `limit` of them (the shallowest), for a form to offer; hidden names (staging folders,
    leftovers) and symbolic links are left out."""

    def walk() -> Iterator[str]:
        level = [(root / name, name) for name in spaces]
        for _ in range(depth):
            deeper = []
            for folder, shown in level:
                try:
                    entries = sorted(os.scandir(folder), key=lambda entry: entry.name.lower())
                except OSError:
                    continue
                for entry in entries:
                    if entry.name.startswith(".") or entry.is_symlink():
                        continue
                    path = f"{shown}/{entry.name}"
                    if entry.is_dir():
                        deeper.append((Path(entry.path), path))
                        yield path
                    elif not folders_only:
                        yield path
            level = deeper

    return sorted(itertools.islice(walk(), limit), key=str.lower)


def is_resting(root: Path, name: str) -> bool:
    return not (root / name).exists() and snapshot_of(root, name)[0].exists()


@contextmanager
def space_locks(
    root: Path,
    *,
    exclusive: Iterable[str] = (),
    shared: Iterable[str] = (),
    wait: Callable[[str], None],
) -> Iterator[None]:
    """Hold a lock file per space for the whole operation, so two never interleave.

    Locks are taken in name order, so two tasks wanting overlapping spaces cannot
    deadlock; `wait(name)` runs while another task holds one (it may raise to give up).
    The kernel drops a flock when its holder dies, so a killed worker blocks nobody.
    """
    modes = dict.fromkeys(shared, fcntl.LOCK_SH) | dict.fromkeys(exclusive, fcntl.LOCK_EX)
    folder = root / LOCKS
    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        for name in sorted(modes):
            lock = stack.enter_context(open(folder / f"{name}.lock", "a+b"))
            while True:
                try:
                    fcntl.flock(lock, modes[name] | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    wait(name)
                    time.sleep(0.2)
        yield


# -- staging and swapping ---------------------------------------------------


def beside(target: Path, what: str) -> Path:
    """A hidden sibling of target, named so that clean_leftovers recognises it."""
    return target.parent / f".{target.name}.{what}-{uuid.uuid4().hex[:12]}"


def first_missing(target: Path) -> Path:
    """What to stage and swap in for target: target itself, or its highest missing
    parent, so that a failure leaves no new empty folders behind either."""
    top = target
    while not top.parent.exists():
        top = top.parent
    return top


def clean_leftovers(target: Path) -> None:
    """Remove what a killed worker left beside target; call with the space's lock held.

    A displaced original (`old`) goes back in place if the worker died between the two
    renames of a swap; staging and trash are always garbage.
    """
    if not target.parent.is_dir():
        return
    for entry in target.parent.iterdir():
        match = LEFTOVER.match(entry.name)
        if not match or match["name"] != target.name:
            continue
        if match["what"] == "old" and not os.path.lexists(target):
            os.rename(entry, target)
        else:
            remove(entry)


def trash_beside(root: Path) -> Path:
    """The instance's trash, found from a user's folder (`<DATA_ROOT>/<user>`)."""
    return root.parent / TRASH


def discard(path: Path, trash: Path) -> None:
    """Take path away in one rename, into trash, for empty_trash to remove later: a
    task need not wait for a large tree to be unlinked name by name. Where the rename
    cannot be done (trash on another file system, a folder without write permission,
    which moving it to another parent needs) it is removed at once."""
    try:
        trash.mkdir(mode=0o700, exist_ok=True)
        os.rename(path, trash / uuid.uuid4().hex[:12])
    except OSError:
        remove(path)


def empty_trash(trash: Path) -> int:
    """Remove what discard put in trash; returns how many things went. Everything in
    it arrived whole, by one rename, and nothing else refers to it."""
    try:
        entries = [Path(entry.path) for entry in os.scandir(trash)]
    except FileNotFoundError:
        return 0
    for entry in entries:
        remove(entry)
    return len(entries)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        with opened_folder(path) as folder:
            assert folder is not None
            _empty(folder)
        os.rmdir(path)
    elif os.path.lexists(path):
        path.unlink()


def remove_entry(folder: int, name: str) -> None:
    """Remove name, and all it holds, from the open folder, never through a symbolic link."""
    try:
        os.unlink(name, dir_fd=folder)
    except IsADirectoryError:
        with opened_folder(name, folder) as inner:
            assert inner is not None
            _empty(inner)
        os.rmdir(name, dir_fd=folder)


# -- spares -----------------------------------------------------------------


def spare_of(root: Path, real: Path) -> Path | None:
    """Where the tree a distribution last displaced from `real` (a real path in one of
    root's spaces) is kept, to be staged in again by the next one: only what changed
    since then must be written into it, as its unchanged files are hard links to the
    target's own. None when the way there is not made of real folders: a spare holds
    what users made, links included, and is never walked through."""
    top = os.path.realpath(root)
    spare = Path(top, SPARES, real.relative_to(top))
    return spare if os.path.realpath(spare.parent) == str(spare.parent) else None


def take_spare(spare: Path | None, staging: Path) -> bool:
    """Move the spare to staging, if there is one on the staging's file system."""
    if spare is None or not spare.is_dir() or spare.is_symlink():
        return False
    try:
        os.rename(spare, staging)
    except OSError:  # another file system: a spare cannot be swapped in from there
        return False
    return True


def keep_spare(displaced: Path, spare: Path | None, trash: Path) -> bool:
    """Keep a tree a swap displaced as the target's spare; where it cannot be kept it goes
    to the trash. Whether it was kept: what the target replaced is still in it, for the
    caller to let go of (the spare must hold no bytes of its own)."""
    try:
        if spare is not None:
            spare.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            remove(spare)
            os.rename(displaced, spare)
            return True
    except OSError:  # `.spares` is not a folder, or on another file system
        pass
    discard(displaced, trash)
    return False


def drop_spares(root: Path, space: str) -> None:
    """Let go of the space's spares, once something other than a distribution replaced
    what is in it: they would keep its old bytes."""
    spares = root / SPARES / space
    if os.path.lexists(spares):
        discard(spares, trash_beside(root))


@contextmanager
def opened_folder(path: str | Path | None, dir_fd: int | None = None) -> Iterator[int | None]:
    """The folder at path (relative to dir_fd, if given) open for calls relative to it,
    never through a symbolic link; None for no path."""
    if path is None:
        yield None
        return
    fd = os.open(path, FOLDER, dir_fd=dir_fd)
    try:
        yield fd
    finally:
        os.close(fd)


def _empty(folder: int) -> None:
    """Remove what the open folder holds, never through a symbolic link. Each name is
    unlinked relative to its folder, a folder found by the EISDIR that Linux answers:
    per file one call and a plain string. shutil.rmtree makes an entry object and a
    joined path per name: on 20,000 files it took a third more time, twice the CPU
    time outside the kernel."""
    for name in os.listdir(folder):
        remove_entry(folder, name)


def swap_in(staging: Path, target: Path, dispose: Callable[[Path], None] = remove) -> None:
    """Put staging at target in one step; whatever target held is then disposed of
    (removed, unless the caller takes it away otherwise)."""
    if not os.path.lexists(target):
        os.rename(staging, target)
        return
    if staging.is_dir() == target.is_dir() and not staging.is_dir():
        os.replace(staging, target)
        return
    if _exchange(staging, target):
        dispose(staging)  # it now holds the old content
        return
    old = beside(target, "old")
    os.rename(target, old)
    os.rename(staging, target)
    dispose(old)


_libc = ctypes.CDLL(None, use_errno=True)
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Linux renameat2(RENAME_EXCHANGE): both names swap at once, no moment without either."""
    rename = getattr(_libc, "renameat2", None)
    if rename is None:
        return False
    if rename(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def write_file(source: BinaryIO, dest: Path | str, step: Callable[[int], None],
               mode: int = 0o644, *, dir_fd: int | None = None) -> int:
    """Copy source into a new file at dest (relative to the folder dir_fd, if given) chunk
    by chunk; returns the bytes written.

    `step(n)` runs after every chunk: that is where a task checks for cancel, so even
    one huge file stops within a chunk. A file already at dest is unlinked rather than
    written into (it may be a hard link shared with the original); a folder there is an
    IsADirectoryError. All-zero chunks become holes, as `cp --sparse=auto` does.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(dest, flags, mode & 0o777, dir_fd=dir_fd)
    except FileExistsError:
        os.unlink(dest, dir_fd=dir_fd)
        fd = os.open(dest, flags, mode & 0o777, dir_fd=dir_fd)
    written = 0
    hole = False
    try:
        while chunk := source.read(CHUNK):
            # Compared, not counted: data differs from zeros within its first bytes.
            hole = chunk == ZEROS[:len(chunk)]
            if hole:
                os.lseek(fd, len(chunk), os.SEEK_CUR)
            else:
                done = os.write(fd, chunk)
                while done < len(chunk):
                    done += os.write(fd, chunk[done:])
            written += len(chunk)
            step(len(chunk))
        if hole:  # a hole at the end is a size, not bytes written
            os.ftruncate(fd, written)
    finally:
        os.close(fd)
    return written


def clone_tree(source: Path, dest: Path, step: Callable[[], None]) -> None:
    """A copy of a folder made of hard links: instant, and the original stays untouched
    as long as files in the copy are replaced (write_file), never written into. Where
    dest is a folder already (a spare), what it links from source stays as it is and
    the rest is put right: a clone made before costs only what changed since."""
    if not dest.is_dir() or dest.is_symlink():
        remove(dest)
        dest.mkdir(mode=0o700)
    with opened_folder(source) as original, opened_folder(dest) as copy:
        assert original is not None and copy is not None
        os.chmod(copy, 0o700)
        _clone_into(original, copy, step)
        _copy_folder_stat(os.stat(original), copy)


def _clone_into(original: int, copy: int, step: Callable[[], None]) -> None:
    """clone_tree between two open folders: entries compared by the inode numbers their
    folders' listings give, so what is linked already takes no call."""
    with os.scandir(copy) as entries:
        held = {entry.name: entry for entry in entries}
    with os.scandir(original) as entries:
        for entry in entries:
            have = held.pop(entry.name, None)
            if entry.is_dir(follow_symlinks=False):
                if have is not None and have.is_dir(follow_symlinks=False):
                    os.chmod(entry.name, 0o700, dir_fd=copy)
                else:
                    if have is not None:
                        remove_entry(copy, have.name)
                    os.mkdir(entry.name, 0o700, dir_fd=copy)
                with opened_folder(entry.name, original) as inner, \
                        opened_folder(entry.name, copy) as inner_copy:
                    assert inner is not None and inner_copy is not None
                    _clone_into(inner, inner_copy, step)
                    # Once filled: a folder without write permission must not stop it.
                    _copy_folder_stat(entry.stat(follow_symlinks=False), inner_copy)
                continue
            if have is None or have.inode() != entry.inode():
                if have is not None:
                    remove_entry(copy, have.name)
                os.link(entry.name, entry.name, src_dir_fd=original, dst_dir_fd=copy,
                        follow_symlinks=False)
            step()
    for have in held.values():
        remove_entry(copy, have.name)


def _copy_folder_stat(info: os.stat_result, folder: int) -> None:
    """Give the open folder the permissions and times info holds (the original's)."""
    os.chmod(folder, stat.S_IMODE(info.st_mode))
    os.utime(folder, ns=(info.st_atime_ns, info.st_mtime_ns))

