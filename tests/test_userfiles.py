"""The path rules of users' folders, without a consumer: what launch checks rests on them."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from webapp.core.userfiles import (
    TRASH,
    PathError,
    discard,
    folder_path,
    relative,
    remove,
    resolve,
    user_root,
)


@pytest.mark.parametrize("name,folder", [
    ("alice", "alice"), ("a.b", "a.b"), ("a/b", "a%2Fb"), ("..", "%2E%2E"), ("a%2Fb", "a%252Fb"),
])
def test_every_user_gets_a_folder_of_their_own(name: str, folder: str) -> None:
    assert user_root(Path("/data"), name) == Path("/data", folder)


@pytest.mark.parametrize("name", [TRASH, ".trash", "%", ".trash%25"])
def test_no_user_gets_the_trash_for_a_folder(name: str) -> None:
    assert user_root(Path("/data"), name) != Path("/data", TRASH)


def test_what_cannot_be_moved_to_the_trash_is_removed_at_once(tmp_path: Path) -> None:
    old = tmp_path / "old"
    (old / "sub").mkdir(parents=True)
    (old / "sub" / "f.txt").write_bytes(b"old")
    blocked = tmp_path / "blocked"
    blocked.write_bytes(b"a file, where the trash folder would be")
    discard(old, blocked)
    assert not old.exists()
    assert blocked.read_bytes() == b"a file, where the trash folder would be"


def test_remove_takes_a_whole_tree_and_never_follows_a_link_out_of_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep" / "f.txt").write_bytes(b"not in the tree")
    tree = tmp_path / "tree"
    (tree / "a" / "b" / "c").mkdir(parents=True)
    (tree / "a" / "b" / "c" / "deep.txt").write_bytes(b"deep")
    (tree / "a" / "f.txt").write_bytes(b"f")
    (tree / "a" / "to-folder").symlink_to(outside / "keep")
    (tree / "to-file").symlink_to(outside / "keep" / "f.txt")
    (tree / "dangling").symlink_to(tmp_path / "nowhere")
    remove(tree)
    assert not tree.exists()
    assert (outside / "keep" / "f.txt").read_bytes() == b"not in the tree"
    link = tmp_path / "link"
    link.symlink_to(outside)
    remove(link)
    assert not link.exists() and (outside / "keep" / "f.txt").exists()


@pytest.mark.parametrize("raw", ["/etc", "a/../../b", "..", "", "a\0b"])
def test_paths_that_leave_the_folder_are_refused(raw: str) -> None:
    with pytest.raises(PathError):
        relative(raw)


def test_symbolic_links_are_followed_and_checked(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "in").symlink_to("../site")
    (tmp_path / "site" / "out").symlink_to("/tmp")
    assert resolve(tmp_path, PurePosixPath("site/in/x")) == tmp_path.resolve() / "site" / "x"
    with pytest.raises(PathError, match="through a symbolic link"):
        folder_path(tmp_path, "site/out/x")
