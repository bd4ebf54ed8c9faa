"""distribute: copy a file or folder of one space to the same path in other spaces.

Each target is staged (a hard-link copy of what it holds, then the source's files
written over it) and swapped in whole, so every target ends fully updated or untouched.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from webapp.core import userfiles
from webapp.core.kinds import Field, InvalidParameters, task_kind
from webapp.core.runtime import OperationError, TaskCancelled, TaskContext, describe_failure
from webapp.operations.common import locked, plural

STRATEGIES = ("overwrite", "ignore_existing", "mirror", "skip")
# The strategies in words, for the forms, descriptions and outcomes people read.
STRATEGY_WORDS = {
    "overwrite": "replace existing files",
    "ignore_existing": "keep existing files",
    "mirror": "make an exact copy",
    "skip": "do nothing",
}


@dataclass
class Tally:
    created: int = 0
    replaced: int = 0
    preserved: int = 0
    removed: int = 0

    def __str__(self) -> str:
        return (f"created {self.created}, replaced {self.replaced}, "
                f"preserved {self.preserved}, removed {self.removed}")


@dataclass(frozen=True)
class Item:
    """One thing under the source: a file, a folder or a symbolic link."""

    path: PurePosixPath  # relative to the source; "." for a source that is a file
    type: str
    size: int = 0


def _inventory(source: Path) -> list[Item]:
    if not source.is_dir() or source.is_symlink():
        return [_item(source, PurePosixPath("."))]
    items = []
    for top, dirs, files in os.walk(source):
        here = Path(top)
        for name in sorted(dirs) + sorted(files):
            items.append(_item(here / name, PurePosixPath(here.relative_to(source), name)))
    return items


def _item(path: Path, rel: PurePosixPath) -> Item:
    if path.is_symlink():
        return Item(rel, "symlink")
    if path.is_dir():
        return Item(rel, "dir")
    if path.is_file():
        return Item(rel, "file", path.stat().st_size)
    raise OperationError(f"{path.name} is neither a file nor a folder; it cannot be copied")


def _existing_files(folder: Path) -> set[PurePosixPath]:
    if not folder.is_dir() or folder.is_symlink():
        return {PurePosixPath(".")} if os.path.lexists(folder) else set()
    found = set()
    for top, dirs, files in os.walk(folder):
        for name in files + [d for d in dirs if (Path(top) / d).is_symlink()]:
            found.add(PurePosixPath(Path(top).relative_to(folder), name))
    return found


class _Copier:
    """Progress across all targets, in bytes plus one unit per file."""

    def __init__(self, context: TaskContext, items: list[Item], targets: int) -> None:
        self.context = context
        self.total = max(1, targets * sum(item.size + 1 for item in items))
        self.done = 0
        self.message = ""

    def step(self, units: int) -> None:
        self.done += units
        self.context.checkpoint()
        self.context.progress(self.done / self.total, self.message)

    def update(
        self, source: Path, items: list[Item], dest: Path, strategy: str, label: str
    ) -> Tally:
        """Make dest (a path in staging, holding a copy of the target's content) per strategy."""
        tally = Tally()
        before = _existing_files(dest)
        folder = source.is_dir() and not source.is_symlink()
        if strategy == "mirror":
            tally.removed = len(before - {i.path for i in items if i.type != "dir"})
        if strategy == "mirror" or (folder and os.path.lexists(dest) and not dest.is_dir()):
            userfiles.remove(dest)
        if folder:
            dest.mkdir(parents=True, exist_ok=True)
        for item in items:
            self.message = f"{label}: {item.path}"
            origin = source / item.path
            place = dest / item.path
            if item.type == "dir":
                # Never a link where the source has a folder: files written below it
                # would land wherever it points, outside the staged copy.
                if place.is_symlink() or (os.path.lexists(place) and not place.is_dir()):
                    userfiles.remove(place)
                place.mkdir(parents=True, exist_ok=True)
                continue
            exists = os.path.lexists(place)
            if exists and strategy == "ignore_existing":
                tally.preserved += 1
                self.step(item.size + 1)
                continue
            if exists or item.path in before:
                tally.replaced += 1
            else:
                tally.created += 1
            if place.is_dir() and not place.is_symlink():
                userfiles.remove(place)
            place.parent.mkdir(parents=True, exist_ok=True)
            if item.type == "symlink":
                userfiles.remove(place)
                os.symlink(os.readlink(origin), place)
            else:
                with open(origin, "rb") as stream:
                    userfiles.write_file(stream, place, self.step, origin.stat().st_mode)
                shutil.copystat(origin, place)
            self.step(1)
        return tally


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
    source_rel = userfiles.relative(params["source"])
    inner = PurePosixPath(*source_rel.parts[1:])
    source = userfiles.resolve(root, source_rel)
    source_space = userfiles.space_of(root, source)
    done: list[str] = []
    lines: list[str] = []
    with locked(context, exclusive=targets, shared=[source_space]):
        for target in targets:
            if not (root / target).is_dir():
                raise OperationError(f"The space {target} is resting or gone; wake it first")
        if not os.path.lexists(source):
            raise OperationError(f"There is nothing at {params['source']}")
        items = _inventory(source)
        copier = _Copier(context, items, len(targets))
        try:
            for target in targets:
                dest = userfiles.resolve(root, PurePosixPath(target) / inner)
                if userfiles.space_of(root, dest) != target:
                    raise OperationError(f"{target}/{inner} leads out of the space {target}")
                top = userfiles.first_missing(dest)
                userfiles.clean_leftovers(top)
                staging = userfiles.beside(top, "staging")
                try:
                    if top.is_dir() and not top.is_symlink():
                        userfiles.clone_tree(top, staging, context.checkpoint)
                    elif os.path.lexists(top):
                        os.link(top, staging, follow_symlinks=False)
                    work = staging / dest.relative_to(top)
                    tally = copier.update(source, items, work, strategy, target)
                    context.checkpoint()
                    userfiles.swap_in(staging, top)
                finally:
                    userfiles.remove(staging)
                done.append(target)
                lines.append(f"{target}: {tally}")
                context.log(f"Copied {params['source']} to {target}: {tally}")
                context.details = "\n".join(lines)
        except TaskCancelled:
            raise TaskCancelled(f"Cancelled by user; {_which(done, targets)}") from None
        except Exception as exc:
            raise OperationError(f"{describe_failure(exc)}; {_which(done, targets)}") from exc
    return f"Distributed {params['source']} ({STRATEGY_WORDS[strategy]}): " + "; ".join(lines)


def _which(done: list[str], targets: list[str]) -> str:
    untouched = [t for t in targets if t not in done]
    return (f"updated: {', '.join(done) or 'none'}; "
            f"untouched: {', '.join(untouched) or 'none'}")
