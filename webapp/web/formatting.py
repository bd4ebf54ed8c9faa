"""Template filters and helpers for times, durations and attempts: UTC in the markup,
readable text for people. Plain functions rather than macros: the tasks view calls them
for every row, and a Jinja macro call costs several times a function's."""

from __future__ import annotations

from datetime import datetime

from flask import Flask
from markupsafe import Markup

from webapp.core.kinds import kind_named
from webapp.core.models import Task
from webapp.core.runtime import duration_text


def init_app(app: Flask) -> None:
    app.add_template_filter(iso_utc)
    app.add_template_filter(utc_text)
    app.add_template_filter(duration)
    app.add_template_global(moment)
    app.add_template_global(attempt_note)
    app.add_template_global(status_badge)


# An icon and a word as well as a colour, so status never rests on colour alone.
STATUS_LOOKS = {
    "queued": ("◷", "Queued"),
    "running": ("◔", "Running"),
    "completed": ("✓", "Completed"),
    "failed": ("!", "Failed"),
    "cancelled": ("⊘", "Cancelled"),
    "cancelling": ("◌", "Cancelling…"),
}


def status_badge(task: Task) -> Markup:
    key = task.shown_status
    icon, word = STATUS_LOOKS[key]
    return Markup(f'<span class="status status-{key}"><span class="status-icon" '
                  f'aria-hidden="true">{icon}</span>{word}</span>')


def moment(value: datetime | None) -> Markup:
    """A `<time>` with the UTC instant; app.js shows it in the user's zone. Empty for None."""
    if value is None:
        return Markup("")
    # Both texts are digits and punctuation made here: nothing to escape.
    text = utc_text(value)
    return Markup(f'<time datetime="{iso_utc(value)}" title="{text}">{text}</time>')


def attempt_note(task: Task) -> str:
    """" · attempt 2 of 3" for a retried task of a kind that retries; else nothing."""
    kind = kind_named(task.kind)
    if kind is None or kind.max_attempts <= 1 or task.attempts_spent <= 1:
        return ""
    return f" · attempt {task.attempts_spent} of {kind.max_attempts}"


def iso_utc(moment: datetime | None) -> str:
    """The instant for `<time datetime>`; the browser shows it in the user's zone."""
    return "" if moment is None else moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def utc_text(moment: datetime | None) -> str:
    """What shows before the script turns it into the user's own time zone."""
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    return "" if seconds is None else duration_text(seconds)
