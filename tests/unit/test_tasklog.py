"""A task's own log in memory: lines made safe and cut, the pending lines bounded like the
store, and what the operations write through a test context (no database)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.context import TestContext, run
from tests.support.files import make_archive, write_tree
from webapp.core import tasklog
from webapp.core.tasklog import MAX_LINES, WARNING, Batch, Pending, clean, line
from webapp.settings import ArchiveLimits


def test_clean_makes_any_text_one_storable_line() -> None:
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")  # a Latin-1 name on disk
    assert clean(f"Skipped {name}") == "Skipped caf\ufffd.txt"
    assert clean("lone \ud800 surrogate") == "lone \ufffd surrogate"
    assert clean("nul\x00 bell\x07 esc\x1b[31m") == "nul\ufffd bell\ufffd esc\ufffd[31m"
    assert clean("two\nlines\r\n\tand a tab") == "two lines and a tab"
    assert clean(1204) == "1204"
    assert clean("x" * 2000) == "x" * 499 + "…"
    assert len(clean("é" * 500)) == 500
    assert clean("ünïcødé 😀 stays") == "ünïcødé 😀 stays"


def test_a_level_is_info_or_warning() -> None:
    assert line("fine").level == "info"
    assert line("odd", WARNING).level == "warning"
    with pytest.raises(ValueError, match="info, warning"):
        line("loud", "error")


def test_pending_lines_are_bounded_and_count_what_they_dropped() -> None:
    pending = Pending()
    for number in range(1, MAX_LINES + 206):
        pending.add(line(f"line {number}"))
    batch = pending.take()
    assert len(batch.lines) == MAX_LINES and batch.skipped == 205
    assert batch.lines[0].text == "line 206" and batch.count == MAX_LINES + 205
    assert pending.take() == Batch([], 0)


def test_lines_put_back_come_before_newer_ones_within_the_bound() -> None:
    pending = Pending()
    pending.add(line("first"))
    taken = pending.take()
    pending.add(line("second"))
    pending.restore(taken)
    assert [one.text for one in pending.peek()] == ["first", "second"]
    for number in range(MAX_LINES):
        pending.add(line(f"more {number}"))
    pending.restore(Batch([line("old")], skipped=3))
    batch = pending.take()
    assert len(batch.lines) == MAX_LINES
    # 3 skipped before "old", then "old", "first", "second" pushed out by the bound.
    assert batch.skipped == 3 + 3 and batch.lines[-1].text == f"more {MAX_LINES - 1}"


def test_sleep_logs_each_step(tmp_path: Path) -> None:
    _, context = run("sleep", tmp_path, {"seconds": "0", "steps": "3"})
    assert context.logged == [("info", f"Step {n} of 3 done") for n in (1, 2, 3)]


def test_context_log_is_made_safe_and_bounded(tmp_path: Path) -> None:
    context = TestContext(tmp_path)
    context.log("bad \udcff name\nhere", tasklog.WARNING)
    assert context.logged == [("warning", "bad \ufffd name here")]
    for number in range(MAX_LINES):
        context.log(f"line {number}")
    assert len(context.logged) == MAX_LINES
    assert context.logged[0] == ("info", "line 0")


def test_distribute_logs_each_target(tmp_path: Path) -> None:
    write_tree(tmp_path, {"s": {"docs": {"a.txt": b"a", "b.txt": b"b"}}, "t1": {}, "t2": {}})
    _, context = run("distribute", tmp_path,
                     {"source": "s/docs", "targets": ["t1", "t2"], "strategy": "overwrite"})
    assert context.logged == [
        ("info", "Copied s/docs to t1: created 2, replaced 0, preserved 0, removed 0"),
        ("info", "Copied s/docs to t2: created 2, replaced 0, preserved 0, removed 0"),
    ]


def test_extract_logs_what_it_did(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", {"a.txt": b"hello", "d": {"b.txt": b"world"}})
    root = tmp_path / "root"
    (root / "site").mkdir(parents=True)
    archive = make_archive(source, root / "site.tar.gz", "tar.gz")
    _, context = run("extract_archive", root, {"archive_path": archive.name, "target": "site/x"},
                     settings=ArchiveLimits())
    texts = [text for _, text in context.logged]
    assert texts[0].startswith("Extracted 2 files (")
    assert texts[-1] == "Swapped the result in as site/x"


def test_rest_logs_a_skipped_pipe_as_a_warning_and_wake_logs_the_restore(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a": {"keep.txt": b"kept"}})
    os.mkfifo(tmp_path / "a" / "pipe")
    _, rested = run("rest_space", tmp_path, {"space": "a"})
    assert ("warning", "Skipped pipe: a socket, pipe or device file cannot be kept in a "
            "snapshot") in rested.logged
    assert rested.logged[-1][1].startswith("Wrote the snapshot of a (")
    _, woken = run("wake_space", tmp_path, {"space": "a"})
    assert woken.logged[0] == ("info", "The snapshot of a matches its checksum")
    assert woken.logged[1][1].startswith("Restored 1 file (")
