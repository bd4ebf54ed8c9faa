"""What the file operations share: taking their spaces' locks as a task, and sizes in words."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from webapp.core.runtime import TaskContext
from webapp.core.userfiles import space_locks


@contextmanager
def locked(
    context: TaskContext, *, exclusive: Iterable[str] = (), shared: Iterable[str] = ()
) -> Iterator[None]:
    """Hold the spaces' locks; while another task holds one, say so and stay cancellable."""

    def wait(name: str) -> None:
        context.checkpoint()
        context.progress(None, f"Waiting for another task on space {name} to finish")

    with space_locks(context.root, exclusive=exclusive, shared=shared, wait=wait):
        yield


def size_text(size: float) -> str:
    units = ("bytes", "KiB", "MiB", "GiB", "TiB")
    index = 0
    while size >= 1024 and index < len(units) - 1:
        size /= 1024
        index += 1
    return f"{size:.0f} bytes" if index == 0 else f"{size:.1f} {units[index]}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
