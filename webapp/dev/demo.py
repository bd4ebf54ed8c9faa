"""The `demo` command: a demo user with real spaces and files, and the real operations
launched on them, so `make run` shows the product doing its work."""

from __future__ import annotations

import io
import secrets
import tarfile
import zipfile
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.core import runtime
from webapp.core.models import Task, User
from webapp.core.queue import TaskQueue
from webapp.core.userfiles import UserFiles, save_upload
from webapp.web.auth import create_user

DEMO_USER = "demo"
# How long the demo's scheduled tasks wait: long enough to see them waiting.
LATER_SECONDS = 180.0

LECTURES = ("Units and measurement", "Motion in one dimension", "Newton's laws",
            "Work and energy")


def course_files(title: str) -> dict[str, str]:
    """A small course's worth of text, HTML and CSV: what a teaching space holds."""
    files = {
        "README.txt": f"{title}\n\nLecture notes in lectures/, marks and attendance in data/.\n",
        "syllabus.html": (f"<!doctype html>\n<title>{title}: syllabus</title>\n<h1>{title}</h1>\n"
                          "<ol>\n" + "".join(f"  <li>{topic}</li>\n" for topic in LECTURES)
                          + "</ol>\n"),
        "data/marks.csv": "student,quiz 1,quiz 2,exam\n" + "".join(
            f"s{n:03d},{50 + n * 7 % 50},{45 + n * 11 % 55},{40 + n * 13 % 60}\n"
            for n in range(1, 41)),
        "data/attendance.csv": "week,present,absent\n" + "".join(
            f"{week},{36 - week % 4},{week % 4}\n" for week in range(1, 13)),
    }
    for week, topic in enumerate(LECTURES, start=1):
        files[f"lectures/week-{week}.html"] = (
            f"<!doctype html>\n<title>Week {week}: {topic}</title>\n<h1>{topic}</h1>\n"
            + "<p>Reading, worked examples and exercises for the week.</p>\n" * 20)
    return files


def zip_of(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def damaged_tar_gz(files: dict[str, str]) -> bytes:
    """A tar.gz cut short, as an interrupted download leaves it: extracting it fails."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    whole = buffer.getvalue()
    return whole[: len(whole) // 2]


def make_space(root: Path, name: str, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def upload(root: Path, filename: str, data: bytes) -> str:
    """Keep the bytes as a browser upload is kept; the path an archive field takes."""
    relative, _folder = save_upload(root, filename, lambda path: path.write_bytes(data))
    return relative


def init_app(app: Flask) -> None:
    app.cli.add_command(demo_command)


@click.command("demo")
@with_appcontext
@click.option("--url", default="http://127.0.0.1:5000", help="Where the web server listens.")
def demo_command(url: str) -> None:
    """Create the demo user, its spaces and its tasks once; print where to sign in."""
    login_file = Path(current_app.instance_path) / "demo-login.txt"
    with current_app.extensions["database"].session() as db:
        if db.scalar(select(User).where(User.name == DEMO_USER)) is None:
            password = secrets.token_urlsafe(9)
            user = create_user(db, DEMO_USER, password)
            login_file.write_text(password + "\n")
            login_file.chmod(0o600)
            extensions = current_app.extensions
            seed_tasks(db, extensions["task_queue"], extensions["user_files"], user)
    password = login_file.read_text().strip() if login_file.exists() else "(see demo-login.txt)"
    click.echo(f"\n  Open {url}/tasks and sign in as {DEMO_USER!r} with password {password!r}\n")


def seed_tasks(db: Session, queue: TaskQueue, files: UserFiles, user: User,
               later: float = LATER_SECONDS) -> list[Task]:
    """Spaces with files on disk, then real launches through the runtime: the consumer
    runs them when it starts, and every row shows what the operation did. `later`: the
    delay of the tasks launched for later."""
    root = files.root(user.name)
    make_space(root, "physics-101", course_files("Physics 101: Mechanics"))
    for name, title in (("chemistry-201", "Chemistry 201"), ("biology-110", "Biology 110"),
                        ("history-2024", "History 2024"), ("archive-2023", "Archive 2023")):
        make_space(root, name, {"README.txt": f"{title}\n"})
    course = course_files("Physics 102: Waves and optics")

    def launch(kind: str, delay: float | None = None, **params: object) -> Task:
        return runtime.launch(db, queue, files, user, kind, params, delay=delay)

    tasks = [
        launch("extract_archive", target="physics-102",
               archive_path=upload(root, "physics-102.zip", zip_of(course))),
        launch("distribute", source="physics-101/syllabus.html",
               targets=["chemistry-201", "biology-110"], strategy="overwrite"),
        launch("rest_space", space="history-2024"),
        # A real failure: the archive is damaged, and the extraction says so.
        launch("extract_archive", target="physics-101/week-5",
               archive_path=upload(root, "week-5-slides.tar.gz", damaged_tar_gz(course))),
        launch("rest_space", space="archive-2023"),
    ]
    # Launched for later: the row says when it runs.
    tasks.append(launch("wake_space", delay=later, space="archive-2023"))
    cancelled = launch("distribute", delay=later, source="physics-101/lectures",
                       targets=["chemistry-201"], strategy="mirror")
    runtime.cancel(db, queue, cancelled)
    return [*tasks, cancelled]
