"""distribute on a real consumer: each strategy to three spaces, byte for byte, per-target
summaries, refusals at launch, and a cancel that leaves each target whole or untouched."""

from __future__ import annotations

import pytest

from tests.support.accounts import Account
from tests.support.context import run
from tests.support.files import leftovers, read_tree, write_tree
from tests.support.processes import wait_for
from webapp.core.runtime import TaskCancelled
from webapp.core.userfiles import SPARES
from webapp.operations.distribute import STRATEGY_WORDS

pytestmark = pytest.mark.usefixtures("consumer")

SOURCE = {"index.html": b"<h1>new</h1>", "img": {"logo.png": b"\x89PNG new"}}


def spaces(account: Account) -> None:
    """src holds the content; a is empty, b has an older copy plus a file of its own."""
    write_tree(account.root, {
        "src": {"content": SOURCE},
        "a": {},
        "b": {"content": {"index.html": b"<h1>old</h1>", "extra.txt": b"mine"}},
        "c": {"content": {"img": {"logo.png": b"old logo"}}, "other.txt": b"untouched"},
    })


EXPECTED = {
    "overwrite": (
        {"content": SOURCE},
        {"content": SOURCE | {"extra.txt": b"mine"}},
        {"content": SOURCE, "other.txt": b"untouched"},
        ["a: created 2, replaced 0, preserved 0, removed 0, unchanged 0",
         "b: created 1, replaced 1, preserved 0, removed 0, unchanged 0",
         "c: created 1, replaced 1, preserved 0, removed 0, unchanged 0"],
    ),
    "ignore_existing": (
        {"content": SOURCE},
        {"content": {"index.html": b"<h1>old</h1>", "extra.txt": b"mine",
                     "img": {"logo.png": b"\x89PNG new"}}},
        {"content": {"index.html": b"<h1>new</h1>", "img": {"logo.png": b"old logo"}},
         "other.txt": b"untouched"},
        ["a: created 2, replaced 0, preserved 0, removed 0, unchanged 0",
         "b: created 1, replaced 0, preserved 1, removed 0, unchanged 0",
         "c: created 1, replaced 0, preserved 1, removed 0, unchanged 0"],
    ),
    "mirror": (
        {"content": SOURCE},
        {"content": SOURCE},
        {"content": SOURCE, "other.txt": b"untouched"},
        ["a: created 2, replaced 0, preserved 0, removed 0, unchanged 0",
         "b: created 1, replaced 1, preserved 0, removed 1, unchanged 0",
         "c: created 1, replaced 1, preserved 0, removed 0, unchanged 0"],
    ),
}


@pytest.mark.parametrize("strategy", sorted(EXPECTED))
def test_each_strategy_to_three_spaces(account: Account, strategy: str) -> None:
    spaces(account)
    task_id = account.launch("distribute", source="src/content", targets=["a", "b", "c"],
                             strategy=strategy)
    done = account.final(task_id)
    assert done["status"] == "completed", done
    assert done["progress"] == 1.0
    a, b, c, summary = EXPECTED[strategy]
    assert read_tree(account.root / "a") == a
    assert read_tree(account.root / "b") == b
    assert read_tree(account.root / "c") == c
    assert done["details"] == "\n".join(summary)
    words = STRATEGY_WORDS[strategy]
    assert done["outcome"] == f"Distributed src/content ({words}): " + "; ".join(summary)
    assert read_tree(account.root / "src") == {"content": SOURCE}
    # a's content is new: its worker clones it into its spare once the task completed.
    wait_for(lambda: (account.root / SPARES / "a" / "content").is_dir())
    for space in "abc":
        assert leftovers(account.root / space) == []


def test_skip_does_nothing_and_says_so(account: Account) -> None:
    spaces(account)
    before = read_tree(account.root)
    done = account.final(account.launch("distribute", source="src/content",
                                        targets=["a", "b"], strategy="skip"))
    assert done["status"] == "completed"
    assert done["outcome"] == "Skipped: nothing was copied to 2 spaces"
    assert read_tree(account.root) == before


def test_a_single_file_and_the_cli(app, account: Account) -> None:
    spaces(account)
    result = app.test_cli_runner().invoke(args=[
        "tasks", "launch", "distribute", "--user", account.user.name,
        "source=src/content/index.html", "targets=a", "targets=b"])
    assert result.exit_code == 0, result.output
    done = account.final(result.output.strip())
    assert done["status"] == "completed", done
    assert (account.root / "a" / "content" / "index.html").read_bytes() == b"<h1>new</h1>"
    assert (account.root / "b" / "content" / "index.html").read_bytes() == b"<h1>new</h1>"
    assert (account.root / "b" / "content" / "extra.txt").read_bytes() == b"mine"


@pytest.mark.parametrize("params,message", [
    ({"source": "src/content", "targets": ["src"]}, "src is the source's own space"),
    ({"source": "src/content", "targets": ["nope"]}, "there is no space named 'nope'"),
    ({"source": "src/content", "targets": []}, "targets needs at least one value"),
    ({"source": "src/content", "targets": ["a", "a"]}, "names the same value twice"),
    ({"source": "src", "targets": ["a"]}, "is a whole space"),
    ({"source": "src/missing", "targets": ["a"]}, "there is nothing at src/missing"),
    ({"source": "../src/content", "targets": ["a"]}, "leads outside your folder"),
    ({"source": "src/content", "targets": ["a"], "strategy": "merge"},
     "strategy must be one of: overwrite, ignore_existing, mirror, skip"),
])
def test_bad_launches_are_400(account: Account, params: dict, message: str) -> None:
    spaces(account)
    response = account.api("POST", "/tasks", json={"kind": "distribute", **params})
    assert response.status_code == 400
    assert message in response.get_json()["error"]


def test_cancel_leaves_each_target_whole_or_untouched(account: Account) -> None:
    """Cancelled while b is being copied: the test context (tests/support/context.py)
    cancels at the first checkpoint after the operation reports "b: ...", every time."""
    spaces(account)
    before = read_tree(account.root / "b"), read_tree(account.root / "c")
    with pytest.raises(TaskCancelled) as cancelled:
        run("distribute", account.root, {"source": "src/content", "targets": ["a", "b", "c"]},
            cancel_when=lambda context: context.message.startswith("b (2 of 3):"))
    assert str(cancelled.value) == "Cancelled by user; updated: a; untouched: b, c"
    assert read_tree(account.root / "a" / "content") == SOURCE
    assert (read_tree(account.root / "b"), read_tree(account.root / "c")) == before
    for space in "abc":
        assert leftovers(account.root / space) == []


def test_a_link_in_the_target_is_never_written_through(account: Account) -> None:
    spaces(account)
    write_tree(account.root / "elsewhere", {"logo.png": b"not yours to change"})
    (account.root / "b" / "content" / "img").symlink_to("../../elsewhere")
    done = account.final(account.launch("distribute", source="src/content", targets=["b"]))
    assert done["status"] == "completed", done
    assert read_tree(account.root / "elsewhere") == {"logo.png": b"not yours to change"}
    assert read_tree(account.root / "b" / "content" / "img") == SOURCE["img"]
