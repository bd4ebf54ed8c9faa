"""The `demo` command: a demo user with tasks in every state, so `make run` shows the product."""

from __future__ import annotations

import secrets
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.core import runtime
from webapp.core.models import Task, User
from webapp.core.queue import TaskQueue
from webapp.core.userfiles import UserFiles
from webapp.web.auth import create_user

DEMO_USER = "demo"


def init_app(app: Flask) -> None:
    app.cli.add_command(demo_command)


@click.command("demo")
@with_appcontext
@click.option("--url", default="http://127.0.0.1:5000", help="Where the web server listens.")
def demo_command(url: str) -> None:
    """Create the demo user and its tasks once; print where to sign in."""
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


def seed_tasks(db: Session, queue: TaskQueue, files: UserFiles, user: User) -> list[Task]:
    """Real launches through the runtime; the consumer takes them when it starts."""
    launches = [
        {"kind": "sleep", "seconds": "2", "steps": "4", "description": "Warm up the caches"},
        {"kind": "sleep", "seconds": "3", "steps": "3", "fail": "The archive is corrupt: "
         "unexpected end of data in member 'slides/week-3.pdf'",
         "description": "Extract course-materials.zip into Lectures"},
        {"kind": "sleep", "seconds": "60", "steps": "60",
         "description": "Distribute 'Syllabus' to 12 course spaces"},
        {"kind": "sleep", "seconds": "900", "steps": "900",
         "description": "Wake the resting space 'Physics 101 (2025)'"},
    ]
    tasks = [runtime.launch(db, queue, files, user, raw["kind"], raw) for raw in launches]
    cancelled = runtime.launch(db, queue, files, user, "sleep",
                               {"seconds": "30", "description": "Re-index the media library"})
    runtime.cancel(db, queue, cancelled)
    # Stays queued for a while, so the demo shows that state too.
    waiting = runtime.launch(db, queue, files, user, "sleep",
                             {"seconds": "20", "description": "Nightly report"}, delay=180)
    return [*tasks, cancelled, waiting]
