"""The operations called directly with a test context (tests/support/context.py): no
HTTP, no consumer, no database. A cancel at every checkpoint, the progress reports,
and the refusals, deterministic and fast (`make unit`)."""

from __future__ import annotations

import itertools
import tarfile
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
from webapp.core.kinds import InvalidParameters, get_kind
from webapp.core.runtime import OperationError, TaskCancelled, TransientError
from webapp.core.userfiles import snapshot_of
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


def test_extract_progress_names_members_without_a_leading_dot(fresh) -> None:
    root = fresh(lambda root: tar_of(root / "a.tar", (member("./blob2.bin"), b"x" * 10)))
    _, context = run("extract_archive", root, {"archive_path": "a.tar", "target": "site"},
                     settings=LIMITS)
    assert "Extracting blob2.bin" in [message for _, message in context.reports]


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
    outcome, waking = run("wake_space", root, {"space": "notes"})
    assert outcome == "Awake: notes was restored from its snapshot"
    assert read_tree(root / "notes") == sample_tree()
    for context in (resting, waking):
        assert_reports_sane(context)
    assert run("wake_space", root, {"space": "notes"})[0] == "already awake"


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


def test_wake_refuses_a_damaged_snapshot(fresh) -> None:
    root = fresh(resting_space)
    snapshot, _ = snapshot_of(root, "notes")
    with open(snapshot, "r+b") as file:
        file.seek(600)
        file.write(b"tampered")
    with pytest.raises(OperationError, match="is damaged"):
        run("wake_space", root, {"space": "notes"})
    assert snapshot.is_file() and not (root / "notes").exists()


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
