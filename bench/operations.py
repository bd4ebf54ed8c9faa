"""Operations against the tools they replace: extraction against tar and unzip,
distribution against cp -a and rsync, rest and wake against tar and sha256sum, side by
side in one run on data the script makes (issue 12).

    .venv/bin/python bench/operations.py                  # 20,000 x 4 KiB + 2 x 128 MiB
    .venv/bin/python bench/operations.py --files 2000 --big 1 --big-mib 16 --many 10
    .venv/bin/python bench/operations.py --only distribute many

A private instance on the embedded default (SQLite + SqliteHuey) with one consumer
started as `make run` starts it. An operation's time is its record's `finished_at`
minus `started_at`; a tool's is its wall time, started and waited for by this script.
Both read and write the same file system, with a warm page cache (the data was just
written) and no dirty pages at the start (os.sync before each run). Each side runs
--repeat times (the redistributions after a change: once), the two in turn; a row gives
each side's median and the median of the runs' ratios, each run against the tool's run
beside it: a slow moment of the disk then weighs on the ratio only when it falls on one
side of a pair. Nothing is removed until the end (see RECENTLY_FREED): the default sizes need
about 11 GiB, and the script is best started five minutes after anything removed many
files from the same disk (a run before it, say).
A target keeps a spare (made with it, then the tree each redistribution displaces) that
the next redistribution stages in, so each writes what changed. The script redistributes
three times: after changing --change % of the files, after changing as many others, and
after ten times as many others, so that the figures show whether its time follows what
changed.
Distribution to 10 and --many targets uses a smaller tree (--many-files small files, no
big ones), as cp -a does: 200 copies of the full tree would take 67 GiB. The tools (tar,
unzip, zip, cp, rsync, sha256sum) must be installed (`make bench-tools`); the script
installs nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import CONSUMER, configuration, peak_rss_mb, start_process, stop_process

import webapp.operations  # noqa: F401 - registers the kinds launched here
from webapp.core import runtime, userfiles
from webapp.core.db import Database
from webapp.core.models import Status, Task, User
from webapp.core.queue import TaskQueue
from webapp.core.userfiles import UserFiles
from webapp.settings import Settings
from webapp.web.auth import create_user

TOOLS = ("tar", "unzip", "zip", "cp", "rsync", "sha256sum")
Row = Callable[[str, list[float], str, list[float]], None]


def make_tree(folder: Path, files: int, kib: int, big: int, big_mib: int) -> None:
    """files of kib KiB of random bytes, 100 to a folder, and big files of big_mib MiB."""
    for n in range(files):
        sub = folder / f"d{n // 100:04d}"
        if n % 100 == 0:
            sub.mkdir(parents=True)
        (sub / f"f{n:06d}.bin").write_bytes(os.urandom(kib * 1024))
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(big):
        with open(folder / f"big{n}.bin", "wb") as out:
            for _ in range(big_mib):
                out.write(os.urandom(1 << 20))


def change_some(folder: Path, percent: float, first: int = 0) -> int:
    """Rewrite every (100 / percent)-th small file, from the first-th, with new bytes of
    the same size."""
    paths = sorted(folder.glob("d*/f*.bin"))
    every = max(1, round(100 / percent))
    for path in paths[first::every]:
        path.write_bytes(os.urandom(path.stat().st_size))
    return len(paths[first::every])


class Instance:
    """A private instance with one consumer, one user and their folder."""

    def __init__(self, env: dict[str, str]) -> None:
        settings = Settings.from_env(env)
        self.database = Database(settings.database_url)
        self.queue = TaskQueue(settings.huey_url, settings.huey_name)
        self.files = UserFiles(settings.data_root)
        with self.database.session() as db:
            self.user: User = create_user(db, f"bench-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex)
        self.root = self.files.root(self.user.name)
        self.root.mkdir(parents=True)
        self.log = settings.instance_path / "consumer.log"
        self.consumer = start_process(CONSUMER, env, self.log)

    def run(self, kind: str, **params: Any) -> float:
        """Launch, wait until finished; the record's running time in seconds."""
        with self.database.session() as db:
            task_id = runtime.launch(db, self.queue, self.files, self.user, kind, params).id
        while True:
            with self.database.session() as db:
                task = db.get(Task, task_id)
                assert task is not None
                if task.finished_at is not None:
                    if task.status != Status.COMPLETED:
                        raise SystemExit(f"{kind} {params}: {task.status}: {task.outcome}")
                    assert task.started_at is not None
                    return (task.finished_at - task.started_at).total_seconds()
            time.sleep(0.02)

    def distribute_anew(self, source: str, names: list[str]) -> float:
        """Distribute source into new folders of the spaces names; the record's running
        time. Their spares are made by the consumer once the record says completed: the
        script waits for them too, so that the tool's run comes after, and says when."""
        ran = self.run("distribute", source=source, targets=names, strategy="mirror")
        ended = time.monotonic()
        wanted = [userfiles.spare_of(self.root, (self.root / name / Path(source).name).resolve())
                  for name in names]
        while not all(path is not None and path.is_dir() for path in wanted):
            if time.monotonic() > ended + 600:
                raise SystemExit(f"the spares of {source} in {names[0]}… were not made")
            time.sleep(0.02)
        print(f"    the spares of the {len(names)} new targets were made "
              f"{time.monotonic() - ended:.2f} s after", file=sys.stderr)
        return ran

    def close(self) -> None:
        stop_process(self.consumer)
        self.database.dispose()


def tool(*commands: list[str]) -> float:
    began = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def synced(measure: Callable[[], float]) -> float:
    """One run with no dirty pages left to write: otherwise a run pays for writing back
    what the one before it wrote."""
    os.sync()
    return measure()


# ext4 without a journal (this machine's disk) will not reuse an inode for a while after
# its file was removed, and passes over each such inode, a lookup in the buffer cache
# each, every time it makes a file: after 20,000 files were removed, making 1,000 files
# with cp took 4 to 6 times as long for five minutes, and as long as before from 320 s
# on (measured every 15 s, a sync after each). So nothing is removed while figures are
# taken: each run writes into folders of its own, and all goes when the instance does.
# Only rest removes files (the space, by design); the wakes wait that out.
RECENTLY_FREED = 360.0


def removals_waited_out(app: Instance) -> None:
    """Once the consumer's maintenance has emptied the trash (rest_space sends the space
    there), wait until neither that removal nor the tool's `rm` costs anything to the
    files made next."""
    deadline = time.monotonic() + 120
    while app.files.trash.is_dir() and any(app.files.trash.iterdir()):
        if time.monotonic() > deadline:
            raise SystemExit(f"maintenance did not empty {app.files.trash}")
        time.sleep(0.2)
    os.sync()
    print(f"  waiting {RECENTLY_FREED:.0f} s for the removals to stop costing",
          file=sys.stderr)
    time.sleep(RECENTLY_FREED)


def in_turn(run: int, sides: list[tuple[list[float], Callable[[], float], list[Path]]]
            ) -> None:
    """One run of each side, after making its (new) folders, each side first in turn:
    neither always makes its files after the other's."""
    for figures, measure_side, folders in sides[run % 2:] + sides[:run % 2]:
        for folder in folders:
            folder.mkdir(parents=True)
        figures.append(synced(measure_side))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20_000, help="small files (20000)")
    parser.add_argument("--kib", type=int, default=4, help="size of a small file (4 KiB)")
    parser.add_argument("--big", type=int, default=2, help="big files (2)")
    parser.add_argument("--big-mib", type=int, default=128, help="size of a big file (128 MiB)")
    parser.add_argument("--many", type=int, default=200, help="targets of the widest run (200)")
    parser.add_argument("--many-files", type=int, default=1000,
                        help="small files in the tree sent to 10 and --many targets (1000)")
    parser.add_argument("--change", type=float, default=1.0,
                        help="percent of the files changed before a redistribution (1)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side per row (3)")
    parser.add_argument("--only", nargs="+", default=list(PARTS), choices=list(PARTS),
                        help="the parts to run (all, in this order)")
    args = parser.parse_args()
    missing = [name for name in TOOLS if shutil.which(name) is None]
    if missing:
        raise SystemExit(f"missing tools: {', '.join(missing)}; run `make bench-tools`")
    rows: list[tuple[str, float, str, float, float]] = []

    def row(what: str, ours: list[float], tool_text: str, theirs: list[float]) -> None:
        ratio = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
        rows.append((what, statistics.median(ours), tool_text, statistics.median(theirs),
                     ratio))
        print(f"  {what}: {seconds(ours)}; {tool_text} {seconds(theirs)}", file=sys.stderr)

    with configuration("sqlite", "operations") as env:
        instance = Instance(env)
        try:
            # The tools write beside the spaces: ext4 places a folder's files near its
            # parent's, and what making a file costs depends on where (10 x cp -a of
            # 1,000 files into the instance folder: 0.26 s, and 0.50 s in another folder
            # minutes later, where the project's distribution took 0.43 s both times).
            measure(instance, instance.root / "by-tools", args, row)
        finally:
            instance.close()
    size = args.files * args.kib / 1024 + args.big * args.big_mib
    print(f"\n{args.files:,} files of {args.kib} KiB + {args.big} x {args.big_mib} MiB "
          f"({size:,.0f} MiB); medians of {args.repeat} runs, ratios of runs side by side\n")
    print("| operation | this project | the tool | ratio |\n|---|---|---|---|")
    for what, ours, tool_text, theirs, ratio in rows:
        print(f"| {what} | {ours:.2f} s | {tool_text} {theirs:.2f} s | {ratio:.2f} |")


def seconds(figures: list[float]) -> str:
    return " ".join(f"{figure:.2f}" for figure in figures) + " s"


def measure(app: Instance, tools: Path, args: argparse.Namespace, row: Row) -> None:
    tools.mkdir()
    tree = app.root / "src" / "tree"
    if set(args.only) - {"many"}:
        make_tree(tree, args.files, args.kib, args.big, args.big_mib)
    for part in args.only:
        PARTS[part](app, tools, tree, args, row)


def extraction(app: Instance, tools: Path, tree: Path, args: argparse.Namespace,
               row: Row) -> None:
    """Each run into a folder of its own, the project's and the tool's in turn."""
    root = app.root
    subprocess.run(["tar", "-czf", str(tools / "tree.tar.gz"), "-C", str(tree), "."], check=True)
    subprocess.run(["zip", "-qr", str(tools / "tree.zip"), "."], cwd=tree, check=True)
    for fmt in ("tar.gz", "zip"):
        archive = tools / f"tree.{fmt}"
        shutil.copy(archive, root / archive.name)
        ours: list[float] = []
        theirs: list[float] = []
        for run in range(args.repeat):
            target, out = f"ex-{fmt}-{run}", tools / f"out-{fmt}-{run}"
            command = (["tar", "-xzf", str(archive), "-C", str(out)] if fmt == "tar.gz"
                       else ["unzip", "-q", str(archive), "-d", str(out)])
            in_turn(run, [(ours, lambda target=target, fmt=fmt: app.run(
                "extract_archive", archive_path=f"tree.{fmt}", target=target), []),
                (theirs, lambda command=command: tool(command), [out])])
        row(f"extract {fmt}", ours, f"`{'tar' if fmt == 'tar.gz' else 'unzip'}`", theirs)


def distribution(app: Instance, tools: Path, tree: Path, args: argparse.Namespace,
                 row: Row) -> None:
    """The first copies as extraction is measured; the later rows work on the last run's
    targets and copies."""
    repeat = args.repeat
    ours: list[float] = []
    theirs: list[float] = []
    for run in range(repeat):
        names = [f"t{run}-1", f"t{run}-2"]
        copies = [tools / name for name in names]
        in_turn(run, [(ours, lambda names=names: app.distribute_anew("src/tree", names),
                       [app.root / name for name in names]),
            (theirs, lambda copies=copies: tool(*[
                ["cp", "-a", str(tree), str(c / "tree")] for c in copies]), copies)])
    row("distribute to 2 new spaces", ours, "`cp -a` twice", theirs)
    for strategy, flag in (("mirror", "--delete"), ("ignore_existing", "--ignore-existing")):
        ours = [synced(lambda strategy=strategy: app.run(
            "distribute", source="src/tree", targets=names, strategy=strategy))
            for _ in range(repeat)]
        theirs = [synced(lambda flag=flag: tool(*[
            ["rsync", "-a", flag, f"{tree}/", f"{c / 'tree'}/"] for c in copies]))
            for _ in range(repeat)]
        row(f"distribute `{strategy}`, targets up to date", ours,
            f"`rsync -a {flag}` twice", theirs)
    runs = [("redistribute `mirror` after changing {percent:g} % ({changed} files), the "
             "first time", args.change, 0),
            ("again after changing {percent:g} % other files ({changed}), through the spare",
             args.change, 1),
            ("again after changing {percent:g} % other files ({changed}), through the spare",
             args.change * 10, 2)]
    for what, percent, first in runs:
        changed = change_some(tree, percent, first)
        ours = [synced(lambda: app.run("distribute", source="src/tree", targets=names,
                                       strategy="mirror"))]
        theirs = [synced(lambda: tool(*[
            ["rsync", "-a", "--delete", f"{tree}/", f"{c / 'tree'}/"] for c in copies]))]
        row(what.format(percent=percent, changed=changed), ours, "`rsync -a --delete` twice",
            theirs)


def many(app: Instance, tools: Path, tree: Path, args: argparse.Namespace, row: Row) -> None:
    """Each run into folders of its own, the project's and cp's in turn."""
    root = app.root
    small = root / "few" / "tree"
    make_tree(small, args.many_files, args.kib, 0, 0)
    for count in dict.fromkeys((10, args.many)):  # once when --many is 10
        ours: list[float] = []
        theirs: list[float] = []
        for run in range(args.repeat):
            names = [f"m{count}-{run}-{n:03d}" for n in range(count)]
            copies = [tools / name for name in names]
            in_turn(run, [(ours, lambda names=names: app.distribute_anew("few/tree", names),
                           [root / name for name in names]),
                (theirs, lambda copies=copies: tool(*[
                    ["cp", "-a", str(small), str(c / "tree")] for c in copies]), copies)])
        row(f"distribute {args.many_files:,} files to {count} new spaces", ours,
            f"`cp -a` {count} times", theirs)
        # A high-water mark: flat memory shows as the same figure after 10 and after 200.
        print(f"  consumer's peak RSS after {count} targets: "
              f"{peak_rss_mb(app.consumer.pid):.0f} MiB", file=sys.stderr)


def snapshots(app: Instance, tools: Path, tree: Path, args: argparse.Namespace,
              row: Row) -> None:
    """Each run rests a copy of its own, the two sides in turn; the wakes come once the
    rests' removals are waited out (see RECENTLY_FREED), the sides in turn again."""
    def space(run: int) -> str:
        return f"rest-{run}"

    def folder(run: int) -> Path:
        return tools / f"space-{run}"

    def snapshot(run: int) -> Path:
        return tools / f"space-{run}.tar"

    for run in range(args.repeat):
        for copy in (app.root / space(run), folder(run)):
            subprocess.run(["cp", "-a", str(app.root / "src"), str(copy)], check=True)
    rests: list[float] = []
    tool_rests: list[float] = []
    for run in range(args.repeat):
        in_turn(run, [(rests, lambda run=run: app.run("rest_space", space=space(run)), []),
                      (tool_rests, lambda run=run: tool(
                          ["tar", "-cf", str(snapshot(run)), "-C", str(folder(run)), "."],
                          ["sha256sum", str(snapshot(run))], ["rm", "-rf", str(folder(run))]),
                       [])])
    row("rest a space", rests, "`tar -c` + `sha256sum` + `rm`", tool_rests)
    removals_waited_out(app)
    wakes: list[float] = []
    tool_wakes: list[float] = []
    for run in range(args.repeat):
        in_turn(run, [(wakes, lambda run=run: app.run("wake_space", space=space(run)), []),
                      (tool_wakes, lambda run=run: tool(
                          ["sha256sum", str(snapshot(run))],
                          ["tar", "-xf", str(snapshot(run)), "-C", str(folder(run))]),
                       [folder(run)])])
    row("wake a space", wakes, "`sha256sum` + `tar -x`", tool_wakes)


# Rest comes last: its removals would cost the files any later part makes.
PARTS: dict[str, Callable[[Instance, Path, Path, argparse.Namespace, Row], None]] = {
    "extract": extraction, "distribute": distribution, "many": many, "snapshots": snapshots}


if __name__ == "__main__":
    main()
