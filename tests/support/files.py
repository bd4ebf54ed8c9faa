"""Trees and archives the file-operation tests build, and a way to compare trees exactly."""

from __future__ import annotations

import fcntl
import io
import os
import random
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from webapp.core.userfiles import LEFTOVER, LOCKS


def write_tree(base: Path, spec: dict[str, Any]) -> Path:
    """Files (bytes), folders (dicts) and symbolic links (("link", target)) from a dict."""
    base.mkdir(parents=True, exist_ok=True)
    for name, value in spec.items():
        path = base / name
        if isinstance(value, dict):
            write_tree(path, value)
        elif isinstance(value, tuple):
            os.symlink(value[1], path)
        else:
            path.write_bytes(value)
    return base


def read_tree(base: Path) -> dict[str, Any]:
    """The inverse of write_tree: everything under base, byte for byte."""
    tree: dict[str, Any] = {}
    for entry in sorted(base.iterdir()):
        if entry.is_symlink():
            tree[entry.name] = ("link", os.readlink(entry))
        elif entry.is_dir():
            tree[entry.name] = read_tree(entry)
        else:
            tree[entry.name] = entry.read_bytes()
    return tree


def sample_tree(seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    return {
        "readme.txt": b"hello\n",
        "data.bin": rng.randbytes(300_000),
        "docs": {"a.txt": b"a" * 10, "deep": {"b.bin": rng.randbytes(5000)}, "empty": {}},
        "latest": ("link", "docs/a.txt"),
    }


def make_archive(source: Path, dest: Path, fmt: str) -> Path:
    """zip, tar, tar.gz, tar.bz2 or tar.xz of source's content; the name says nothing."""
    if fmt == "zip":
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(source.rglob("*")):
                name = str(path.relative_to(source))
                if path.is_symlink():
                    info = zipfile.ZipInfo(name)
                    info.external_attr = (0o120777 << 16)
                    archive.writestr(info, os.readlink(path))
                else:
                    archive.write(path, name)
        return dest
    mode = {"tar": "w", "tar.gz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}[fmt]
    with tarfile.open(dest, mode) as archive:
        for path in sorted(source.rglob("*")):
            archive.add(path, str(path.relative_to(source)), recursive=False)
    return dest


def tar_of(dest: Path, *members: tuple[tarfile.TarInfo, bytes | None]) -> Path:
    """A tar of hand-made members, hostile ones included."""
    with tarfile.open(dest, "w") as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return dest


def member(name: str, type: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = type
    info.linkname = link
    return info


def sparse_tar(dest: Path, name: str, size: int, then: dict[str, bytes] | None = None) -> Path:
    """A tar whose first member is `size` zero bytes, stored as a hole: huge, yet no disk."""
    info = tarfile.TarInfo(name)
    info.size = size
    with open(dest, "wb") as out:
        out.write(info.tobuf())
        out.seek(size + (-size % 512), os.SEEK_CUR)
        for other, data in (then or {}).items():
            extra = tarfile.TarInfo(other)
            extra.size = len(data)
            out.write(extra.tobuf() + data + bytes(-len(data) % 512))
        out.write(bytes(1024))
    return dest


def sparse_file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        out.truncate(size)
    return path


def leftovers(folder: Path) -> list[str]:
    """Staging, trash or displaced folders a task left behind."""
    return sorted(p.name for p in folder.iterdir() if LEFTOVER.match(p.name))


@contextmanager
def holding_lock(root: Path, space: str) -> Iterator[None]:
    """Hold a space's lock from the test, as another task would."""
    (root / LOCKS).mkdir(parents=True, exist_ok=True)
    with open(root / LOCKS / f"{space}.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
