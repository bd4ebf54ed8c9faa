"""The operations called directly with a test context (tests/support/context.py): no
HTTP, no consumer, no database. A cancel at every checkpoint, the progress reports,
and the refusals, deterministic and fast (`make unit`)."""

from __future__ import annotations

import errno
import itertools
import os
import re
import shutil
import signal
import tarfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.context import TestContext, boundaries, run
from tests.support.files import (
    leftovers,
    make_archive,
    member,
    read_tree,
    sample_tree,
    sparse_tar,
    tar_of,
    write_tree,
)
from webapp.core import userfiles
from webapp.core.kinds import InvalidParameters, get_kind
from webapp.core.runtime import OperationError, TaskCancelled, TransientError
from webapp.core.userfiles import LEFTOVER, SPARES, empty_trash, snapshot_of, trash_beside
from webapp.operations.common import Meter, copy_file
from webapp.operations.distribute import BATCH
from webapp.operations.quota import usage
from webapp.settings import ArchiveLimits

LIMITS = ArchiveLimits()
SOURCE = {"index.html": b"<h1>new</h1>", "img": {"logo.png": b"\x89PNG new"}}
numbers = itertools.count()


@pytest.fixture
def fresh(tmp_path: Path):
    """A maker of fresh user roots under tmp_path, each built by `build(root)`."""

    def make(build) -> Path:
        root = tmp_path / f"user-{next(numbers)}"
        root.mkdir()
        build(root)
        return root

    return make


def all_leftovers(root: Path) -> list[str]:
    return [name for folder in [root, *root.rglob("*")] if folder.is_dir()
            and not folder.is_symlink() for name in leftovers(folder)]


def assert_reports_sane(context: TestContext) -> None:
    fractions = [f for f, _ in context.reports if f is not None]
    assert fractions, "no progress reported"
    assert all(0 <= f <= 1 for f in fractions)
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(fractions)), "progress went back"


# -- extract_archive ------------------------------------------------------------


def archive_root(fmt: str, existing: dict[str, Any] | None = None):
    def build(root: Path) -> None:
        source = write_tree(root / "src-tree", sample_tree())
        make_archive(source, root / "site.archive", fmt)
        write_tree(root / "site", existing or {})

    return build


@pytest.mark.parametrize("fmt", ["zip", "tar", "tar.gz"])
def test_extract_reports_progress_and_writes_every_member(fresh, fmt: str) -> None:
    root = fresh(archive_root(fmt))
    outcome, context = run("extract_archive", root,
                           {"archive_path": "site.archive", "target": "site/out"},
                           settings=LIMITS)
    assert outcome.startswith("Extracted 4 files")  # links are not counted
    assert read_tree(root / "site" / "out") == sample_tree()
    assert_reports_sane(context)
    assert any((m or "").startswith("Extracting ") for _, m in context.reports)


# sample_tree() holds 4 files of 305,016 bytes in all.
WHOLE = "(4 of 4 files, 297.9 KiB of 297.9 KiB)"


@pytest.mark.parametrize(("fmt", "first"), [
    # The central directory gives the totals ahead.
    ("zip", "(0 of 4 files, 293.0 KiB of 297.9 KiB)"),
    # A compressed tar tells what it holds only as it is read.
    ("tar.gz", "(0 files, 293.0 KiB so far)"),
])
def test_extract_progress_says_files_and_bytes_and_ends_at_the_whole(
    fresh, fmt: str, first: str
) -> None:
    root = fresh(archive_root(fmt))
    _, context = run("extract_archive", root,
                     {"archive_path": "site.archive", "target": "site/out"}, settings=LIMITS)
    said = [(f, m) for f, m in context.reports if m and m.startswith("Extracting ")]
    assert said[0][1] == f"Extracting data.bin {first}"  # after its first chunk
    assert said[-1] == (1.0, f"Extracting readme.txt {WHOLE}")
    assert_reports_sane(context)


def test_extract_progress_names_members_without_a_leading_dot(fresh) -> None:
    root = fresh(lambda root: tar_of(root / "a.tar", (member("./blob2.bin"), b"x" * 10)))
    _, context = run("extract_archive", root, {"archive_path": "a.tar", "target": "site"},
                     settings=LIMITS)
    assert context.message == "Extracting blob2.bin (1 of 1 file, 10 bytes of 10 bytes)"


def test_extract_takes_zip_members_without_a_file_type_as_files(fresh) -> None:
    """Python's writestr and DOS tools leave the type bits of a member empty."""

    def build(root: Path) -> None:
        with zipfile.ZipFile(root / "notes.zip", "w") as archive:
            archive.writestr("notes/week-1.txt", "Units\n")

    root = fresh(build)
    outcome, _ = run("extract_archive", root, {"archive_path": "notes.zip", "target": "site"},
                     settings=LIMITS)
    assert outcome.startswith("Extracted 1 file")
    assert (root / "site" / "notes" / "week-1.txt").read_text() == "Units\n"


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
@pytest.mark.parametrize("merge", [False, True])
def test_extract_cancelled_at_every_checkpoint_leaves_the_target_untouched(
    fresh, fmt: str, merge: bool
) -> None:
    existing = {"out": {"readme.txt": b"older\n", "mine.txt": b"kept"}} if merge else {}
    params = {"archive_path": "site.archive", "target": "site/out", "merge": merge}
    cancels = list(boundaries("extract_archive", lambda: fresh(archive_root(fmt, existing)),
                              params, settings=LIMITS))
    assert len(cancels) >= 5  # at least one per member
    for number, root, raised in cancels:
        assert raised is not None, f"checkpoint {number} did not stop the task"
        assert str(raised) == "Cancelled by user; nothing was written to site/out"
        assert read_tree(root / "site") == existing, f"cancelled at checkpoint {number}"
        assert all_leftovers(root) == [], f"cancelled at checkpoint {number}"


REFUSALS = [
    ((member("/etc/passwd"), b"x"), "has an absolute name"),
    ((member("../escape.txt"), b"x"), "outside the target"),
    ((member("link", tarfile.SYMTYPE, "../../outside"), None), "points outside the target"),
    ((member("hard", tarfile.LNKTYPE, "../outside"), None), "outside the target"),
    ((member("fifo", tarfile.FIFOTYPE), None), "device file, pipe or socket"),
]


@pytest.mark.parametrize(("hostile", "message"), REFUSALS)
def test_extract_refuses_hostile_members_and_writes_nothing(fresh, hostile, message) -> None:
    def build(root: Path) -> None:
        tar_of(root / "bad.tar", (member("fine.txt"), b"fine"), hostile)
        (root / "site").mkdir()

    root = fresh(build)
    with pytest.raises(OperationError, match=message):
        run("extract_archive", root, {"archive_path": "bad.tar", "target": "site/out"},
            settings=LIMITS)
    assert read_tree(root / "site") == {}
    assert all_leftovers(root) == []


@pytest.mark.parametrize(("limits", "message"), [
    (ArchiveLimits(max_members=2), "more than 2 members"),
    (ArchiveLimits(max_bytes=100_000), "more than 97.7 KiB when extracted"),
])
def test_extract_refuses_what_its_settings_forbid(fresh, limits, message) -> None:
    root = fresh(archive_root("tar"))
    with pytest.raises(OperationError, match=message):
        run("extract_archive", root, {"archive_path": "site.archive", "target": "site/out"},
            settings=limits)
    assert read_tree(root / "site") == {}


def test_extract_refusals_of_the_target(fresh) -> None:
    root = fresh(archive_root("tar", {"out": {"a.txt": b"a"}}))
    (root / "notes").mkdir()
    (root / "notes" / "file").write_bytes(b"")
    params = {"archive_path": "site.archive"}
    with pytest.raises(InvalidParameters, match="already exists; choose merge"):
        run("extract_archive", root, params | {"target": "site/out"}, settings=LIMITS)
    # A folder made after the launch was checked: the run refuses it too.
    kind = get_kind("extract_archive")
    checked = kind.parse(params | {"target": "site/later"}, root)
    (root / "site" / "later").mkdir()
    with pytest.raises(OperationError, match="already exists; choose merge"):
        kind.run(checked, TestContext(root, settings=LIMITS))
    (root / "site" / "later").rmdir()
    with pytest.raises(OperationError, match="is a file, not a folder"):
        run("extract_archive", root, params | {"target": "notes/file", "merge": True},
            settings=LIMITS)
    (root / "junk.bin").write_bytes(b"not an archive at all")
    with pytest.raises(OperationError, match="is not a zip or tar archive"):
        run("extract_archive", root, {"archive_path": "junk.bin", "target": "site/new"},
            settings=LIMITS)
    with pytest.raises(InvalidParameters, match="there is no file at"):
        run("extract_archive", root, {"archive_path": "none.tar", "target": "site/new"},
            settings=LIMITS)
    assert read_tree(root / "site") == {"out": {"a.txt": b"a"}}


# -- distribute -----------------------------------------------------------------


def distribute_spaces(root: Path) -> None:
    write_tree(root, {
        "src": {"content": SOURCE},
        "a": {},
        "b": {"content": {"index.html": b"<h1>old</h1>", "extra.txt": b"mine"}},
        "c": {"content": {"img": {"logo.png": b"old logo"}}, "other.txt": b"untouched"},
    })


TARGETS = {"source": "src/content", "targets": ["a", "b", "c"]}


@pytest.mark.parametrize("strategy", ["overwrite", "ignore_existing", "mirror"])
def test_distribute_cancelled_at_every_checkpoint_leaves_each_target_whole_or_untouched(
    fresh, strategy: str
) -> None:
    params = TARGETS | {"strategy": strategy}
    whole = fresh(distribute_spaces)
    run("distribute", whole, params)
    before = fresh(distribute_spaces)
    for number, root, raised in boundaries("distribute", lambda: fresh(distribute_spaces),
                                           params):
        assert raised is not None, f"checkpoint {number} did not stop the task"
        updated = str(raised).split("updated: ")[1].split(";")[0]
        done = [] if updated == "none" else updated.split(", ")
        for space in "abc":
            expected = whole if space in done else before
            assert read_tree(root / space) == read_tree(expected / space), (number, space)
        assert all_leftovers(root) == [], f"cancelled at checkpoint {number}"


def test_distribute_reports_progress_per_target(fresh) -> None:
    root = fresh(distribute_spaces)
    outcome, context = run("distribute", root, TARGETS)
    assert outcome.startswith("Distributed src/content (replace existing files): a: created 2")
    assert_reports_sane(context)
    assert [m.split(":")[0] for _, m in context.reports if m] == sorted(
        m.split(":")[0] for _, m in context.reports if m)
    assert context.details is not None and context.details.count("\n") == 2


def test_distribute_refusals(fresh) -> None:
    root = fresh(distribute_spaces)
    with pytest.raises(InvalidParameters, match="is the source's own space"):
        run("distribute", root, {"source": "src/content", "targets": ["src"]})
    with pytest.raises(InvalidParameters, match="there is no space named"):
        run("distribute", root, {"source": "src/content", "targets": ["nowhere"]})
    with pytest.raises(InvalidParameters, match="there is nothing at"):
        run("distribute", root, {"source": "src/missing", "targets": ["a"]})
    run("rest_space", root, {"space": "b"})
    with pytest.raises(OperationError, match="The space b is resting or gone; wake it first"):
        run("distribute", root, {"source": "src/content", "targets": ["a", "b"]})
    assert read_tree(root / "a") == {}
    outcome, _ = run("distribute", root, {"source": "src/content", "targets": ["a"],
                                          "strategy": "skip"})
    assert outcome == "Skipped: nothing was copied to 1 space"
    os.mkfifo(root / "src" / "content" / "pipe")
    with pytest.raises(OperationError, match="pipe is neither a file nor a folder"):
        run("distribute", root, {"source": "src/content", "targets": ["a"]})
    assert read_tree(root / "a") == {}


def links_leading_outside(space: Path) -> list[str]:
    real = space.resolve()
    return sorted(str(link.relative_to(space)) for link in space.rglob("*")
                  if link.is_symlink() and not link.resolve().is_relative_to(real))


def test_distribute_through_a_link_copies_from_where_the_source_really_is(
    fresh, tmp_path: Path
) -> None:
    """Issue 11: both links pass extraction's check at their own depth; copied to the
    path as typed (s2/l/x), y led into another user's folder."""
    write_tree(tmp_path / "bob" / "bspace", {"secret.txt": b"bob's"})
    root = fresh(lambda root: write_tree(root, {"s2": {}}))
    tar_of(root / "links.tar",
           (member("a/b/c/d/x/y", tarfile.SYMTYPE, "../../../../bob/bspace"), None),
           (member("l", tarfile.SYMTYPE, "a/b/c/d"), None))
    run("extract_archive", root, {"archive_path": "links.tar", "target": "s1"},
        settings=LIMITS)
    outcome, _ = run("distribute", root, {"source": "s1/l/x", "targets": ["s2"]})
    assert links_leading_outside(root / "s2") == []
    assert read_tree(root / "s2") == {"a": {"b": {"c": {"d": {"x": {
        "y": ("link", "../../../../bob/bspace")}}}}}}
    assert outcome.endswith("s2: created 1, replaced 0, preserved 0, removed 0, unchanged 0")


def test_distribute_leaves_out_a_link_that_would_leave_the_target_space(fresh) -> None:
    root = fresh(lambda root: write_tree(root, {
        "s1": {"deep": {"x": {"up": ("link", "../../../s1/other"), "ok": ("link", "../y"),
                              "abs": ("link", "/etc")}, "y": b"y"}, "other": b"o"},
        "s2": {"deep": {"x": {"up": ("link", "../y")}}},
    }))
    outcome, context = run("distribute", root, {"source": "s1/deep", "targets": ["s2"],
                                                "strategy": "mirror"})
    assert outcome.endswith("left out 2 symbolic links leading outside the space: "
                            "deep/x/abs, deep/x/up")
    assert read_tree(root / "s2") == {"deep": {"x": {"ok": ("link", "../y")}, "y": b"y"}}
    assert context.details is not None and "deep/x/up" in context.details
    assert all_leftovers(root) == []


# -- incremental distribution -----------------------------------------------------

AN_HOUR_AGO = time.time_ns() - 3600 * 10**9


def distributed_once(root: Path) -> None:
    """s1/site distributed to a and b an hour ago (times set back, so no file is
    racily recent); then s1 changed: one file edited, one added, one removed."""
    write_tree(root, {"s1": {"site": sample_tree() | {"gone.txt": b"to be removed"}},
                      "a": {}, "b": {"site": {"mine.txt": b"b's own"}}})
    for path in (root / "s1").rglob("*"):
        os.utime(path, ns=(AN_HOUR_AGO, AN_HOUR_AGO), follow_symlinks=False)
    run("distribute", root, {"source": "s1/site", "targets": ["a", "b"]})
    (root / "s1" / "site" / "readme.txt").write_bytes(b"hello again\n")
    (root / "s1" / "site" / "docs" / "new.txt").write_bytes(b"new")
    (root / "s1" / "site" / "gone.txt").unlink()


def identities(folder: Path) -> dict[str, tuple[int, int]]:
    """Each file's inode and modification time: what a rewrite would change."""
    return {str(p.relative_to(folder)): (p.lstat().st_ino, p.lstat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}


@pytest.mark.parametrize("strategy,a_line,b_tree", [
    ("mirror", "created 1, replaced 1, preserved 0, removed 1, unchanged 4", {}),
    ("overwrite", "created 1, replaced 1, preserved 0, removed 0, unchanged 4",
     {"gone.txt": b"to be removed"}),
    ("ignore_existing", "created 1, replaced 0, preserved 1, removed 0, unchanged 4",
     {"gone.txt": b"to be removed", "readme.txt": b"hello\n"}),
])
def test_redistribution_writes_only_what_changed(fresh, strategy, a_line, b_tree) -> None:
    root = fresh(distributed_once)
    before = identities(root / "a" / "site")
    outcome, _ = run("distribute", root, {"source": "s1/site", "targets": ["a", "b"],
                                          "strategy": strategy})
    assert f"a: {a_line}" in outcome
    after = identities(root / "a" / "site")
    unchanged = {"data.bin", "docs/a.txt", "docs/deep/b.bin"}
    assert {name: after[name] for name in unchanged} == {n: before[n] for n in unchanged}
    assert after["readme.txt"][0] != before["readme.txt"][0] or strategy == "ignore_existing"
    expected = read_tree(root / "s1" / "site") | b_tree
    assert read_tree(root / "a" / "site") == expected
    mine = {} if strategy == "mirror" else {"mine.txt": b"b's own"}
    assert read_tree(root / "b" / "site") == expected | mine
    assert all_leftovers(root) == []


def test_redistribution_of_unchanged_content_swaps_nothing(fresh) -> None:
    root = fresh(distributed_once)
    run("distribute", root, {"source": "s1/site", "targets": ["a"], "strategy": "mirror"})
    before = identities(root / "a"), (root / "a" / "site").stat().st_ino
    outcome, _ = run("distribute", root, {"source": "s1/site", "targets": ["a"],
                                          "strategy": "mirror"})
    assert outcome.endswith("a: created 0, replaced 0, preserved 0, removed 0, unchanged 6")
    assert (identities(root / "a"), (root / "a" / "site").stat().st_ino) == before


def redistributed(root: Path) -> None:
    """distributed_once, redistributed (a's old tree now its spare); then s1 changed
    again: one file edited, one added, one folder removed."""
    distributed_once(root)
    run("distribute", root, {"source": "s1/site", "targets": ["a", "b"],
                             "strategy": "mirror"})
    site = root / "s1" / "site"
    (site / "data.bin").write_bytes(b"new data")
    (site / "more.txt").write_bytes(b"more")
    for path in sorted((site / "docs" / "deep").iterdir()):
        path.unlink()
    (site / "docs" / "deep").rmdir()


def spare(root: Path, space: str) -> Path:
    return root / SPARES / space / "site"


def assert_spare_holds_nothing_of_its_own(root: Path, space: str) -> None:
    """Each file in the spare is the target's own file at the same path, by hard link."""
    target, kept = root / space / "site", spare(root, space)
    assert kept.is_dir()
    for path in kept.rglob("*"):
        if not path.is_dir() or path.is_symlink():
            twin = target / path.relative_to(kept)
            assert path.lstat().st_ino == twin.lstat().st_ino, path


def test_the_replaced_tree_becomes_the_targets_spare_less_what_changed(fresh) -> None:
    """The task does not unlink the target's old tree name by name: one rename keeps it
    as the target's spare, and what changed is taken out of it once the task has
    completed, so it holds no bytes the target does not hold too."""
    root = fresh(distributed_once)
    trash = trash_beside(root)
    old = read_tree(root / "a" / "site")
    run("distribute", root, {"source": "s1/site", "targets": ["a"], "strategy": "mirror"})
    assert not trash.exists()
    assert read_tree(root / "a" / "site") == read_tree(root / "s1" / "site")
    del old["readme.txt"], old["gone.txt"]  # replaced and removed
    assert read_tree(spare(root, "a")) == old
    assert_spare_holds_nothing_of_its_own(root, "a")
    counted = usage(root)  # the quota's measure
    (root / SPARES).rename(root.parent / f"{root.name}-spares")
    assert usage(root) == counted, "a spare takes no quota"


def test_where_no_spare_can_be_kept_the_replaced_tree_goes_to_the_trash(fresh) -> None:
    """`.spares` is not a folder (nor is the way to it): the old tree goes to the
    instance's trash whole, which maintenance empties."""
    root = fresh(distributed_once)
    shutil.rmtree(root / SPARES)  # b's, from the first run
    (root / SPARES).write_bytes(b"in the way")
    trash = trash_beside(root)
    earlier = set(trash.iterdir()) if trash.exists() else set()
    before = read_tree(root / "a" / "site")
    run("distribute", root, {"source": "s1/site", "targets": ["a"], "strategy": "mirror"})
    added = set(trash.iterdir()) - earlier
    assert [read_tree(tree) for tree in added] == [before]
    assert read_tree(root / "a" / "site") == read_tree(root / "s1" / "site")
    assert empty_trash(trash) == len(earlier) + 1
    assert list(trash.iterdir()) == []
    assert (root / SPARES).read_bytes() == b"in the way"


def counted_calls(monkeypatch, name: str) -> list[Any]:
    """Every call of os.<name> from now on, still made."""
    calls: list[Any] = []
    real = getattr(os, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(os, name, counting)
    return calls


@pytest.mark.parametrize("strategy", ["overwrite", "mirror"])
def test_a_redistribution_through_the_spare_writes_only_what_changed(
    fresh, monkeypatch, strategy: str
) -> None:
    """With a's spare in place, a run links into it only what changed in the run before
    (data, docs/new.txt and readme.txt are not in it), and copies what changed now:
    not a link per file."""
    root = fresh(redistributed)
    before = identities(root / "a" / "site")
    links, copies = counted_calls(monkeypatch, "link"), counted_calls(monkeypatch, "open")
    outcome, _ = run("distribute", root, {"source": "s1/site", "targets": ["a"],
                                          "strategy": strategy})
    removed = 1 if strategy == "mirror" else 0
    assert outcome.endswith(f"a: created 1, replaced 1, preserved 0, removed {removed}, "
                            "unchanged 4")
    assert sorted(args[1] for args in links) == ["new.txt", "readme.txt"]
    written = [args[0] for args in copies if isinstance(args[0], str)
               and args[1] & os.O_CREAT]
    assert sorted(written) == ["data.bin", "more.txt"]
    after = identities(root / "a" / "site")
    for name in ("readme.txt", "docs/a.txt", "docs/new.txt"):
        assert after[name] == before[name]
    kept = {} if strategy == "mirror" else {"docs": {"deep": read_tree(
        root / "b" / "site" / "docs" / "deep")}}
    expected = read_tree(root / "s1" / "site")
    assert read_tree(root / "a" / "site") == _merged(expected, kept)
    assert_spare_holds_nothing_of_its_own(root, "a")


def test_a_stop_before_the_spare_lets_go_of_what_changed_costs_only_the_next_run(
        fresh) -> None:
    """The consumer stops before the replaced and removed files are taken out of a's
    spare: they stay in it, the target is right all the same, and the next
    redistribution puts the spare right."""
    root = fresh(distributed_once)
    old = read_tree(root / "a" / "site")
    params = {"source": "s1/site", "targets": ["a"], "strategy": "mirror"}
    stopping = threading.Event()
    stopping.set()
    run("distribute", root, params, stopping=stopping)
    assert read_tree(root / "a" / "site") == read_tree(root / "s1" / "site")
    assert read_tree(spare(root, "a")) == old
    (root / "s1" / "site" / "more.txt").write_bytes(b"more")
    outcome, _ = run("distribute", root, params)
    assert outcome.endswith("a: created 1, replaced 0, preserved 0, removed 0, unchanged 6")
    assert read_tree(root / "a" / "site") == read_tree(root / "s1" / "site")
    assert_spare_holds_nothing_of_its_own(root, "a")
    assert all_leftovers(root) == []


def test_a_new_target_gets_its_spare_at_once(fresh, monkeypatch) -> None:
    """a was made by the first run: its first redistribution, too, links nothing and
    copies only what changed (readme.txt and docs/new.txt)."""
    root = fresh(distributed_once)
    assert_spare_holds_nothing_of_its_own(root, "a")
    links, copies = counted_calls(monkeypatch, "link"), counted_calls(monkeypatch, "open")
    outcome, _ = run("distribute", root, {"source": "s1/site", "targets": ["a"],
                                          "strategy": "mirror"})
    assert outcome.endswith("a: created 1, replaced 1, preserved 0, removed 1, unchanged 4")
    assert links == []
    written = [args[0] for args in copies if isinstance(args[0], str)
               and args[1] & os.O_CREAT]
    assert sorted(written) == ["new.txt", "readme.txt"]
    assert read_tree(root / "a" / "site") == read_tree(root / "s1" / "site")
    assert_spare_holds_nothing_of_its_own(root, "a")
    assert all_leftovers(root) == []


def test_a_stop_while_a_new_targets_spare_is_made_leaves_no_part_of_it(
        fresh, monkeypatch) -> None:
    """a is new: its spare is cloned once the task has completed (b's and c's are their
    displaced trees). A consumer stopping while it is made gives it up: a stays whole,
    and neither the clone nor a spare of a is left."""
    root = fresh(distribute_spaces)
    stopping = threading.Event()
    began: list[Path] = []

    def stopped_clone(source: Path, dest: Path, step) -> None:
        began.append(source)
        (dest / "partial").mkdir(parents=True)
        stopping.set()
        step()

    monkeypatch.setattr(userfiles, "clone_tree", stopped_clone)
    outcome, _ = run("distribute", root, TARGETS, stopping=stopping)
    assert outcome.startswith("Distributed src/content")
    assert began == [root / "a" / "content"]
    assert read_tree(root / "a" / "content") == read_tree(root / "src" / "content")
    assert not os.path.lexists(root / SPARES / "a")
    assert all_leftovers(root) == []


def test_an_empty_folder_reaches_a_new_target(fresh) -> None:
    root = fresh(lambda root: write_tree(root, {"s1": {"empty": {}}, "a": {}}))
    outcome, _ = run("distribute", root, {"source": "s1/empty", "targets": ["a"]})
    assert outcome.endswith("a: created 0, replaced 0, preserved 0, removed 0, unchanged 0")
    assert read_tree(root / "a") == {"empty": {}}


def _merged(tree: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(tree)
    for name, value in extra.items():
        merged[name] = (_merged(merged[name], value) if isinstance(value, dict)
                        and isinstance(merged.get(name), dict) else value)
    return merged


def test_a_spare_that_differs_from_the_target_is_put_right(fresh, tmp_path: Path) -> None:
    """Whatever the spare holds, the target becomes the source: a stray file, a file of
    other bytes under a target's name, a folder where a file is and a file where a
    folder is, and a link leading outside in place of a folder, never followed."""
    root = fresh(redistributed)
    outside = write_tree(tmp_path / "outside", {"docs": {"a.txt": b"not yours"}})
    kept = spare(root, "a")
    (kept / "stray.txt").write_bytes(b"stray")
    (kept / "docs" / "a.txt").unlink()
    (kept / "docs" / "a.txt").write_bytes(b"other bytes")
    (kept / "readme.txt").mkdir()
    (kept / "readme.txt" / "inner").write_bytes(b"x")
    for path in sorted((kept / "docs").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (kept / "docs").rmdir()
    (kept / "docs").symlink_to(outside / "docs")
    (kept / "data.bin").unlink()
    (kept / "data.bin").mkdir()
    before = identities(root / "a" / "site")
    run("distribute", root, {"source": "s1/site", "targets": ["a"], "strategy": "mirror"})
    assert read_tree(root / "a" / "site") == read_tree(root / "s1" / "site")
    after = identities(root / "a" / "site")
    assert after["docs/a.txt"] == before["docs/a.txt"]
    assert read_tree(tmp_path / "outside") == {"docs": {"a.txt": b"not yours"}}
    assert_spare_holds_nothing_of_its_own(root, "a")


def test_a_link_on_the_way_to_a_spare_is_never_followed(fresh, tmp_path: Path) -> None:
    root = fresh(redistributed)
    outside = write_tree(tmp_path / "outside", {"site": {"x": b"not yours"}})
    (root / SPARES / "a").rename(tmp_path / "was-a")
    (root / SPARES / "a").symlink_to(outside)
    run("distribute", root, {"source": "s1/site", "targets": ["a"], "strategy": "mirror"})
    assert read_tree(root / "a" / "site") == read_tree(root / "s1" / "site")
    assert read_tree(outside) == {"site": {"x": b"not yours"}}


def test_a_spare_goes_once_something_else_replaces_what_it_mirrors(fresh) -> None:
    """Resting the space, merging an archive into it, and a file distributed where the
    folder was: each would leave the spare holding bytes the space no longer has."""
    root = fresh(redistributed)
    assert spare(root, "a").is_dir() and spare(root, "b").is_dir()
    run("rest_space", root, {"space": "a"})
    assert not (root / SPARES / "a").exists()
    make_archive(write_tree(root / "s1" / "arch", {"x.txt": b"x"}), root / "s1" / "x.tar",
                 "tar")
    run("extract_archive", root, {"archive_path": "s1/x.tar", "target": "b/site",
                                  "merge": True}, settings=LIMITS)
    assert not (root / SPARES / "b").exists()
    run("distribute", root, {"source": "s1/site", "targets": ["b"], "strategy": "mirror"})
    assert spare(root, "b").is_dir()
    (root / "s1" / "site2").write_bytes(b"a file")
    (root / "s1" / "site").rename(root / "s1" / "was")
    (root / "s1" / "site2").rename(root / "s1" / "site")
    run("distribute", root, {"source": "s1/site", "targets": ["b"], "strategy": "mirror"})
    assert (root / "b" / "site").read_bytes() == b"a file"
    assert not spare(root, "b").exists()


def test_a_racily_recent_file_is_compared_by_its_bytes(fresh) -> None:
    """Same size, same modification time to the nanosecond, other bytes: written in
    the same tick of the clock. Replaced, not taken for unchanged."""
    root = fresh(lambda root: write_tree(root, {"s1": {"f": {"x": b"new"}},
                                                "a": {"f": {"x": b"old"}}}))
    now = time.time_ns()
    for path in (root / "s1" / "f" / "x", root / "a" / "f" / "x"):
        os.utime(path, ns=(now, now))
    outcome, _ = run("distribute", root, {"source": "s1/f", "targets": ["a"]})
    assert outcome.endswith("replaced 1, preserved 0, removed 0, unchanged 0")
    assert (root / "a" / "f" / "x").read_bytes() == b"new"


@pytest.mark.parametrize("strategy", ["overwrite", "mirror"])
@pytest.mark.parametrize("build", [distributed_once, redistributed])
def test_redistribution_cancelled_at_every_checkpoint_leaves_each_target_whole_or_untouched(
    fresh, strategy: str, build
) -> None:
    params = {"source": "s1/site", "targets": ["a", "b"], "strategy": strategy}
    whole = fresh(build)
    run("distribute", whole, params)
    before = fresh(build)
    for number, root, raised in boundaries("distribute", lambda: fresh(build), params):
        assert raised is not None, f"checkpoint {number} did not stop the task"
        for space in "ab":
            assert read_tree(root / space) in (read_tree(whole / space),
                                               read_tree(before / space)), (number, space)
        assert all_leftovers(root) == [], f"cancelled at checkpoint {number}"


WIDE = BATCH * 2 + 1


def wide_folder_distributed(root: Path) -> None:
    """A folder of more files than one batch of links, distributed to a an hour ago;
    then its last file changed."""
    write_tree(root, {"s1": {"wide": {f"f{n:04d}": b"%d" % n for n in range(WIDE)}}, "a": {}})
    for path in (root / "s1").rglob("*"):
        os.utime(path, ns=(AN_HOUR_AGO, AN_HOUR_AGO))
    run("distribute", root, {"source": "s1/wide", "targets": ["a"]})
    (root / "s1" / "wide" / f"f{WIDE - 1:04d}").write_bytes(b"changed")


def test_a_wide_unchanged_folder_is_linked_counted_and_can_be_cancelled_within(fresh) -> None:
    """Unchanged files are linked in batches: each keeps its inode and time, progress
    counts every one, and a cancel once some are counted, before the folder is done,
    leaves the target untouched."""
    params = {"source": "s1/wide", "targets": ["a"], "strategy": "mirror"}
    root = fresh(wide_folder_distributed)
    before = identities(root / "a")
    outcome, context = run("distribute", root, params)
    assert outcome.endswith(f"a: created 0, replaced 1, preserved 0, removed 0, "
                            f"unchanged {WIDE - 1}")
    after = identities(root / "a")
    last = f"wide/f{WIDE - 1:04d}"
    assert after.pop(last) != before.pop(last)
    assert after == before
    assert read_tree(root / "a" / "wide") == read_tree(root / "s1" / "wide")
    assert context.message.startswith(f"a: f{WIDE - 1:04d} ({WIDE:,} of {WIDE:,} files")

    def midway(context: TestContext) -> bool:
        done = re.search(r"\(([\d,]+) of", context.message)
        return done is not None and 0 < int(done[1].replace(",", "")) < WIDE

    root = fresh(wide_folder_distributed)
    untouched = read_tree(root / "a")
    with pytest.raises(TaskCancelled):
        run("distribute", root, params, cancel_when=midway)
    assert read_tree(root / "a") == untouched
    assert all_leftovers(root) == []


def killed_at(root: Path, params: dict[str, Any], number: int) -> int:
    """Run the operation in a child process that SIGKILLs itself at checkpoint number,
    as the kernel kills a worker: no finally, no cleanup. Returns the child's status."""
    pid = os.fork()
    if pid == 0:  # the child never returns to pytest
        try:
            run("distribute", root, params, cancel_when=lambda context: (
                context.checkpoints == number and os.kill(os.getpid(), signal.SIGKILL)))
        finally:
            os._exit(0)
    return os.waitpid(pid, 0)[1]


def without_leftovers(tree: dict[str, Any]) -> dict[str, Any]:
    """What a user sees of a tree: the hidden staging a killed worker left is not part."""
    return {name: without_leftovers(value) if isinstance(value, dict) else value
            for name, value in tree.items() if not LEFTOVER.match(name)}


@pytest.mark.parametrize("build", [distributed_once, redistributed])
def test_a_worker_killed_during_a_redistribution_leaves_each_target_whole_or_untouched(
    fresh, build
) -> None:
    params = {"source": "s1/site", "targets": ["a", "b"], "strategy": "mirror"}
    whole = fresh(build)
    _, counted = run("distribute", whole, params)
    before = fresh(build)
    for number in range(1, counted.checkpoints + 1, 3):
        root = fresh(build)
        assert os.WTERMSIG(killed_at(root, params, number)) == signal.SIGKILL
        for space in "ab":
            assert without_leftovers(read_tree(root / space)) in (read_tree(whole / space),
                                               read_tree(before / space)), (number, space)
        run("distribute", root, params)  # the next run, as the reaper starts it
        # The spares may differ: one lost to a kill is made again by a later run.
        for space in ("s1", "a", "b"):
            assert read_tree(root / space) == read_tree(whole / space), number
        assert all_leftovers(root) == []


def test_progress_says_files_and_bytes_done_the_throughput_and_the_time_left(
    tmp_path: Path
) -> None:
    context = TestContext(tmp_path)
    meter = Meter(context, files=10, size=10 << 20)
    meter.advance("a (1 of 2): x.bin", files=5, size=5 << 20)
    assert context.reports[-1] == (0.5, "a (1 of 2): x.bin (5 of 10 files, 5.0 MiB of 10.0 MiB)")
    meter.began -= 10  # as if those 5 MiB took 10 s
    meter.advance("a (1 of 2): y.bin", new=True)
    assert context.message == ("a (1 of 2): y.bin (5 of 10 files, 5.0 MiB of 10.0 MiB, "
                               "512.0 KiB/s, about 10 s left)")


def test_progress_without_totals_says_so_far_and_the_time_left_from_the_input_read(
    tmp_path: Path
) -> None:
    context = TestContext(tmp_path)
    meter = Meter(context, None, None, how_far=lambda: 0.25)
    meter.advance("x.bin", files=5, size=5 << 20)
    assert context.reports[-1] == (0.25, "x.bin (5 files, 5.0 MiB so far)")
    meter.began -= 10  # as if a quarter of the input took 10 s
    meter.advance("y.bin", new=True)
    assert context.message == "y.bin (5 files, 5.0 MiB so far, 512.0 KiB/s, about 30 s left)"
    meter.finish("y.bin")
    assert context.reports[-1] == (1.0, "y.bin (5 of 5 files, 5.0 MiB of 5.0 MiB)")


MANY = [f"t{n:03d}" for n in range(200)]


def many_spaces(root: Path) -> None:
    write_tree(root, {"src": {"content": SOURCE}} | {name: {} for name in MANY})


def test_distribute_to_200_spaces_one_at_a_time(fresh) -> None:
    root = fresh(many_spaces)
    outcome, context = run("distribute", root, {"source": "src/content", "targets": MANY})
    assert all(read_tree(root / name) == {"content": SOURCE} for name in MANY)
    assert outcome.count("created 2,") == 200
    named = [m.split(":")[0] for _, m in context.reports if m]
    assert list(dict.fromkeys(named)) == [f"{name} ({n} of 200)" for n, name in
                                          enumerate(MANY, 1)]
    assert_reports_sane(context)
    assert context.message == ("t199 (200 of 200): img/logo.png "
                               "(400 of 400 files, 3.9 KiB of 3.9 KiB)")


def test_distribute_to_200_spaces_cancelled_between_two_files(fresh) -> None:
    root = fresh(many_spaces)
    with pytest.raises(TaskCancelled) as cancelled:
        run("distribute", root, {"source": "src/content", "targets": MANY},
            cancel_when=lambda context: context.message.startswith("t100 (101 of 200): "))
    assert str(cancelled.value).endswith(f"updated: {', '.join(MANY[:100])}; "
                                         f"untouched: {', '.join(MANY[100:])}")
    assert all(read_tree(root / name) == {"content": SOURCE} for name in MANY[:100])
    assert all(read_tree(root / name) == {} for name in MANY[100:])
    assert all_leftovers(root) == []


# -- copies in the kernel -----------------------------------------------------------


def sparse_file(path: Path) -> Path:
    """1 MiB of data, a 30 MiB hole, 4 KiB of data, a 10 MiB hole at the end."""
    with open(path, "wb") as out:
        out.write(os.urandom(1 << 20))
        out.seek(30 << 20, os.SEEK_CUR)
        out.write(os.urandom(4096))
        out.truncate(out.tell() + (10 << 20))
    os.chmod(path, 0o751)
    os.utime(path, ns=(AN_HOUR_AGO, AN_HOUR_AGO + 123))
    return path


def assert_copied(original: Path, copy: Path) -> None:
    assert copy.read_bytes() == original.read_bytes()
    was, now = original.stat(), copy.stat()
    assert (now.st_size, now.st_mode, now.st_mtime_ns) == (was.st_size, was.st_mode,
                                                           was.st_mtime_ns)
    assert now.st_blocks <= was.st_blocks + 64, "holes were filled in"


@pytest.mark.parametrize("broken", [(), ("copy_file_range",), ("copy_file_range", "sendfile")])
def test_copy_file_keeps_holes_permissions_and_times_by_every_method(
    tmp_path: Path, monkeypatch, broken: tuple[str, ...]
) -> None:
    """Each fallback as a kernel or file system without the method answers (ENOSYS),
    for a file with holes and one without (copied in one run, a MiB at a time)."""

    def unsupported(*args: Any) -> int:
        raise OSError(errno.ENOSYS, "not here")

    for name in broken:
        monkeypatch.setattr(os, name, unsupported)
    original = sparse_file(tmp_path / "sparse.bin")
    steps: list[int] = []
    copy_file(original, tmp_path / "copy.bin", steps.append)
    assert_copied(original, tmp_path / "copy.bin")
    assert sum(steps) in (0, (1 << 20) + 4096)  # 0: a reflink, no bytes moved
    plain = tmp_path / "plain.bin"
    plain.write_bytes(os.urandom((2 << 20) + 100))
    os.chmod(plain, 0o640)
    os.utime(plain, ns=(AN_HOUR_AGO, AN_HOUR_AGO + 456))
    steps.clear()
    copy_file(plain, tmp_path / "plain-copy.bin", steps.append)
    assert_copied(plain, tmp_path / "plain-copy.bin")
    assert steps in ([], [1 << 20, 1 << 20, 100])
    with pytest.raises(FileExistsError):
        copy_file(original, tmp_path / "copy.bin", steps.append)


def test_distribute_keeps_holes_permissions_and_times(fresh) -> None:
    root = fresh(lambda root: write_tree(root, {"s1": {"f": {}}, "a": {}}))
    original = sparse_file(root / "s1" / "f" / "sparse.bin")
    os.chmod(root / "s1" / "f", 0o750)
    run("distribute", root, {"source": "s1/f", "targets": ["a"]})
    assert_copied(original, root / "a" / "f" / "sparse.bin")
    assert (root / "a" / "f").stat().st_mode == (root / "s1" / "f").stat().st_mode


# -- rest_space and wake_space ----------------------------------------------------


def one_space(root: Path) -> None:
    write_tree(root / "notes", sample_tree())


def resting_space(root: Path) -> None:
    one_space(root)
    run("rest_space", root, {"space": "notes"})


def test_rest_then_wake_gives_back_the_same_tree(fresh) -> None:
    root = fresh(one_space)
    outcome, resting = run("rest_space", root, {"space": "notes"})
    assert outcome.startswith("Resting: notes is kept as a snapshot of")
    assert not (root / "notes").exists() and snapshot_of(root, "notes")[0].is_file()
    # The space's files went whole to the trash, for maintenance to remove.
    trash = trash_beside(root)
    assert [read_tree(path) for path in trash.iterdir()] == [sample_tree()]
    assert empty_trash(trash) == 1
    outcome, waking = run("wake_space", root, {"space": "notes"})
    assert outcome == "Awake: notes was restored from its snapshot"
    assert read_tree(root / "notes") == sample_tree()
    for context in (resting, waking):
        assert_reports_sane(context)
    assert run("wake_space", root, {"space": "notes"})[0] == "already awake"


def test_wake_says_files_and_bytes_restored_and_ends_at_the_whole(fresh) -> None:
    root = fresh(resting_space)
    _, waking = run("wake_space", root, {"space": "notes"})
    said = [(f, m) for f, m in waking.reports if m and m.startswith("Restoring ")]
    # Without a pass over the headers first, the snapshot tells what it holds as it is read.
    assert re.fullmatch(r"Restoring \S+ \(\d files?, [\d.]+ (bytes|KiB) so far\)", said[0][1])
    fraction, message = said[-1]
    assert fraction == 0.99 and message.endswith(WHOLE)


def test_rest_keeps_hard_links_and_says_files_and_bytes(fresh) -> None:
    root = fresh(one_space)
    os.link(root / "notes" / "data.bin", root / "notes" / "docs" / "same.bin")
    _, resting = run("rest_space", root, {"space": "notes"})
    assert resting.message == "Putting the space to rest"
    said = [m for _, m in resting.reports if m]
    assert said[-2].endswith("(4 of 4 files, 297.9 KiB of 297.9 KiB)")  # a link is no file
    run("wake_space", root, {"space": "notes"})
    tree = sample_tree()
    tree["docs"]["same.bin"] = tree["data.bin"]
    assert read_tree(root / "notes") == tree
    assert (root / "notes" / "docs" / "same.bin").stat().st_ino == \
        (root / "notes" / "data.bin").stat().st_ino


def test_rest_cancelled_at_every_checkpoint_leaves_the_space_awake(fresh) -> None:
    for number, root, raised in boundaries("rest_space", lambda: fresh(one_space),
                                           {"space": "notes"}):
        assert raised is not None, f"checkpoint {number} did not stop the task"
        assert read_tree(root / "notes") == sample_tree(), f"checkpoint {number}"
        assert not snapshot_of(root, "notes")[0].exists()
        assert all_leftovers(root) == []


def test_wake_cancelled_at_every_checkpoint_leaves_the_space_resting(fresh) -> None:
    for number, root, raised in boundaries("wake_space", lambda: fresh(resting_space),
                                           {"space": "notes"}):
        assert raised is not None, f"checkpoint {number} did not stop the task"
        assert not (root / "notes").exists(), f"checkpoint {number}"
        assert all(path.is_file() for path in snapshot_of(root, "notes"))
        assert all_leftovers(root) == []


@pytest.mark.parametrize("where", [0, 600, -1])  # a header, a file's bytes, the end blocks
def test_wake_refuses_a_damaged_snapshot(fresh, where: int) -> None:
    """The check is made while the members are written: damage anywhere, even in the
    end blocks a tar reader never needs, fails the task before the space is switched."""
    root = fresh(resting_space)
    snapshot, _ = snapshot_of(root, "notes")
    with open(snapshot, "r+b") as file:
        file.seek(where, os.SEEK_END if where < 0 else os.SEEK_SET)
        file.write(b"tampered"[:-where] if where < 0 else b"tampered")
    damaged = snapshot.read_bytes()
    with pytest.raises(OperationError, match="is damaged"):
        run("wake_space", root, {"space": "notes"})
    assert not (root / "notes").exists() and snapshot.read_bytes() == damaged
    assert all_leftovers(root) == []


# -- sleep ----------------------------------------------------------------------


def test_sleep_steps_report_and_stop_at_every_checkpoint(tmp_path: Path) -> None:
    params = {"seconds": 0, "steps": 4}
    outcome, context = run("sleep", tmp_path, params)
    assert outcome == "Slept 0 s in 4 steps"
    assert context.reports == [(n / 4, f"Step {n} of 4") for n in range(1, 5)]
    for number in range(1, context.checkpoints + 1):
        with pytest.raises(TaskCancelled):
            run("sleep", tmp_path, params, cancel_at=number)


def test_sleep_fails_and_flakes_as_asked(tmp_path: Path) -> None:
    with pytest.raises(OperationError, match=r"^broken$"):
        run("sleep", tmp_path, {"seconds": 0, "steps": 1, "fail": "broken"})
    with pytest.raises(TransientError, match="attempt 1"):
        run("sleep", tmp_path, {"seconds": 0, "steps": 1, "flaky": 1})
    assert run("sleep", tmp_path, {"seconds": 0, "steps": 1, "flaky": 1}, attempt=2)[0]


def test_extract_stops_inside_one_large_member(fresh) -> None:
    """A cancel lands between two chunks of one file, not after the whole file."""

    def build(root: Path) -> None:
        sparse_tar(root / "big.tar", "big.bin", 64 << 20, then={"after.txt": b"x"})
        (root / "site").mkdir()

    root = fresh(build)
    with pytest.raises(TaskCancelled):
        run("extract_archive", root, {"archive_path": "big.tar", "target": "site/big"},
            settings=LIMITS, cancel_when=lambda context: context.checkpoints == 5)
    assert read_tree(root / "site") == {}
    assert all_leftovers(root) == []
