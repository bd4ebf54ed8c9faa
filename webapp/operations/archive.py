"""extract_archive: unpack a zip or tar (gz, bz2, xz) into a folder of a space, all or nothing.

The archive is read in one pass and every member is checked before it is written
(webapp.operations.archive_reader). Everything goes into a staging folder beside the
target, swapped in at the end.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from webapp.core import userfiles
from webapp.core.kinds import Field, InvalidParameters, task_kind
from webapp.core.runtime import OperationError, TaskCancelled, TaskContext
from webapp.operations.archive_reader import DAMAGED, extract_members, open_archive
from webapp.operations.common import locked, plural, size_text
from webapp.operations.quota import Quota
from webapp.settings import ArchiveLimits


def _describe(params: dict[str, Any]) -> str:
    into = "merging into" if params.get("merge") else "into"
    return f"Extract {PurePosixPath(params['archive_path']).name} {into} {params['target']}"


def _check(params: dict[str, Any], root: Path) -> None:
    """Refused at launch, not after a worker took it: a target that exists, unless merged
    into. (The run checks again: the folder may appear in between.)"""
    if not params["merge"] and os.path.lexists(root / params["target"]):
        raise InvalidParameters(
            f"target: {params['target']} already exists; choose merge to extract into it",
            "target", f"{params['target']} already exists: choose another folder, or merge "
            "into it.")


@task_kind(
    "extract_archive",
    title="Extract an archive",
    summary="Unpack a zip or tar archive into a new space or folder.",
    describe=_describe,
    settings=lambda settings: settings.archive_limits,
    # Every result is staged and swapped in whole, so a run cut short may simply run again.
    max_attempts=3,
    retry_safe=True,
    check=_check,
    fields=(
        Field("archive_path", label="Archive path", upload="archive", required=True,
              path=userfiles.file_path,
              help="A zip or tar (gz, bz2, xz) in your folder, or upload one as 'archive'."),
        Field("target", label="Target folder", required=True, path=userfiles.folder_path,
              help="<space> or <space>/<folder>; created by the extraction."),
        Field("merge", bool, "Merge into an existing folder", default=False,
              help="Files of the same name are replaced; other files stay."),
    ),
)
def extract_archive(params: dict[str, Any], context: TaskContext) -> str:
    root = context.root
    archive = userfiles.resolve(root, userfiles.relative(params["archive_path"]))
    try:
        return _extract(archive, params, context)
    finally:
        # An upload (`.uploads/<tag>/<name>`) exists only to be extracted: it goes,
        # however the task ends.
        if archive.parent.parent == root.resolve() / userfiles.UPLOADS:
            userfiles.remove(archive.parent)


def _extract(archive: Path, params: dict[str, Any], context: TaskContext) -> str:
    root = context.root
    if not archive.is_file():
        raise OperationError(f"There is no archive at {params['archive_path']}")
    target = userfiles.resolve(root, userfiles.relative(params["target"]))
    space = userfiles.space_of(root, target)
    try:
        return _extract_locked(archive, target, space, params, context)
    except TaskCancelled:
        # True of every cancel: the result is staged and swapped in only at the end.
        raise TaskCancelled(
            f"Cancelled by user; nothing was written to {params['target']}") from None


def _extract_locked(archive: Path, target: Path, space: str, params: dict[str, Any],
                    context: TaskContext) -> str:
    root = context.root
    with locked(context, exclusive=[space]):
        if userfiles.is_resting(root, space):
            raise OperationError(f"The space {space} is resting; wake it first")
        top = userfiles.first_missing(target)
        userfiles.clean_leftovers(top)
        if target.exists() and not params["merge"]:
            raise OperationError(
                f"{params['target']} already exists; choose merge to extract into it"
            )
        if os.path.lexists(target) and not target.is_dir():
            raise OperationError(f"{params['target']} is a file, not a folder")
        staging = userfiles.beside(top, "staging")
        try:
            context.progress(0.0, "Reading the archive")
            merging = target.exists()
            if merging:
                userfiles.clone_tree(target, staging, context.checkpoint)
                context.log(f"Merging into {params['target']}: its files were staged first")
            work = staging / target.relative_to(top)
            work.mkdir(parents=True, exist_ok=True)
            try:
                limits: ArchiveLimits = context.settings
                source = open_archive(archive, limits)
                try:
                    quota = Quota(root, limits.user_quota_bytes)
                    files, size = extract_members(source, work, context, quota=quota)
                finally:
                    source.close()
                context.log(f"Extracted {plural(files, 'file')} ({size_text(size)}) "
                            f"from {archive.name}")
            except DAMAGED as exc:
                raise OperationError(f"The archive is damaged or truncated ({exc})") from None
            context.checkpoint()
            userfiles.swap_in(staging, top)
            context.log(f"Swapped the result in as {params['target']}")
            if merging:  # the space's spares would keep what the merge replaced
                userfiles.drop_spares(root, space)
        finally:
            userfiles.remove(staging)
    return f"Extracted {plural(files, 'file')} ({size_text(size)}) into {params['target']}"
